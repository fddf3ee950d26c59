//! ipgate's enforcing proxy: the live whitelist table (lock-free reads,
//! atomic versioned publishes), client-IP and account resolution, the pure
//! decision, and the Pingora service that acts on it, plus its metrics.

#![forbid(unsafe_code)]

pub mod account;
pub mod client_ip;
pub mod conn_limit;
pub mod decision;
pub mod drain;
pub mod h1;
pub mod handoff;
pub mod head;
pub mod head_check;
pub mod head_deadline;
pub mod head_end;
pub mod introspect;
pub mod metrics;
pub mod path;
pub mod ranges;
pub mod respond;
pub mod routes;
pub mod service;
pub mod table;
pub mod tls;

pub use decision::{decide, Decision, Policy};
pub use table::{AccountPolicy, AccountView, LiveTable, Mode, Table};
