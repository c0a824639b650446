//! `--include`/`--exclude` for restores: glob patterns (`globset`) over
//! paths inside the snapshot.
//!
//! A pattern without `/` matches an entry's name at any depth (`*.log`); a
//! pattern with `/` matches the whole path from the snapshot's root, with
//! or without its leading `/` (`/var/lib/**/*.db`), and there `*` does not
//! cross a `/` while `**` does.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use crate::{Error, Result};

/// Compiled include and exclude patterns.
#[derive(Debug, Default)]
pub(crate) struct PathFilter {
    include: Option<Patterns>,
    exclude: Option<Patterns>,
}

#[derive(Debug)]
struct Patterns {
    names: GlobSet,
    paths: GlobSet,
}

impl Patterns {
    fn new(patterns: &[String]) -> Result<Option<Patterns>> {
        if patterns.is_empty() {
            return Ok(None);
        }
        let (mut names, mut paths) = (GlobSetBuilder::new(), GlobSetBuilder::new());
        for p in patterns {
            let bad = |e: globset::Error| Error::Invalid(format!("pattern {p:?}: {e}"));
            if p.contains('/') {
                let full = if p.starts_with('/') {
                    p.clone()
                } else {
                    format!("/{p}")
                };
                let g = GlobBuilder::new(&full)
                    .literal_separator(true)
                    .build()
                    .map_err(bad)?;
                paths.add(g);
            } else {
                names.add(GlobBuilder::new(p).build().map_err(bad)?);
            }
        }
        let build = |b: GlobSetBuilder| {
            b.build()
                .map_err(|e| Error::Invalid(format!("patterns: {e}")))
        };
        Ok(Some(Patterns {
            names: build(names)?,
            paths: build(paths)?,
        }))
    }

    /// `path` is `/`-separated from the snapshot's root, with a leading `/`.
    fn matches(&self, path: &[u8]) -> bool {
        let name = path.rsplit(|&b| b == b'/').next().unwrap_or(path);
        self.names.is_match(Path::new(OsStr::from_bytes(name)))
            || self.paths.is_match(Path::new(OsStr::from_bytes(path)))
    }
}

impl PathFilter {
    pub(crate) fn new(include: &[String], exclude: &[String]) -> Result<PathFilter> {
        Ok(PathFilter {
            include: Patterns::new(include)?,
            exclude: Patterns::new(exclude)?,
        })
    }

    /// Whether there are no patterns at all: everything is restored.
    pub(crate) fn is_empty(&self) -> bool {
        self.include.is_none() && self.exclude.is_none()
    }

    /// Whether there are include patterns (so only what they select, and
    /// the directories leading to it, is restored).
    pub(crate) fn has_includes(&self) -> bool {
        self.include.is_some()
    }

    /// Whether `path` matches an include pattern (true without any).
    pub(crate) fn included(&self, path: &[u8]) -> bool {
        self.include.as_ref().is_none_or(|p| p.matches(path))
    }

    /// Whether `path` matches an exclude pattern.
    pub(crate) fn excluded(&self, path: &[u8]) -> bool {
        self.exclude.as_ref().is_some_and(|p| p.matches(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_at_any_depth_and_paths_from_the_root() {
        let f = PathFilter::new(&[], &["*.log".into(), "/a/*/c".into(), "x/**".into()])
            .expect("valid patterns");
        assert!(f.excluded(b"/top.log"));
        assert!(f.excluded(b"/deep/er/still.log"));
        assert!(!f.excluded(b"/top.log.gz"));
        assert!(f.excluded(b"/a/b/c"));
        assert!(!f.excluded(b"/a/b/b/c"));
        assert!(f.excluded(b"/x/y/z"));
        assert!(!f.excluded(b"/w/x/y"));
        assert!(f.included(b"/anything"));
        let i = PathFilter::new(&["/keep/**".into()], &[]).expect("valid");
        assert!(i.has_includes());
        assert!(i.included(b"/keep/a/b"));
        assert!(!i.included(b"/other"));
    }
}
