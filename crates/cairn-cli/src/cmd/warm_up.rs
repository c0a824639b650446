//! `cairn warm-up`, and the warm-up flags of `restore` and `check`:
//! restores from archival storage classes (docs/ARCHIVAL.md).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use cairn::{Tier, WarmOptions, WarmReport, WarmTally, WarmWhen};

use crate::cli::Global;
use crate::cli_args::{RequestArgs, TierArg, WarmArgs, WarmUpArgs};
use crate::output::bytes;
use crate::{context, exit};

/// Where progress lines go.
pub(crate) type Print = Arc<dyn Fn(&str) + Send + Sync>;

/// `500ms`, or what `settings::parse_duration` takes (`90s`, `5m`, `1h`).
fn parse_interval(s: &str) -> Result<Duration> {
    let d = match s.trim().strip_suffix("ms") {
        Some(ms) => Duration::from_millis(ms.parse().context("expected e.g. 500ms or 30s")?),
        None => Duration::from_secs(super::settings::parse_duration(s.trim())?),
    };
    if d.is_zero() {
        bail!("the interval must be more than zero");
    }
    Ok(d)
}

/// Hours, minutes and seconds: `1:02:03`.
fn hms(d: Duration) -> String {
    let s = d.as_secs();
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// One progress line.
fn progress_line(t: &WarmTally) -> String {
    let mut line = format!(
        "warm-up: {}/{} packs readable ({} of {}), {} restores asked for; {} elapsed",
        t.readable,
        t.packs,
        bytes(t.readable_bytes),
        bytes(t.bytes),
        t.requested,
        hms(t.elapsed)
    );
    if t.done {
        return line;
    }
    if let Some(typical) = t.typical {
        let tier = format!("{:?}", t.tier).to_lowercase();
        line.push_str(&format!(", {tier} retrievals typically take {typical}"));
    }
    match t.estimate {
        Some(left) => line.push_str(&format!(", about {} left", hms(left))),
        None => line.push_str(", any time now"),
    }
    line
}

/// The options these flags ask for; progress goes to `print` unless quiet.
pub(crate) fn options(
    a: &RequestArgs,
    when: WarmWhen,
    quiet: bool,
    print: Print,
) -> Result<WarmOptions> {
    let poll_interval = parse_interval(&a.poll_interval)
        .with_context(|| format!("--poll-interval {:?}", a.poll_interval))?;
    let observer = (!quiet).then(|| -> cairn::layers::repo::warm::WarmObserver {
        Arc::new(move |t: &WarmTally| print(&progress_line(t)))
    });
    let mut o = WarmOptions::default();
    o.when = when;
    o.days = a.restore_days;
    o.tier = match a.restore_tier {
        TierArg::Expedited => Tier::Expedited,
        TierArg::Standard => Tier::Standard,
        TierArg::Bulk => Tier::Bulk,
    };
    o.poll_interval = poll_interval;
    o.wait = true;
    o.observer = observer;
    o.stop = None;
    Ok(o)
}

/// `--warm-up` and the request flags as options for `restore` and `check`.
pub(crate) fn read_options(a: &WarmArgs, quiet: bool, print: Print) -> Result<WarmOptions> {
    let when = if a.warm_up {
        WarmWhen::Always
    } else {
        WarmWhen::Auto
    };
    options(&a.request, when, quiet, print)
}

/// Lines on stderr.
pub(crate) fn stderr() -> Print {
    Arc::new(|line: &str| eprintln!("{line}"))
}

/// A summary line of a warm-up.
pub(crate) fn summary(r: &WarmReport) -> String {
    let mut s = format!(
        "warm-up: {} packs ({}): {} readable already, {} restores asked for ({}), {} being restored already",
        r.planned,
        bytes(r.planned_bytes),
        r.already_readable,
        r.requested,
        bytes(r.requested_bytes),
        r.already_restoring
    );
    if r.missing > 0 {
        s.push_str(&format!(", {} missing", r.missing));
    }
    if r.waited_seconds > 0.0 {
        s.push_str(&format!(
            "; waited {}",
            hms(Duration::from_secs_f64(r.waited_seconds))
        ));
    }
    s
}

pub(crate) async fn run(g: &Global, a: WarmUpArgs) -> Result<u8> {
    let repo = context::open(g).await?;
    let (id, snapshot) = repo.find_snapshot(&a.snapshot).await?;
    let mut opts = options(&a.request, WarmWhen::Always, g.quiet, stderr())?;
    opts.wait = a.wait;
    if !repo.store().is_s3() && !g.quiet {
        eprintln!(
            "note: {} is not an S3 repository: its packs are always readable",
            repo.store().describe()
        );
    }
    let paths: Vec<Vec<u8>> = a.paths.iter().map(|p| p.as_bytes().to_vec()).collect();
    let report = cairn::warm_up(&repo, &snapshot, &paths, &opts).await?;
    if a.json {
        super::print_json(&serde_json::json!({ "snapshot_id": id, "warm_up": report }))?;
    } else if !g.quiet {
        println!("{}", summary(&report));
        if !report.complete {
            println!(
                "restore when they are readable: `cairn warm-up --wait` waits for them, and so \
                 does `cairn restore` (with --warm-up where the data storage class is not archival)"
            );
        }
    }
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_and_progress_read_well() {
        assert_eq!(
            parse_interval("500ms").ok(),
            Some(Duration::from_millis(500))
        );
        assert_eq!(parse_interval("60s").ok(), Some(Duration::from_secs(60)));
        assert_eq!(parse_interval("5m").ok(), Some(Duration::from_secs(300)));
        assert!(parse_interval("0s").is_err());
        assert!(parse_interval("soon").is_err());
        let t = WarmTally {
            packs: 5,
            bytes: 10 << 20,
            readable: 2,
            readable_bytes: 4 << 20,
            requested: 3,
            elapsed: Duration::from_secs(3723),
            estimate: Some(Duration::from_secs(90)),
            typical: Some("3–5 hours"),
            tier: Tier::Standard,
            done: false,
        };
        assert_eq!(
            progress_line(&t),
            "warm-up: 2/5 packs readable (4.0 MiB of 10.0 MiB), 3 restores asked for; \
             1:02:03 elapsed, standard retrievals typically take 3–5 hours, about 0:01:30 left"
        );
    }
}
