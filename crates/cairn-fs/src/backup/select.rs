//! What a backup leaves out: exclude patterns (gitignore syntax, matched
//! by the `ignore` crate against absolute paths), per-directory ignore
//! files such as `.cairnignore`, cache directories tagged with
//! `CACHEDIR.TAG`, and other file systems.

use std::io::Read;
use std::os::fd::BorrowedFd;
use std::path::Path;
use std::sync::Arc;

use ignore::Match;
use ignore::gitignore::{Gitignore, GitignoreBuilder};

use crate::{Error, Result};

/// The first bytes of a `CACHEDIR.TAG` file, from the Cache Directory
/// Tagging Specification (<https://bford.info/cachedir/>).
pub const CACHEDIR_SIGNATURE: &[u8] = b"Signature: 8a477f597d28d172789f06886806bc55";

/// What to leave out of a backup.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Patterns in gitignore syntax, matched against absolute paths: `*.log`
    /// matches a name at any depth, `/srv/tmp` one path, `cache/` only
    /// directories, `!keep.log` re-includes.
    pub exclude: Vec<String>,
    /// Like `exclude`, but letter case is ignored.
    pub iexclude: Vec<String>,
    /// The name of per-directory ignore files (gitignore syntax, relative
    /// to their directory), e.g. `.cairnignore`; `None` reads none.
    pub ignore_file: Option<String>,
    /// Leave out the contents of directories holding a valid `CACHEDIR.TAG`
    /// (the directory and the tag file are kept).
    pub exclude_caches: bool,
    /// Do not descend into directories on another file system than the path
    /// given (the mount point is kept as an empty directory).
    pub one_file_system: bool,
    /// Back up the content of block devices met in the walk, not just the
    /// device node. A block device given directly as a path is always read.
    pub read_special: bool,
}

/// The compiled selection.
#[derive(Debug)]
pub(crate) struct Selector {
    exclude: Option<Gitignore>,
    iexclude: Option<Gitignore>,
    ignore_file: Option<String>,
    exclude_caches: bool,
    one_file_system: bool,
    pub(crate) read_special: bool,
}

/// The rules in force inside one directory.
#[derive(Debug, Clone)]
pub(crate) struct DirRules {
    /// Device of the path given, for `--one-file-system`.
    device: u64,
    /// Ignore files from the outermost directory down to this one.
    ignores: Vec<Arc<Gitignore>>,
    /// This directory is a tagged cache: keep only its tag.
    cache: bool,
    /// The entry was given on the command line (not found by the walk).
    pub(crate) given: bool,
}

/// Whether an entry goes into the snapshot.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Keep,
    Exclude(&'static str),
}

fn compile(patterns: &[String], case_insensitive: bool) -> Result<Option<Gitignore>> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut b = GitignoreBuilder::new("/");
    b.case_insensitive(case_insensitive)
        .map_err(|e| Error::Invalid(format!("exclude patterns: {e}")))?;
    for p in patterns {
        b.add_line(None, p)
            .map_err(|e| Error::Invalid(format!("exclude pattern {p:?}: {e}")))?;
    }
    b.build()
        .map(Some)
        .map_err(|e| Error::Invalid(format!("exclude patterns: {e}")))
}

/// Opens the regular file `name` of the directory `dir` for reading
/// (without following a symlink or blocking on a FIFO); `None` if it is
/// anything else or cannot be opened.
fn open_regular(dir: BorrowedFd<'_>, name: &str) -> Option<std::fs::File> {
    let f = std::fs::File::from(crate::at::open_read(dir, name.as_ref(), false).ok()?);
    f.metadata().is_ok_and(|m| m.is_file()).then_some(f)
}

/// Whether `dir` holds a `CACHEDIR.TAG` starting with the signature.
fn is_cache_tag(dir: BorrowedFd<'_>) -> bool {
    let mut head = [0u8; CACHEDIR_SIGNATURE.len()];
    open_regular(dir, "CACHEDIR.TAG")
        .is_some_and(|mut f| f.read_exact(&mut head).is_ok() && head == CACHEDIR_SIGNATURE)
}

