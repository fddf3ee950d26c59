//! ipgate's enforcing proxy: the Pingora service and the raw HTTP/1 path,
//! which gather a request's inputs (head, route, path), judge them with
//! `ipgate-policy` (the live whitelist table, client-IP and account
//! resolution, the pure decision) and act on the answer, plus its metrics.

#![forbid(unsafe_code)]

pub mod conn_limit;
pub mod drain;
pub mod forwarding;
pub mod h1;
pub mod handoff;
pub mod head_check;
pub mod head_deadline;
pub mod head_end;
pub mod introspect;
pub mod metrics;
pub mod path;
pub mod pingora_head;
pub mod respond;
pub mod routes;
pub mod service;
pub mod tls;
