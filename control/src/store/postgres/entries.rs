//! Whitelist entries in PostgreSQL, and the table's view of every
//! account (its mode and networks).

use super::accounts::locked_account;
use super::{doc, parse_id, pg_error, read, Change, PgStore};
use crate::domain::model::{Account, WhitelistEntry, WhitelistMode};
use crate::domain::Cidr;
use crate::seclog::{Actor, Event};
use crate::store::{EntryStore, StoreError, Touch};
use async_trait::async_trait;
use futures_util::TryStreamExt;
use ipnet::IpNet;
use serde_json::json;

/// The networks on `account` now, inside a change.
pub(super) async fn networks_of(w: &Change<'_>, account: &str) -> Result<Vec<Cidr>, StoreError> {
    let rows =
        w.tx.query(
            "SELECT cidr FROM ipgate_entries WHERE account = $1",
            &[&account],
        )
        .await
        .map_err(pg_error)?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let text: String = r.try_get(0).map_err(pg_error)?;
        out.push(
            Cidr::parse(&text)
                .map_err(|e| StoreError::Corrupt(format!("entry network {text}: {e}")))?,
        );
    }
    Ok(out)
}

/// Inserts `e` (its id already given) on `account` inside a change.
pub(super) async fn insert_entry(
    w: &Change<'_>,
    account: &str,
    e: &WhitelistEntry,
) -> Result<(), StoreError> {
    let id = parse_id(&e.id).ok_or_else(|| StoreError::Corrupt(format!("entry id {}", e.id)))?;
    w.tx.execute(
        "INSERT INTO ipgate_entries (id, account, cidr, doc) VALUES ($1, $2, $3, $4)",
        &[&id, &account, &e.cidr.to_string(), &doc(e)],
    )
    .await
    .map_err(pg_error)?;
    Ok(())
}

#[async_trait]
impl EntryStore for PgStore {
    async fn entries(&self, account: &str) -> Result<Vec<WhitelistEntry>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT doc FROM ipgate_entries WHERE account = $1 ORDER BY id",
                &[&account],
            )
            .await
            .map_err(pg_error)?;
        rows.iter().map(|r| read(r, 0)).collect()
    }

    async fn add_entries(
        &self,
        account: &str,
        new: Vec<WhitelistEntry>,
        actor: &Actor,
    ) -> Result<Vec<WhitelistEntry>, StoreError> {
        let added = self
            .retrying(|| async {
                let mut c = self.client().await?;
                let mut w = self.begin(&mut c).await?;
                if locked_account(&w, account).await?.is_none() {
                    return Err(StoreError::NoAccount(account.to_string()));
                }
                let existing = networks_of(&w, account).await?;
                let mut added = Vec::with_capacity(new.len());
                for e in &new {
                    if existing.contains(&e.cidr) {
                        return Err(StoreError::Duplicate(e.cidr.to_string()));
                    }
                    let mut e = e.clone();
                    e.id = PgStore::next_id(&w).await?.to_string();
                    insert_entry(&w, account, &e).await?;
                    let event = Event {
                        event: "whitelist.added",
                        account: Some(account),
                        details: json!({"entry": e.id, "cidr": e.cidr, "remark": e.remark, "source": e.source}),
                    };
                    w.log(actor, &event).await?;
                    added.push(e);
                }
                w.touch(Touch::Account(account.to_string()));
                w.commit().await?;
                Ok(added)
            })
            .await?;
        Ok(added)
    }

    async fn remove_entry(
        &self,
        account: &str,
        id: &str,
        actor: &Actor,
    ) -> Result<WhitelistEntry, StoreError> {
        let n = parse_id(id).ok_or_else(|| StoreError::NoEntry(id.to_string()))?;
        let removed = self
            .retrying(|| async {
                let mut c = self.client().await?;
                let mut w = self.begin(&mut c).await?;
                let row =
                    w.tx.query_opt(
                        "DELETE FROM ipgate_entries WHERE account = $1 AND id = $2 RETURNING doc",
                        &[&account, &n],
                    )
                    .await
                    .map_err(pg_error)?
                    .ok_or_else(|| StoreError::NoEntry(id.to_string()))?;
                let e: WhitelistEntry = read(&row, 0)?;
                let event = Event {
                    event: "whitelist.removed",
                    account: Some(account),
                    details: json!({"entry": e.id, "cidr": e.cidr}),
                };
                w.log(actor, &event).await?;
                w.touch(Touch::Account(account.to_string()));
                w.commit().await?;
                Ok(e)
            })
            .await?;
        Ok(removed)
    }

    /// Every account in id order (bytewise, as the sled store keeps them)
    /// with its networks: the accounts read whole, the entries streamed
    /// in the same order and merged in.
    async fn for_each_account_policy(
        &self,
        f: &mut (dyn for<'a, 'b> FnMut(&'a str, WhitelistMode, &'b [IpNet]) + Send),
    ) -> Result<(), StoreError> {
        let mut c = self.client().await?;
        let tx = c
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(pg_error)?;
        let accounts = tx
            .query(
                "SELECT doc FROM ipgate_accounts ORDER BY id COLLATE \"C\"",
                &[],
            )
            .await
            .map_err(pg_error)?;
        let no_params: [&(dyn tokio_postgres::types::ToSql + Sync); 0] = [];
        let entries = tx
            .query_raw(
                "SELECT account, cidr FROM ipgate_entries ORDER BY account COLLATE \"C\"",
                no_params,
            )
            .await
            .map_err(pg_error)?;
        let mut entries = std::pin::pin!(entries);
        let mut pending: Option<(String, String)> = None;
        // A row stream is not polled again once it has ended.
        let mut ended = false;
        let mut nets = Vec::new();
        for row in &accounts {
            let a: Account = read(row, 0)?;
            let id = a.id.as_str();
            nets.clear();
            loop {
                if pending.is_none() && !ended {
                    pending = match entries.try_next().await.map_err(pg_error)? {
                        Some(r) => Some((
                            r.try_get(0).map_err(pg_error)?,
                            r.try_get(1).map_err(pg_error)?,
                        )),
                        None => {
                            ended = true;
                            None
                        }
                    };
                }
                match &pending {
                    // An entry of an account that is gone: never served.
                    Some((acct, _)) if acct.as_str() < id => pending = None,
                    Some((acct, cidr)) if acct == id => {
                        match Cidr::parse(cidr) {
                            Ok(c) => nets.push(c.net()),
                            Err(e) => {
                                tracing::error!(account = %acct, cidr = %cidr, error = %e, "skipping an unreadable stored network")
                            }
                        }
                        pending = None;
                    }
                    _ => break,
                }
            }
            f(id, a.whitelist, &nets);
        }
        tx.commit().await.map_err(pg_error)?;
        Ok(())
    }
}
