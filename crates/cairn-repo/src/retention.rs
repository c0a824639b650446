//! Retention policies: which snapshots of one group `forget` keeps.
//!
//! Pure functions of the snapshots' times and tags and a [`Policy`]; no I/O
//! and no clock. Times are seconds since the epoch and every calendar
//! computation is in UTC. The rules follow restic's documented `forget`
//! semantics, so a policy means the same in both tools:
//!
//! - `last n`: the `n` newest snapshots.
//! - `hourly n` … `yearly n`: walking from the newest snapshot to the oldest,
//!   the newest snapshot of each hour (day, ISO week, month, year) is kept,
//!   for the `n` most recent periods that **have** a snapshot. If the group
//!   has fewer such periods than `n`, its oldest snapshot is kept as well.
//! - `within d`: every snapshot no older than `d` before the **newest
//!   snapshot of the group** (not before now: a source that stopped being
//!   backed up does not lose its last snapshots to the passing of time).
//! - `tags`: every snapshot carrying any of these tags.
//!
//! A snapshot kept for several rules lists every reason.

/// What to keep. Counts of 0 disable a rule.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// Keep the `n` newest snapshots.
    pub last: u32,
    /// Keep the newest snapshot of each of the last `n` hours with one.
    pub hourly: u32,
    /// … of each of the last `n` days.
    pub daily: u32,
    /// … of each of the last `n` ISO weeks.
    pub weekly: u32,
    /// … of each of the last `n` months.
    pub monthly: u32,
    /// … of each of the last `n` years.
    pub yearly: u32,
    /// Keep every snapshot within this span of the newest one.
    pub within: Option<Span>,
    /// Keep every snapshot with any of these tags.
    pub tags: Vec<String>,
}

impl Policy {
    /// True when no rule is set: such a policy would remove everything, so
    /// callers refuse it.
    pub fn is_empty(&self) -> bool {
        self.last == 0
            && self.hourly == 0
            && self.daily == 0
            && self.weekly == 0
            && self.monthly == 0
            && self.yearly == 0
            && self.within.is_none()
            && self.tags.is_empty()
    }
}

/// A calendar span such as `1y5m7d2h` (years, months, days, hours), as in
/// restic's `--keep-within`. Years and months are calendar units.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Span {
    /// Years.
    pub years: i64,
    /// Months.
    pub months: i64,
    /// Days.
    pub days: i64,
    /// Hours.
    pub hours: i64,
}

impl Span {
    /// Parses `1y5m7d2h`, `36h`, `2w` (weeks = 7 days) and so on; every part
    /// is optional but at least one must be present.
    pub fn parse(s: &str) -> Option<Span> {
        let mut span = Span::default();
        let mut num = String::new();
        let mut any = false;
        for c in s.trim().chars() {
            if c.is_ascii_digit() {
                num.push(c);
                continue;
            }
            let n: i64 = num.parse().ok()?;
            num.clear();
            match c {
                'y' => span.years += n,
                'm' => span.months += n,
                'w' => span.days += 7 * n,
                'd' => span.days += n,
                'h' => span.hours += n,
                _ => return None,
            }
            any = true;
        }
        (num.is_empty() && any).then_some(span)
    }

    /// `t` moved back by this span, like Go's `AddDate(-y, -m, -d)` then
    /// `-h` hours: a day that does not exist in the target month overflows
    /// into the next (31 March minus one month is 3 March, or 2 in leap years).
    pub fn before(&self, t: i64) -> i64 {
        let days = t.div_euclid(86_400);
        let secs = t.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        let total_months = y * 12 + (m - 1) - self.years * 12 - self.months;
        let (ny, nm) = (total_months.div_euclid(12), total_months.rem_euclid(12) + 1);
        let nd = days_from_civil(ny, nm, 1) + (d - 1) - self.days;
        nd * 86_400 + secs - self.hours * 3_600
    }
}

impl std::fmt::Display for Span {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (n, unit) in [
            (self.years, 'y'),
            (self.months, 'm'),
            (self.days, 'd'),
            (self.hours, 'h'),
        ] {
            if n != 0 {
                write!(f, "{n}{unit}")?;
            }
        }
        Ok(())
    }
}

/// One snapshot as retention sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Seconds since the epoch.
    pub time: i64,
    /// Its tags.
    pub tags: Vec<String>,
}

