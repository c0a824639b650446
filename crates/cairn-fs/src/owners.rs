//! User and group names, from /etc/passwd and /etc/group (read once).

use std::collections::HashMap;
use std::sync::OnceLock;

fn table(path: &str) -> HashMap<u32, Vec<u8>> {
    let Ok(text) = std::fs::read(path) else {
        return HashMap::new();
    };
    text.split(|&b| b == b'\n')
        .filter_map(|line| {
            let mut f = line.split(|&b| b == b':');
            let name = f.next()?;
            let id = std::str::from_utf8(f.nth(1)?).ok()?.parse().ok()?;
            Some((id, name.to_vec()))
        })
        .collect()
}

/// The name of user `uid`, empty when unknown.
pub(crate) fn user_name(uid: u32) -> Vec<u8> {
    static USERS: OnceLock<HashMap<u32, Vec<u8>>> = OnceLock::new();
    USERS
        .get_or_init(|| table("/etc/passwd"))
        .get(&uid)
        .cloned()
        .unwrap_or_default()
}

/// The name of group `gid`, empty when unknown.
pub(crate) fn group_name(gid: u32) -> Vec<u8> {
    static GROUPS: OnceLock<HashMap<u32, Vec<u8>>> = OnceLock::new();
    GROUPS
        .get_or_init(|| table("/etc/group"))
        .get(&gid)
        .cloned()
        .unwrap_or_default()
}
