//! `cairn ls`

use anyhow::Result;
use cairn::{Node, NodeKind};

use crate::cli::{Global, LsArgs};
use crate::output::time;
use crate::{context, exit};

fn type_char(k: NodeKind) -> char {
    match k {
        NodeKind::File => '-',
        NodeKind::Dir => 'd',
        NodeKind::Symlink => 'l',
        NodeKind::Fifo => 'p',
        NodeKind::CharDevice => 'c',
        NodeKind::BlockDevice => 'b',
        NodeKind::Socket => 's',
    }
}

fn mode_string(n: &Node) -> String {
    let mut s = String::with_capacity(10);
    s.push(type_char(n.kind));
    let m = n.mode;
    for (shift, special, lower, upper) in [
        (6, 0o4000, 's', 'S'),
        (3, 0o2000, 's', 'S'),
        (0, 0o1000, 't', 'T'),
    ] {
        let bits = (m >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(match (bits & 1 != 0, m & special != 0) {
            (true, true) => lower,
            (false, true) => upper,
            (true, false) => 'x',
            (false, false) => '-',
        });
    }
    s
}

/// Major and minor numbers of a Linux `dev_t` (glibc's encoding).
fn device_numbers(rdev: u64) -> (u64, u64) {
    let major = ((rdev >> 8) & 0xfff) | ((rdev >> 32) & 0xffff_f000);
    let minor = (rdev & 0xff) | ((rdev >> 12) & 0xffff_ff00);
    (major, minor)
}

fn owner(name: &[u8], id: u32) -> String {
    if name.is_empty() {
        id.to_string()
    } else {
        String::from_utf8_lossy(name).into_owned()
    }
}

pub(crate) async fn run(g: &Global, a: LsArgs) -> Result<u8> {
    let repo = context::open(g).await?;
    let (_, snap) = repo.find_snapshot(&a.snapshot).await?;
    let path = a.path.as_deref().unwrap_or("/");
    let start = cairn::resolve(&repo, &snap, path.as_bytes()).await?;
    let prefix = format!("/{}", path.trim_matches('/'));
    let entries = if start.kind == NodeKind::Dir {
        cairn::walk(&repo, &start, prefix.as_bytes(), true).await?
    } else {
        vec![cairn::Entry {
            path: prefix.into_bytes(),
            node: start,
        }]
    };
    for e in &entries {
        let p = String::from_utf8_lossy(&e.path);
        let n = &e.node;
        if a.json {
            let mut v = serde_json::to_value(n)?;
            if let Some(o) = v.as_object_mut() {
                o.remove("content");
                // Same rendering as names: a string, or {"hex": …} when
                // the path is not UTF-8, so nothing is lost.
                let path = match std::str::from_utf8(&e.path) {
                    Ok(t) => serde_json::json!(t),
                    Err(_) => serde_json::json!({ "hex": hex::encode(&e.path) }),
                };
                o.insert("path".into(), path);
            }
            println!("{}", serde_json::to_string(&v)?);
        } else if a.long {
            let target = if n.kind == NodeKind::Symlink {
                format!(" -> {}", String::from_utf8_lossy(&n.link_target))
            } else {
                String::new()
            };
            // Devices show their numbers where files show their size.
            let size = match n.kind {
                NodeKind::CharDevice | NodeKind::BlockDevice if n.content.is_empty() => {
                    let (major, minor) = device_numbers(n.rdev);
                    format!("{major}, {minor}")
                }
                _ => n.size.to_string(),
            };
            println!(
                "{} {:>3} {:>8} {:>8} {:>12} {} {p}{target}",
                mode_string(n),
                n.links,
                owner(&n.user, n.uid),
                owner(&n.group, n.gid),
                size,
                time(n.mtime.secs)
            );
        } else {
            println!("{p}");
        }
    }
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_numbers_split_like_glibc() {
        assert_eq!(device_numbers(0x0103), (1, 3));
        assert_eq!(device_numbers(0x1001_0000_0807), (0x1008, 0x10_0007));
    }

    #[test]
    fn mode_strings_match_ls() {
        let mut n = Node::new(b"x".to_vec(), NodeKind::File);
        n.mode = 0o4755;
        assert_eq!(mode_string(&n), "-rwsr-xr-x");
        n.mode = 0o1777;
        n.kind = NodeKind::Dir;
        assert_eq!(mode_string(&n), "drwxrwxrwt");
        n.mode = 0o2640;
        assert_eq!(mode_string(&n), "drw-r-S---");
    }
}
