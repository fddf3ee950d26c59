//! Portal users (their API tokens: `tokens.rs`).

use super::{abort, decode, encode, flatten, SledStore, StoreError};
use crate::domain::users::User;
use crate::seclog::{self, Actor, Event};
use crate::store::UserStore;
use async_trait::async_trait;
use serde_json::json;
use sled::transaction::{Transactional, TransactionalTree};

#[async_trait]
impl UserStore for SledStore {
    async fn user(&self, username: &str) -> Result<Option<User>, StoreError> {
        self.users.get(username)?.map(|v| decode(&v)).transpose()
    }

    /// Adds a user to an existing account.
    async fn create_user(&self, user: User, actor: &Actor) -> Result<User, StoreError> {
        let value = encode(&user);
        let event = Event {
            event: "user.created",
            account: Some(user.account.as_str()),
            details: json!({"username": user.username, "role": user.role}),
        };
        flatten((&self.accounts, &self.users, &self.seclog).transaction(
            |(accounts, users, log): &(TransactionalTree, TransactionalTree, TransactionalTree)| {
                if accounts.get(user.account.as_bytes())?.is_none() {
                    return abort(StoreError::NoAccount(user.account.to_string()));
                }
                if users.get(user.username.as_bytes())?.is_some() {
                    return abort(StoreError::UserExists(user.username.clone()));
                }
                users.insert(user.username.as_bytes(), value.as_slice())?;
                seclog::append(log, &self.log_key, actor, &event)?;
                Ok(())
            },
        ))?;
        self.flush().await?;
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
        let updated = flatten((&self.users, &self.seclog).transaction(
            |(users, log): &(TransactionalTree, TransactionalTree)| {
                let Some(old) = users.get(username.as_bytes())? else {
                    return abort(StoreError::NoUser(username.to_string()));
                };
                let new = f(decode(&old).or_else(abort)?);
                users.insert(username.as_bytes(), encode(&new))?;
                let e = Event {
                    event,
                    account: Some(new.account.as_str()),
                    details: details.clone(),
                };
                seclog::append(log, &self.log_key, actor, &e)?;
                Ok(new)
            },
        ))?;
        self.flush().await?;
        Ok(updated)
    }
}
