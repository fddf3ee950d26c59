//! The durable mail outbox in PostgreSQL. Jobs are queued inside the
//! change they report. Several control planes may send from one outbox: a
//! sender claims a due job (`FOR UPDATE SKIP LOCKED`) and leases it for
//! [`LEASE_SECS`] under its holder mark, sends it outside any transaction,
//! then records the outcome. Each plane holds the advisory lock
//! ([`HOLDERS`], its mark) on a connection of its own for as long as it
//! runs: a lease whose holder's lock is gone (the plane died, or lost its
//! database connection) is over at once, and the job is sent again: at
//! least once.

use super::{doc, parse_id, pg_error, read, Change, PgStore};
use crate::domain::flow::{status_at, Status};
use crate::domain::model::{Account, WhitelistEntry};
use crate::domain::{AccountId, Timestamp};
use crate::seclog::Actor;
use crate::store::mail_job::{backoff_secs, job_event};
use crate::store::{
    disown, IpRequest, LinkRecord, LinkToSend, MailJob, MailKind, OutboxStore, Prepared, StoreError,
};
use async_trait::async_trait;
use serde_json::json;

/// How long a claimed job is its sender's: longer than a send may take.
pub const LEASE_SECS: i64 = 120;

/// The advisory-lock class of the holders' marks ("ipgm").
pub const HOLDERS: i32 = 0x6970_676d;

/// The SQL that a job `o` is free: never leased, its lease over, or its
/// holder gone (no session holds the holder's lock in this database). `$1`
/// is now.
fn free() -> String {
    format!(
        "(o.lease_until_unix <= $1 OR NOT EXISTS (
            SELECT 1 FROM pg_locks l
            WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
              AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
              AND l.classid = {HOLDERS}::oid AND l.objid = o.lease_holder::oid))"
    )
}

fn unix(t: Timestamp) -> i64 {
    i64::try_from(t.unix()).unwrap_or(i64::MAX)
}

/// Queues one mail inside a change.
pub(super) async fn enqueue(
    w: &Change<'_>,
    id: u64,
    kind: MailKind,
    to: &str,
    account: &AccountId,
    request: &str,
) -> Result<(), StoreError> {
    enqueue_job(w, &MailJob::queued(id, kind, to, account, request)).await
}

/// Queues `job` inside a change.
pub(super) async fn enqueue_job(w: &Change<'_>, job: &MailJob) -> Result<(), StoreError> {
    let id = job.id;
    let id = i64::try_from(id).map_err(|_| StoreError::Corrupt(format!("mail id {id}")))?;
    w.tx.execute(
        "INSERT INTO ipgate_outbox (id, due_unix, doc) VALUES ($1, 0, $2)",
        &[&id, &doc(job)],
    )
    .await
    .map_err(pg_error)?;
    Ok(())
}

/// Saves `job` (id `n`) leased to `holder` from `now`, inside a change.
async fn lease(
    w: &Change<'_>,
    n: i64,
    job: &MailJob,
    now: Timestamp,
    holder: i32,
) -> Result<(), StoreError> {
    w.tx.execute(
        "UPDATE ipgate_outbox SET doc = $2, lease_until_unix = $3, lease_holder = $4 WHERE id = $1",
        &[&n, &doc(job), &(unix(now) + LEASE_SECS), &holder],
    )
    .await
    .map_err(pg_error)?;
    Ok(())
}

/// Drops `job` for `reason` (with its `mail.dropped` record) and commits.
async fn drop_job(mut w: Change<'_>, job: &MailJob, reason: &str) -> Result<Prepared, StoreError> {
    end_job(&mut w, job, "mail.dropped", json!({ "reason": reason })).await?;
    w.commit().await?;
    Ok(Prepared::Dropped)
}

