//! The control plane's records and rules, free of I/O: the stored records
//! (`model`), the request's rules and states (`flow`), users, passwords
//! and TOTP (`users`), API tokens (`tokens`), and the typed values: an [`AccountId`] (only ever a
//! well-formed one), a [`Cidr`] (a network as the admin API normalises
//! it) and a [`Timestamp`] (a second, UTC). Each is stored and shown as the
//! very string it replaced, so the store's records and the APIs' JSON are
//! what they were before these types.

mod account_id;
mod cidr;
pub mod flow;
pub mod model;
mod timestamp;
pub mod tokens;
pub mod users;

pub use account_id::{AccountId, AccountIdError};
pub use cidr::Cidr;
pub use timestamp::{unix_seconds, unix_seconds_opt, Timestamp, TimestampError};
