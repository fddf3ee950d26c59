//! The proxies that poll the feed, as the control plane last saw them:
//! name, address, the version each holds and when it last asked. Kept in
//! memory (a restarted control plane learns them again within one poll),
//! bounded to [`MAX_PROXIES`], forgetting the longest silent first.

use crate::domain::Timestamp;
use serde::Serialize;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use utoipa::ToSchema;

/// Most proxies remembered at once.
pub const MAX_PROXIES: usize = 10_000;

/// A proxy's name as it reports it (`sync.name`): 1-64 of
/// `A-Z a-z 0-9 . _ -`, or its address when it sends none.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProxyName(String);

impl ProxyName {
    pub fn parse(name: &str) -> Result<ProxyName, &'static str> {
        let ok = (1..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if ok {
            Ok(ProxyName(name.to_owned()))
        } else {
            Err("a proxy name is 1-64 of A-Z a-z 0-9 . _ -")
        }
    }

    /// The name of a proxy that sent none: its address.
    pub fn of_peer(peer: SocketAddr) -> ProxyName {
        ProxyName(peer.ip().to_string())
    }
}

#[derive(Debug, Clone)]
struct Seen {
    address: SocketAddr,
    version: u64,
    at: Timestamp,
}

/// One proxy as `GET /admin/v1/proxies` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ProxyView {
    /// `sync.name`, or the address it polled from.
    pub name: String,
    /// The address of its last poll (`IP:port`).
    pub address: String,
    /// The table version it held at its last poll.
    pub version: u64,
    /// When it last polled (RFC 3339).
    pub last_poll: String,
    /// Seconds since its last poll.
    pub last_poll_age_secs: u64,
    /// Whether it held the control plane's current version at its last
    /// poll (a proxy that is up to date waits in a poll, so its age then
    /// grows up to `sync.poll_timeout`).
    pub current: bool,
}

/// The proxies seen, by name.
#[derive(Debug, Default)]
pub struct SeenProxies {
    by_name: Mutex<HashMap<ProxyName, Seen>>,
}

impl SeenProxies {
    /// Notes a poll from `name` at `address` holding `version`.
    pub fn seen(&self, name: ProxyName, address: SocketAddr, version: u64) {
        let mut map = self.by_name.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_PROXIES && !map.contains_key(&name) {
            if let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.at.unix())
                .map(|(n, _)| n.clone())
            {
                map.remove(&oldest);
            }
        }
        map.insert(
            name,
            Seen {
                address,
                version,
                at: Timestamp::now(),
            },
        );
    }

    /// Every proxy seen, by name; `current`: the feed's version now.
    pub fn list(&self, current: u64) -> Vec<ProxyView> {
        let now = Timestamp::now().unix();
        let map = self.by_name.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<ProxyView> = map
            .iter()
            .map(|(n, s)| ProxyView {
                name: n.0.clone(),
                address: s.address.to_string(),
                version: s.version,
                last_poll: s.at.to_string(),
                last_poll_age_secs: now.saturating_sub(s.at.unix()),
                current: s.version >= current,
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_rule() {
        assert!(ProxyName::parse("proxy-a.eu_1").is_ok());
        for bad in ["", "has space", "ünï", &"x".repeat(65), "a/b"] {
            assert!(ProxyName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_list_is_bounded_and_keeps_the_latest_poll_of_each() {
        let seen = SeenProxies::default();
        let addr: SocketAddr = "192.0.2.1:5000".parse().unwrap();
        for i in 0..(MAX_PROXIES + 5) {
            seen.seen(ProxyName::parse(&format!("p{i}")).unwrap(), addr, 1);
        }
        assert_eq!(seen.list(1).len(), MAX_PROXIES);
        seen.seen(ProxyName::parse("p-late").unwrap(), addr, 7);
        seen.seen(ProxyName::parse("p-late").unwrap(), addr, 9);
        let late: Vec<_> = seen
            .list(9)
            .into_iter()
            .filter(|p| p.name == "p-late")
            .collect();
        assert_eq!(late.len(), 1);
        assert_eq!(late[0].version, 9);
        assert!(late[0].current);
    }
}
