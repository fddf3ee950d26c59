//! A point in time to the second: Unix seconds, shown and serialised as
//! RFC 3339 UTC (`2026-01-01T00:00:00Z`), the text the control plane has
//! always stored and answered with.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::ops::Add;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Whole seconds since 1970-01-01T00:00:00Z, at most [`Timestamp::MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(u64);

/// A string that is not an RFC 3339 UTC time from 1970 to 9999.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("not an RFC 3339 UTC time such as 2026-01-01T00:00:00Z: {0}")]
pub struct TimestampError(#[from] humantime::TimestampError);

impl Timestamp {
    /// 1970-01-01T00:00:00Z.
    pub const EPOCH: Timestamp = Timestamp(0);
    /// 9999-12-31T23:59:59Z, the last second RFC 3339 can write. Later
    /// times are held as this one, so every timestamp can be shown.
    pub const MAX: Timestamp = Timestamp(253_402_300_799);

    /// Now, to the second (the epoch should the clock be before it).
    pub fn now() -> Timestamp {
        Timestamp::from_unix(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        )
    }

    /// Unix seconds, [`Timestamp::MAX`] at most.
    pub const fn from_unix(secs: u64) -> Timestamp {
        if secs > Timestamp::MAX.0 {
            Timestamp::MAX
        } else {
            Timestamp(secs)
        }
    }

    /// As Unix seconds.
    pub const fn unix(self) -> u64 {
        self.0
    }

    /// `secs` seconds later, [`Timestamp::MAX`] at most.
    pub const fn plus_secs(self, secs: u64) -> Timestamp {
        Timestamp::from_unix(self.0.saturating_add(secs))
    }

    /// An RFC 3339 UTC time (`Z` or `+00:00`); a fraction of a second is
    /// dropped.
    pub fn parse(text: &str) -> Result<Timestamp, TimestampError> {
        let t = humantime::parse_rfc3339(text)?;
        // parse_rfc3339 refuses years before 1970, so this is not reached.
        let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        Ok(Timestamp::from_unix(secs))
    }
}

/// Whole seconds later ([`Timestamp::MAX`] at most); a fraction of the
/// duration is dropped.
impl Add<Duration> for Timestamp {
    type Output = Timestamp;

    fn add(self, d: Duration) -> Timestamp {
        self.plus_secs(d.as_secs())
    }
}

impl FromStr for Timestamp {
    type Err = TimestampError;

    fn from_str(text: &str) -> Result<Timestamp, TimestampError> {
        Timestamp::parse(text)
    }
}

/// RFC 3339 UTC to the second, as `humantime::format_rfc3339_seconds`
/// writes it (which it can for every second up to [`Timestamp::MAX`]).
impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = UNIX_EPOCH + Duration::from_secs(self.0);
        fmt::Display::fmt(&humantime::format_rfc3339_seconds(t), f)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(d)?;
        Timestamp::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Serde for a [`Timestamp`] kept as a number of Unix seconds, for the
/// records that have always stored one that way (`#[serde(with)]`).
pub mod unix_seconds {
    use super::Timestamp;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(t.unix())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        u64::deserialize(d).map(Timestamp::from_unix)
    }
}

/// [`unix_seconds`] for an optional [`Timestamp`] (`null` for none).
pub mod unix_seconds_opt {
    use super::Timestamp;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_some(&t.unix()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Timestamp::from_unix))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `model::now()` and `model::rfc3339()` wrote before this type.
    fn as_before(unix: u64) -> String {
        humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(unix)).to_string()
    }

    #[test]
    fn shown_as_rfc3339_utc_to_the_second_as_before() {
        for unix in [0, 1, 1_767_225_600, 1_767_312_000, 4_102_444_799] {
            let t = Timestamp::from_unix(unix);
            assert_eq!(t.to_string(), as_before(unix));
            assert_eq!(Timestamp::parse(&t.to_string()), Ok(t));
        }
        assert_eq!(
            Timestamp::from_unix(1_767_225_600).to_string(),
            "2026-01-01T00:00:00Z"
        );
        assert_eq!(Timestamp::EPOCH.to_string(), "1970-01-01T00:00:00Z");
        assert_eq!(Timestamp::MAX.to_string(), "9999-12-31T23:59:59Z");
        assert_eq!(Timestamp::from_unix(u64::MAX), Timestamp::MAX);
        let now = Timestamp::now();
        assert!(now.unix() > 1_700_000_000);
    }

    #[test]
    fn parsing_takes_rfc3339_utc_only() {
        let t = Timestamp::from_unix(1_767_225_600);
        assert_eq!(Timestamp::parse("2026-01-01T00:00:00+00:00"), Ok(t));
        assert_eq!(Timestamp::parse("2026-01-01T00:00:00.9Z"), Ok(t));
        for bad in [
            "",
            "2026-01-01",
            "2026-01-01 00:00:00",
            "2026-01-01T00:00:00",
            "2026-01-01T00:00:00+01:00",
            "1969-12-31T23:59:59Z",
            "2026-13-01T00:00:00Z",
            "2026-01-01T00:00:00Zé",
        ] {
            assert!(Timestamp::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn arithmetic_saturates_at_the_last_second_shown() {
        let t = Timestamp::from_unix(1_000);
        assert_eq!((t + Duration::from_millis(60_999)).unix(), 1_060);
        assert_eq!(t.plus_secs(5).unix(), 1_005);
        assert_eq!(Timestamp::MAX.plus_secs(1), Timestamp::MAX);
        assert_eq!(t + Duration::MAX, Timestamp::MAX);
        assert!(t < t.plus_secs(1));
    }

    #[test]
    fn serde_as_the_string_or_as_unix_seconds() {
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct Both {
            at: Timestamp,
            #[serde(with = "unix_seconds")]
            secs: Timestamp,
            #[serde(with = "unix_seconds_opt")]
            maybe: Option<Timestamp>,
        }
        let t = Timestamp::from_unix(1_767_312_000);
        let both = Both {
            at: t,
            secs: t,
            maybe: None,
        };
        let json = r#"{"at":"2026-01-02T00:00:00Z","secs":1767312000,"maybe":null}"#;
        assert_eq!(serde_json::to_string(&both).unwrap(), json);
        assert_eq!(serde_json::from_str::<Both>(json).unwrap(), both);
        let some = r#"{"at":"2026-01-02T00:00:00Z","secs":1767312000,"maybe":1767312000}"#;
        assert_eq!(serde_json::from_str::<Both>(some).unwrap().maybe, Some(t));
        assert!(serde_json::from_str::<Timestamp>("\"tomorrow\"").is_err());
        assert!(serde_json::from_str::<Timestamp>("1767312000").is_err());
    }
}
