//! Key files (`keys/<id>`): the master key wrapped under a password.
//!
//! ```text
//! "CAIRNKEY" | version u8 = 1 | kdf u8 = 1 (Argon2id v0x13)
//! m_cost_kib u32 | t_cost u32 | p_cost u32 | salt [32]
//! created i64 | host bytes | user bytes
//! nonce [24] | wrapped master key [32] | tag [16]
//! ```
//! Everything before the nonce is authenticated as associated data.

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{Key, Tag, XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

use crate::codec::{Reader, Writer, expect_version};
use crate::{Error, Id, MasterKey, RandomSource, Result};

const MAGIC: &[u8; 8] = b"CAIRNKEY";
const VERSION: u8 = 1;
const KDF_ARGON2ID: u8 = 1;
const WHAT: &str = "key file";
/// The largest key file a reader accepts (host and user included).
pub const MAX_KEY_FILE_LEN: usize = 64 * 1024;

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_cost_kib: u32,
    /// Iterations.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl KdfParams {
    /// 64 MiB, 3 passes, 4 lanes: RFC 9106's second recommended setting.
    /// The lanes are computed in parallel (on rayon's threads), so on two
    /// cores unlocking takes half the time one lane of the same memory and
    /// passes took (key files written before keep their one lane).
    pub const DEFAULT: KdfParams = KdfParams {
        m_cost_kib: 64 * 1024,
        t_cost: 3,
        p_cost: 4,
    };
    /// The cheapest valid setting. Only for tests: it offers no protection.
    pub const INSECURE_FAST: KdfParams = KdfParams {
        m_cost_kib: 8,
        t_cost: 1,
        p_cost: 1,
    };
    /// Upper bounds, applied when creating and when reading a key file, so
    /// that a forged file cannot make unlocking take more than 1 GiB of
    /// memory or minutes of CPU (docs/FORMAT.md, "Limits").
    pub const MAX_M_COST_KIB: u32 = 1024 * 1024;
    /// Most passes.
    pub const MAX_T_COST: u32 = 16;
    /// Most lanes.
    pub const MAX_P_COST: u32 = 16;

    /// Fails if a parameter is beyond its bound.
    pub fn check_bounds(&self) -> Result<()> {
        if self.m_cost_kib > Self::MAX_M_COST_KIB
            || self.t_cost > Self::MAX_T_COST
            || self.p_cost > Self::MAX_P_COST
        {
            return Err(Error::InvalidParameter(format!(
                "Argon2 parameters memory {} KiB, {} passes, {} lanes exceed the limits \
                 ({} KiB, {} passes, {} lanes)",
                self.m_cost_kib,
                self.t_cost,
                self.p_cost,
                Self::MAX_M_COST_KIB,
                Self::MAX_T_COST,
                Self::MAX_P_COST
            )));
        }
        Ok(())
    }

    fn argon2(&self) -> Result<Argon2<'static>> {
        self.check_bounds()?;
        let p = Params::new(self.m_cost_kib, self.t_cost, self.p_cost, Some(32))
            .map_err(|e| Error::InvalidParameter(format!("Argon2 parameters {self:?}: {e}")))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, p))
    }
}

/// A decoded key file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KeyFile {
    /// Argon2id parameters used to derive the wrapping key.
    pub kdf: KdfParams,
    /// Argon2id salt.
    #[serde(skip)]
    pub salt: [u8; 32],
    /// Creation time, seconds since the Unix epoch.
    pub created: i64,
    /// Host the key was created on (informational).
    pub host: String,
    /// User who created the key (informational).
    pub user: String,
    #[serde(skip)]
    nonce: [u8; 24],
    #[serde(skip)]
    wrapped: [u8; 48],
}

impl KeyFile {
    /// Wraps `master` under `password`.
    pub fn create(
        master: &MasterKey,
        password: &[u8],
        kdf: KdfParams,
        created: i64,
        host: &str,
        user: &str,
        rng: &dyn RandomSource,
    ) -> Result<KeyFile> {
        let mut salt = [0u8; 32];
        rng.fill(&mut salt);
        let mut nonce = [0u8; 24];
        rng.fill(&mut nonce);
        let mut kf = KeyFile {
            kdf,
            salt,
            created,
            host: host.to_owned(),
            user: user.to_owned(),
            nonce,
            wrapped: [0; 48],
        };
        let wrapping = kf.wrapping_key(password)?;
        let mut buf = Zeroizing::new(*master.as_bytes());
        let tag = XChaCha20Poly1305::new(&Key::from(*wrapping))
            .encrypt_inout_detached(&XNonce::from(nonce), &kf.header(), (&mut buf[..]).into())
            .map_err(|_| Error::InvalidParameter("key wrapping failed".into()))?;
        kf.wrapped[..32].copy_from_slice(&buf[..]);
        kf.wrapped[32..].copy_from_slice(&tag);
        Ok(kf)
    }

    /// Unwraps the master key, or [`Error::WrongPassword`].
    pub fn unlock(&self, password: &[u8]) -> Result<MasterKey> {
        let wrapping = self.wrapping_key(password)?;
        let mut buf = Zeroizing::new([0u8; 32]);
        buf.copy_from_slice(&self.wrapped[..32]);
        let tag = Tag::try_from(&self.wrapped[32..]).map_err(|_| Error::WrongPassword)?;
        XChaCha20Poly1305::new(&Key::from(*wrapping))
            .decrypt_inout_detached(
                &XNonce::from(self.nonce),
                &self.header(),
                (&mut buf[..]).into(),
                &tag,
            )
            .map_err(|_| Error::WrongPassword)?;
        Ok(MasterKey::from_bytes(*buf))
    }

