//! Portal users in PostgreSQL (their API tokens: `tokens.rs`).

use super::accounts::locked_account;
use super::{doc, pg_error, read, Change, PgStore};
use crate::domain::users::User;
use crate::seclog::{Actor, Event};
use crate::store::{StoreError, UserStore};
use async_trait::async_trait;
use serde_json::json;

/// The user `username` inside a change, locked for it.
pub(super) async fn locked_user(
    w: &Change<'_>,
    username: &str,
) -> Result<Option<User>, StoreError> {
    let row =
        w.tx.query_opt(
            "SELECT doc FROM ipgate_users WHERE username = $1 FOR UPDATE",
            &[&username],
        )
        .await
        .map_err(pg_error)?;
    row.map(|r| read(&r, 0)).transpose()
}

#[async_trait]
impl UserStore for PgStore {
    async fn user(&self, username: &str) -> Result<Option<User>, StoreError> {
        let c = self.client().await?;
        let row = c
            .query_opt(
                "SELECT doc FROM ipgate_users WHERE username = $1",
                &[&username],
            )
            .await
            .map_err(pg_error)?;
        row.map(|r| read(&r, 0)).transpose()
    }

    /// Adds a user to an existing account.
    async fn create_user(&self, user: User, actor: &Actor) -> Result<User, StoreError> {
        let account = user.account.as_str();
        let event = Event {
            event: "user.created",
            account: Some(account),
            details: json!({"username": user.username, "role": user.role}),
        };
        self.retrying(|| async {
            let mut c = self.client().await?;
            let mut w = self.begin(&mut c).await?;
            if locked_account(&w, account).await?.is_none() {
                return Err(StoreError::NoAccount(account.to_string()));
            }
            if locked_user(&w, &user.username).await?.is_some() {
                return Err(StoreError::UserExists(user.username.clone()));
            }
            w.tx.execute(
                "INSERT INTO ipgate_users (username, doc) VALUES ($1, $2)",
                &[&user.username, &doc(&user)],
            )
            .await
            .map_err(pg_error)?;
            w.log(actor, &event).await?;
            w.commit().await
        })
        .await?;
        Ok(user)
    }

    /// Changes a user with `f`, logging `event` (no secrets in `details`).
    async fn update_user(
        &self,
        username: &str,
        actor: &Actor,
        event: &str,
        details: serde_json::Value,
        f: &(dyn Fn(User) -> User + Send + Sync),
    ) -> Result<User, StoreError> {
        self.retrying(|| async {
            let mut c = self.client().await?;
            let mut w = self.begin(&mut c).await?;
            let Some(old) = locked_user(&w, username).await? else {
                return Err(StoreError::NoUser(username.to_string()));
            };
            let new = f(old);
            w.tx.execute(
                "UPDATE ipgate_users SET doc = $2 WHERE username = $1",
                &[&username, &doc(&new)],
            )
            .await
            .map_err(pg_error)?;
            let e = Event {
                event,
                account: Some(new.account.as_str()),
                details: details.clone(),
            };
            w.log(actor, &e).await?;
            w.commit().await?;
            Ok(new)
        })
        .await
    }
}
