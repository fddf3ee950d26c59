//! The durable mail outbox. A mail job is written in the same transaction
//! as the change it reports (a submitted request, a decision), so a crash
//! can delay a mail but never lose it. The sender takes due jobs, and each
//! attempt's result (sent, failed with the next try, dropped) is one more
//! transaction with its security-log record.
//!
//! Link mails carry no token while queued: each send attempt mints a fresh
//! token and stores only its hash (bound to the job's email and request)
//! before the mail leaves, so the plain token exists only in the mail itself.
//!
//! The jobs themselves, and queueing one inside a change, are `mail_jobs`.

use super::flow_trees::FlowTrees;
use super::requests::{request_key, IpRequest, LinkRecord};
use super::{abort, decode, encode, entry_key, flatten, SledStore, StoreError, TxResult};
use crate::domain::flow::{status_at, Status};
use crate::domain::model::WhitelistEntry;
use crate::domain::Timestamp;
use crate::seclog::{self, Actor, LogKey};
use crate::store::mail_job::{backoff_secs, job_event};
use crate::store::{disown, OutboxStore};
use crate::store::{MailJob, MailKind};
use async_trait::async_trait;
use serde_json::json;
use sled::transaction::{Transactional, TransactionalTree};

/// A link mail ready to go: the job, its request and the fresh token.
pub struct LinkToSend {
    pub job: MailJob,
    pub request: IpRequest,
    pub token: String,
}

/// What the sender should do with a due job.
pub enum Prepared {
    Link(LinkToSend),
    Notice {
        job: MailJob,
        request: IpRequest,
        /// The fresh token of the notice's "this wasn't me" link, when
        /// it offers one.
        disown: Option<String>,
    },
    /// A reminder that `entry` ends soon.
    Reminder {
        job: MailJob,
        entry: WhitelistEntry,
    },
    /// The job was dropped (its request is no longer pending, or gone).
    Dropped,
    /// Another control plane's sender holds the job now (PostgreSQL):
    /// nothing to do with it here.
    Elsewhere,
}

/// Removes a job from the outbox with its security-log record, inside a transaction.
fn end_job(
    outbox: &TransactionalTree,
    log: &TransactionalTree,
    key: &LogKey,
    job: &MailJob,
    event: &str,
    extra: serde_json::Value,
) -> TxResult<()> {
    outbox.remove(&job.id.to_be_bytes())?;
    seclog::append(log, key, &Actor::system(), &job_event(event, job, extra))?;
    Ok(())
}

impl SledStore {
    /// Job `id`'s recipient is still one of its request's account's emails
    /// (true when any of them is gone: the transaction sees to that).
    fn recipient_on_account(&self, id: u64) -> Result<bool, StoreError> {
        let Some(raw) = self.outbox.get(id.to_be_bytes())? else {
            return Ok(true);
        };
        let job: MailJob = decode(&raw)?;
        let Some(raw) = self.requests.get(request_key(&job.request)?)? else {
            return Ok(true);
        };
        let req: IpRequest = decode(&raw)?;
        Ok(match self.read_account(req.account.as_str())? {
            Some(a) => a.has_email(&job.to),
            None => true,
        })
    }

    /// Readies reminder job `id`: its entry, or the job dropped when the
    /// entry is gone.
    async fn prepare_reminder(&self, id: u64) -> Result<Prepared, StoreError> {
        let prepared = flatten((&self.outbox, &self.entries, &self.seclog).transaction(
            |(outbox, entries, log): &(TransactionalTree, TransactionalTree, TransactionalTree)| {
                let Some(raw) = outbox.get(id.to_be_bytes())? else {
                    return Ok(Prepared::Dropped);
                };
                let mut job: MailJob = decode(&raw).or_else(abort)?;
                let key = job
                    .entry
                    .as_deref()
                    .and_then(|e| e.parse::<u64>().ok())
                    .map(|n| entry_key(job.account.as_str(), n));
                let entry = match key {
                    Some(k) => entries.get(k)?,
                    None => None,
                };
                let Some(entry) = entry else {
                    let reason = json!({"reason": "entry not found"});
                    end_job(outbox, log, &self.log_key, &job, "mail.dropped", reason)?;
                    return Ok(Prepared::Dropped);
                };
                let entry: WhitelistEntry = decode(&entry).or_else(abort)?;
                job.attempts += 1;
                outbox.insert(&id.to_be_bytes(), encode(&job))?;
                Ok(Prepared::Reminder { job, entry })
            },
        ))?;
        self.flush().await?;
        Ok(prepared)
    }

    async fn finish_mail(
        &self,
        job: &MailJob,
        event: &str,
        extra: serde_json::Value,
    ) -> Result<(), StoreError> {
        flatten((&self.outbox, &self.seclog).transaction(
            |(outbox, log): &(TransactionalTree, TransactionalTree)| {
                end_job(outbox, log, &self.log_key, job, event, extra.clone())
            },
        ))?;
        self.flush().await
    }
}

#[async_trait]
impl OutboxStore for SledStore {
    /// How many mails are waiting.
    async fn outbox_depth(&self) -> Result<usize, StoreError> {
        Ok(self.outbox.len())
    }

