//! Shared helpers for the end-to-end tests: running the `cairn` binary,
//! generating source trees ([`source`]), comparing trees ([`compare`]) and
//! looking at a repository's objects.

pub(crate) mod compare;
pub(crate) mod source;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The binary under test, built by cargo for this test target.
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_cairn");

/// Argon2 at its cheapest: key derivation would otherwise dominate every test.
pub(crate) const CHEAP_KDF: [&str; 4] = ["--kdf-memory", "8", "--kdf-iterations", "1"];

/// Environment variables cairn reads; cleared so the caller's environment
/// cannot leak into a test.
const CAIRN_ENV: [&str; 6] = [
    "CAIRN_REPOSITORY",
    "CAIRN_PASSWORD",
    "CAIRN_PASSWORD_FILE",
    "CAIRN_NEW_PASSWORD",
    "CAIRN_CACHE_DIR",
    "CAIRN_INDEX_TABLE_LIMIT",
];

/// A home directory for the binary under test, so the index tables it
/// keeps under ~/.cache land in a directory of this test process rather
/// than in the caller's home. Statics are never dropped, so each process's
/// directory is named by its pid under cargo's temporary directory, and
/// those of processes that have ended are removed when the next one starts.
fn test_home() -> &'static Path {
    static HOME: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    HOME.get_or_init(|| {
        let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e-home");
        for e in std::fs::read_dir(&base).into_iter().flatten().flatten() {
            let pid = e.file_name().to_string_lossy().into_owned();
            let ended = pid
                .parse::<u32>()
                .is_ok_and(|p| !Path::new(&format!("/proc/{p}")).exists());
            if ended {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
        let home = base.join(std::process::id().to_string());
        std::fs::create_dir_all(&home).expect("temporary home");
        home
    })
}

/// A `cairn` command with a clean environment and no terminal on stdin
/// (so it never prompts).
pub(crate) fn bare_command() -> Command {
    clean(Command::new(BIN))
}

/// `c` without cairn's environment variables and with no terminal on stdin.
pub(crate) fn clean(mut c: Command) -> Command {
    for v in CAIRN_ENV {
        c.env_remove(v);
    }
    c.env("HOME", test_home());
    c.stdin(Stdio::null());
    c
}

/// What one run of the binary did.
#[derive(Debug)]
pub(crate) struct Run {
    /// What was run, for messages.
    pub(crate) what: String,
    /// Exit code; `None` if killed by a signal.
    pub(crate) code: Option<i32>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Run {
    /// Runs `cmd` to completion and captures its output.
    pub(crate) fn of(mut cmd: Command) -> Run {
        let what = format!("{cmd:?}");
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
        Run::from_output(what, out)
    }

    pub(crate) fn from_output(what: String, out: Output) -> Run {
        Run {
            what,
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Panics, showing the output, unless the exit code is `code`.
    pub(crate) fn expect_code(self, code: i32) -> Run {
        assert_eq!(
            self.code,
            Some(code),
            "{}: expected exit code {code}\nstdout:\n{}\nstderr:\n{}",
            self.what,
            self.stdout,
            self.stderr
        );
        assert!(
            !self.stderr.contains("panicked"),
            "{}: panicked:\n{}",
            self.what,
            self.stderr
        );
        self
    }

    /// Panics unless the run succeeded.
    pub(crate) fn success(self) -> Run {
        self.expect_code(0)
    }

    /// Stdout parsed as one JSON document.
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("{}: stdout is not JSON ({e}):\n{}", self.what, self.stdout))
    }
}

/// A repository location and the password the tests use for it.
#[derive(Debug, Clone)]
pub(crate) struct Repo {
    pub(crate) path: PathBuf,
    pub(crate) password: String,
}

impl Repo {
    /// A handle on a location; nothing is created.
    pub(crate) fn at(path: impl Into<PathBuf>, password: &str) -> Repo {
        Repo {
            path: path.into(),
            password: password.to_owned(),
        }
    }

    /// Creates a repository at `path` with a cheap KDF and password "test password".
    pub(crate) fn init(path: impl Into<PathBuf>) -> Repo {
        let repo = Repo::at(path, "test password");
        repo.run(["init"].into_iter().chain(CHEAP_KDF)).success();
        repo
    }

    /// `base` (cairn, or a wrapper that runs it) with a clean environment,
    /// CAIRN_REPOSITORY and CAIRN_PASSWORD set, and `args` appended.
    pub(crate) fn command_from<I, S>(&self, base: Command, password: &str, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut c = clean(base);
        c.env("CAIRN_REPOSITORY", &self.path)
            .env("CAIRN_PASSWORD", password)
            .args(args);
        c
    }

    /// A command with CAIRN_REPOSITORY and CAIRN_PASSWORD set.
    pub(crate) fn command_with_password<I, S>(&self, password: &str, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.command_from(Command::new(BIN), password, args)
    }

    /// A command with this repository's password.
    pub(crate) fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.command_with_password(&self.password, args)
    }

    /// Runs cairn with this repository's password.
    pub(crate) fn run<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        Run::of(self.command(args))
    }

    /// Runs cairn with another password.
    pub(crate) fn run_with_password<I, S>(&self, password: &str, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        Run::of(self.command_with_password(password, args))
    }

    /// `cairn backup DIR --json`, which must succeed; returns the summary.
    pub(crate) fn backup_json(&self, dir: &Path) -> serde_json::Value {
        self.run([OsStr::new("backup"), dir.as_os_str(), OsStr::new("--json")])
            .success()
            .json()
    }

    /// `cairn cat config` as JSON.
    pub(crate) fn config(&self) -> serde_json::Value {
        self.run(["cat", "config"]).success().json()
    }

    /// Every object's path (relative, `/`-separated) and size.
    pub(crate) fn objects(&self) -> BTreeMap<String, u64> {
        files_under(&self.path)
            .into_iter()
            .map(|(name, path)| {
                let size = std::fs::symlink_metadata(&path)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
                    .len();
                (name, size)
            })
            .collect()
    }

    /// Every object's path and full content: two equal maps mean the
    /// repository is byte-for-byte the same.
    pub(crate) fn contents(&self) -> BTreeMap<String, Vec<u8>> {
        files_under(&self.path)
            .into_iter()
            .map(|(name, path)| {
                let bytes =
                    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                (name, bytes)
            })
            .collect()
    }

    /// Ids of the packs under `data/`.
    pub(crate) fn pack_ids(&self) -> Vec<String> {
        self.objects()
            .keys()
            .filter_map(|p| p.strip_prefix("data/"))
            .map(|p| p.rsplit('/').next().unwrap_or(p).to_owned())
            .collect()
    }

    /// The header entries of a pack, from `cairn cat pack`.
    pub(crate) fn pack_entries(&self, pack_id: &str) -> Vec<serde_json::Value> {
        match self.run(["cat", "pack", pack_id]).success().json() {
            serde_json::Value::Array(a) => a,
            other => panic!("cat pack {pack_id}: not an array: {other}"),
        }
    }
}

