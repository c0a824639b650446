//! Byte-level helpers shared by every on-disk codec.
//!
//! All integers are little-endian; byte strings are a `u32` length followed by
//! the bytes. The reader never allocates more than the input could hold, so a
//! hostile length field cannot exhaust memory.

use crate::{Error, Id, Result};

/// Appends primitive values to a buffer.
#[derive(Debug, Default)]
pub(crate) struct Writer {
    pub(crate) buf: Vec<u8>,
}

impl Writer {
    pub(crate) fn with_capacity(n: usize) -> Self {
        Writer {
            buf: Vec::with_capacity(n),
        }
    }
    pub(crate) fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub(crate) fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn i32(&mut self, v: i32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn raw(&mut self, v: &[u8]) {
        self.buf.extend_from_slice(v);
    }
    pub(crate) fn id(&mut self, v: &Id) {
        self.buf.extend_from_slice(v.as_bytes());
    }
    /// A length-prefixed byte string. Callers keep strings far below 4 GiB;
    /// the length saturates rather than wrapping so an impossible input
    /// produces an undecodable object instead of a misleading one.
    pub(crate) fn bytes(&mut self, v: &[u8]) {
        self.u32(u32::try_from(v.len()).unwrap_or(u32::MAX));
        self.buf.extend_from_slice(v);
    }
    pub(crate) fn count(&mut self, n: usize) {
        self.u32(u32::try_from(n).unwrap_or(u32::MAX));
    }
    pub(crate) fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// Reads primitive values from a byte slice, failing cleanly on truncation.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], what: &'static str) -> Self {
        Reader { buf, pos: 0, what }
    }
    pub(crate) fn err(&self, detail: impl Into<String>) -> Error {
        Error::corrupt(self.what, detail)
    }
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(self.err(format!(
                "truncated at byte {}: need {n} more bytes, have {}",
                self.pos,
                self.remaining()
            )));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    pub(crate) fn u8(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }
    pub(crate) fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    pub(crate) fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    pub(crate) fn i32(&mut self) -> Result<i32> {
        Ok(i32::from_le_bytes(self.array()?))
    }
    pub(crate) fn i64(&mut self) -> Result<i64> {
        Ok(i64::from_le_bytes(self.array()?))
    }
    pub(crate) fn id(&mut self) -> Result<Id> {
        Ok(Id::from_bytes(self.array()?))
    }
    pub(crate) fn bytes(&mut self) -> Result<Vec<u8>> {
        let n = self.u32()? as usize;
        Ok(self.take(n)?.to_vec())
    }
    /// A UTF-8 string stored as a byte string.
    pub(crate) fn string(&mut self) -> Result<String> {
        let b = self.bytes()?;
        String::from_utf8(b).map_err(|_| self.err("string is not UTF-8"))
    }
    /// An element count, checked against the bytes left so that a forged
    /// count cannot make the caller reserve more than the input could hold.
    pub(crate) fn count(&mut self, min_element_size: usize) -> Result<usize> {
        let n = self.u32()? as usize;
        if n.saturating_mul(min_element_size.max(1)) > self.remaining() {
            return Err(self.err(format!(
                "count {n} cannot fit in the {} bytes left",
                self.remaining()
            )));
        }
        Ok(n)
    }
    /// Fails unless every byte was consumed.
    pub(crate) fn end(self) -> Result<()> {
        if self.pos != self.buf.len() {
            return Err(self.err(format!(
                "{} trailing bytes after the end",
                self.buf.len() - self.pos
            )));
        }
        Ok(())
    }
}

/// Checks a leading version byte against the versions a decoder supports.
pub(crate) fn expect_version(r: &mut Reader<'_>, what: &'static str, supported: u8) -> Result<()> {
    let v = r.u8()?;
    if v != supported {
        return Err(Error::UnsupportedVersion {
            what,
            version: u32::from(v),
            supported: u32::from(supported),
        });
    }
    Ok(())
}
