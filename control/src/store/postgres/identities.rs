//! Account identities and secret keys in PostgreSQL. An identity is a
//! name the upstream knows an account by; a key is kept only as its
//! SHA-256. `ipgate_identities` and `ipgate_keys` hold the records;
//! every identity value is claimed in `ipgate_names` beside the account
//! ids (folded to lower case, so "is this name free?" is one lookup inside
//! the change), and a key's hash is unique in `ipgate_keys.sha256`. Every
//! change is one transaction with its security-log record.

use super::accounts::{locked_account, name_owner};
use super::{doc, parse_id, pg_error, read, PgStore};
use crate::domain::model::{Identity, SecretKey};
use crate::seclog::{Actor, Event};
use crate::store::{parse_sha256, IdentityStore, StoreError, Touch};
use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde_json::json;

/// A fresh record id as the tables key it.
fn stored_id(n: u64) -> Result<i64, StoreError> {
    i64::try_from(n).map_err(|_| StoreError::Corrupt(format!("record id {n}")))
}

impl PgStore {
    /// The records of `table` (`ipgate_identities` or `ipgate_keys`), of
    /// one account or of all, in the sled store's order: by account
    /// (bytewise), then oldest first.
    async fn records<T: DeserializeOwned>(
        &self,
        table: &str,
        account: Option<&str>,
    ) -> Result<Vec<T>, StoreError> {
        let c = self.client().await?;
        let rows = match account {
            Some(a) => {
                c.query(
                    &format!("SELECT doc FROM {table} WHERE account = $1 ORDER BY id"),
                    &[&a],
                )
                .await
            }
            None => {
                c.query(
                    &format!("SELECT doc FROM {table} ORDER BY account COLLATE \"C\", id"),
                    &[],
                )
                .await
            }
        }
        .map_err(pg_error)?;
        rows.iter().map(|r| read(r, 0)).collect()
    }

    /// Record `id` (decimal text) of `account` in `table`; none for an id
    /// that cannot be a stored one.
    async fn record<T: DeserializeOwned>(
        &self,
        table: &str,
        account: &str,
        id: &str,
    ) -> Result<Option<T>, StoreError> {
        let Some(n) = parse_id(id) else {
            return Ok(None);
        };
        let c = self.client().await?;
        let row = c
            .query_opt(
                &format!("SELECT doc FROM {table} WHERE account = $1 AND id = $2"),
                &[&account, &n],
            )
            .await
            .map_err(pg_error)?;
        row.map(|r| read(&r, 0)).transpose()
    }
}

#[async_trait]
impl IdentityStore for PgStore {
    /// An account's identities, oldest first.
    async fn identities(&self, account: &str) -> Result<Vec<Identity>, StoreError> {
        self.records("ipgate_identities", Some(account)).await
    }

    /// Every identity of every account.
    async fn all_identities(&self) -> Result<Vec<Identity>, StoreError> {
        self.records("ipgate_identities", None).await
    }

    async fn identity(&self, account: &str, id: &str) -> Result<Option<Identity>, StoreError> {
        self.record("ipgate_identities", account, id).await
    }

    /// The account an identity value (case ignored) names, if it is an
    /// identity (not an account id).
    async fn identity_owner(&self, value: &str) -> Result<Option<String>, StoreError> {
        let c = self.client().await?;
        let row = c
            .query_opt(
                "SELECT account FROM ipgate_names WHERE folded = $1 AND identity IS NOT NULL",
                &[&value.to_ascii_lowercase()],
            )
            .await
            .map_err(pg_error)?;
        row.map(|r| r.try_get(0).map_err(pg_error)).transpose()
    }

    /// An account's secret keys (hashes), oldest first.
    async fn keys(&self, account: &str) -> Result<Vec<SecretKey>, StoreError> {
        self.records("ipgate_keys", Some(account)).await
    }

    /// Every secret key (hash) of every account.
    async fn all_keys(&self) -> Result<Vec<SecretKey>, StoreError> {
        self.records("ipgate_keys", None).await
    }

    async fn key(&self, account: &str, id: &str) -> Result<Option<SecretKey>, StoreError> {
        self.record("ipgate_keys", account, id).await
    }

    /// The account whose key hashes to `sha256`.
    async fn key_owner(&self, sha256: &[u8; 32]) -> Result<Option<String>, StoreError> {
        let c = self.client().await?;
        let row = c
            .query_opt(
                "SELECT account FROM ipgate_keys WHERE sha256 = $1",
                &[&&sha256[..]],
            )
            .await
            .map_err(pg_error)?;
        row.map(|r| r.try_get(0).map_err(pg_error)).transpose()
    }