/// The object path of a pack, e.g. `data/ab/ab12…`.
pub(crate) fn pack_path(pack_id: &str) -> String {
    format!("data/{}/{pack_id}", &pack_id[..2])
}

/// Every non-directory below `root` (a missing root has none), keyed by its
/// `/`-separated path relative to `root`.
fn files_under(root: &Path) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && dir == root => continue,
            Err(e) => panic!("{}: {e}", dir.display()),
        };
        for e in rd {
            let e = e.unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
            let path = e.path();
            let ft = e
                .file_type()
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            if ft.is_dir() {
                stack.push(path);
            } else {
                let rel = path
                    .strip_prefix(root)
                    .expect("listed below the root")
                    .to_string_lossy()
                    .into_owned();
                out.push((rel, path));
            }
        }
    }
    out
}

/// A JSON field as u64, with a message naming it when absent.
pub(crate) fn field_u64(v: &serde_json::Value, name: &str) -> u64 {
    v[name]
        .as_u64()
        .unwrap_or_else(|| panic!("no integer field {name:?} in {v:#}"))
}

/// A JSON field as a string, with a message naming it when absent.
pub(crate) fn field_str<'a>(v: &'a serde_json::Value, name: &str) -> &'a str {
    v[name]
        .as_str()
        .unwrap_or_else(|| panic!("no string field {name:?} in {v:#}"))
}
