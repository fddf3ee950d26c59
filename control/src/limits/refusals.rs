//! Which refused logins reach the security log. For each source (an IPv4
//! address, an IPv6 /48) and account, the first few refusals of a window
//! are recorded one by one (`login.failed`); the rest are only counted,
//! and written as one `login.failed_summary` record once the window is
//! over. So one client grows the log by a bounded number of records a
//! minute, whatever its request rate. Tallies live in a bounded table (see
//! `bounded`); a tally pushed out of it is summarised, not lost.

use crate::domain::Timestamp;
use crate::limits::bounded::Bounded;
use crate::limits::ratelimit::{network_key, CAPACITY};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Refusals recorded in full per source, account and window.
pub const FIRST: u32 = 5;
/// The window.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Distinct usernames a summary names (the first ones seen).
pub const NAMES: usize = 5;

pub struct Refusals {
    first: u32,
    window: Duration,
    tallies: Mutex<Bounded<Tally>>,
}

/// What to write for one refusal.
#[derive(Debug, Default)]
pub struct Noted {
    /// Record this refusal in full.
    pub record: bool,
    /// Summaries of windows that are over, to write first.
    pub summaries: Vec<Summary>,
}

/// The refusals of one source and account in one window that were counted
/// but not recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// IPv4 address or IPv6 /48.
    pub source: String,
    pub account: Option<String>,
    /// The last address seen from the source.
    pub ip: IpAddr,
    pub suppressed: u64,
    /// Suppressed refusals by reason.
    pub reasons: BTreeMap<&'static str, u64>,
    /// The first few distinct usernames the suppressed refusals tried.
    pub usernames: Vec<String>,
    pub window_start: Timestamp,
    pub window_secs: u64,
}

struct Tally {
    started: Instant,
    summary: Summary,
    recorded: u32,
}

impl Default for Refusals {
    fn default() -> Self {
        Refusals::new(FIRST, WINDOW, CAPACITY)
    }
}

