//! Portal sessions and logins in PostgreSQL. A session is kept under the
//! SHA-256 of its id (the cookie value never reaches the database), with
//! its expiry beside it for the sweep. A login is one change: the user's
//! row is locked, the TOTP step consumed (so a code works once, even for
//! two logins racing on two processes), the session stored and the
//! security log written.

use super::users::locked_user;
use super::{doc, pg_error, read, PgStore};
use crate::domain::users::User;
use crate::domain::Timestamp;
use crate::seclog::{Actor, Event};
use crate::store::{Session, SessionStore, StoreError};
use async_trait::async_trait;
use serde_json::json;

/// A time as the `expires_unix` column holds it.
fn unix(t: Timestamp) -> i64 {
    i64::try_from(t.unix()).unwrap_or(i64::MAX)
}

#[async_trait]
impl SessionStore for PgStore {
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
        let e = Event {
            event: "login.succeeded",
            account: Some(user.account.as_str()),
            details: json!({"username": user.username, "two_factor": step.is_some()}),
        };
        self.retrying(|| async {
            let mut c = self.client().await?;
            let mut w = self.begin(&mut c).await?;
            let Some(mut current) = locked_user(&w, &user.username).await? else {
                return Err(StoreError::NoUser(user.username.clone()));
            };
            if let Some(step) = step {
                if current.totp_last_step.is_some_and(|last| step <= last) {
                    return Err(StoreError::CodeUsed);
                }
                current.totp_last_step = Some(step);
                w.tx.execute(
                    "UPDATE ipgate_users SET doc = $2 WHERE username = $1",
                    &[&user.username, &doc(&current)],
                )
                .await
                .map_err(pg_error)?;
            }
            w.tx.execute(
                "INSERT INTO ipgate_sessions (hash, expires_unix, doc) VALUES ($1, $2, $3)
                 ON CONFLICT (hash) DO UPDATE SET expires_unix = EXCLUDED.expires_unix, doc = EXCLUDED.doc",
                &[&session_hash, &unix(session.expires_at), &doc(session)],
            )
            .await
            .map_err(pg_error)?;
            w.log(actor, &e).await?;
            w.commit().await
        })
        .await
    }

    /// The live session stored under `hash`, if any.
    async fn session(&self, hash: &str) -> Result<Option<Session>, StoreError> {
        let c = self.client().await?;
        let row = c
            .query_opt("SELECT doc FROM ipgate_sessions WHERE hash = $1", &[&hash])
            .await
            .map_err(pg_error)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let s: Session = read(&row, 0)?;
        Ok((s.expires_at > Timestamp::now()).then_some(s))
    }

    /// Ends a session (logout), logged.
    async fn end_session(&self, hash: &str, actor: &Actor) -> Result<(), StoreError> {
        self.retrying(|| async {
            let mut c = self.client().await?;
            let mut w = self.begin(&mut c).await?;
            let row =
                w.tx.query_opt(
                    "DELETE FROM ipgate_sessions WHERE hash = $1 RETURNING doc",
                    &[&hash],
                )
                .await
                .map_err(pg_error)?;
            if let Some(row) = row {
                let s: Session = read(&row, 0)?;
                let e = Event {
                    event: "logout",
                    account: Some(s.account.as_str()),
                    details: json!({"username": s.username}),
                };
                w.log(actor, &e).await?;
            }
            w.commit().await
        })
        .await
    }

    /// Drops expired sessions (unlogged, as on sled); returns how many.
    async fn sweep_sessions(&self) -> Result<usize, StoreError> {
        let now = unix(Timestamp::now());
        self.retrying(|| async {
            let c = self.client().await?;
            let n = c
                .execute(
                    "DELETE FROM ipgate_sessions WHERE expires_unix <= $1",
                    &[&now],
                )
                .await
                .map_err(pg_error)?;
            Ok(usize::try_from(n).unwrap_or(usize::MAX))
        })
        .await
    }
}
