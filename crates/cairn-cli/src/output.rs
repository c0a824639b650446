//! Formatting for people: sizes, times, progress.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use cairn::Progress;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// 1536 -> "1.5 KiB".
pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Seconds since the epoch as "YYYY-MM-DD HH:MM:SS" in UTC.
pub(crate) fn time(secs: i64) -> String {
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
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// A progress bar on stderr, drawn only on a terminal, fed from `progress`.
pub(crate) struct Bar {
    bar: ProgressBar,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Bar {
    pub(crate) fn start(progress: Arc<Progress>, enabled: bool, verb: &'static str) -> Bar {
        let draw = enabled && std::io::stderr().is_terminal();
        let bar = if draw {
            ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(4))
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {elapsed_precise} {prefix} {binary_bytes_per_sec} {wide_msg:.dim}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        let task = draw.then(|| {
            let bar = bar.clone();
            tokio::spawn(async move {
                loop {
                    let (files, b, total_files, total_bytes) = progress.get();
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
        Bar { bar, task }
    }

    pub(crate) fn finish(self) {
        if let Some(t) = self.task {
            t.abort();
        }
        self.bar.finish_and_clear();
    }
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
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.5 KiB");
    }
}
