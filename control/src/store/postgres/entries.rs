//! Whitelist entries in PostgreSQL, and the table's view of every
//! account (its mode and networks).

use super::accounts::locked_account;
use super::outbox::enqueue_job;
use super::{doc, parse_id, pg_error, read, Change, PgStore};
use crate::domain::model::{Account, WhitelistEntry};
use crate::domain::{Cidr, Timestamp};
use crate::seclog::{Actor, Event};
use crate::store::{events, AccountNets, EntryStore, MailJob, StoreError, Touch};
use async_trait::async_trait;
use futures_util::TryStreamExt;
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

/// When `e` ends, as the `expires_unix` column holds it.
pub(super) fn expires_unix(e: &WhitelistEntry) -> Option<i64> {
    e.expires_at
        .map(|t| i64::try_from(t.unix()).unwrap_or(i64::MAX))
}

/// Inserts `e` (its id already given) on `account` inside a change.
pub(super) async fn insert_entry(
    w: &Change<'_>,
    account: &str,
    e: &WhitelistEntry,
) -> Result<(), StoreError> {
    let id = parse_id(&e.id).ok_or_else(|| StoreError::Corrupt(format!("entry id {}", e.id)))?;
    w.tx.execute(
        "INSERT INTO ipgate_entries (id, account, cidr, doc, expires_unix) VALUES ($1, $2, $3, $4, $5)",
        &[&id, &account, &e.cidr.to_string(), &doc(e), &expires_unix(e)],
    )
    .await
    .map_err(pg_error)?;
    Ok(())
}

#[async_trait]
impl EntryStore for PgStore {
    async fn entries_ending_by(&self, until: Timestamp) -> Result<Vec<WhitelistEntry>, StoreError> {
        let until = i64::try_from(until.unix()).unwrap_or(i64::MAX);
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT doc FROM ipgate_entries WHERE expires_unix <= $1 ORDER BY expires_unix, id",
                &[&until],
            )
            .await
            .map_err(pg_error)?;
        rows.iter().map(|r| read(r, 0)).collect()
    }

    async fn expire_entry(
        &self,
        account: &str,
        id: &str,
        now: Timestamp,
    ) -> Result<Option<WhitelistEntry>, StoreError> {
        let Some(n) = parse_id(id) else {
            return Ok(None);
        };
        let now = i64::try_from(now.unix()).unwrap_or(i64::MAX);
        self.retrying(|| async {
            let mut c = self.client().await?;
            let mut w = self.begin(&mut c).await?;
            let row =
                w.tx.query_opt(
                    "DELETE FROM ipgate_entries
                     WHERE account = $1 AND id = $2 AND expires_unix <= $3 RETURNING doc",
                    &[&account, &n, &now],
                )
                .await
                .map_err(pg_error)?;
            let Some(row) = row else {
                return Ok(None);
            };
            let e: WhitelistEntry = read(&row, 0)?;
            w.log(&Actor::system(), &events::entry_expired(&e)).await?;
            w.touch(Touch::Account(account.to_string()));
            w.commit().await?;
            Ok(Some(e))
        })
        .await
    }

    async fn remind_entry(
        &self,
        account: &str,
        id: &str,
        stage: u8,
        mail: bool,
    ) -> Result<bool, StoreError> {
        let Some(n) = parse_id(id) else {
            return Ok(false);
        };
        self.retrying(|| async {
            let mut c = self.client().await?;
            let mut w = self.begin(&mut c).await?;
            let Some(acct) = locked_account(&w, account).await? else {
                return Ok(false);
            };
            let row =
                w.tx.query_opt(
                    "SELECT doc FROM ipgate_entries WHERE account = $1 AND id = $2 FOR UPDATE",
                    &[&account, &n],
                )
                .await
                .map_err(pg_error)?;
            let Some(row) = row else {
                return Ok(false);
            };
            let mut e: WhitelistEntry = read(&row, 0)?;
            if e.reminded >= stage {
                return Ok(false);
            }
            e.reminded = stage;
            w.tx.execute(
                "UPDATE ipgate_entries SET doc = $3 WHERE account = $1 AND id = $2",
                &[&account, &n, &doc(&e)],
            )
            .await
            .map_err(pg_error)?;
            if mail && !acct.emails.is_empty() {
                for email in &acct.emails {
                    let mail_id = PgStore::next_id(&w).await?;
                    enqueue_job(&w, &MailJob::reminder(mail_id, email, &acct.id, &e.id)).await?;
                }
                w.log(
                    &Actor::system(),
                    &events::entry_reminder(&e, acct.emails.len()),
                )
                .await?;
            }
            w.commit().await?;
            Ok(true)
        })
        .await
    }

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
                    w.log(actor, &events::entry_added(&e, None)).await?;
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
        f: &mut (dyn for<'a> FnMut(AccountNets<'a>) + Send),
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
                "SELECT account, cidr, expires_unix FROM ipgate_entries ORDER BY account COLLATE \"C\"",
                no_params,
            )
            .await
            .map_err(pg_error)?;
        let mut entries = std::pin::pin!(entries);
        let mut pending: Option<(String, String, Option<i64>)> = None;
        // A row stream is not polled again once it has ended.
        let mut ended = false;
        let mut nets = Vec::new();
        let mut ending = Vec::new();
        for row in &accounts {
            let a: Account = read(row, 0)?;
            let id = a.id.as_str();
            nets.clear();
            ending.clear();
            loop {
                if pending.is_none() && !ended {
                    pending = match entries.try_next().await.map_err(pg_error)? {
                        Some(r) => Some((
                            r.try_get(0).map_err(pg_error)?,
                            r.try_get(1).map_err(pg_error)?,
                            r.try_get(2).map_err(pg_error)?,
                        )),
                        None => {
                            ended = true;
                            None
                        }
                    };
                }
                match &pending {
                    // An entry of an account that is gone: never served.
                    Some((acct, _, _)) if acct.as_str() < id => pending = None,
                    Some((acct, cidr, ends)) if acct == id => {
                        match Cidr::parse(cidr) {
                            Ok(c) => {
                                nets.push(c.net());
                                if let Some(t) = ends {
                                    ending.push((c.net(), u64::try_from(*t).unwrap_or(0)));
                                }
                            }
                            Err(e) => {
                                tracing::error!(account = %acct, cidr = %cidr, error = %e, "skipping an unreadable stored network")
                            }
                        }
                        pending = None;
                    }
                    _ => break,
                }
            }
            f(AccountNets {
                id,
                mode: a.whitelist,
                nets: &nets,
                ending: &ending,
            });
        }
        tx.commit().await.map_err(pg_error)?;
        Ok(())
    }
}
