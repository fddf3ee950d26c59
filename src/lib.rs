//! The ipgate server as a library: [`app::App`] assembles the proxy and the
//! control plane from a config; the binary (`src/main.rs`) parses the
//! command line, reads secrets and runs it.

#![forbid(unsafe_code)]

pub mod app;
mod blocked_sink;
mod hand_over;
mod hangup;
mod huge_pages;
mod listener;
mod stop_signal;
mod upgrade_sock;
