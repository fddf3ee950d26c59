//! Blocked calls in fixed memory: for each account, the addresses whose
//! calls were denied most (a Space-Saving top-K sketch), until they are
//! taken away to be reported to the control plane ([`BlockedCalls::take`]).
//!
//! Only the deny path touches it ([`BlockedCalls::note`], called for
//! `ip_not_whitelisted` denials of a known account: an address the
//! account could ask for, not one the operator blocked).
//! The bound: at most [`MAX_ACCOUNTS`] accounts between two reports, each
//! with at most [`TOP_K`] addresses; a call for an account beyond the bound
//! is dropped and counted (`ipgate_blocked_calls_dropped_total`). Each
//! address slot is [`SLOT_BYTES`]; see `docs/behaviour.md` for the byte
//! bound.

use prometheus::{IntCounter, IntGauge, Opts, Registry};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};

/// Addresses kept per account between two reports.
pub const TOP_K: usize = 16;
/// Accounts kept between two reports (over all shards).
pub const MAX_ACCOUNTS: usize = 10_000;
const SHARDS: usize = 16;
const PER_SHARD: usize = MAX_ACCOUNTS / SHARDS;
/// The size of one address slot.
pub const SLOT_BYTES: usize = std::mem::size_of::<Slot>();
// The bound in `docs/behaviour.md` counts 48 bytes a slot.
const _: () = assert!(SLOT_BYTES <= 48);

/// One address of one account: denied calls, when first and last seen
/// (Unix seconds) and the route of the last one (its index).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub address: IpAddr,
    pub calls: u64,
    pub first_seen: u64,
    pub last_seen: u64,
    pub route: u16,
}

/// One account's top addresses (Space-Saving: when full, a new address
/// takes the place of the one with the fewest calls, inheriting its count,
/// so an address with more calls than any count evicted is never lost).
#[derive(Debug, Default)]
struct TopK {
    slots: Vec<Slot>,
}

impl TopK {
    fn note(&mut self, address: IpAddr, route: u16, now: u64, calls: u64) {
        if let Some(s) = self.slots.iter_mut().find(|s| s.address == address) {
            s.calls = s.calls.saturating_add(calls);
            s.last_seen = s.last_seen.max(now);
            s.route = route;
            return;
        }
        let fresh = Slot {
            address,
            calls,
            first_seen: now,
            last_seen: now,
            route,
        };
        if self.slots.len() < TOP_K {
            self.slots.push(fresh);
            return;
        }
        if let Some(min) = self.slots.iter_mut().min_by_key(|s| s.calls) {
            let floor = min.calls;
            *min = Slot {
                calls: floor.saturating_add(calls),
                ..fresh
            };
        }
    }
}

/// One account's address as taken for a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taken {
    pub account: String,
    pub slot: Slot,
}

/// The sketch, sharded by account so concurrent denials rarely wait.
pub struct BlockedCalls {
    /// Route names by index (for reports).
    routes: Vec<String>,
    shards: Vec<Mutex<HashMap<Box<str>, TopK>>>,
    tracked: IntGauge,
    dropped: IntCounter,
}

impl BlockedCalls {
    /// An empty sketch whose metrics are in `registry`.
    pub fn register(
        registry: &Registry,
        routes: Vec<String>,
    ) -> Result<BlockedCalls, prometheus::Error> {
        let mut b = BlockedCalls::unregistered();
        b.routes = routes;
        registry.register(Box::new(b.tracked.clone()))?;
        registry.register(Box::new(b.dropped.clone()))?;
        Ok(b)
    }