/// The rules of the ignore file `name` in the directory `dir` (at `path`),
/// read through the directory's descriptor.
fn read_ignore_file(
    dir: BorrowedFd<'_>,
    path: &Path,
    name: &str,
    warn: &impl Fn(&Path, String),
) -> Option<Gitignore> {
    let file = path.join(name);
    let mut text = Vec::new();
    match open_regular(dir, name).map(|mut f| f.read_to_end(&mut text)) {
        Some(Ok(_)) => {}
        Some(Err(e)) => warn(&file, format!("ignore file not read: {e}")),
        None => {
            warn(&file, "ignore file not read: not a regular file".into());
            return None;
        }
    }
    let mut b = GitignoreBuilder::new(path);
    for line in String::from_utf8_lossy(&text).lines() {
        if let Err(e) = b.add_line(Some(file.clone()), line) {
            warn(&file, format!("ignore file not fully read: {e}"));
        }
    }
    match b.build() {
        Ok(g) => Some(g),
        Err(e) => {
            warn(&file, format!("ignore file not used: {e}"));
            None
        }
    }
}

impl Selector {
    pub(crate) fn new(s: &Selection) -> Result<Selector> {
        Ok(Selector {
            exclude: compile(&s.exclude, false)?,
            iexclude: compile(&s.iexclude, true)?,
            ignore_file: s.ignore_file.clone(),
            exclude_caches: s.exclude_caches,
            one_file_system: s.one_file_system,
            read_special: s.read_special,
        })
    }

    /// The rules for a path given on the command line.
    pub(crate) fn root_rules(&self, _path: &Path, m: &crate::at::Meta) -> DirRules {
        DirRules {
            device: m.dev(),
            ignores: Vec::new(),
            cache: false,
            given: true,
        }
    }

    /// The rules for the entries of the directory open as `dir` (at
    /// `path`), whose names are `names`: reads its ignore file and its
    /// cache tag.
    pub(crate) fn enter(
        &self,
        dir: BorrowedFd<'_>,
        path: &Path,
        names: &[Vec<u8>],
        outer: &DirRules,
        warn: impl Fn(&Path, String),
    ) -> DirRules {
        let mut rules = outer.clone();
        rules.given = false;
        rules.cache =
            self.exclude_caches && names.iter().any(|n| n == b"CACHEDIR.TAG") && is_cache_tag(dir);
        if let Some(name) = &self.ignore_file {
            if names.iter().any(|n| n == name.as_bytes()) {
                if let Some(g) = read_ignore_file(dir, path, name, &warn) {
                    rules.ignores.push(Arc::new(g));
                }
            }
        }
        rules
    }

    /// Whether the entry `path` (named `name`, with `lstat` metadata `m`)
    /// of a directory with `rules` is backed up.
    pub(crate) fn verdict(
        &self,
        path: &Path,
        name: &[u8],
        m: &crate::at::Meta,
        rules: &DirRules,
    ) -> Verdict {
        if rules.cache && name != b"CACHEDIR.TAG" {
            return Verdict::Exclude("inside a directory tagged with CACHEDIR.TAG");
        }
        let dir = m.is_dir();
        for (g, why) in [
            (&self.exclude, "matches --exclude"),
            (&self.iexclude, "matches --iexclude"),
        ] {
            if let Some(g) = g {
                if let Match::Ignore(_) = g.matched(path, dir) {
                    return Verdict::Exclude(why);
                }
            }
        }
        // The deepest ignore file with a matching rule decides, as in git.
        for g in rules.ignores.iter().rev() {
            match g.matched(path, dir) {
                Match::Ignore(_) => return Verdict::Exclude("matches an ignore file"),
                Match::Whitelist(_) => return Verdict::Keep,
                Match::None => {}
            }
        }
        Verdict::Keep
    }

    /// The rules to walk directory `path` with, or `None` if it is on
    /// another file system and `--one-file-system` keeps the walk out.
    pub(crate) fn descend(
        &self,
        _path: &Path,
        m: &crate::at::Meta,
        rules: &DirRules,
    ) -> Option<DirRules> {
        if self.one_file_system && !rules.given && m.dev() != rules.device {
            return None;
        }
        Some(rules.clone())
    }
}
