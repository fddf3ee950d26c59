//! Portal sessions and logins. A session is kept under the SHA-256 of its
//! id (the cookie value never reaches the disk); a login is one
//! transaction: the TOTP step is consumed (so a code works once, even for
//! two logins racing), the session stored and the security log written.

use super::{abort, decode, encode, flatten, SledStore, StoreError};
use crate::domain::users::User;
use crate::domain::{unix_seconds, AccountId, Timestamp};
use crate::seclog::{self, Actor, Event};
use crate::store::SessionStore;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sled::transaction::{Transactional, TransactionalTree};

/// A logged-in user's session. Its times are stored as Unix seconds
/// (`created_unix`, `expires_unix`), as they always were.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    pub username: String,
    pub account: AccountId,
    /// The CSRF value every form of this session carries.
    pub csrf: String,
    #[serde(rename = "created_unix", with = "unix_seconds")]
    pub created_at: Timestamp,
    #[serde(rename = "expires_unix", with = "unix_seconds")]
    pub expires_at: Timestamp,
    /// Logged in with a TOTP code. A session without one stops working
    /// once the user has 2FA (enrolled after that login).
    #[serde(default)]
    pub two_factor: bool,
}

#[async_trait]
impl SessionStore for SledStore {
    /// Logs `user` in: consumes the TOTP `step` (if the user has 2FA),
    /// stores the session under `session_hash`, and logs it.
    async fn login(
        &self,
        user: &User,
        step: Option<u64>,
        session_hash: &str,
        session: &Session,
        actor: &Actor,
    ) -> Result<(), StoreError> {
        flatten((&self.users, &self.sessions, &self.seclog).transaction(
            |(users, sessions, log): &(TransactionalTree, TransactionalTree, TransactionalTree)| {
                let Some(raw) = users.get(user.username.as_bytes())? else {
                    return abort(StoreError::NoUser(user.username.clone()));
                };
                let mut current: User = decode(&raw).or_else(abort)?;
                if let Some(step) = step {
                    if current.totp_last_step.is_some_and(|last| step <= last) {
                        return abort(StoreError::CodeUsed);
                    }
                    current.totp_last_step = Some(step);
                    users.insert(user.username.as_bytes(), encode(&current))?;
                }
                sessions.insert(session_hash.as_bytes(), encode(session))?;
                let e = Event {
                    event: "login.succeeded",
                    account: Some(user.account.as_str()),
                    details: json!({"username": user.username, "two_factor": step.is_some()}),
                };
                seclog::append(log, &self.log_key, actor, &e)?;
                Ok(())
            },
        ))?;
        self.flush().await
    }

    /// The live session stored under `hash`, if any.
    async fn session(&self, hash: &str) -> Result<Option<Session>, StoreError> {
        match self.sessions.get(hash.as_bytes())? {
            Some(raw) => {
                let s: Session = decode(&raw)?;
                Ok((s.expires_at > Timestamp::now()).then_some(s))
            }
            None => Ok(None),
        }
    }

    /// Ends a session (logout), logged.
    async fn end_session(&self, hash: &str, actor: &Actor) -> Result<(), StoreError> {
        flatten((&self.sessions, &self.seclog).transaction(
            |(sessions, log): &(TransactionalTree, TransactionalTree)| {
                if let Some(raw) = sessions.remove(hash.as_bytes())? {
                    let s: Session = decode(&raw).or_else(abort)?;
                    let e = Event {
                        event: "logout",
                        account: Some(s.account.as_str()),
                        details: json!({"username": s.username}),
                    };
                    seclog::append(log, &self.log_key, actor, &e)?;
                }
                Ok(())
            },
        ))?;
        self.flush().await
    }

    /// Drops expired sessions; returns how many.
    async fn sweep_sessions(&self) -> Result<usize, StoreError> {
        let now = Timestamp::now();
        let mut n = 0;
        for item in self.sessions.iter() {
            let (k, v) = item?;
            let expired = decode::<Session>(&v).map_or(true, |s| s.expires_at <= now);
            if expired {
                self.sessions.remove(k)?;
                n += 1;
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A session as the code before `Timestamp` wrote it reads as it was,
    /// and is written back in the same shape.
    #[test]
    fn a_stored_session_keeps_its_shape() {
        let stored = r#"{"username":"alice","account":"acme","csrf":"c5rf","created_unix":1767225600,"expires_unix":1767254400,"two_factor":true}"#;
        let s: Session = serde_json::from_str(stored).unwrap();
        assert_eq!(s.account, "acme");
        assert_eq!(s.created_at.to_string(), "2026-01-01T00:00:00Z");
        assert_eq!(s.expires_at.to_string(), "2026-01-01T08:00:00Z");
        assert_eq!(serde_json::to_string(&s).unwrap(), stored);
        // From before `two_factor`.
        let older = r#"{"username":"alice","account":"acme","csrf":"c5rf","created_unix":1,"expires_unix":2}"#;
        let s: Session = serde_json::from_str(older).unwrap();
        assert!(!s.two_factor);
        assert_eq!(s.expires_at, Timestamp::from_unix(2));
    }
}