    /// An empty sketch with metrics nobody scrapes (tests, benches).
    pub fn unregistered() -> BlockedCalls {
        let tracked = IntGauge::with_opts(Opts::new(
            "ipgate_blocked_calls_tracked",
            "Accounts with blocked calls held by the proxy, not yet reported.",
        ))
        .unwrap_or_else(|_| unreachable!("a valid metric name"));
        let dropped = IntCounter::with_opts(Opts::new(
            "ipgate_blocked_calls_dropped_total",
            "Blocked calls not counted: their account was beyond the sketch's bound.",
        ))
        .unwrap_or_else(|_| unreachable!("a valid metric name"));
        BlockedCalls {
            routes: Vec::new(),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            tracked,
            dropped,
        }
    }

    fn shard(&self, account: &str) -> &Mutex<HashMap<Box<str>, TopK>> {
        // FNV-1a: cheap, and good enough to spread account names.
        let h = account.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        &self.shards[(h as usize) % SHARDS]
    }

    /// Counts one denied call of `account` from `address` on `route` at
    /// `now` (Unix seconds).
    pub fn note(&self, account: &str, address: IpAddr, route: u16, now: u64) {
        self.add(account, address, route, now, 1);
    }

    fn add(&self, account: &str, address: IpAddr, route: u16, now: u64, calls: u64) {
        let mut map = self
            .shard(account)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(top) = map.get_mut(account) {
            top.note(address, route, now, calls);
            return;
        }
        if map.len() >= PER_SHARD {
            self.dropped.inc_by(calls);
            return;
        }
        let mut top = TopK::default();
        top.note(address, route, now, calls);
        map.insert(account.into(), top);
        self.tracked.inc();
    }

    /// Takes everything counted so far, leaving the sketch empty.
    pub fn take(&self) -> Vec<Taken> {
        let mut out = Vec::new();
        for shard in &self.shards {
            let map = std::mem::take(&mut *shard.lock().unwrap_or_else(PoisonError::into_inner));
            self.tracked.sub(map.len() as i64);
            for (account, top) in map {
                out.extend(top.slots.into_iter().map(|slot| Taken {
                    account: account.to_string(),
                    slot,
                }));
            }
        }
        out
    }

    /// Puts back what [`BlockedCalls::take`] took and could not report: it
    /// is counted again, within the same bound (so a control plane that is
    /// down costs no more memory).
    pub fn put_back(&self, taken: Vec<Taken>) {
        for t in taken {
            let s = t.slot;
            let mut map = self
                .shard(&t.account)
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let known = map.contains_key(t.account.as_str());
            if !known && map.len() >= PER_SHARD {
                self.dropped.inc_by(s.calls);
                continue;
            }
            let top = map.entry(t.account.as_str().into()).or_default();
            if !known {
                self.tracked.inc();
            }
            match top.slots.iter_mut().find(|x| x.address == s.address) {
                Some(x) => {
                    x.calls = x.calls.saturating_add(s.calls);
                    x.first_seen = x.first_seen.min(s.first_seen);
                    if s.last_seen > x.last_seen {
                        x.last_seen = s.last_seen;
                    }
                }
                None => {
                    top.note(s.address, s.route, s.last_seen, s.calls);
                    if let Some(x) = top.slots.iter_mut().find(|x| x.address == s.address) {
                        x.first_seen = x.first_seen.min(s.first_seen);
                    }
                }
            }
        }
    }

    /// The name of the route with index `route` (`none` when unknown).
    pub fn route_name(&self, route: u16) -> &str {
        self.routes
            .get(usize::from(route))
            .map(String::as_str)
            .unwrap_or(crate::metrics::NO_ROUTE)
    }

    /// One taken line as a report's JSON object: `account`, `address`,
    /// `calls`, `first_seen`, `last_seen` (Unix seconds), `route`.
    pub fn report_line(&self, t: &Taken) -> serde_json::Value {
        serde_json::json!({
            "account": t.account,
            "address": t.slot.address.to_string(),
            "calls": t.slot.calls,
            "first_seen": t.slot.first_seen,
            "last_seen": t.slot.last_seen,
            "route": self.route_name(t.slot.route),
        })
    }

