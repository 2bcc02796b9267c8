//! LiteLLM's durations: `30s`, `30m`, `30h`, `30d`, `1mo` (and `1w`, `1y`),
//! used for key expiry (`duration`) and budget periods (`budget_duration`).

use chrono::{DateTime, Months, TimeZone, Utc};

/// A parsed duration. Months are calendar months, not 30 days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Seconds(i64),
    Months(u32),
}

/// Parses `30s`, `30m`, `30h`, `30d`, `2w`, `1mo`, `1y` (case-insensitive, no spaces).
pub fn parse(s: &str) -> Result<Period, String> {
    let t = s.trim().to_ascii_lowercase();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: i64 = num.parse().ok().filter(|n| *n > 0).ok_or_else(|| bad(s))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        "w" => n * 7 * 86_400,
        "mo" => return u32::try_from(n).map(Period::Months).map_err(|_| bad(s)),
        "y" => {
            return u32::try_from(n * 12)
                .map(Period::Months)
                .map_err(|_| bad(s))
        }
        _ => return Err(bad(s)),
    };
    Ok(Period::Seconds(secs))
}

fn bad(s: &str) -> String {
    format!("invalid duration {s:?}: use a number and a unit, e.g. 30s, 30m, 30h, 30d, 1mo")
}

/// `from_ms` plus the period, in Unix milliseconds.
pub fn add(from_ms: i64, p: Period) -> i64 {
    match p {
        Period::Seconds(s) => from_ms.saturating_add(s.saturating_mul(1000)),
        Period::Months(m) => Utc
            .timestamp_millis_opt(from_ms)
            .single()
            .and_then(|t: DateTime<Utc>| t.checked_add_months(Months::new(m)))
            .map(|t| t.timestamp_millis())
            .unwrap_or(i64::MAX),
    }
}

/// The first reset time after `now_ms`, stepping from `last_ms` by the period,
/// so a schedule missed while Tollgate was down resets once, not many times.
pub fn next_after(last_ms: i64, p: Period, now_ms: i64) -> i64 {
    let mut next = add(last_ms, p);
    if next > now_ms {
        return next;
    }
    if let Period::Seconds(s) = p {
        let step = s.saturating_mul(1000).max(1);
        let missed = (now_ms - next) / step + 1;
        return next.saturating_add(missed.saturating_mul(step));
    }
    while next <= now_ms {
        next = add(next, p);
    }
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn litellm_durations_parse() {
        assert_eq!(parse("30s"), Ok(Period::Seconds(30)));
        assert_eq!(parse("30m"), Ok(Period::Seconds(1800)));
        assert_eq!(parse("30h"), Ok(Period::Seconds(108_000)));
        assert_eq!(parse("30d"), Ok(Period::Seconds(2_592_000)));
        assert_eq!(parse("1mo"), Ok(Period::Months(1)));
        assert_eq!(parse("1Y"), Ok(Period::Months(12)));
        for bad in ["", "30", "d", "0d", "-1d", "3x", "1.5h"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn months_are_calendar_months_and_missed_periods_reset_once() {
        // 2026-01-31T00:00:00Z + 1 month = 2026-02-28
        let jan31 = 1_769_817_600_000;
        assert_eq!(add(jan31, Period::Months(1)), 1_772_236_800_000);
        let p = Period::Seconds(30);
        assert_eq!(next_after(0, p, 10_000), 30_000);
        assert_eq!(next_after(0, p, 95_000), 120_000);
        assert_eq!(next_after(0, p, 120_000), 150_000);
    }
}
