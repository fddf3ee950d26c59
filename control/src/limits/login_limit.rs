//! Who may try a portal login now. Each client (an IPv4 address, an IPv6
//! /64 within its /48) has a budget of attempts a minute, and each
//! username *from one client* backs off after a few failures. Nothing is
//! counted per username or per account alone: a stranger guessing from
//! their own address spends their own budget and cannot lock the real
//! user out, whose address has its own.

use crate::limits::backoff::{Backoff, Rule};
use crate::limits::ratelimit::{client_key, RateLimit, CAPACITY};
use std::net::IpAddr;
use std::time::Duration;

/// Attempts a minute per client.
pub const PER_CLIENT: u32 = 10;
/// Attempts a minute of all the /64s of one IPv6 /48 (each attempt may
/// cost an Argon2 check, so a site gets three clients' worth, not more).
pub const PER_NETWORK: u32 = 30;

/// The backoff of one username from one client.
pub const PAIR_RULE: Rule = Rule {
    free: 5,
    first: Duration::from_secs(30),
    cap: Duration::from_secs(15 * 60),
    forget: Duration::from_secs(24 * 3600),
};

pub struct LoginLimit {
    clients: RateLimit,
    pairs: Backoff,
}

/// Why a login may not be tried now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The client is over its attempts for this minute.
    Client,
    /// This username failed too often from this client: wait this long.
    Backoff(Duration),
}

impl Refusal {
    /// The reason the security log shows.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Client => "rate limited",
            Refusal::Backoff(_) => "backing off",
        }
    }

    /// Whole seconds to wait (at least one).
    pub fn retry_after_secs(self) -> u64 {
        match self {
            Refusal::Client => 60,
            Refusal::Backoff(d) => d.as_secs() + u64::from(d.subsec_nanos() > 0),
        }
        .max(1)
    }
}

impl Default for LoginLimit {
    fn default() -> Self {
        LoginLimit::new(
            RateLimit::new(PER_CLIENT, Duration::from_secs(60)).with_network_limit(PER_NETWORK),
            Backoff::new(PAIR_RULE, CAPACITY),
        )
    }
}

/// The key of a username tried from a client.
fn pair_key(username: &str, ip: IpAddr) -> String {
    format!("{}\n{username}", client_key(ip))
}

impl LoginLimit {
    pub fn new(clients: RateLimit, pairs: Backoff) -> LoginLimit {
        LoginLimit { clients, pairs }
    }

    /// Counts an attempt to log in as `username` from `ip`; refused when
    /// the client is over its budget or the pair must still wait.
    pub fn check(&self, username: &str, ip: IpAddr) -> Result<(), Refusal> {
        if !self.clients.allow_client(ip) {
            return Err(Refusal::Client);
        }
        match self.pairs.wait(&pair_key(username, ip)) {
            Duration::ZERO => Ok(()),
            wait => Err(Refusal::Backoff(wait)),
        }
    }

    /// A wrong password or code for `username` from `ip`.
    pub fn failed(&self, username: &str, ip: IpAddr) {
        self.pairs.failed(&pair_key(username, ip));
    }

    /// A login as `username` from `ip` succeeded: its backoff ends.
    pub fn succeeded(&self, username: &str, ip: IpAddr) {
        self.pairs.succeeded(&pair_key(username, ip));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::from([0u8; 4]))
    }

    fn fail(l: &LoginLimit, user: &str, ip: IpAddr) -> Result<(), Refusal> {
        l.check(user, ip).inspect(|()| l.failed(user, ip))
    }

    #[test]
    fn a_stranger_guessing_backs_off_but_the_user_elsewhere_does_not() {
        let l = LoginLimit::default();
        let stranger = at("203.0.113.9");
        let results: Vec<_> = (0..8).map(|_| fail(&l, "alice", stranger)).collect();
        assert!(results[..5].iter().all(Result::is_ok), "{results:?}");
        assert!(
            matches!(results[5], Err(Refusal::Backoff(d)) if d > Duration::from_secs(25)),
            "{results:?}"
        );
        assert_eq!(l.check("alice", at("198.51.100.1")), Ok(()));
        assert_eq!(l.check("bob", stranger), Ok(()), "other names are apart");
    }

    #[test]
    fn a_success_ends_the_backoff() {
        let l = LoginLimit::default();
        let ip = at("192.0.2.1");
        for _ in 0..5 {
            l.failed("alice", ip);
        }
        assert!(matches!(l.check("alice", ip), Err(Refusal::Backoff(_))));
        l.succeeded("alice", ip);
        assert_eq!(l.check("alice", ip), Ok(()));
    }

    #[test]
    fn each_client_has_a_budget_a_minute() {
        let l = LoginLimit::default();
        let ip = at("192.0.2.1");
        let ok = (0..20)
            .filter(|i| l.check(&format!("user{i}"), ip).is_ok())
            .count();
        assert_eq!(ok, PER_CLIENT as usize);
        assert_eq!(l.check("anyone", ip), Err(Refusal::Client));
        assert_eq!(l.check("anyone", at("192.0.2.2")), Ok(()));
    }

    #[test]
    fn a_flood_of_clients_does_not_stop_a_fresh_one() {
        let l = LoginLimit::default();
        for i in 0..(CAPACITY as u32 * 2) {
            let ip = IpAddr::from((0x0a00_0000u32 + i).to_be_bytes());
            let _ = fail(&l, "alice", ip);
        }
        assert_eq!(l.check("alice", at("198.51.100.1")), Ok(()));
        assert_eq!(l.check("bob", at("198.51.100.2")), Ok(()));
    }

    #[test]
    fn refusals_say_how_long_to_wait() {
        assert_eq!(Refusal::Client.retry_after_secs(), 60);
        assert_eq!(
            Refusal::Backoff(Duration::from_millis(29_001)).retry_after_secs(),
            30
        );
        assert_eq!(Refusal::Backoff(Duration::ZERO).retry_after_secs(), 1);
    }
}
