//! Durations as people say them: "24 hours", "7 days", "in 3 days".

use crate::domain::Timestamp;
use std::time::Duration;

/// "7 days", "24 hours", "90 minutes", "45 seconds": the largest unit
/// that says `d` exactly (a day is said in hours, as in "a 24-hour link").
pub fn plain_duration(d: Duration) -> String {
    let s = d.as_secs();
    let (n, unit) = if s >= 2 * 86_400 && s.is_multiple_of(86_400) {
        (s / 86_400, "day")
    } else if s >= 3600 && s.is_multiple_of(3600) {
        (s / 3600, "hour")
    } else if s >= 60 && s.is_multiple_of(60) {
        (s / 60, "minute")
    } else {
        (s, "second")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// How long until `at`, rounded down to its largest unit: "in 6 days",
/// "in 23 hours", "in 5 minutes", "in 40 seconds"; "now" once it is due.
pub fn time_until(at: Timestamp, now: Timestamp) -> String {
    let s = at.unix().saturating_sub(now.unix());
    let (n, unit) = match s {
        0 => return "now".to_string(),
        s if s >= 86_400 => (s / 86_400, "day"),
        s if s >= 3600 => (s / 3600, "hour"),
        s if s >= 60 => (s / 60, "minute"),
        s => (s, "second"),
    };
    format!("in {n} {unit}{}", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_say_them() {
        let d = |s| plain_duration(Duration::from_secs(s));
        assert_eq!(d(7 * 86_400), "7 days");
        assert_eq!(d(2 * 86_400), "2 days");
        assert_eq!(d(86_400), "24 hours");
        assert_eq!(d(24 * 3600 + 3600), "25 hours");
        assert_eq!(d(90 * 60), "90 minutes");
        assert_eq!(d(45), "45 seconds");
    }

    #[test]
    fn time_until_rounds_down_and_ends_at_now() {
        let now = Timestamp::from_unix(1_800_000_000);
        let at = |s: u64| time_until(Timestamp::from_unix(1_800_000_000 + s), now);
        assert_eq!(at(7 * 86_400 - 1), "in 6 days");
        assert_eq!(at(86_400), "in 1 day");
        assert_eq!(at(3 * 3600 + 5), "in 3 hours");
        assert_eq!(at(61), "in 1 minute");
        assert_eq!(at(40), "in 40 seconds");
        assert_eq!(at(0), "now");
        assert_eq!(time_until(Timestamp::from_unix(1), now), "now");
    }
}