/// Decides which of `snaps` (one group) to keep. Returns, for each input in
/// input order, the reasons it is kept; an empty list means remove it.
/// Ties in time are broken by input order (earlier input counts as newer),
/// so callers should sort ties deterministically.
pub fn apply(snaps: &[Candidate], policy: &Policy) -> Vec<Vec<String>> {
    let mut reasons = vec![Vec::new(); snaps.len()];
    // Newest first; a stable sort keeps input order among equal times.
    let mut order: Vec<usize> = (0..snaps.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(snaps[i].time));
    let Some(&newest) = order.first() else {
        return reasons;
    };

    for &i in order.iter().take(policy.last as usize) {
        reasons[i].push("last snapshot".to_owned());
    }
    let buckets: [(u32, &str, Bucket); 5] = [
        (policy.hourly, "hourly", hour_of),
        (policy.daily, "daily", day_of),
        (policy.weekly, "weekly", week_of),
        (policy.monthly, "monthly", month_of),
        (policy.yearly, "yearly", year_of),
    ];
    for (count, name, bucket) in buckets {
        if count == 0 {
            continue;
        }
        let mut left = count;
        let mut last = None;
        for &i in &order {
            if left == 0 {
                break;
            }
            let b = bucket(snaps[i].time);
            if last != Some(b) {
                reasons[i].push(format!("{name} snapshot"));
                last = Some(b);
                left -= 1;
            }
        }
        if left > 0 {
            if let Some(&oldest) = order.last() {
                reasons[oldest].push(format!("oldest {name} snapshot"));
            }
        }
    }
    if let Some(span) = policy.within {
        let from = span.before(snaps[newest].time);
        for &i in &order {
            if snaps[i].time >= from {
                reasons[i].push(format!("within {span} of the newest snapshot"));
            }
        }
    }
    for &i in &order {
        for t in &policy.tags {
            if snaps[i].tags.contains(t) {
                reasons[i].push(format!("tagged {t}"));
            }
        }
    }
    for r in &mut reasons {
        r.dedup();
    }
    reasons
}

/// Maps a time to the calendar period it falls in.
type Bucket = fn(i64) -> i64;

fn hour_of(t: i64) -> i64 {
    t.div_euclid(3_600)
}

fn day_of(t: i64) -> i64 {
    t.div_euclid(86_400)
}

/// The ISO 8601 week, as `year * 100 + week`.
fn week_of(t: i64) -> i64 {
    let days = day_of(t);
    // 1970-01-01 was a Thursday; Monday = 0.
    let weekday = (days + 3).rem_euclid(7);
    let thursday = days - weekday + 3;
    let (y, _, _) = civil_from_days(thursday);
    let ordinal = thursday - days_from_civil(y, 1, 1);
    y * 100 + ordinal / 7 + 1
}

fn month_of(t: i64) -> i64 {
    let (y, m, _) = civil_from_days(day_of(t));
    y * 12 + m
}

fn year_of(t: i64) -> i64 {
    civil_from_days(day_of(t)).0
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date (year, month 1–12, day 1–31) of a day number since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_round_trips_and_iso_weeks() {
        for d in [-800_000, -1, 0, 1, 11_016, 19_000, 2_932_896] {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        let t = |y, m, d| days_from_civil(y, m, d) * 86_400;
        // 2021-01-03 is in week 53 of 2020; 2021-01-04 starts week 1 of 2021.
        assert_eq!(week_of(t(2021, 1, 3)), 202_053);
        assert_eq!(week_of(t(2021, 1, 4)), 202_101);
        // 2024-12-30 is in week 1 of 2025.
        assert_eq!(week_of(t(2024, 12, 30)), 202_501);
    }

    #[test]
    fn spans_parse_and_step_back_by_the_calendar() {
        assert_eq!(
            Span::parse("1y5m7d2h"),
            Some(Span {
                years: 1,
                months: 5,
                days: 7,
                hours: 2
            })
        );
        assert_eq!(Span::parse("2w").map(|s| s.days), Some(14));
        for bad in ["", "5", "d", "3x", "-1d"] {
            assert_eq!(Span::parse(bad), None, "{bad}");
        }
        let t = |y, m, d| days_from_civil(y, m, d) * 86_400;
        let one_month = Span {
            months: 1,
            ..Span::default()
        };
        assert_eq!(one_month.before(t(2023, 3, 31)), t(2023, 3, 3));
        assert_eq!(one_month.before(t(2024, 3, 31)), t(2024, 3, 2));
        let day = Span {
            days: 1,
            hours: 1,
            ..Span::default()
        };
        assert_eq!(day.before(t(2024, 1, 2)), t(2023, 12, 31) + 23 * 3600);
    }
}
