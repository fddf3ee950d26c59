//! "This wasn't me" links in PostgreSQL (`store::disown`): kept in the
//! links table under their own prefix, used once in one transaction with
//! everything the report changes.

use super::accounts::locked_account;
use super::outbox::enqueue_job;
use super::requests::{end_request, locked_request, save};
use super::{doc, parse_id, pg_error, read, PgStore};
use crate::domain::flow::Status;
use crate::domain::model::WhitelistEntry;
use crate::domain::Timestamp;
use crate::seclog::Actor;
use crate::store::disown::{self, Disowned};
use crate::store::{DisownStore, IpRequest, LinkRecord, MailJob, MailKind, StoreError, Touch};
use async_trait::async_trait;

#[async_trait]
impl DisownStore for PgStore {
    async fn disown_link(&self, hash: &str) -> Result<Option<(LinkRecord, IpRequest)>, StoreError> {
        let c = self.client().await?;
        let row = c
            .query_opt(
                "SELECT l.doc, r.doc FROM ipgate_links l JOIN ipgate_requests r ON r.id = l.request
                 WHERE l.hash = $1",
                &[&disown::link_key(hash)],
            )
            .await
            .map_err(pg_error)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let link: LinkRecord = read(&row, 0)?;
        let r: IpRequest = read(&row, 1)?;
        Ok(Some((link, r.current())))
    }

    async fn disown(
        &self,
        hash: &str,
        ip: std::net::IpAddr,
        user_agent: &str,
    ) -> Result<(IpRequest, Vec<WhitelistEntry>), StoreError> {
        let key = disown::link_key(hash);
        self.retrying(|| async {
            let now = Timestamp::now();
            let mut c = self.client().await?;
            let mut w = self.begin(&mut c).await?;
            let row =
                w.tx.query_opt(
                    "DELETE FROM ipgate_links WHERE hash = $1 RETURNING doc",
                    &[&key],
                )
                .await
                .map_err(pg_error)?
                .ok_or(StoreError::NoLink)?;
            let link: LinkRecord = read(&row, 0)?;
            let id = parse_id(&link.request).ok_or(StoreError::NoLink)?;
            let mut r = locked_request(&w, id).await?.ok_or(StoreError::NoLink)?;
            if let Some(d) = &r.disowned {
                return Err(StoreError::AlreadyDisowned(d.email.clone()));
            }
            let mut account = locked_account(&w, r.account.as_str())
                .await?
                .ok_or_else(|| StoreError::NoAccount(r.account.to_string()))?;
            let actor = Actor {
                who: link.email.clone(),
                ip: Some(ip),
            };
            let mut removed = Vec::new();
            let cancelled = r.current_status() == Status::Pending;
            if cancelled {
                end_request(&mut w, &mut r, Status::Cancelled, &actor).await?;
            } else if r.status == Status::Approved {
                for eid in &r.added {
                    let Some(n) = parse_id(eid) else { continue };
                    let row =
                        w.tx.query_opt(
                            "DELETE FROM ipgate_entries WHERE account = $1 AND id = $2 RETURNING doc",
                            &[&r.account.as_str(), &n],
                        )
                        .await
                        .map_err(pg_error)?;
                    if let Some(row) = row {
                        let e: WhitelistEntry = read(&row, 0)?;
                        w.log(&actor, &disown::entry_removed(&e, &r.id)).await?;
                        removed.push(e);
                    }
                }
            }
            r.disowned = Some(Disowned {
                email: link.email.clone(),
                from: ip.to_string(),
                at: now,
            });
            save(&w, &r).await?;
            account.frozen = true;
            w.tx.execute(
                "UPDATE ipgate_accounts SET doc = $2 WHERE id = $1",
                &[&account.id.as_str(), &doc(&account)],
            )
            .await
            .map_err(pg_error)?;
            w.log(&actor, &disown::event(&r, &removed, cancelled, user_agent))
                .await?;
            for to in &account.emails {
                let mail_id = PgStore::next_id(&w).await?;
                let job = MailJob::queued(mail_id, MailKind::Disowned, to, &r.account, &r.id);
                enqueue_job(&w, &job).await?;
            }
            w.touch(Touch::Account(r.account.to_string()));
            w.commit().await?;
            Ok((r, removed))
        })
        .await
    }
}
