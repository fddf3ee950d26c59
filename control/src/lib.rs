//! ipgate's control plane: the sled store, the admin API, and publishing
//! every change into the live proxy table before the change is answered.

#![forbid(unsafe_code)]

pub mod admin;
pub mod app;
pub mod backoff;
pub mod bounded;
pub mod csrf;
pub mod domain;
pub mod flow;
pub mod hex;
pub mod html;
pub mod http;
pub mod jobs;
pub mod login_limit;
pub mod mail;
pub mod mailer;
pub mod metrics;
pub mod model;
pub mod openapi;
pub mod publish;
pub mod ratelimit;
pub mod refusals;
pub mod seclog;
pub mod service;
pub mod store;
pub mod sync;
pub mod tokens;
pub mod users;