    fn wrapping_key(&self, password: &[u8]) -> Result<Zeroizing<[u8; 32]>> {
        let mut out = Zeroizing::new([0u8; 32]);
        self.kdf
            .argon2()?
            .hash_password_into(password, &self.salt, &mut out[..])
            .map_err(|e| Error::InvalidParameter(format!("Argon2: {e}")))?;
        Ok(out)
    }

    /// The authenticated header: every field before the nonce.
    fn header(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(128);
        w.raw(MAGIC);
        w.u8(VERSION);
        w.u8(KDF_ARGON2ID);
        w.u32(self.kdf.m_cost_kib);
        w.u32(self.kdf.t_cost);
        w.u32(self.kdf.p_cost);
        w.raw(&self.salt);
        w.i64(self.created);
        w.bytes(self.host.as_bytes());
        w.bytes(self.user.as_bytes());
        w.finish()
    }

    /// The stored bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = self.header();
        b.extend_from_slice(&self.nonce);
        b.extend_from_slice(&self.wrapped);
        b
    }

    /// Parses the stored bytes of `keys/<name>`, refusing before any key
    /// derivation work a file whose name is not the BLAKE3 hash of its
    /// bytes (damaged, or planted to be tried first), a file larger than
    /// [`MAX_KEY_FILE_LEN`], and Argon2 parameters beyond
    /// [`KdfParams::check_bounds`]. Errors name the key file.
    pub fn decode_named(name: &Id, bytes: &[u8]) -> Result<KeyFile> {
        let named = |detail: String| Error::corrupt(WHAT, format!("keys/{name}: {detail}"));
        if bytes.len() > MAX_KEY_FILE_LEN {
            return Err(named(format!(
                "{} bytes, more than the {MAX_KEY_FILE_LEN} byte limit",
                bytes.len()
            )));
        }
        if blake3::hash(bytes).as_bytes() != name.as_bytes() {
            return Err(named(
                "its name is not the BLAKE3 hash of its content (damaged or forged)".into(),
            ));
        }
        let kf = KeyFile::decode(bytes).map_err(|e| named(e.to_string()))?;
        kf.kdf.check_bounds().map_err(|e| named(e.to_string()))?;
        Ok(kf)
    }

    /// Parses stored bytes (does not unlock). Readers of a repository use
    /// [`decode_named`](Self::decode_named).
    pub fn decode(bytes: &[u8]) -> Result<KeyFile> {
        let mut r = Reader::new(bytes, WHAT);
        if r.take(8)? != MAGIC {
            return Err(r.err("missing CAIRNKEY magic"));
        }
        expect_version(&mut r, WHAT, VERSION)?;
        let kdf = r.u8()?;
        if kdf != KDF_ARGON2ID {
            return Err(r.err(format!("unknown key derivation function {kdf}")));
        }
        let kdf = KdfParams {
            m_cost_kib: r.u32()?,
            t_cost: r.u32()?,
            p_cost: r.u32()?,
        };
        let mut salt = [0u8; 32];
        salt.copy_from_slice(r.take(32)?);
        let created = r.i64()?;
        let host = r.string()?;
        let user = r.string()?;
        let mut nonce = [0u8; 24];
        nonce.copy_from_slice(r.take(24)?);
        let mut wrapped = [0u8; 48];
        wrapped.copy_from_slice(r.take(48)?);
        r.end()?;
        Ok(KeyFile {
            kdf,
            salt,
            created,
            host,
            user,
            nonce,
            wrapped,
        })
    }

    /// The name of this key file: the BLAKE3 hash of its bytes.
    pub fn id(&self) -> Id {
        Id::from_bytes(*blake3::hash(&self.encode()).as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lanes computed in parallel give the reference implementation's
    /// result: the values below are libargon2's (`argon2id_hash_raw`, the
    /// C reference code, as Debian ships it), for password "cairn lanes"
    /// and the salt 0, 1, …, 31.
    #[test]
    fn argon2id_with_lanes_matches_the_reference_implementation() {
        let salt: Vec<u8> = (0..32).collect();
        let cases = [
            (
                (64, 2, 4),
                "c83a2f8a9551d5db0114034ad9b3e3baf41503c6ef2a59e5d17c43654f224eca",
            ),
            (
                (64, 2, 1),
                "e8ee43ee42018641d39a39f46d7d7c2b8900fb473adfef71d3746f10ec59ef59",
            ),
            (
                (1024, 3, 4),
                "e155639e61c4c8e326ef00c516bb1c9ecf7d68d6f02ed1aaf614c805c9f66c12",
            ),
        ];
        for ((m_cost_kib, t_cost, p_cost), want) in cases {
            let params = KdfParams {
                m_cost_kib,
                t_cost,
                p_cost,
            };
            let mut out = [0u8; 32];
            params
                .argon2()
                .expect("valid")
                .hash_password_into(b"cairn lanes", &salt, &mut out)
                .expect("hash");
            let hex: String = out.iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(hex, want, "{params:?}");
        }
    }

    #[test]
    fn the_default_is_rfc_9106s_second_recommendation() {
        let d = KdfParams::DEFAULT;
        assert_eq!((d.m_cost_kib, d.t_cost, d.p_cost), (64 * 1024, 3, 4));
        d.check_bounds().expect("within the limits");
    }
}
