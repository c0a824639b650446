//! `cairn settings` and the storage flags of `cairn init`: storage classes
//! per object kind and Object Lock retention (docs/FORMAT.md §17).

use anyhow::{Result, bail};
use cairn::{Lock, LockMode, Settings, SettingsChange};

use crate::cli::Global;
use crate::cli_args::{SettingsArgs, StorageArgs};
use crate::{context, exit};

impl StorageArgs {
    /// The settings change these flags ask for.
    pub(crate) fn change(&self) -> Result<SettingsChange> {
        let mut c = SettingsChange::new();
        c.data_class = self.data_storage_class.clone();
        c.metadata_class = self.metadata_storage_class.clone();
        let seconds = match (&self.lock_days, &self.lock_duration) {
            (Some(d), _) => Some(u64::from(*d) * 86_400),
            (None, Some(d)) => Some(parse_duration(d)?),
            (None, None) => None,
        };
        c.lock = match (self.object_lock.as_deref(), seconds) {
            (None, None) => None,
            (None, Some(_)) => bail!("--lock-days and --lock-duration need --object-lock MODE"),
            (Some("none"), _) => Some(None),
            (Some(m), Some(seconds)) => {
                let Some(mode) = LockMode::parse(m) else {
                    bail!("--object-lock {m:?}: use governance, compliance or none");
                };
                Some(Some(Lock { mode, seconds }))
            }
            (Some(_), None) => bail!("--object-lock needs --lock-days or --lock-duration"),
        };
        Ok(c)
    }
}

/// `90s`, `15m`, `12h`, `30d` (a bare number is seconds).
pub(crate) fn parse_duration(s: &str) -> Result<u64> {
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| anyhow::anyhow!("{s:?}: expected a number and s, m, h or d"))?;
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => bail!("{s:?}: the unit must be s, m, h or d"),
    };
    Ok(n.saturating_mul(unit))
}

/// Shows the settings, or changes them when a flag is given.
pub(crate) async fn run(g: &Global, a: SettingsArgs) -> Result<u8> {
    let repo = context::open_overlapped(g).await?;
    let change = a.storage.change()?;
    let current = if change.is_empty() {
        repo.settings()
    } else {
        Some(repo.change_settings(&change).await?)
    };
    if a.json {
        super::print_json(&json(current.as_ref()))?;
    } else if !g.quiet {
        print!("{}", describe(current.as_ref()));
    }
    Ok(exit::OK)
}

pub(crate) fn json(s: Option<&Settings>) -> serde_json::Value {
    let s = s.cloned().unwrap_or(Settings {
        sequence: 0,
        written: 0,
        data_class: String::new(),
        metadata_class: String::new(),
        lock: None,
    });
    serde_json::json!({
        "sequence": s.sequence,
        "data_storage_class": s.data_class,
        "metadata_storage_class": s.metadata_class,
        "object_lock": s.lock.map(|l| serde_json::json!({
            "mode": l.mode,
            "seconds": l.seconds,
        })),
    })
}

fn describe(s: Option<&Settings>) -> String {
    let class = |c: &str| {
        if c.is_empty() {
            "the bucket's default".to_owned()
        } else {
            c.to_owned()
        }
    };
    let Some(s) = s else {
        return "storage classes: the bucket's default\nobject lock: none\n".to_owned();
    };
    let lock = match s.lock {
        None => "none".to_owned(),
        Some(l) => format!(
            "{} for {} from each write",
            l.mode.s3_name().to_lowercase(),
            human_seconds(l.seconds)
        ),
    };
    format!(
        "data packs: {}\nmetadata: {}\nobject lock: {lock}\n(settings #{})\n",
        class(&s.data_class),
        class(&s.metadata_class),
        s.sequence
    )
}

fn human_seconds(s: u64) -> String {
    match s {
        s if s % 86_400 == 0 => format!("{} days", s / 86_400),
        s if s % 3600 == 0 => format!("{} hours", s / 3600),
        s => format!("{s} seconds"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_a_unit() {
        assert_eq!(parse_duration("90").ok(), Some(90));
        assert_eq!(parse_duration("90s").ok(), Some(90));
        assert_eq!(parse_duration("12h").ok(), Some(12 * 3600));
        assert_eq!(parse_duration("30d").ok(), Some(30 * 86_400));
        assert!(parse_duration("3w").is_err());
        assert!(parse_duration("d").is_err());
    }

    #[test]
    fn lock_flags_become_one_change() {
        let a = StorageArgs {
            object_lock: Some("compliance".into()),
            lock_days: Some(30),
            ..Default::default()
        };
        let c = a.change().expect("change");
        assert_eq!(
            c.lock,
            Some(Some(Lock {
                mode: LockMode::Compliance,
                seconds: 30 * 86_400
            }))
        );
        let none = StorageArgs {
            object_lock: Some("none".into()),
            lock_days: Some(1),
            ..Default::default()
        };
        assert_eq!(none.change().expect("change").lock, Some(None));
        let bad = StorageArgs {
            object_lock: Some("strict".into()),
            lock_days: Some(1),
            ..Default::default()
        };
        assert!(bad.change().is_err());
    }
}
