//! The time schedules run on. **For tests only**, and only in a build with
//! the `testing` cargo feature, `CAIRN_TEST_NOW` (or the controller's
//! `--test-now-file`) replaces the system clock: a number of seconds since
//! the epoch (fixed), or `@FILE`, a file holding that number, read at every
//! tick, so a test moves time without sleeping. This is the same convention
//! as the `cairn` CLI's test clock. A release build ignores both: whoever
//! sets the clock decides when schedules, retention and session expiry run.

use std::path::PathBuf;
use std::sync::Arc;

pub use cairn::layers::core::{Clock, FileClock, FixedClock, SystemClock};

const VAR: &str = cairn::layers::core::TEST_NOW_VAR;

/// The clock for `--test-now-file` if given, else from `CAIRN_TEST_NOW`,
/// else the system clock.
#[cfg(feature = "testing")]
pub fn from_env(test_now_file: Option<PathBuf>) -> Arc<dyn Clock> {
    if let Some(f) = test_now_file {
        return Arc::new(FileClock(f));
    }
    std::env::var(VAR)
        .ok()
        .and_then(|v| cairn::layers::core::test_clock(&v))
        .unwrap_or_else(|| Arc::new(SystemClock))
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
