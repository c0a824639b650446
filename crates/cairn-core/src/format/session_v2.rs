//! Writer sessions (`sessions/<id>`): who may still reference blobs that no
//! snapshot lists yet, and which snapshots writers stored just before they
//! ended.
//!
//! ```text
//! version u8 = 2 | session id [32] | purpose u8 (0 backup, 1 prune)
//! host bytes (UTF-8) | pid u32 | started i64 | refreshed i64
//! state u8 (0 running, 1 done) | snapshot id [32] (only when done)
//! ```
//! Sealed as kind `Session` with the session id; the object is named by the
//! session id and rewritten (the one object that is) each time the writer
//! refreshes it, and a last time when it ends ("done", naming the snapshot
//! it stored). `refreshed` is never earlier than `started`; in a done
//! session it is when the writer ended. Version 1 objects (no state, always
//! running) still decode.

use crate::codec::{Reader, Writer};
use crate::{Id, Result};

const WHAT: &str = "session";
const VERSION: u8 = 2;

/// Why a session exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionPurpose {
    /// A backup (any writer of packs, index files and snapshots).
    Backup,
    /// A prune run: other prunes wait for it to end.
    Prune,
}

impl SessionPurpose {
    fn code(self) -> u8 {
        match self {
            SessionPurpose::Backup => 0,
            SessionPurpose::Prune => 1,
        }
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<SessionPurpose> {
        match r.u8()? {
            0 => Ok(SessionPurpose::Backup),
            1 => Ok(SessionPurpose::Prune),
            p => Err(r.err(format!("invalid purpose {p}"))),
        }
    }
}

/// One writer session.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Session {
    /// The session id: the same random id the writer puts in its index files.
    pub id: Id,
    /// What the session does.
    pub purpose: SessionPurpose,
    /// Host the writer runs on (informational).
    pub host: String,
    /// Its process id (informational).
    pub pid: u32,
    /// When the session was announced, seconds since the epoch (writer's clock).
    pub started: i64,
    /// When it was last refreshed (when it ended, for a done session),
    /// seconds since the epoch (writer's clock).
    pub refreshed: i64,
    /// `Some(snapshot)` once the writer has stored `snapshot` and ended:
    /// the session no longer writes anything, and prune deletes it only
    /// after the grace period.
    pub done: Option<Id>,
}

impl Session {
    /// The plaintext encoding (always the current version).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(91 + self.host.len());
        w.u8(VERSION);
        w.id(&self.id);
        w.u8(self.purpose.code());
        w.bytes(self.host.as_bytes());
        w.u32(self.pid);
        w.i64(self.started);
        w.i64(self.refreshed);
        match &self.done {
            None => w.u8(0),
            Some(snapshot) => {
                w.u8(1);
                w.id(snapshot);
            }
        }
        w.finish()
    }

    /// Decodes the plaintext of version 2, or of version 1 (a running
    /// session).
    pub fn decode(b: &[u8]) -> Result<Session> {
        let mut r = Reader::new(b, WHAT);
        let s = match r.u8()? {
            1 => super::session_v1::decode_fields(&mut r)?,
            VERSION => {
                let mut s = super::session_v1::decode_fields(&mut r)?;
                s.done = match r.u8()? {
                    0 => None,
                    1 => Some(r.id()?),
                    st => return Err(r.err(format!("invalid state {st}"))),
                };
                s
            }
            v => {
                return Err(crate::Error::UnsupportedVersion {
                    what: WHAT,
                    version: u32::from(v),
                    supported: u32::from(VERSION),
                });
            }
        };
        r.end()?;
        if s.refreshed < s.started {
            return Err(crate::Error::corrupt(
                WHAT,
                format!("refreshed {} is before started {}", s.refreshed, s.started),
            ));
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(b: u8) -> Id {
        Id::from_bytes([b; 32])
    }

    fn session(done: Option<Id>) -> Session {
        Session {
            id: id(0x11),
            purpose: SessionPurpose::Backup,
            host: "h".into(),
            pid: 7,
            started: 1_700_000_000,
            refreshed: 1_700_000_300,
            done,
        }
    }

    #[test]
    fn version_1_sessions_still_decode_as_running() {
        // FORMAT.md §15's version 1 vector.
        let v1 = format!(
            "01{}00010000006807000000{}{}",
            "11".repeat(32),
            "00f1536500000000",
            "2cf2536500000000"
        );
        let b = hex::decode(v1).expect("hex");
        assert_eq!(Session::decode(&b).expect("decode"), session(None));
    }

    /// FORMAT.md §15's version 2 vector.
    #[test]
    fn done_session_matches_its_golden_vector() {
        let s = session(Some(id(0x22)));
        let want = format!(
            "02{}00010000006807000000{}{}01{}",
            "11".repeat(32),
            "00f1536500000000",
            "2cf2536500000000",
            "22".repeat(32)
        );
        assert_eq!(hex::encode(s.encode()), want);
        assert_eq!(Session::decode(&s.encode()).expect("decode"), s);
    }

    #[test]
    fn running_session_encodes_a_zero_state() {
        let b = session(None).encode();
        assert_eq!(b.len(), 59 + 1);
        assert_eq!(b.last(), Some(&0));
    }

    #[test]
    fn an_unknown_state_is_corrupt() {
        let mut b = session(None).encode();
        if let Some(last) = b.last_mut() {
            *last = 2;
        }
        assert!(Session::decode(&b).is_err());
    }
}