    /// Gives `identity.value` to `identity.account`; refuses a value any
    /// account id or identity already holds (case ignored).
    async fn add_identity(
        &self,
        identity: Identity,
        actor: &Actor,
    ) -> Result<Identity, StoreError> {
        let account = identity.account.as_str();
        let name = identity.value.to_ascii_lowercase();
        let added = self
            .retrying(|| async {
                let mut c = self.client().await?;
                let mut w = self.begin(&mut c).await?;
                let n = PgStore::next_id(&w).await?;
                let mut identity = identity.clone();
                identity.id = n.to_string();
                if locked_account(&w, account).await?.is_none() {
                    return Err(StoreError::NoAccount(account.to_string()));
                }
                if let Some(owner) = name_owner(&w, &name).await? {
                    return Err(StoreError::NameTaken {
                        value: identity.value.clone(),
                        owner,
                    });
                }
                w.tx.execute(
                    "INSERT INTO ipgate_identities (account, id, doc) VALUES ($1, $2, $3)",
                    &[&account, &stored_id(n)?, &doc(&identity)],
                )
                .await
                .map_err(pg_error)?;
                w.tx.execute(
                    "INSERT INTO ipgate_names (folded, account, identity) VALUES ($1, $2, $3)",
                    &[&name, &account, &identity.id],
                )
                .await
                .map_err(pg_error)?;
                let event = Event {
                    event: "identity.added",
                    account: Some(account),
                    details: json!({"identity": identity.id, "value": identity.value, "remark": identity.remark}),
                };
                w.log(actor, &event).await?;
                w.touch(Touch::Name(identity.value.clone()));
                w.commit().await?;
                Ok(identity)
            })
            .await?;
        Ok(added)
    }

    async fn remove_identity(
        &self,
        account: &str,
        id: &str,
        actor: &Actor,
    ) -> Result<Identity, StoreError> {
        let n = parse_id(id).ok_or_else(|| StoreError::NoIdentity(id.into()))?;
        let removed = self
            .retrying(|| async {
                let mut c = self.client().await?;
                let mut w = self.begin(&mut c).await?;
                let row =
                    w.tx.query_opt(
                        "DELETE FROM ipgate_identities WHERE account = $1 AND id = $2 RETURNING doc",
                        &[&account, &n],
                    )
                    .await
                    .map_err(pg_error)?
                    .ok_or_else(|| StoreError::NoIdentity(id.to_string()))?;
                let i: Identity = read(&row, 0)?;
                // The claim goes only if this identity holds it.
                w.tx.execute(
                    "DELETE FROM ipgate_names WHERE folded = $1 AND identity = $2",
                    &[&i.value.to_ascii_lowercase(), &i.id],
                )
                .await
                .map_err(pg_error)?;
                let event = Event {
                    event: "identity.removed",
                    account: Some(account),
                    details: json!({"identity": i.id, "value": i.value}),
                };
                w.log(actor, &event).await?;
                w.touch(Touch::Name(i.value.clone()));
                w.commit().await?;
                Ok(i)
            })
            .await?;
        Ok(removed)
    }

    /// Registers a key's hash for `key.account`; refuses a hash already
    /// registered to any account.
    async fn add_key(
        &self,
        key: SecretKey,
        hash: [u8; 32],
        actor: &Actor,
    ) -> Result<SecretKey, StoreError> {
        let account = key.account.as_str();
        let added = self
            .retrying(|| async {
                let mut c = self.client().await?;
                let mut w = self.begin(&mut c).await?;
                let n = PgStore::next_id(&w).await?;
                let mut key = key.clone();
                key.id = n.to_string();
                if locked_account(&w, account).await?.is_none() {
                    return Err(StoreError::NoAccount(account.to_string()));
                }
                let held =
                    w.tx.query_opt(
                        "SELECT account FROM ipgate_keys WHERE sha256 = $1",
                        &[&&hash[..]],
                    )
                    .await
                    .map_err(pg_error)?;
                if let Some(row) = held {
                    return Err(StoreError::KeyTaken {
                        fingerprint: key.fingerprint.clone(),
                        account: row.try_get(0).map_err(pg_error)?,
                    });
                }
                w.tx.execute(
                    "INSERT INTO ipgate_keys (account, id, sha256, doc) VALUES ($1, $2, $3, $4)",
                    &[&account, &stored_id(n)?, &&hash[..], &doc(&key)],
                )
                .await
                .map_err(pg_error)?;
                let event = Event {
                    event: "key.added",
                    account: Some(account),
                    details: json!({"key_id": key.id, "fingerprint": key.fingerprint, "remark": key.remark}),
                };
                w.log(actor, &event).await?;
                w.touch(Touch::Key(hash));
                w.commit().await?;
                Ok(key)
            })
            .await?;
        Ok(added)
    }

    async fn remove_key(
        &self,
        account: &str,
        id: &str,
        actor: &Actor,
    ) -> Result<SecretKey, StoreError> {
        let n = parse_id(id).ok_or_else(|| StoreError::NoKey(id.into()))?;
        let removed = self
            .retrying(|| async {
                let mut c = self.client().await?;
                let mut w = self.begin(&mut c).await?;
                let row =
                    w.tx.query_opt(
                        "DELETE FROM ipgate_keys WHERE account = $1 AND id = $2 RETURNING doc",
                        &[&account, &n],
                    )
                    .await
                    .map_err(pg_error)?
                    .ok_or_else(|| StoreError::NoKey(id.to_string()))?;
                let k: SecretKey = read(&row, 0)?;
                let Some(hash) = parse_sha256(&k.sha256) else {
                    return Err(StoreError::Corrupt(format!("key {id}'s hash")));
                };
                let event = Event {
                    event: "key.removed",
                    account: Some(account),
                    details: json!({"key_id": k.id, "fingerprint": k.fingerprint}),
                };
                w.log(actor, &event).await?;
                w.touch(Touch::Key(hash));
                w.commit().await?;
                Ok(k)
            })
            .await?;
        Ok(removed)
    }
}