    /// Readies a due job for sending. A link job mints its token here: the
    /// hash goes into the links tree (bound to the job's email) and the
    /// attempt is counted, flushed before the token is handed out.
    async fn prepare_mail(&self, id: u64) -> Result<Prepared, StoreError> {
        if let Some(raw) = self.outbox.get(id.to_be_bytes())? {
            if decode::<MailJob>(&raw)?.kind == MailKind::Reminder {
                return self.prepare_reminder(id).await;
            }
        }
        let (token, hash) = crate::domain::users::new_api_token();
        // Read outside the transaction (sled would deadlock on a plain read
        // inside one); the link page checks the address again when used.
        let current = self.recipient_on_account(id)?;
        let prepared = self.flow_transaction(|t: &FlowTrees| {
            let FlowTrees {
                requests,
                links,
                seclog: log,
                outbox,
                ..
            } = t;
            let Some(raw) = outbox.get(id.to_be_bytes())? else {
                return Ok(Prepared::Dropped);
            };
            let mut job: MailJob = decode(&raw).or_else(abort)?;
            let req = match requests.get(request_key(&job.request).or_else(abort)?)? {
                Some(r) => Some(decode::<IpRequest>(&r).or_else(abort)?),
                None => None,
            };
            let Some(req) = req else {
                end_job(
                    outbox,
                    log,
                    &self.log_key,
                    &job,
                    "mail.dropped",
                    json!({"reason": "request not found"}),
                )?;
                return Ok(Prepared::Dropped);
            };
            job.attempts += 1;
            match job.kind {
                MailKind::Notice | MailKind::Disowned => {
                    let offer = job.kind == MailKind::Notice && disown::offered(&req, job.approval);
                    if offer {
                        let link = LinkRecord {
                            request: req.id.clone(),
                            email: job.to.clone(),
                        };
                        links.insert(disown::link_key(&hash).as_bytes(), encode(&link))?;
                    }
                    outbox.insert(&id.to_be_bytes(), encode(&job))?;
                    Ok(Prepared::Notice {
                        job,
                        request: req,
                        disown: offer.then(|| token.clone()),
                    })
                }
                // Readied by `prepare_reminder`.
                MailKind::Reminder => Ok(Prepared::Dropped),
                MailKind::Link => {
                    let status = status_at(req.status, req.expires_at, Timestamp::now());
                    // An address removed from the account since the request
                    // was made gets no link either.
                    let dropped = if status != Status::Pending {
                        Some(format!("request is {}", status.as_str()))
                    } else if !current {
                        Some("address no longer on the account".to_string())
                    } else {
                        None
                    };
                    if let Some(reason) = dropped {
                        end_job(
                            outbox,
                            log,
                            &self.log_key,
                            &job,
                            "mail.dropped",
                            json!({ "reason": reason }),
                        )?;
                        return Ok(Prepared::Dropped);
                    }
                    let link = LinkRecord {
                        request: req.id.clone(),
                        email: job.to.clone(),
                    };
                    links.insert(hash.as_bytes(), encode(&link))?;
                    outbox.insert(&id.to_be_bytes(), encode(&job))?;
                    Ok(Prepared::Link(LinkToSend {
                        job,
                        request: req,
                        token: token.clone(),
                    }))
                }
            }
        })?;
        self.flush().await?;
        Ok(prepared)
    }

    /// The mail left: the job is done.
    async fn mail_sent(&self, job: &MailJob) -> Result<(), StoreError> {
        self.finish_mail(job, "mail.sent", json!({})).await
    }

    /// The mail can never be delivered (a bad address, a permanent SMTP
    /// refusal): the job ends with a `mail.dropped` record.
    async fn mail_dropped(&self, job: &MailJob, reason: &str) -> Result<(), StoreError> {
        self.finish_mail(job, "mail.dropped", json!({ "reason": reason }))
            .await
    }

    /// The mail did not leave: try again after the backoff.
    async fn mail_failed(&self, job: &MailJob, error: &str) -> Result<MailJob, StoreError> {
        let next = job.failed(error);
        flatten((&self.outbox, &self.seclog).transaction(
            |(outbox, log): &(TransactionalTree, TransactionalTree)| {
                if outbox.get(job.id.to_be_bytes())?.is_some() {
                    outbox.insert(&job.id.to_be_bytes(), encode(&next))?;
                }
                let e = job_event(
                    "mail.failed",
                    job,
                    json!({"error": next.last_error, "retry_in_secs": backoff_secs(job.attempts)}),
                );
                seclog::append(log, &self.log_key, &Actor::system(), &e)?;
                Ok(())
            },
        ))?;
        self.flush().await?;
        Ok(next)
    }

    /// Ids of jobs whose next attempt is due, oldest first.
    async fn due_mail(&self) -> Result<Vec<u64>, StoreError> {
        let now = Timestamp::now();
        let mut due = Vec::new();
        for v in self.outbox.iter().values() {
            let job: MailJob = decode(&v?)?;
            if job.next_attempt_at <= now {
                due.push(job.id);
            }
        }
        Ok(due)
    }
}
