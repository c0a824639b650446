//! Repository locations.

use std::path::PathBuf;

use crate::{StoreError, StoreResult};

/// Where a repository lives.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Location {
    /// A directory on a local file system.
    Local(PathBuf),
    /// An in-process memory store (tests); each open is a new empty store.
    Memory,
}

/// Parses a repository URL. A string without a scheme is a local path.
pub fn parse_location(url: &str) -> StoreResult<Location> {
    let invalid = |message: &str| StoreError::InvalidLocation {
        url: url.to_owned(),
        message: message.to_owned(),
    };
    if url.is_empty() {
        return Err(invalid("empty location"));
    }
    if let Some(rest) = url.strip_prefix("file://") {
        if !rest.starts_with('/') {
            return Err(invalid(
                "file:// URLs need an absolute path, e.g. file:///srv/backup",
            ));
        }
        return Ok(Location::Local(PathBuf::from(rest)));
    }
    if url == "memory://" || url == "memory:" {
        return Ok(Location::Memory);
    }
    if let Some((scheme, _)) = url.split_once("://") {
        if scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        {
            return Err(invalid(&format!(
                "unsupported scheme {scheme}://; this build supports local paths, file:// and memory://"
            )));
        }
    }
    Ok(Location::Local(PathBuf::from(url)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_file_paths_are_local() {
        assert_eq!(
            parse_location("/srv/r").ok(),
            Some(Location::Local("/srv/r".into()))
        );
        assert_eq!(
            parse_location("rel/r").ok(),
            Some(Location::Local("rel/r".into()))
        );
        assert_eq!(
            parse_location("file:///srv/r").ok(),
            Some(Location::Local("/srv/r".into()))
        );
        assert_eq!(parse_location("memory://").ok(), Some(Location::Memory));
    }

    #[test]
    fn bad_locations_are_refused_with_a_reason() {
        for bad in ["", "file://relative", "ftp://host/x"] {
            assert!(parse_location(bad).is_err(), "{bad}");
        }
    }
}
