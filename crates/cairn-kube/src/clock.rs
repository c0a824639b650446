//! The time schedules run on. **For tests only**, and only in a build with
//! the `testing` cargo feature, `CAIRN_TEST_NOW` (or the controller's
//! `--test-now-file`) replaces the system clock: a number of seconds since
//! the epoch (fixed), or `@FILE`, a file holding that number, read at every
//! tick, so a test moves time without sleeping. This is the same convention
//! as the `cairn` CLI's test clock. A release build ignores both: whoever
//! sets the clock decides when schedules, retention and session expiry run.

use std::path::PathBuf;
use std::sync::Arc;

pub use cairn::layers::core::{Clock, FixedClock, SystemClock};

const VAR: &str = "CAIRN_TEST_NOW";

/// A clock read from a file at every tick; the system clock while the file
/// is missing or unreadable.
#[derive(Debug)]
pub struct FileClock(pub PathBuf);

impl Clock for FileClock {
    fn now(&self) -> i64 {
        std::fs::read_to_string(&self.0)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or_else(|| SystemClock.now())
    }
}

/// The clock for `--test-now-file` if given, else from `CAIRN_TEST_NOW`,
/// else the system clock.
#[cfg(feature = "testing")]
pub fn from_env(test_now_file: Option<PathBuf>) -> Arc<dyn Clock> {
    if let Some(f) = test_now_file {
        return Arc::new(FileClock(f));
    }
    match std::env::var(VAR) {
        Ok(v) if v.starts_with('@') => Arc::new(FileClock(v[1..].into())),
        Ok(v) => match v.trim().parse::<i64>() {
            Ok(secs) => Arc::new(FixedClock::new(secs)),
            Err(_) => Arc::new(SystemClock),
        },
        Err(_) => Arc::new(SystemClock),
    }
}

/// The system clock: this build has no test hooks, so `CAIRN_TEST_NOW` is
/// ignored (with a warning when set).
#[cfg(not(feature = "testing"))]
pub fn from_env(test_now_file: Option<PathBuf>) -> Arc<dyn Clock> {
    if test_now_file.is_some() || std::env::var_os(VAR).is_some() {
        tracing::warn!("{VAR} and --test-now-file are ignored: this build has no test hooks");
    }
    Arc::new(SystemClock)
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    use super::*;

    #[test]
    fn a_file_clock_follows_its_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("now");
        let clock = from_env(Some(f.clone()));
        assert!(clock.now() > 1_600_000_000, "system time while missing");
        std::fs::write(&f, "1700000000\n").expect("write");
        assert_eq!(clock.now(), 1_700_000_000);
        std::fs::write(&f, "1700003600").expect("write");
        assert_eq!(clock.now(), 1_700_003_600);
    }
}
