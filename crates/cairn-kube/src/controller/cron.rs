//! Standard five-field cron expressions on top of the `cron` crate, which
//! wants a seconds field and numbers weekdays from 1 (Sunday).

use std::str::FromStr;

use chrono::{DateTime, Utc};

/// A parsed schedule.
#[derive(Debug, Clone)]
pub struct Cron(cron::Schedule);

impl Cron {
    /// Parses `min hour day-of-month month day-of-week` (weekdays 0–7, 0
    /// and 7 are Sunday, or names) or `@hourly`, `@daily`, `@weekly`,
    /// `@monthly`, `@yearly`.
    pub fn parse(expr: &str) -> Result<Cron, String> {
        let expr = expr.trim();
        let translated = if expr.starts_with('@') {
            expr.to_owned()
        } else {
            let fields: Vec<&str> = expr.split_whitespace().collect();
            let [min, hour, dom, month, dow] = fields[..] else {
                return Err(format!(
                    "schedule {expr:?} must have five fields (minute hour day-of-month month day-of-week)"
                ));
            };
            format!("0 {min} {hour} {dom} {month} {}", weekdays(dow)?)
        };
        cron::Schedule::from_str(&translated)
            .map(Cron)
            .map_err(|e| format!("schedule {expr:?} is not a valid cron expression: {e}"))
    }

    /// The last time at or before `now` and after `since` the schedule
    /// fired, if any. Searches at most the last seven days.
    pub fn last_due(&self, since: i64, now: i64) -> Option<i64> {
        let start = since.max(now - 7 * 86_400);
        let from = DateTime::<Utc>::from_timestamp(start, 0)?;
        self.0
            .after(&from)
            .map(|t| t.timestamp())
            .take_while(|t| *t <= now)
            .last()
    }

    /// The first time after `now` the schedule fires.
    pub fn next_after(&self, now: i64) -> Option<i64> {
        let from = DateTime::<Utc>::from_timestamp(now, 0)?;
        self.0.after(&from).next().map(|t| t.timestamp())
    }
}

/// Day-of-week field from cron's 0–7 (Sunday 0 or 7) to the crate's 1–7
/// (Sunday 1). Steps (`/2`) and names are kept.
fn weekdays(field: &str) -> Result<String, String> {
    let map = |n: &str| -> Result<String, String> {
        if n.chars().all(|c| c.is_ascii_digit()) {
            let v: u32 = n.parse().map_err(|_| format!("bad day of week {n:?}"))?;
            if v > 7 {
                return Err(format!("day of week {v} is not in 0-7"));
            }
            Ok((v % 7 + 1).to_string())
        } else {
            Ok(n.to_owned())
        }
    };
    field
        .split(',')
        .map(|part| {
            let (range, step) = match part.split_once('/') {
                Some((r, s)) => (r, Some(s)),
                None => (part, None),
            };
            let range = match range.split_once('-') {
                Some((a, b)) => format!("{}-{}", map(a)?, map(b)?),
                None if range == "*" => "*".to_owned(),
                None => map(range)?,
            };
            Ok(match step {
                Some(s) => format!("{range}/{s}"),
                None => range,
            })
        })
        .collect::<Result<Vec<_>, String>>()
        .map(|v| v.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MON_2024_01_01: i64 = 1_704_067_200; // Monday 00:00 UTC

    #[test]
    fn five_fields_with_sunday_as_zero() {
        let c = Cron::parse("30 2 * * *").expect("daily");
        assert_eq!(
            c.next_after(MON_2024_01_01),
            Some(MON_2024_01_01 + 2 * 3600 + 1800)
        );
        let sunday = Cron::parse("0 3 * * 0").expect("sunday");
        assert_eq!(
            sunday.next_after(MON_2024_01_01),
            Some(MON_2024_01_01 + 6 * 86_400 + 3 * 3600)
        );
        let seven = Cron::parse("0 3 * * 7").expect("sunday as 7");
        assert_eq!(
            seven.next_after(MON_2024_01_01),
            sunday.next_after(MON_2024_01_01)
        );
        let weekdays = Cron::parse("0 0 * * 1-5").expect("range");
        assert_eq!(
            weekdays.next_after(MON_2024_01_01),
            Some(MON_2024_01_01 + 86_400),
            "Tuesday"
        );
        assert!(Cron::parse("0 0 * * MON").is_ok());
        assert!(Cron::parse("@hourly").is_ok());
    }

    #[test]
    fn bad_expressions_say_why() {
        assert!(
            Cron::parse("* * *")
                .expect_err("3 fields")
                .contains("five fields")
        );
        assert!(Cron::parse("0 0 * * 9").is_err());
        assert!(Cron::parse("61 * * * *").is_err());
    }

    #[test]
    fn last_due_is_the_latest_firing_since_the_last_run() {
        let hourly = Cron::parse("0 * * * *").expect("hourly");
        let t = MON_2024_01_01;
        assert_eq!(hourly.last_due(t, t + 3599), None, "nothing new yet");
        assert_eq!(hourly.last_due(t, t + 3600), Some(t + 3600));
        assert_eq!(
            hourly.last_due(t, t + 5 * 3600 + 10),
            Some(t + 5 * 3600),
            "missed runs collapse"
        );
        // A schedule idle for a year looks back a week at most.
        assert_eq!(hourly.last_due(0, t), Some(t));
    }
}
