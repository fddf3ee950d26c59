//! Exponential backoff per key: the first few failures in a row are free,
//! then each attempt must wait, twice as long after every further failure,
//! up to a cap. A success clears the key; a key that fails no more for a
//! long while starts over. Keys live in a bounded table (see `bounded`).

use crate::limits::bounded::Bounded;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct Backoff {
    rule: Rule,
    keys: Mutex<Bounded<Failures>>,
}

/// How long to wait after how many failures.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// Failures in a row before any wait.
    pub free: u32,
    /// The wait after the last free failure; doubled at each one after.
    pub first: Duration,
    /// The longest wait.
    pub cap: Duration,
    /// A key with no failure for this long starts over.
    pub forget: Duration,
}

struct Failures {
    count: u32,
    last: Instant,
}

impl Rule {
    /// The wait after `count` failures in a row.
    pub fn delay(&self, count: u32) -> Duration {
        let Some(over) = count.checked_sub(self.free) else {
            return Duration::ZERO;
        };
        let factor = 1u32.checked_shl(over).unwrap_or(u32::MAX);
        self.first.saturating_mul(factor).min(self.cap)
    }
}

impl Backoff {
    pub fn new(rule: Rule, capacity: usize) -> Backoff {
        Backoff {
            rule,
            keys: Mutex::new(Bounded::new(capacity)),
        }
    }

    /// How long `key` must still wait; zero when it may try now.
    pub fn wait(&self, key: &str) -> Duration {
        self.wait_at(key, Instant::now())
    }

    /// Counts a failure for `key`.
    pub fn failed(&self, key: &str) {
        self.failed_at(key, Instant::now());
    }

    /// Clears `key`: it succeeded.
    pub fn succeeded(&self, key: &str) {
        self.lock().remove(key);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Bounded<Failures>> {
        self.keys.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wait_at(&self, key: &str, now: Instant) -> Duration {
        let keys = self.lock();
        let Some(f) = keys.get(key) else {
            return Duration::ZERO;
        };
        if now.saturating_duration_since(f.last) >= self.rule.forget {
            return Duration::ZERO;
        }
        (f.last + self.rule.delay(f.count)).saturating_duration_since(now)
    }

    fn failed_at(&self, key: &str, now: Instant) {
        let mut keys = self.lock();
        let (f, _) = keys.entry(key, || Failures {
            count: 0,
            last: now,
        });
        if now.saturating_duration_since(f.last) >= self.rule.forget {
            f.count = 0;
        }
        f.count = f.count.saturating_add(1);
        f.last = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: Rule = Rule {
        free: 3,
        first: Duration::from_secs(10),
        cap: Duration::from_secs(60),
        forget: Duration::from_secs(3600),
    };

    #[test]
    fn the_wait_doubles_after_the_free_failures_up_to_the_cap() {
        let waits: Vec<u64> = (0..9).map(|n| RULE.delay(n).as_secs()).collect();
        assert_eq!(waits, [0, 0, 0, 10, 20, 40, 60, 60, 60]);
        assert_eq!(RULE.delay(u32::MAX), RULE.cap);
    }

    #[test]
    fn a_key_waits_after_its_failures_and_a_success_clears_it() {
        let b = Backoff::new(RULE, 100);
        let t = Instant::now();
        for _ in 0..3 {
            assert_eq!(b.wait_at("k", t), Duration::ZERO);
            b.failed_at("k", t);
        }
        assert_eq!(b.wait_at("k", t), Duration::from_secs(10));
        assert_eq!(
            b.wait_at("k", t + Duration::from_secs(4)),
            Duration::from_secs(6)
        );
        assert_eq!(b.wait_at("other", t), Duration::ZERO, "keys are apart");
        let later = t + Duration::from_secs(10);
        assert_eq!(b.wait_at("k", later), Duration::ZERO);
        b.failed_at("k", later);
        assert_eq!(b.wait_at("k", later), Duration::from_secs(20));
        b.succeeded("k");
        assert_eq!(b.wait_at("k", later), Duration::ZERO);
    }

    #[test]
    fn a_key_quiet_for_long_starts_over() {
        let b = Backoff::new(RULE, 100);
        let t = Instant::now();
        for _ in 0..5 {
            b.failed_at("k", t);
        }
        let much_later = t + RULE.forget;
        assert_eq!(b.wait_at("k", much_later), Duration::ZERO);
        b.failed_at("k", much_later);
        assert_eq!(b.wait_at("k", much_later), Duration::ZERO, "one failure");
    }
}
