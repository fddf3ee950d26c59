//! Mail: what each message says (`compose`) and the sender that delivers
//! the durable outbox over SMTP with retries (`sender`).

pub mod compose;
pub mod disowned;
pub mod reminder;
pub mod sender;
