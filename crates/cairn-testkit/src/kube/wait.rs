//! Waiting for a condition rather than sleeping.

use std::future::Future;
use std::time::{Duration, Instant};

/// How often [`wait_until`] looks.
pub const POLL: Duration = Duration::from_millis(100);

/// Polls `f` every 100 ms until it yields Some, or panics after `timeout`
/// naming `what` it waited for.
pub async fn wait_until<T, F, Fut>(what: &str, timeout: Duration, f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    poll_until(what, timeout, POLL, f).await
}

/// Polls `f` every `every` until it yields Some, or panics after `timeout`
/// naming `what` it waited for.
pub async fn poll_until<T, F, Fut>(what: &str, timeout: Duration, every: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(every).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn yields_the_first_some() {
        let mut n = 0;
        let v = poll_until(
            "three calls",
            Duration::from_secs(5),
            Duration::ZERO,
            || {
                n += 1;
                let now = n;
                async move { (now == 3).then_some(now) }
            },
        )
        .await;
        assert_eq!(v, 3);
    }

    #[tokio::test]
    #[should_panic(expected = "timed out after 0ns waiting for nothing")]
    async fn panics_naming_what_it_waited_for() {
        wait_until("nothing", Duration::ZERO, || async { None::<()> }).await;
    }
}
