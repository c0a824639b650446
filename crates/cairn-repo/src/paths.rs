//! Object names in the repository.

use cairn_core::Id;

pub(crate) const CONFIG: &str = "config";
pub(crate) const KEYS: &str = "keys";
pub(crate) const DATA: &str = "data";
pub(crate) const INDEX: &str = "index";
pub(crate) const SNAPSHOTS: &str = "snapshots";
pub(crate) const SESSIONS: &str = "sessions";
pub(crate) const SETTINGS: &str = "settings";

pub(crate) fn pack(id: &Id) -> String {
    let h = id.to_hex();
    format!("{DATA}/{}/{h}", &h[..2])
}

pub(crate) fn key(id: &Id) -> String {
    format!("{KEYS}/{id}")
}

pub(crate) fn index(id: &Id) -> String {
    format!("{INDEX}/{id}")
}

pub(crate) fn snapshot(id: &Id) -> String {
    format!("{SNAPSHOTS}/{id}")
}

pub(crate) fn settings(id: &Id) -> String {
    format!("{SETTINGS}/{id}")
}

pub(crate) fn session(id: &Id) -> String {
    format!("{SESSIONS}/{id}")
}

/// The id named by a listed object path, if the path is the canonical name
/// of an object in `folder` (`keys`, `index`, `snapshots` or `data`).
/// Anything else (stray files, other spellings, wrong fan-out folder) is not
/// an object of the repository and is ignored.
pub(crate) fn id_in(folder: &str, path: &str) -> Option<Id> {
    let rest = path.strip_prefix(folder)?.strip_prefix('/')?;
    let name = if folder == DATA {
        let (fan, name) = rest.split_once('/')?;
        if name.get(..2) != Some(fan) {
            return None;
        }
        name
    } else {
        rest
    };
    Id::from_hex(name).ok().filter(|id| id.to_hex() == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_canonical_object_paths_name_objects() {
        let id = Id::from_bytes([0xab; 32]);
        let h = id.to_hex();
        assert_eq!(id_in(INDEX, &format!("index/{h}")), Some(id));
        assert_eq!(id_in(DATA, &pack(&id)), Some(id));
        for bad in [
            format!("index/x/{h}"),
            format!("index/{}", h.to_uppercase()),
            format!("data/00/{h}"),
            format!("data/{h}"),
            format!("snapshots/{h}"),
            format!("index/{h}.tmp"),
        ] {
            assert_eq!(id_in(INDEX, &bad).or(id_in(DATA, &bad)), None, "{bad}");
        }
    }
}
