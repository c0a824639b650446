//! Where the workspace's files are, for tests that read them (golden
//! vectors, docs, manifests, scripts).

use std::path::{Path, PathBuf};

/// The root of the workspace the running test belongs to.
///
/// Found from `CARGO_MANIFEST_DIR` as cargo sets it when it runs a test,
/// not as it was when the test was compiled: one target directory serves
/// every checkout (scripts/test.sh), cargo reuses a test binary built from
/// another checkout at another path when the sources are the same, and a
/// path fixed at compile time would then read that checkout's files, or
/// files that are gone. Falls back to this crate's own location when the
/// test binary runs outside cargo.
pub fn workspace_root() -> PathBuf {
    let start = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    root_above(&start).unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
}

/// The nearest directory at or above `dir` whose Cargo.toml declares a
/// workspace.
fn root_above(dir: &Path) -> Option<PathBuf> {
    dir.ancestors()
        .find(|d| {
            std::fs::read_to_string(d.join("Cargo.toml"))
                .is_ok_and(|t| t.lines().any(|l| l.trim() == "[workspace]"))
        })
        .map(Path::to_path_buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_is_the_directory_whose_manifest_declares_the_workspace() {
        let root = workspace_root();
        let manifest = std::fs::read_to_string(root.join("Cargo.toml")).expect("Cargo.toml");
        assert!(manifest.contains("[workspace]"), "{}", root.display());
        assert!(root.join("crates/cairn-testkit/src/workspace.rs").is_file());
    }

    #[test]
    fn a_directory_outside_any_workspace_has_no_root() {
        let dir = tempfile::tempdir().expect("tempdir");
        let inner = dir.path().join("crates/x");
        std::fs::create_dir_all(&inner).expect("mkdir");
        std::fs::write(inner.join("Cargo.toml"), "[package]\nname = \"x\"\n").expect("write");
        assert_eq!(root_above(&inner), None);
        std::fs::write(dir.path().join("Cargo.toml"), "[workspace]\nmembers = []\n")
            .expect("write");
        assert_eq!(root_above(&inner).as_deref(), Some(dir.path()));
    }
}
