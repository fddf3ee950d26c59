//! Accounts in PostgreSQL, with the claim of each account id in the
//! `ipgate_names` index (ids and identities are unique ignoring case).

use super::{doc, pg_error, read, Change, PgStore};
use crate::domain::model::Account;
use crate::seclog::{Actor, Event};
use crate::store::{events, AccountStore, StoreError, Touch};
use async_trait::async_trait;
use serde_json::json;

/// Who holds `folded` in the names index, described for a refusal.
pub(super) async fn name_owner(w: &Change<'_>, folded: &str) -> Result<Option<String>, StoreError> {
    let row =
        w.tx.query_opt(
            "SELECT account, identity FROM ipgate_names WHERE folded = $1",
            &[&folded],
        )
        .await
        .map_err(pg_error)?;
    let Some(row) = row else {
        return Ok(None);
    };
    let account: String = row.try_get(0).map_err(pg_error)?;
    let identity: Option<String> = row.try_get(1).map_err(pg_error)?;
    Ok(Some(match identity {
        None => format!("the id of account `{account}`"),
        Some(_) => format!("an identity of account `{account}`"),
    }))
}

/// The account `id` inside a change, locked for it.
pub(super) async fn locked_account(
    w: &Change<'_>,
    id: &str,
) -> Result<Option<Account>, StoreError> {
    let row =
        w.tx.query_opt(
            "SELECT doc FROM ipgate_accounts WHERE id = $1 FOR UPDATE",
            &[&id],
        )
        .await
        .map_err(pg_error)?;
    row.map(|r| read(&r, 0)).transpose()
}

#[async_trait]
impl AccountStore for PgStore {
    async fn account(&self, id: &str) -> Result<Option<Account>, StoreError> {
        let c = self.client().await?;
        let row = c
            .query_opt("SELECT doc FROM ipgate_accounts WHERE id = $1", &[&id])
            .await
            .map_err(pg_error)?;
        row.map(|r| read(&r, 0)).transpose()
    }

    async fn accounts(&self) -> Result<Vec<Account>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT doc FROM ipgate_accounts ORDER BY id COLLATE \"C\"",
                &[],
            )
            .await
            .map_err(pg_error)?;
        rows.iter().map(|r| read(r, 0)).collect()
    }

    async fn create_account(&self, account: Account, actor: &Actor) -> Result<Account, StoreError> {
        let id = account.id.as_str();
        let event = Event {
            event: "account.created",
            account: Some(id),
            details: json!({"name": account.name, "emails": account.emails, "whitelist": account.whitelist}),
        };
        self.retrying(|| async {
            let mut c = self.client().await?;
            let mut w = self.begin(&mut c).await?;
            if locked_account(&w, id).await?.is_some() {
                return Err(StoreError::AccountExists(id.to_string()));
            }
            let folded = id.to_ascii_lowercase();
            if let Some(owner) = name_owner(&w, &folded).await? {
                return Err(StoreError::IdTaken {
                    id: id.to_string(),
                    owner,
                });
            }
            w.tx.execute(
                "INSERT INTO ipgate_names (folded, account, identity) VALUES ($1, $2, NULL)",
                &[&folded, &id],
            )
            .await
            .map_err(pg_error)?;
            w.tx.execute(
                "INSERT INTO ipgate_accounts (id, doc) VALUES ($1, $2)",
                &[&id, &doc(&account)],
            )
            .await
            .map_err(pg_error)?;
            w.log(actor, &event).await?;
            w.touch(Touch::Account(id.to_string()));
            w.commit().await
        })
        .await?;
        Ok(account)
    }

    async fn update_account(
        &self,
        id: &str,
        actor: &Actor,
        f: &(dyn Fn(Account) -> Account + Send + Sync),
    ) -> Result<Account, StoreError> {
        let updated = self
            .retrying(|| async {
                let mut c = self.client().await?;
                let mut w = self.begin(&mut c).await?;
                let Some(old) = locked_account(&w, id).await? else {
                    return Err(StoreError::NoAccount(id.to_string()));
                };
                let new = f(old.clone());
                w.tx.execute(
                    "UPDATE ipgate_accounts SET doc = $2 WHERE id = $1",
                    &[&id, &doc(&new)],
                )
                .await
                .map_err(pg_error)?;
                w.log(actor, &events::account_changed(id, &old, &new))
                    .await?;
                w.touch(Touch::Account(id.to_string()));
                w.commit().await?;
                Ok(new)
            })
            .await?;
        Ok(updated)
    }
}
