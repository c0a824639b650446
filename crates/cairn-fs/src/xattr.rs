//! Extended attributes: read with `llistxattr`/`lgetxattr`, written with
//! `lsetxattr`, never following symlinks. Every namespace the process can
//! read is captured: `user.`, `trusted.` and `security.` (root only for the
//! last two, by the kernel's rules), and the POSIX ACLs, which the kernel
//! exposes as `system.posix_acl_access` and `system.posix_acl_default`.

use std::io;
use std::path::Path;

use cairn_core::format::Xattr;
use rustix::buffer::spare_capacity;
use rustix::fs::XattrFlags;

/// Whether an error means "this file system has no extended attributes".
fn unsupported(e: &rustix::io::Errno) -> bool {
    *e == rustix::io::Errno::NOTSUP || *e == rustix::io::Errno::OPNOTSUPP
}

/// A growing read: ask for the size, read, and retry if an attribute grew
/// between the two calls.
fn read_sized(
    mut query: impl FnMut() -> rustix::io::Result<usize>,
    mut read: impl FnMut(&mut Vec<u8>) -> rustix::io::Result<usize>,
) -> rustix::io::Result<Vec<u8>> {
    loop {
        let n = query()?;
        let mut buf = Vec::with_capacity(n);
        match read(&mut buf) {
            Ok(_) => return Ok(buf),
            Err(rustix::io::Errno::RANGE) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// The extended attributes of `path` (not followed if a symlink), sorted
/// by name as the tree format requires. A file system without extended
/// attributes gives an empty list; an attribute removed while it was being
/// read is left out.
pub(crate) fn read(path: &Path) -> io::Result<Vec<Xattr>> {
    let a = crate::longpath::access(path)?;
    let path = a.path();
    let list = match read_sized(
        || rustix::fs::llistxattr_query(path),
        |buf| rustix::fs::llistxattr(path, spare_capacity(buf)),
    ) {
        Ok(l) => l,
        Err(e) if unsupported(&e) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::new();
    for name in list.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let value = match read_sized(
            || rustix::fs::lgetxattr_query(path, name),
            |buf| rustix::fs::lgetxattr(path, name, spare_capacity(buf)),
        ) {
            Ok(v) => v,
            Err(rustix::io::Errno::NODATA) => continue,
            Err(e) => {
                return Err(io::Error::new(
                    io::Error::from(e).kind(),
                    format!(
                        "cannot read extended attribute {}: {e}",
                        String::from_utf8_lossy(name)
                    ),
                ));
            }
        };
        out.push(Xattr {
            name: name.to_vec(),
            value,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out.dedup_by(|a, b| a.name == b.name);
    Ok(out)
}

/// Makes the extended attributes of `path` exactly `want`: sets each one
/// and removes any other (a new file may have inherited a default ACL).
/// Without privilege only `user.` attributes and ACLs are touched: the
/// kernel reserves `trusted.` and `security.` to root.
pub(crate) fn apply(path: &Path, want: &[Xattr], privileged: bool) -> io::Result<()> {
    let a = crate::longpath::access(path)?;
    let path = a.path();
    let allowed =
        |name: &[u8]| privileged || name.starts_with(b"user.") || name.starts_with(b"system.");
    let have = match read_sized(
        || rustix::fs::llistxattr_query(path),
        |buf| rustix::fs::llistxattr(path, spare_capacity(buf)),
    ) {
        Ok(l) => l,
        Err(e) if unsupported(&e) && want.is_empty() => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    for name in have.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        if allowed(name) && !want.iter().any(|x| x.name == name) {
            match rustix::fs::lremovexattr(path, name) {
                Ok(()) | Err(rustix::io::Errno::NODATA) => {}
                Err(e) => {
                    return Err(io::Error::new(
                        io::Error::from(e).kind(),
                        format!(
                            "cannot remove extended attribute {}: {e}",
                            String::from_utf8_lossy(name)
                        ),
                    ));
                }
            }
        }
    }
    for x in want.iter().filter(|x| allowed(&x.name)) {
        rustix::fs::lsetxattr(path, x.name.as_slice(), &x.value, XattrFlags::empty()).map_err(
            |e| {
                io::Error::new(
                    io::Error::from(e).kind(),
                    format!(
                        "cannot set extended attribute {}: {e}",
                        String::from_utf8_lossy(&x.name)
                    ),
                )
            },
        )?;
    }
    Ok(())
}
