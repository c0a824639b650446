//! Object names in the repository.

use cairn_core::Id;

pub(crate) const CONFIG: &str = "config";
pub(crate) const KEYS: &str = "keys";
pub(crate) const DATA: &str = "data";
pub(crate) const INDEX: &str = "index";
pub(crate) const SNAPSHOTS: &str = "snapshots";

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

/// The id named by the last component of a listed path, if it is one.
pub(crate) fn id_of_path(path: &str) -> Option<Id> {
    // Only the canonical lower-case spelling names an object.
    let name = path.rsplit('/').next()?;
    Id::from_hex(name).ok().filter(|id| id.to_hex() == name)
}