    /// Accounts held now (the `ipgate_blocked_calls_tracked` gauge).
    pub fn tracked(&self) -> usize {
        self.tracked.get().max(0) as usize
    }

    /// Calls dropped for the bound so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.get()
    }
}

/// Now, in Unix seconds.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn counts_calls_and_times_per_address() {
        let b = BlockedCalls::unregistered();
        b.note("a", ip("192.0.2.1"), 0, 100);
        b.note("a", ip("192.0.2.1"), 1, 105);
        b.note("a", ip("192.0.2.2"), 0, 101);
        b.note("b", ip("192.0.2.1"), 0, 102);
        assert_eq!(b.tracked(), 2);
        let mut t = b.take();
        t.sort_by(|x, y| (&x.account, x.slot.address).cmp(&(&y.account, y.slot.address)));
        assert_eq!(t.len(), 3);
        assert_eq!(t[0].account, "a");
        assert_eq!(
            t[0].slot,
            Slot {
                address: ip("192.0.2.1"),
                calls: 2,
                first_seen: 100,
                last_seen: 105,
                route: 1
            }
        );
        assert_eq!(t[1].slot.calls, 1);
        assert_eq!((t[2].account.as_str(), t[2].slot.calls), ("b", 1));
        assert_eq!(b.tracked(), 0);
        assert!(b.take().is_empty());
    }

    #[test]
    fn keeps_the_heavy_hitters_within_k() {
        let b = BlockedCalls::unregistered();
        // Two heavy addresses among 1,000 that call once each.
        for i in 0..1000u32 {
            b.note("a", IpAddr::from((0x0a00_0000 + i).to_be_bytes()), 0, 1);
            if i % 10 == 0 {
                b.note("a", ip("203.0.113.1"), 0, 2);
                b.note("a", ip("203.0.113.2"), 0, 2);
            }
        }
        let t = b.take();
        assert_eq!(t.len(), TOP_K);
        for heavy in ["203.0.113.1", "203.0.113.2"] {
            let s = t.iter().find(|x| x.slot.address == ip(heavy)).unwrap();
            // Space-Saving may overestimate by at most calls / K.
            assert!((100..=100 + 1200 / TOP_K as u64).contains(&s.slot.calls));
        }
    }

    #[test]
    fn accounts_beyond_the_bound_are_dropped_and_counted() {
        let b = BlockedCalls::unregistered();
        for i in 0..(MAX_ACCOUNTS * 2) {
            b.note(&format!("acct-{i}"), ip("192.0.2.1"), 0, 1);
        }
        assert!(b.tracked() <= MAX_ACCOUNTS);
        assert!(b.tracked() > MAX_ACCOUNTS / 2);
        assert_eq!(b.tracked() as u64 + b.dropped(), (MAX_ACCOUNTS * 2) as u64);
        // Known accounts still count when the bound is reached.
        b.note("acct-0", ip("192.0.2.1"), 0, 2);
        let t = b.take();
        assert_eq!(
            t.iter().map(|x| x.slot.calls).sum::<u64>(),
            t.len() as u64 + 1
        );
    }

    #[test]
    fn what_is_put_back_merges_and_stays_bounded() {
        let b = BlockedCalls::unregistered();
        b.note("a", ip("192.0.2.1"), 0, 100);
        let t = b.take();
        b.note("a", ip("192.0.2.1"), 2, 200);
        b.put_back(t.clone());
        b.put_back(t);
        let t = b.take();
        assert_eq!(t.len(), 1);
        assert_eq!(
            (t[0].slot.calls, t[0].slot.first_seen, t[0].slot.last_seen),
            (3, 100, 200)
        );
        let many: Vec<Taken> = (0..(MAX_ACCOUNTS * 2))
            .map(|i| Taken {
                account: format!("x{i}"),
                slot: t[0].slot,
            })
            .collect();
        b.put_back(many);
        assert!(b.tracked() <= MAX_ACCOUNTS);
    }
}