impl Refusals {
    pub fn new(first: u32, window: Duration, capacity: usize) -> Refusals {
        Refusals {
            first,
            window,
            tallies: Mutex::new(Bounded::new(capacity)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Bounded<Tally>> {
        self.tallies.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Notes one refused login as `username` for `account` from `ip`.
    pub fn note(
        &self,
        ip: IpAddr,
        account: Option<&str>,
        username: &str,
        reason: &'static str,
    ) -> Noted {
        self.note_at(ip, account, username, reason, Instant::now())
    }

    fn note_at(
        &self,
        ip: IpAddr,
        account: Option<&str>,
        username: &str,
        reason: &'static str,
        now: Instant,
    ) -> Noted {
        let source = network_key(ip);
        let key = format!("{source}\n{}", account.unwrap_or_default());
        let fresh = || Tally {
            started: now,
            summary: Summary {
                source: source.clone(),
                account: account.map(str::to_string),
                ip,
                suppressed: 0,
                reasons: BTreeMap::new(),
                usernames: Vec::new(),
                window_start: Timestamp::now(),
                window_secs: self.window.as_secs(),
            },
            recorded: 0,
        };
        let mut noted = Noted::default();
        let mut tallies = self.lock();
        let (tally, evicted) = tallies.entry(&key, fresh);
        noted
            .summaries
            .extend(evicted.and_then(|(_, t)| t.into_summary()));
        if now.saturating_duration_since(tally.started) >= self.window {
            let over = std::mem::replace(tally, fresh());
            noted.summaries.extend(over.into_summary());
        }
        tally.summary.ip = ip;
        if tally.recorded < self.first {
            tally.recorded += 1;
            noted.record = true;
            return noted;
        }
        let s = &mut tally.summary;
        s.suppressed += 1;
        *s.reasons.entry(reason).or_default() += 1;
        let name: String = username.chars().take(64).collect();
        if s.usernames.len() < NAMES && !s.usernames.contains(&name) {
            s.usernames.push(name);
        }
        noted
    }

    /// Summaries of the windows that are over (their tallies end).
    pub fn due(&self) -> Vec<Summary> {
        self.due_at(Instant::now())
    }

    fn due_at(&self, now: Instant) -> Vec<Summary> {
        let window = self.window;
        self.lock()
            .take_where(|t| now.saturating_duration_since(t.started) >= window)
            .into_iter()
            .filter_map(|(_, t)| t.into_summary())
            .collect()
    }

    /// Every pending summary, windows over or not (at shutdown).
    pub fn drain(&self) -> Vec<Summary> {
        self.lock()
            .take_where(|_| true)
            .into_iter()
            .filter_map(|(_, t)| t.into_summary())
            .collect()
    }
}

impl Tally {
    /// The summary, when something was suppressed.
    fn into_summary(self) -> Option<Summary> {
        (self.summary.suppressed > 0).then_some(self.summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::from([0u8; 4]))
    }

    #[test]
    fn the_first_refusals_are_recorded_then_counted_for_one_summary() {
        let r = Refusals::new(3, WINDOW, 100);
        let t = Instant::now();
        let ip = at("203.0.113.9");
        let recorded = (0..200)
            .filter(|i| {
                let reason = if i % 2 == 0 {
                    "rate limited"
                } else {
                    "backing off"
                };
                let n = r.note_at(ip, Some("acme"), &format!("u{}", i % 7), reason, t);
                assert!(n.summaries.is_empty());
                n.record
            })
            .count();
        assert_eq!(recorded, 3);
        assert!(r.due_at(t).is_empty(), "the window is not over yet");
        let due = r.due_at(t + WINDOW);
        assert_eq!(due.len(), 1);
        let s = &due[0];
        assert_eq!(s.suppressed, 197);
        assert_eq!(
            (s.source.as_str(), s.account.as_deref()),
            ("203.0.113.9", Some("acme"))
        );
        assert_eq!(s.reasons.values().sum::<u64>(), 197);
        assert_eq!(s.usernames.len(), NAMES);
        assert!(r.due_at(t + WINDOW * 2).is_empty(), "written once");
    }

    #[test]
    fn the_next_refusal_after_the_window_brings_its_summary() {
        let r = Refusals::new(1, WINDOW, 100);
        let t = Instant::now();
        let ip = at("192.0.2.1");
        assert!(r.note_at(ip, None, "x", "unknown user", t).record);
        assert!(!r.note_at(ip, None, "x", "unknown user", t).record);
        let n = r.note_at(ip, None, "x", "unknown user", t + WINDOW);
        assert!(n.record, "a new window records again");
        assert_eq!(n.summaries.len(), 1);
        assert_eq!(n.summaries[0].suppressed, 1);
    }

    #[test]
    fn an_ipv6_48_is_one_source_and_accounts_are_apart() {
        let r = Refusals::new(2, WINDOW, 100);
        let t = Instant::now();
        let recorded = (0..50u32)
            .filter(|i| {
                let ip = at(&format!("2001:db8:7:{i:x}::1"));
                r.note_at(ip, Some("acme"), "alice", "rate limited", t)
                    .record
            })
            .count();
        assert_eq!(recorded, 2);
        assert!(
            r.note_at(
                at("2001:db8:7::1"),
                Some("globex"),
                "carol",
                "wrong password",
                t
            )
            .record
        );
        let due = r.drain();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].source, "2001:db8:7::/48");
        assert_eq!(due[0].suppressed, 48);
    }

    #[test]
    fn a_tally_pushed_out_of_a_full_table_is_summarised() {
        let r = Refusals::new(1, WINDOW, 2);
        let t = Instant::now();
        let a = at("192.0.2.1");
        r.note_at(a, None, "x", "unknown user", t);
        r.note_at(a, None, "x", "unknown user", t);
        r.note_at(at("192.0.2.2"), None, "x", "unknown user", t);
        let n = r.note_at(at("192.0.2.3"), None, "x", "unknown user", t);
        assert!(n.record);
        assert_eq!(n.summaries.len(), 1, "{n:?}");
        assert_eq!(n.summaries[0].source, "192.0.2.1");
    }
}
