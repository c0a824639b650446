//! Session objects, format version 1 (read only; cairn writes version 2,
//! see `session_v2`).
//!
//! ```text
//! version u8 = 1 | session id [32] | purpose u8 (0 backup, 1 prune)
//! host bytes (UTF-8) | pid u32 | started i64 | refreshed i64
//! ```
//! A version 1 session is always a running one: writers of that version
//! deleted the object when they ended.

use super::session_v2::{Session, SessionPurpose};
use crate::Result;
use crate::codec::Reader;

/// Decodes the fields after the version byte of a version 1 session.
pub(crate) fn decode_fields(r: &mut Reader<'_>) -> Result<Session> {
    let id = r.id()?;
    let purpose = SessionPurpose::decode(r)?;
    let host = r.string()?;
    let pid = r.u32()?;
    let started = r.i64()?;
    let refreshed = r.i64()?;
    Ok(Session {
        id,
        purpose,
        host,
        pid,
        started,
        refreshed,
        done: None,
    })
}
