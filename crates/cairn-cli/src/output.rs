//! Formatting for people: sizes, times, progress.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use cairn::Progress;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub(crate) use cairn::human_bytes as bytes;

/// Seconds since the epoch as "YYYY-MM-DD HH:MM:SS" in UTC.
pub(crate) fn time(secs: i64) -> String {
    let (y, m, d, hh, mm, ss) = civil(secs);
    format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02}:{ss:02}")
}

/// Seconds since the epoch as "YYYY-MM-DDTHH:MM:SSZ" (RFC 3339, UTC): the
/// form file names take, with no spaces.
pub(crate) fn time_rfc3339(secs: i64) -> String {
    let (y, m, d, hh, mm, ss) = civil(secs);
    format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
}

/// Year, month, day, hour, minute, second in UTC.
fn civil(secs: i64) -> (i64, i64, i64, i64, i64, i64) {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (proleptic Gregorian calendar).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, rem / 3600, rem / 60 % 60, rem % 60)
}

/// "64M" -> 64 MiB; K, M, G and T are powers of 1024, no suffix is bytes.
pub(crate) fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last()? {
        (i, 'K' | 'k') => (&s[..i], 1u64 << 10),
        (i, 'M' | 'm') => (&s[..i], 1 << 20),
        (i, 'G' | 'g') => (&s[..i], 1 << 30),
        (i, 'T' | 't') => (&s[..i], 1 << 40),
        _ => (s, 1),
    };
    num.trim().parse::<u64>().ok()?.checked_mul(mult)
}

/// A progress bar on stderr, drawn only on a terminal, fed from `progress`,
/// with throughput and, once the total is known, an ETA.
pub(crate) struct Bar {
    bar: ProgressBar,
    task: Option<tokio::task::JoinHandle<()>>,
    scan: Option<Arc<std::sync::atomic::AtomicBool>>,
}

impl Bar {
    pub(crate) fn start(progress: Arc<Progress>, enabled: bool, verb: &'static str) -> Bar {
        let draw = enabled && std::io::stderr().is_terminal();
        let bar = if draw {
            ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(4))
        } else {
            ProgressBar::hidden()
        };
        let style = |template: &str| {
            ProgressStyle::with_template(template)
                .unwrap_or_else(|_| ProgressStyle::default_spinner())
        };
        let counting =
            style("{spinner} {elapsed_precise} {prefix} {binary_bytes_per_sec} {wide_msg:.dim}");
        let with_eta = style(
            "{spinner} {elapsed_precise} {prefix} {binary_bytes_per_sec} ETA {eta} {wide_msg:.dim}",
        );
        bar.set_style(counting);
        let task = draw.then(|| {
            let bar = bar.clone();
            tokio::spawn(async move {
                let mut known = false;
                loop {
                    let (files, b, total_files, total_bytes) = progress.get();
                    if total_bytes > 0 && !known {
                        known = true;
                        bar.set_style(with_eta.clone());
                    }
                    if known {
                        bar.set_length(total_bytes.max(b));
                    }
                    bar.set_position(b);
                    let head = if total_bytes > 0 {
                        format!(
                            "{verb} {files}/{total_files} files, {} of {}",
                            bytes(b),
                            bytes(total_bytes)
                        )
                    } else {
                        format!("{verb} {files} files, {}", bytes(b))
                    };
                    bar.set_prefix(head);
                    bar.set_message(progress.current());
                    bar.tick();
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            })
        });
        Bar {
            bar,
            task,
            scan: None,
        }
    }

    /// Counts the files and bytes under `paths` on a thread of its own,
    /// so the bar can show an ETA; only while the bar is drawn, and only
    /// when the backup has no parent snapshot to estimate its size from
    /// (checked after a second), and at the lowest CPU priority, so it
    /// takes what the backup leaves idle. Exclusions are not applied: the
    /// total is an upper bound.
    pub(crate) fn scan(&mut self, progress: Arc<Progress>, paths: Vec<std::path::PathBuf>) {
        if self.task.is_none() {
            return;
        }
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        self.scan = Some(stop.clone());
        std::thread::spawn(move || {
            use std::sync::atomic::Ordering;
            // Lowest priority: the count only gets CPU the backup leaves
            // idle (nice 19 weighs 15 against the backup's 1024).
            let _ = rustix::process::setpriority_process(Some(rustix::thread::gettid()), 19);
            std::thread::sleep(Duration::from_secs(1));
            if stop.load(Ordering::Relaxed) || progress.total_bytes.load(Ordering::Relaxed) > 0 {
                return;
            }
            progress.estimate_totals(&paths, false, || stop.load(Ordering::Relaxed));
        });
    }

    /// Prints lines on stderr above the bar, which is redrawn after them.
    pub(crate) fn printer(&self) -> Arc<dyn Fn(&str) + Send + Sync> {
        let bar = self.bar.clone();
        Arc::new(move |line: &str| bar.suspend(|| eprintln!("{line}")))
    }

    pub(crate) fn finish(self) {
        if let Some(stop) = self.scan {
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        if let Some(t) = self.task {
            t.abort();
        }
        self.bar.finish_and_clear();
    }
}

/// The first Ctrl-C asks `progress` to stop cleanly (a backup indexes the
/// uploads in flight, so the next one reuses them); a second one exits at
/// once. Returns the handler's task, to abort when the work is done.
pub(crate) fn stop_on_interrupt(progress: Arc<Progress>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_err() {
            return;
        }
        progress.cancel();
        eprintln!("stopping: finishing the uploads in flight (Ctrl-C again to quit at once)");
        if tokio::signal::ctrl_c().await.is_ok() {
            std::process::exit(130);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_times_and_sizes() {
        assert_eq!(time(0), "1970-01-01 00:00:00");
        assert_eq!(time(951_782_400), "2000-02-29 00:00:00");
        assert_eq!(time(1_795_258_853), "2026-11-21 11:00:53");
        assert_eq!(time(-1), "1969-12-31 23:59:59");
        assert_eq!(time_rfc3339(1_795_258_853), "2026-11-21T11:00:53Z");
        assert_eq!(parse_size("64M"), Some(64 << 20));
        assert_eq!(parse_size("512"), Some(512));
        assert_eq!(parse_size("x"), None);
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.5 KiB");
    }
}
