//! Fixed-window attempt counters for the endpoints a guesser would hammer
//! (login, emailed links), kept per key (an IP, an account, a username).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// At most `limit` hits per key per `window`.
pub struct RateLimit {
    limit: u32,
    window: Duration,
    hits: Mutex<HashMap<String, (Instant, u32)>>,
}

/// Keys kept before stale windows are swept.
const SWEEP_AT: usize = 10_000;

impl RateLimit {
    pub fn new(limit: u32, window: Duration) -> RateLimit {
        RateLimit {
            limit,
            window,
            hits: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one hit for `key`; false when the key is over its limit.
    pub fn allow(&self, key: &str) -> bool {
        let now = Instant::now();
        let mut hits = self.hits.lock().unwrap_or_else(|p| p.into_inner());
        if hits.len() >= SWEEP_AT {
            let window = self.window;
            hits.retain(|_, (start, _)| now.duration_since(*start) < window);
        }
        let slot = hits.entry(key.to_string()).or_insert((now, 0));
        if now.duration_since(slot.0) >= self.window {
            *slot = (now, 0);
        }
        slot.1 = slot.1.saturating_add(1);
        slot.1 <= self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_key_gets_its_own_budget() {
        let r = RateLimit::new(3, Duration::from_secs(60));
        assert!((0..3).all(|_| r.allow("a")));
        assert!(!r.allow("a"));
        assert!(r.allow("b"));
    }

    #[test]
    fn a_new_window_starts_over() {
        let r = RateLimit::new(1, Duration::from_millis(0));
        assert!(r.allow("a"));
        assert!(r.allow("a"));
    }
}
