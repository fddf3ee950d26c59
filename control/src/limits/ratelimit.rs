//! Fixed-window attempt counters for the endpoints a guesser would hammer
//! (login, emailed links), kept per key (a client, an account). The table
//! has a fixed number of keys: when it is full, a new key pushes out the
//! one used least recently (see `bounded`), so a flood from many addresses
//! costs the flood its own history, not everyone else their access.

use crate::limits::bounded::Bounded;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Keys one limiter keeps (a few MB at most).
pub const CAPACITY: usize = 10_000;

/// By default an IPv6 /48 (one site) may make this many times one
/// client's hits: one prefix cannot fill the table with its /64s.
pub const NETWORK_FACTOR: u32 = 8;

/// At most `limit` hits per key per `window`.
pub struct RateLimit {
    limit: u32,
    /// Hits per window of all the /64s of one IPv6 /48.
    network_limit: u32,
    window: Duration,
    hits: Mutex<Bounded<Window>>,
}

struct Window {
    start: Instant,
    count: u32,
}

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

/// The key of a client's network: IPv4 as is (the neighbours of an IPv4
/// address are often other customers of the same ISP), IPv6 by its /48.
pub fn network_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
        }
    }
}

impl RateLimit {
    pub fn new(limit: u32, window: Duration) -> RateLimit {
        RateLimit::with_capacity(limit, window, CAPACITY)
    }

    /// A limiter keeping at most `capacity` keys.
    pub fn with_capacity(limit: u32, window: Duration, capacity: usize) -> RateLimit {
        RateLimit {
            limit,
            network_limit: limit.saturating_mul(NETWORK_FACTOR),
            window,
            hits: Mutex::new(Bounded::new(capacity)),
        }
    }

    /// The same limiter with `limit` hits per window for one IPv6 /48.
    pub fn with_network_limit(self, limit: u32) -> RateLimit {
        RateLimit {
            network_limit: limit,
            ..self
        }
    }

    /// Counts one hit for `key`; false when the key is over its limit.
    pub fn allow(&self, key: &str) -> bool {
        self.allow_up_to(key, self.limit)
    }

    /// Counts one hit for the client at `ip`: an IPv6 client's /48 first
    /// (with its own limit; a refused /48 adds no key for the /64), then
    /// the client's own key.
    pub fn allow_client(&self, ip: IpAddr) -> bool {
        if ip.is_ipv6() && !self.allow_up_to(&network_key(ip), self.network_limit) {
            return false;
        }
        self.allow(&client_key(ip))
    }

    fn allow_up_to(&self, key: &str, limit: u32) -> bool {
        let now = Instant::now();
        let mut hits = self.hits.lock().unwrap_or_else(|p| p.into_inner());
        let (w, _) = hits.entry(key, || Window {
            start: now,
            count: 0,
        });
        if now.duration_since(w.start) >= self.window {
            *w = Window {
                start: now,
                count: 0,
            };
        }
        w.count = w.count.saturating_add(1);
        w.count <= limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v6(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::from([0u8; 16]))
    }

    #[test]
    fn each_key_gets_its_own_budget() {
        let r = RateLimit::new(3, Duration::from_secs(60));
        assert!((0..3).all(|_| r.allow("a")));
        assert!(!r.allow("a"));
        assert!(r.allow("b"));
    }

    #[test]
    fn ipv6_clients_share_their_64_and_networks_their_48() {
        let a = client_key(v6("2001:db8:1:2::1"));
        let b = client_key(v6("2001:db8:1:2:ffff::9"));
        assert_eq!(a, b);
        assert_eq!(a, "2001:db8:1:2::/64");
        assert_eq!(network_key(v6("2001:db8:1:ffff::1")), "2001:db8:1::/48");
        assert_eq!(client_key(IpAddr::from([192, 0, 2, 1])), "192.0.2.1");
        assert_eq!(network_key(IpAddr::from([192, 0, 2, 1])), "192.0.2.1");
    }

    #[test]
    fn a_full_table_of_fresh_keys_still_lets_newcomers_in() {
        let r = RateLimit::with_capacity(5, Duration::from_secs(60), 100);
        for i in 0..100 {
            assert!(r.allow(&i.to_string()));
        }
        assert!(r.allow("newcomer"), "a flood does not lock newcomers out");
        assert!((0..3).all(|_| r.allow("newcomer")));
        assert!(r.allow("99"), "recent keys keep their count");
        assert!((0..3).all(|_| r.allow("99")));
        assert!(!r.allow("99"), "and their limit");
    }

    #[test]
    fn a_flood_of_new_keys_pushes_out_idle_ones_not_busy_ones() {
        let r = RateLimit::with_capacity(3, Duration::from_secs(60), 50);
        assert!((0..3).all(|_| r.allow("guesser")));
        for i in 0..1_000 {
            r.allow(&format!("flood-{i}"));
            if i % 10 == 0 {
                assert!(!r.allow("guesser"), "a busy key stays limited");
            }
        }
        let hits = r.hits.lock().unwrap_or_else(|p| p.into_inner());
        assert_eq!(hits.len(), 50, "memory stays at the cap");
    }

    #[test]
    fn one_ipv6_48_cannot_fill_the_table() {
        let r = RateLimit::with_capacity(2, Duration::from_secs(60), 1_000);
        let allowed = (0..5_000u32)
            .filter(|i| r.allow_client(v6(&format!("2001:db8:1:{:x}::1", i))))
            .count();
        assert_eq!(allowed, (2 * NETWORK_FACTOR) as usize);
        let keys = r.hits.lock().unwrap_or_else(|p| p.into_inner()).len();
        assert!(keys <= 1 + allowed, "{keys} keys for one /48");
        assert!(r.allow_client(v6("2001:db8:2::1")), "another /48 is free");
        assert!(r.allow_client(IpAddr::from([192, 0, 2, 1])));
    }

    #[test]
    fn the_network_limit_can_be_set() {
        let r = RateLimit::new(2, Duration::from_secs(60)).with_network_limit(3);
        let allowed = (0..10u32)
            .filter(|i| r.allow_client(v6(&format!("2001:db8:1:{i:x}::1"))))
            .count();
        assert_eq!(allowed, 3);
    }

    #[test]
    fn a_new_window_starts_over() {
        let r = RateLimit::new(1, Duration::from_millis(0));
        assert!(r.allow("a"));
        assert!(r.allow("a"));
    }
}
