//! Extended attributes, read and written through a descriptor of the entry
//! (never by a path that could have been swapped for a symlink). Every
//! namespace the process can read is captured: `user.`, `trusted.` and `security.` (root only for the
//! last two, by the kernel's rules), and the POSIX ACLs, which the kernel
//! exposes as `system.posix_acl_access` and `system.posix_acl_default`.

use std::io;
use std::os::fd::BorrowedFd;
use std::path::PathBuf;

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
        // Nothing to read (most files have no attributes): one call, not two.
        if n == 0 {
            return Ok(Vec::new());
        }
        let mut buf = Vec::with_capacity(n);
        match read(&mut buf) {
            Ok(_) => return Ok(buf),
            Err(rustix::io::Errno::RANGE) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Where the attributes are read and written: an open descriptor, or the
/// /proc path of an `O_PATH` descriptor (which the `f*xattr` calls refuse).
enum Target<'a> {
    Fd(BorrowedFd<'a>),
    Proc(PathBuf),
}

impl Target<'_> {
    fn new(fd: BorrowedFd<'_>, pinned: bool) -> Target<'_> {
        if pinned {
            Target::Proc(crate::at::proc_path(fd))
        } else {
            Target::Fd(fd)
        }
    }

    fn list(&self) -> rustix::io::Result<Vec<u8>> {
        match self {
            Target::Fd(fd) => read_sized(
                || rustix::fs::flistxattr_query(fd),
                |buf| rustix::fs::flistxattr(fd, spare_capacity(buf)),
            ),
            Target::Proc(p) => read_sized(
                || rustix::fs::listxattr_query(p),
                |buf| rustix::fs::listxattr(p, spare_capacity(buf)),
            ),
        }
    }

    fn get(&self, name: &[u8]) -> rustix::io::Result<Vec<u8>> {
        match self {
            Target::Fd(fd) => read_sized(
                || rustix::fs::fgetxattr_query(fd, name),
                |buf| rustix::fs::fgetxattr(fd, name, spare_capacity(buf)),
            ),
            Target::Proc(p) => read_sized(
                || rustix::fs::getxattr_query(p, name),
                |buf| rustix::fs::getxattr(p, name, spare_capacity(buf)),
            ),
        }
    }

    fn set(&self, name: &[u8], value: &[u8]) -> rustix::io::Result<()> {
        match self {
            Target::Fd(fd) => rustix::fs::fsetxattr(fd, name, value, XattrFlags::empty()),
            Target::Proc(p) => rustix::fs::setxattr(p, name, value, XattrFlags::empty()),
        }
    }

    fn remove(&self, name: &[u8]) -> rustix::io::Result<()> {
        match self {
            Target::Fd(fd) => rustix::fs::fremovexattr(fd, name),
            Target::Proc(p) => rustix::fs::removexattr(p, name),
        }
    }
}

fn named(e: rustix::io::Errno, what: &str, name: &[u8]) -> io::Error {
    io::Error::new(
        io::Error::from(e).kind(),
        format!(
            "cannot {what} extended attribute {}: {e}",
            String::from_utf8_lossy(name)
        ),
    )
}

/// The extended attributes of the entry open as `fd` (`pinned`: an
/// `O_PATH` descriptor), sorted by name as the tree format requires. A
/// file system without extended attributes gives an empty list; an
/// attribute removed while it was being read is left out.
pub(crate) fn read(fd: BorrowedFd<'_>, pinned: bool) -> io::Result<Vec<Xattr>> {
    let t = Target::new(fd, pinned);
    let list = match t.list() {
        Ok(l) => l,
        Err(e) if unsupported(&e) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::new();
    for name in list.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let value = match t.get(name) {
            Ok(v) => v,
            Err(rustix::io::Errno::NODATA) => continue,
            Err(e) => return Err(named(e, "read", name)),
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

/// Makes the extended attributes of the entry open as `fd` exactly `want`:
/// sets each one and removes any other (a new file may have inherited a
/// default ACL). Without privilege only `user.` attributes and ACLs are
/// touched: the kernel reserves `trusted.` and `security.` to root.
pub(crate) fn apply(
    fd: BorrowedFd<'_>,
    pinned: bool,
    want: &[Xattr],
    privileged: bool,
) -> io::Result<()> {
    let t = Target::new(fd, pinned);
    let allowed =
        |name: &[u8]| privileged || name.starts_with(b"user.") || name.starts_with(b"system.");
    let have = match t.list() {
        Ok(l) => l,
        Err(e) if unsupported(&e) && want.is_empty() => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    for name in have.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        if allowed(name) && !want.iter().any(|x| x.name == name) {
            match t.remove(name) {
                Ok(()) | Err(rustix::io::Errno::NODATA) => {}
                Err(e) => return Err(named(e, "remove", name)),
            }
        }
    }
    for x in want.iter().filter(|x| allowed(&x.name)) {
        t.set(&x.name, &x.value)
            .map_err(|e| named(e, "set", &x.name))?;
    }
    Ok(())
}
