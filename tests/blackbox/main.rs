//! ipgate's black-box tests: each module starts the real `ipgate` binary
//! (and real upstreams, SMTP catcher, browser where it needs one) and
//! checks what a user or operator would. One test binary, so the whole
//! stack is linked once; run one module with `cargo test --test blackbox
//! crash::` (docs/testing.md).

// A test may unwrap: a panic is how it fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

mod admin;
mod api_tokens;
mod blocked_calls;
mod browser;
mod config_check;
mod connections;
mod crash;
mod customer_api;
mod customer_log;
mod demo;
mod deploy;
mod disown;
mod expiry;
mod faults;
mod fleet;
mod flow;
mod hostile;
mod identities;
mod identities_cli;
mod identity;
mod mails;
mod ops;
mod portal;
mod postgres;
mod proxy;
mod quorum;
mod raw_path;
mod security_log;
mod soak;
mod sync_feed;
mod tls_resume;
mod upgrade;
mod users;
