//! What keeps a client from flooding the control plane: rate limits per
//! client and network, login backoff, and the bounded tallies of refused
//! logins that reach the security log.

pub mod backoff;
pub mod bounded;
pub mod login_limit;
pub mod ratelimit;
pub mod refusals;
