//! Hooks the end-to-end tests drive through the environment, compiled in
//! only with the `testing` cargo feature (the test suite enables it; a
//! release build does not):
//!
//! - `CAIRN_TEST_NOW`: a number of seconds since the epoch (a fixed clock)
//!   or `@FILE`, a file holding that number, read at every tick (a clock
//!   several processes share and a test moves), so grace periods and
//!   retention run without sleeping;
//! - `CAIRN_TEST_HTTP_FAULTS`: transient HTTP faults below object_store's
//!   retry layer (see [`cairn::HttpFaults::parse`]).
//!
//! In a build without the feature the variables are ignored with a warning:
//! a clock that anyone able to set an environment variable controls would
//! decide prune's grace periods and session expiry.

use std::sync::Arc;

use cairn::layers::core::{Clock, SystemClock};

const NOW: &str = cairn::layers::core::TEST_NOW_VAR;
const HTTP_FAULTS: &str = "CAIRN_TEST_HTTP_FAULTS";

/// The clock cairn runs on.
pub(crate) fn clock() -> Arc<dyn Clock> {
    imp::clock().unwrap_or_else(|| Arc::new(SystemClock))
}

/// Whether a test clock replaces the system clock.
pub(crate) fn clock_is_set() -> bool {
    imp::clock().is_some()
}

/// HTTP faults to inject, if a test asked for them.
pub(crate) fn http_faults() -> anyhow::Result<Option<cairn::HttpFaults>> {
    imp::http_faults()
}

#[cfg(feature = "testing")]
mod imp {
    use super::*;
    use anyhow::anyhow;

    pub(super) fn clock() -> Option<Arc<dyn Clock>> {
        cairn::layers::core::test_clock(&std::env::var(NOW).ok()?)
    }

    pub(super) fn http_faults() -> anyhow::Result<Option<cairn::HttpFaults>> {
        match std::env::var(HTTP_FAULTS) {
            Ok(s) => Ok(Some(
                cairn::HttpFaults::parse(&s).map_err(|e| anyhow!("{HTTP_FAULTS}: {e}"))?,
            )),
            Err(_) => Ok(None),
        }
    }
}

#[cfg(not(feature = "testing"))]
mod imp {
    use super::*;
    use std::sync::Once;

    fn warn_if_set(var: &str) {
        static WARNED: Once = Once::new();
        if std::env::var_os(var).is_some() {
            WARNED.call_once(|| {
                eprintln!("cairn: warning: {var} is ignored: this build has no test hooks");
            });
        }
    }

    pub(super) fn clock() -> Option<Arc<dyn Clock>> {
        warn_if_set(NOW);
        None
    }

    pub(super) fn http_faults() -> anyhow::Result<Option<cairn::HttpFaults>> {
        warn_if_set(HTTP_FAULTS);
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A build without the `testing` feature runs on the system clock
    /// whatever the environment says (scripts/test.sh runs this without
    /// the feature).
    #[cfg(not(feature = "testing"))]
    #[test]
    #[allow(unsafe_code)]
    fn release_builds_ignore_the_test_clock_and_http_faults() {
        // SAFETY of set_var: this test binary's tests do not read these
        // variables concurrently with another writer.
        unsafe {
            std::env::set_var(NOW, "1000");
            std::env::set_var(HTTP_FAULTS, "rate=1");
        }
        assert!(!clock_is_set());
        assert!(clock().now() > 1_600_000_000, "the system clock");
        assert!(matches!(http_faults(), Ok(None)));
    }

    #[cfg(feature = "testing")]
    #[test]
    #[allow(unsafe_code)]
    fn test_builds_honour_the_test_clock() {
        // SAFETY of set_var: as above.
        unsafe { std::env::set_var(NOW, "1000") };
        assert!(clock_is_set());
        assert_eq!(clock().now(), 1000);
    }
}
