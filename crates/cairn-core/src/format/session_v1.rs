//! Writer sessions (`sessions/<id>`): who may still reference blobs that no
//! snapshot lists yet.
//!
//! ```text
//! version u8 = 1 | session id [32] | purpose u8 (0 backup, 1 prune)
//! host bytes (UTF-8) | pid u32 | started i64 | refreshed i64
//! ```
//! Sealed as kind `Session` with the session id; the object is named by the
//! session id and rewritten (the one object that is) each time the writer
//! refreshes it. `refreshed` is never earlier than `started`.

use crate::codec::{Reader, Writer, expect_version};
use crate::{Id, Result};

const WHAT: &str = "session";
const VERSION: u8 = 1;

/// Why a session exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionPurpose {
    /// A backup (any writer of packs, index files and snapshots).
    Backup,
    /// A prune run: other prunes wait for it to end.
    Prune,
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
    /// When it was last refreshed, seconds since the epoch (writer's clock).
    pub refreshed: i64,
}

impl Session {
    /// The plaintext encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(58 + self.host.len());
        w.u8(VERSION);
        w.id(&self.id);
        w.u8(match self.purpose {
            SessionPurpose::Backup => 0,
            SessionPurpose::Prune => 1,
        });
        w.bytes(self.host.as_bytes());
        w.u32(self.pid);
        w.i64(self.started);
        w.i64(self.refreshed);
        w.finish()
    }

    /// Decodes the plaintext.
    pub fn decode(b: &[u8]) -> Result<Session> {
        let mut r = Reader::new(b, WHAT);
        expect_version(&mut r, WHAT, VERSION)?;
        let id = r.id()?;
        let purpose = match r.u8()? {
            0 => SessionPurpose::Backup,
            1 => SessionPurpose::Prune,
            p => return Err(r.err(format!("invalid purpose {p}"))),
        };
        let host = r.string()?;
        let pid = r.u32()?;
        let started = r.i64()?;
        let refreshed = r.i64()?;
        r.end()?;
        if refreshed < started {
            return Err(crate::Error::corrupt(
                WHAT,
                format!("refreshed {refreshed} is before started {started}"),
            ));
        }
        Ok(Session {
            id,
            purpose,
            host,
            pid,
            started,
            refreshed,
        })
    }
}
