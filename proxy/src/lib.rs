//! ipgate's enforcing proxy. [`gate`] is the one judge (client IP, path,
//! route, account, decision with `ipgate-policy`) and what both HTTP/1
//! paths share; [`raw_path`] serves plain HTTP/1 requests itself and hands
//! anything else to [`pingora_path`], Pingora's proxy. Around them: the
//! connection cap, the head deadline, the graceful stop, TLS and metrics.

#![forbid(unsafe_code)]

pub mod assemble;
pub mod blocked;
pub mod blocked_report;
pub mod conn_limit;
pub mod drain;
pub mod expiry;
pub mod follow;
pub mod gate;
pub mod head_deadline;
pub mod head_end;
pub mod metrics;
pub mod pingora_path;
pub mod raw_path;
pub mod tls;
