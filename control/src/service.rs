//! Use cases that several front doors share, each one function that takes
//! every step of its change (store, publish, metrics, mail, log). Nothing
//! here knows about routes, extractors or pages (`http`).

pub mod disown;
pub mod entry_ends;
pub mod publish;
pub mod requests;
