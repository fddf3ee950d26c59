//! ipgate's policy: the live whitelist table (lock-free reads, atomic
//! versioned publishes), IP ranges, client-IP and account resolution, and
//! the pure decision. Knows nothing of Pingora or HTTP servers: the proxy
//! (`ipgate-proxy`) judges requests with it, and the control plane
//! (`ipgate-control`) validates and publishes into it.

#![forbid(unsafe_code)]

pub mod account;
pub mod client_ip;
pub mod decision;
pub mod head;
pub mod ranges;
pub mod snapshot;
pub mod table;

pub use decision::{decide, Decision, Policy};
pub use snapshot::{Snapshot, SnapshotError};
pub use table::{AccountPolicy, AccountView, Ending, LiveTable, Mode, Refusal, Table};
