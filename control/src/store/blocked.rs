//! Blocked calls as the store keeps them: per (account, address), merged
//! from the proxies' reports, kept while last seen within
//! [`KEEP_SECS`] (7 days).

use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// How long an address's blocked calls are kept after its last one.
pub const KEEP_SECS: u64 = 7 * 24 * 3600;

/// One account's denied calls from one address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockedCall {
    pub address: IpAddr,
    pub calls: u64,
    /// Unix seconds.
    pub first_seen: u64,
    /// Unix seconds.
    pub last_seen: u64,
    /// The route of the last call.
    pub route: String,
}

impl BlockedCall {
    /// `self` with `other`'s calls added: the earliest first, the latest
    /// last and its route.
    pub fn merged(mut self, other: &BlockedCall) -> BlockedCall {
        self.calls = self.calls.saturating_add(other.calls);
        self.first_seen = self.first_seen.min(other.first_seen);
        if other.last_seen >= self.last_seen {
            self.last_seen = other.last_seen;
            self.route = other.route.clone();
        }
        self
    }
}

/// One proxy report's line: an account and its address's calls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockedReport {
    pub account: String,
    #[serde(flatten)]
    pub call: BlockedCall,
}

/// Sorts by calls (most first), then address, and keeps `limit`.
pub fn top(mut calls: Vec<BlockedCall>, limit: usize) -> Vec<BlockedCall> {
    calls.sort_by(|a, b| b.calls.cmp(&a.calls).then(a.address.cmp(&b.address)));
    calls.truncate(limit);
    calls
}