/// Removes a job with its security-log record, inside a change.
async fn end_job(
    w: &mut Change<'_>,
    job: &MailJob,
    event: &str,
    extra: serde_json::Value,
) -> Result<(), StoreError> {
    let id = i64::try_from(job.id).unwrap_or(i64::MAX);
    w.tx.execute("DELETE FROM ipgate_outbox WHERE id = $1", &[&id])
        .await
        .map_err(pg_error)?;
    w.log(&Actor::system(), &job_event(event, job, extra)).await
}

impl PgStore {
    async fn finish_mail(
        &self,
        job: &MailJob,
        event: &str,
        extra: serde_json::Value,
    ) -> Result<(), StoreError> {
        self.retrying(|| async {
            let mut c = self.client().await?;
            let mut w = self.begin(&mut c).await?;
            end_job(&mut w, job, event, extra.clone()).await?;
            w.commit().await
        })
        .await
    }
}

#[async_trait]
impl OutboxStore for PgStore {
    async fn outbox_depth(&self) -> Result<usize, StoreError> {
        let c = self.client().await?;
        let row = c
            .query_one("SELECT count(*) FROM ipgate_outbox", &[])
            .await
            .map_err(pg_error)?;
        let n: i64 = row.try_get(0).map_err(pg_error)?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    async fn prepare_mail(&self, id: u64) -> Result<Prepared, StoreError> {
        let Ok(n) = i64::try_from(id) else {
            return Ok(Prepared::Dropped);
        };
        let (token, hash) = crate::domain::users::new_api_token();
        // The lease about to be taken is known to be this plane's while
        // its holder lock is held.
        if let Err(e) = self.listening().await {
            tracing::warn!(error = %e, "cannot hold this control plane's mail holder lock; its leases may be taken over");
        }
        self.retrying(|| async {
            let now = Timestamp::now();
            let mut c = self.client().await?;
            let w = self.begin(&mut c).await?;
            let row =
                w.tx.query_opt(
                    &format!(
                        "SELECT doc, {} OR o.lease_holder = $3 FROM ipgate_outbox o
                         WHERE o.id = $2 FOR UPDATE SKIP LOCKED",
                        free()
                    ),
                    &[&unix(now), &n, &self.holder],
                )
                .await
                .map_err(pg_error)?;
            let Some(row) = row else {
                return Ok(Prepared::Dropped);
            };
            let free: bool = row.try_get(1).map_err(pg_error)?;
            if !free {
                return Ok(Prepared::Elsewhere);
            }
            let mut job: MailJob = read(&row, 0)?;
            if job.kind == MailKind::Reminder {
                let entry = match job.entry.as_deref().and_then(parse_id) {
                    Some(eid) => {
                        w.tx.query_opt(
                            "SELECT doc FROM ipgate_entries WHERE account = $1 AND id = $2",
                            &[&job.account.as_str(), &eid],
                        )
                        .await
                        .map_err(pg_error)?
                        .map(|r| read::<WhitelistEntry>(&r, 0))
                        .transpose()?
                    }
                    None => None,
                };
                let Some(entry) = entry else {
                    return drop_job(w, &job, "entry not found").await;
                };
                job.attempts += 1;
                lease(&w, n, &job, now, self.holder).await?;
                w.commit().await?;
                return Ok(Prepared::Reminder { job, entry });
            }
            let req = match parse_id(&job.request) {
                Some(rid) => {
                    w.tx.query_opt("SELECT doc FROM ipgate_requests WHERE id = $1", &[&rid])
                        .await
                        .map_err(pg_error)?
                        .map(|r| read::<IpRequest>(&r, 0))
                        .transpose()?
                }
                None => None,
            };
            let Some(req) = req else {
                return drop_job(w, &job, "request not found").await;
            };
            job.attempts += 1;
            if job.kind == MailKind::Link {
                let status = status_at(req.status, req.expires_at, now);
                let account =
                    w.tx.query_opt(
                        "SELECT doc FROM ipgate_accounts WHERE id = $1",
                        &[&req.account.as_str()],
                    )
                    .await
                    .map_err(pg_error)?
                    .map(|r| read::<Account>(&r, 0))
                    .transpose()?;
                // An address removed from the account since the request
                // was made gets no link either.
                let current = account.is_none_or(|a| a.has_email(&job.to));
                let dropped = if status != Status::Pending {
                    Some(format!("request is {}", status.as_str()))
                } else if !current {
                    Some("address no longer on the account".to_string())
                } else {
                    None
                };
                if let Some(reason) = dropped {
                    return drop_job(w, &job, &reason).await;
                }
                let link = LinkRecord {
                    request: req.id.clone(),
                    email: job.to.clone(),
                };
                let rid = parse_id(&req.id).unwrap_or(0);
                w.tx.execute(
                    "INSERT INTO ipgate_links (hash, request, doc) VALUES ($1, $2, $3)",
                    &[&hash, &rid, &doc(&link)],
                )
                .await
                .map_err(pg_error)?;
            }
            let offer = job.kind == MailKind::Notice && disown::offered(&req, job.approval);
            if offer {
                let link = LinkRecord {
                    request: req.id.clone(),
                    email: job.to.clone(),
                };
                let rid = parse_id(&req.id).unwrap_or(0);
                w.tx.execute(
                    "INSERT INTO ipgate_links (hash, request, doc) VALUES ($1, $2, $3)",
                    &[&disown::link_key(&hash), &rid, &doc(&link)],
                )
                .await
                .map_err(pg_error)?;
            }
            lease(&w, n, &job, now, self.holder).await?;
            w.commit().await?;
            Ok(match job.kind {
                MailKind::Notice | MailKind::Disowned => Prepared::Notice {
                    job,
                    request: req,
                    disown: offer.then(|| token.clone()),
                },
                MailKind::Link => Prepared::Link(LinkToSend {
                    job,
                    request: req,
                    token: token.clone(),
                }),
                // Readied above.
                MailKind::Reminder => Prepared::Dropped,
            })
        })
        .await
    }

    async fn mail_sent(&self, job: &MailJob) -> Result<(), StoreError> {
        self.finish_mail(job, "mail.sent", json!({})).await
    }

    async fn mail_dropped(&self, job: &MailJob, reason: &str) -> Result<(), StoreError> {
        self.finish_mail(job, "mail.dropped", json!({ "reason": reason }))
            .await
    }

    async fn mail_failed(&self, job: &MailJob, error: &str) -> Result<MailJob, StoreError> {
        let next = job.failed(error);
        let id = i64::try_from(job.id).unwrap_or(i64::MAX);
        self.retrying(|| async {
            let mut c = self.client().await?;
            let mut w = self.begin(&mut c).await?;
            w.tx.execute(
                "UPDATE ipgate_outbox SET doc = $2, due_unix = $3, lease_until_unix = 0 WHERE id = $1",
                &[&id, &doc(&next), &unix(next.next_attempt_at)],
            )
            .await
            .map_err(pg_error)?;
            let e = job_event(
                "mail.failed",
                job,
                json!({"error": next.last_error, "retry_in_secs": backoff_secs(job.attempts)}),
            );
            w.log(&Actor::system(), &e).await?;
            w.commit().await
        })
        .await?;
        Ok(next)
    }

    async fn due_mail(&self) -> Result<Vec<u64>, StoreError> {
        let now = unix(Timestamp::now());
        let c = self.client().await?;
        let rows = c
            .query(
                &format!(
                    "SELECT o.id FROM ipgate_outbox o WHERE o.due_unix <= $1 AND {} ORDER BY o.id",
                    free()
                ),
                &[&now],
            )
            .await
            .map_err(pg_error)?;
        rows.iter()
            .map(|r| r.try_get::<_, i64>(0).map(super::as_id).map_err(pg_error))
            .collect()
    }
}
