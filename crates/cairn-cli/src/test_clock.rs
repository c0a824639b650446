//! A clock the end-to-end tests can set, so grace periods and retention run
//! without sleeping. **For tests only**: `CAIRN_TEST_NOW` is either a number
//! of seconds since the epoch (a fixed clock) or `@FILE`, a file holding that
//! number, read at every tick (a clock several processes share and a test
//! moves). Without it, cairn uses the system clock.

use std::sync::Arc;

use cairn::layers::core::{Clock, SystemClock};

const VAR: &str = "CAIRN_TEST_NOW";

#[derive(Debug)]
struct FileClock(std::path::PathBuf);

impl Clock for FileClock {
    fn now(&self) -> i64 {
        std::fs::read_to_string(&self.0)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or_else(|| SystemClock.now())
    }
}

/// The clock cairn runs on.
pub(crate) fn clock() -> Arc<dyn Clock> {
    match std::env::var(VAR) {
        Ok(v) if v.starts_with('@') => Arc::new(FileClock(v[1..].into())),
        Ok(v) => match v.trim().parse::<i64>() {
            Ok(secs) => Arc::new(cairn::layers::core::FixedClock::new(secs)),
            Err(_) => Arc::new(SystemClock),
        },
        Err(_) => Arc::new(SystemClock),
    }
}
