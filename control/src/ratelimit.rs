//! Fixed-window attempt counters for the endpoints a guesser would hammer
//! (login, emailed links), kept per key (an IP, an account, a username).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// At most `limit` hits per key per `window`.
pub struct RateLimit {
    limit: u32,
    window: Duration,
    hits: Mutex<HashMap<String, (Instant, u32)>>,
}

/// Keys kept before stale windows are swept; when that many keys are all
/// fresh, new keys are refused (a flood from many addresses fails closed).
const SWEEP_AT: usize = 10_000;

/// The key of a client address: IPv4 as is, IPv6 by its /64 (one site
/// gets a whole /64, so single addresses would be free to rotate).
pub fn client_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

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
        if hits.len() >= SWEEP_AT && !hits.contains_key(key) {
            let window = self.window;
            hits.retain(|_, (start, _)| now.duration_since(*start) < window);
            if hits.len() >= SWEEP_AT {
                return false;
            }
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
    fn ipv6_clients_share_their_64() {
        let a = client_key("2001:db8:1:2::1".parse().unwrap_or(IpAddr::from([0u8; 16])));
        let b = client_key(
            "2001:db8:1:2:ffff::9"
                .parse()
                .unwrap_or(IpAddr::from([0u8; 16])),
        );
        assert_eq!(a, b);
        assert_eq!(a, "2001:db8:1:2::/64");
        assert_eq!(client_key(IpAddr::from([192, 0, 2, 1])), "192.0.2.1");
    }

    #[test]
    fn a_full_table_of_fresh_keys_refuses_new_ones() {
        let r = RateLimit::new(5, Duration::from_secs(60));
        for i in 0..SWEEP_AT {
            assert!(r.allow(&i.to_string()));
        }
        assert!(!r.allow("newcomer"));
        assert!(r.allow("1"), "known keys keep their budget");
    }

    #[test]
    fn a_new_window_starts_over() {
        let r = RateLimit::new(1, Duration::from_millis(0));
        assert!(r.allow("a"));
        assert!(r.allow("a"));
    }
}
