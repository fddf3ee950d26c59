//! Self-service requests and their links in PostgreSQL: create (queueing
//! one link mail per account email), list, cancel, decide from a link,
//! expiry. Each transition is one change with its security-log records
//! and mails. A decision reads the link, its request (locked) and the
//! account inside the change, so of two decisions racing on any number of
//! control planes exactly one finds the request pending.

use super::accounts::locked_account;
use super::entries::{insert_entry, networks_of};
use super::outbox::{enqueue, enqueue_job};
use super::{doc, parse_id, pg_error, read, Change, PgStore};
use crate::domain::flow::{status_at, Status};
use crate::domain::model::{Account, WhitelistEntry};
use crate::domain::{Cidr, Timestamp};
use crate::seclog::{Actor, Event};
use crate::store::{
    quorum, IpRequest, LinkRecord, LinkView, MailJob, MailKind, NewRequest, RequestStore,
    StoreError, Touch, Verdict,
};
use async_trait::async_trait;
use serde_json::json;

/// The advisory lock key of the expiry job.
pub(super) const EXPIRY_LOCK: i64 = 0x0069_7067_6174_6501;

/// Saves `req` as it now is, inside a change.
pub(super) async fn save(w: &Change<'_>, req: &IpRequest) -> Result<(), StoreError> {
    let id = parse_id(&req.id).ok_or_else(|| StoreError::NoRequest(req.id.clone()))?;
    let expires = i64::try_from(req.expires_at.unix()).unwrap_or(i64::MAX);
    w.tx.execute(
        "INSERT INTO ipgate_requests (id, account, status, expires_unix, doc) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, doc = EXCLUDED.doc",
        &[&id, &req.account.as_str(), &req.status.as_str(), &expires, &doc(req)],
    )
    .await
    .map_err(pg_error)?;
    Ok(())
}

/// Request `id` inside a change, locked for it.
pub(super) async fn locked_request(
    w: &Change<'_>,
    id: i64,
) -> Result<Option<IpRequest>, StoreError> {
    let row =
        w.tx.query_opt(
            "SELECT doc FROM ipgate_requests WHERE id = $1 FOR UPDATE",
            &[&id],
        )
        .await
        .map_err(pg_error)?;
    row.map(|r| read(&r, 0)).transpose()
}

/// Ends a pending request inside a change: its status and its log record.
/// Its links stay (hashes only) so a later visit can say what happened;
/// they work only while their request is pending.
pub(super) async fn end_request(
    w: &mut Change<'_>,
    req: &mut IpRequest,
    status: Status,
    actor: &Actor,
) -> Result<(), StoreError> {
    req.status = status;
    save(w, req).await?;
    w.log(actor, &crate::store::events::request_ended(req, status))
        .await
}

impl PgStore {
    async fn expire_now(&self) -> Result<usize, StoreError> {
        let now = Timestamp::now();
        let due: Vec<i64> = {
            let c = self.client().await?;
            let rows = c
                .query(
                    "SELECT id FROM ipgate_requests WHERE status = 'pending' AND expires_unix <= $1 ORDER BY id",
                    &[&i64::try_from(now.unix()).unwrap_or(i64::MAX)],
                )
                .await
                .map_err(pg_error)?;
            rows.iter()
                .map(|r| r.try_get(0).map_err(pg_error))
                .collect::<Result<_, _>>()?
        };
        let mut n = 0;
        for id in due {
            let ended = self
                .retrying(|| async {
                    let mut c = self.client().await?;
                    let mut w = self.begin(&mut c).await?;
                    let Some(mut r) = locked_request(&w, id).await? else {
                        return Ok(false);
                    };
                    if r.status != Status::Pending || now < r.expires_at {
                        return Ok(false);
                    }
                    end_request(&mut w, &mut r, Status::Expired, &Actor::system()).await?;
                    w.commit().await?;
                    Ok(true)
                })
                .await?;
            n += usize::from(ended);
        }
        Ok(n)
    }

    /// The link and its request as the link page sees them.
    async fn view(
        &self,
        c: &tokio_postgres::Client,
        hash: &str,
    ) -> Result<Option<LinkView>, StoreError> {
        let Some(row) = c
            .query_opt("SELECT doc FROM ipgate_links WHERE hash = $1", &[&hash])
            .await
            .map_err(pg_error)?
        else {
            return Ok(None);
        };
        let link: LinkRecord = read(&row, 0)?;
        let Some(id) = parse_id(&link.request) else {
            return Ok(None);
        };
        let Some(row) = c
            .query_opt("SELECT doc FROM ipgate_requests WHERE id = $1", &[&id])
            .await
            .map_err(pg_error)?
        else {
            return Ok(None);
        };
        let request = read::<IpRequest>(&row, 0)?.current();
        let account = c
            .query_opt(
                "SELECT doc FROM ipgate_accounts WHERE id = $1",
                &[&request.account.as_str()],
            )
            .await
            .map_err(pg_error)?;
        let address_current = match account {
            Some(r) => read::<Account>(&r, 0)?.has_email(&link.email),
            None => false,
        };
        Ok(Some(LinkView {
            link,
            request,
            address_current,
        }))
    }
}

#[async_trait]
impl RequestStore for PgStore {
    async fn create_request(
        &self,
        new: NewRequest,
        actor: &Actor,
    ) -> Result<IpRequest, StoreError> {
        self.retrying(|| async {
            let now = Timestamp::now();
            let mut c = self.client().await?;
            let mut w = self.begin(&mut c).await?;
            if let Some(k) = &new.idempotency {
                super::idempotency::check(&w, new.account.as_str(), k, now).await?;
            }
            let pending = w
                .tx
                .query_opt(
                    "SELECT doc FROM ipgate_requests WHERE account = $1 AND status = 'pending' FOR UPDATE",
                    &[&new.account.as_str()],
                )
                .await
                .map_err(pg_error)?;
            if let Some(row) = pending {
                let mut old: IpRequest = read(&row, 0)?;
                if status_at(old.status, old.expires_at, now) == Status::Pending {
                    return Err(StoreError::PendingExists);
                }
                end_request(&mut w, &mut old, Status::Expired, &Actor::system()).await?;
            }
            let id = PgStore::next_id(&w).await?.to_string();
            let req = IpRequest::new(id.clone(), &new, now);
            save(&w, &req).await?;
            for email in &new.emails {
                let mail_id = PgStore::next_id(&w).await?;
                enqueue(&w, mail_id, MailKind::Link, email, &new.account, &id).await?;
            }
            if let Some(k) = &new.idempotency {
                super::idempotency::claim(&w, new.account.as_str(), k, &req, now).await?;
            }
            w.log(actor, &crate::store::events::request_submitted(&req, &new.emails))
                .await?;
            w.commit().await?;
            Ok(req)
        })
        .await
    }

    async fn requests(&self, account: &str) -> Result<Vec<IpRequest>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT doc FROM ipgate_requests WHERE account = $1 ORDER BY id DESC",
                &[&account],
            )
            .await
            .map_err(pg_error)?;
        rows.iter()
            .map(|r| read::<IpRequest>(r, 0).map(IpRequest::current))
            .collect()
    }

    async fn request(&self, account: &str, id: &str) -> Result<IpRequest, StoreError> {
        let n = parse_id(id).ok_or_else(|| StoreError::NoRequest(id.to_string()))?;
        let c = self.client().await?;
        let row = c
            .query_opt(
                "SELECT doc FROM ipgate_requests WHERE id = $1 AND account = $2",
                &[&n, &account],
            )
            .await
            .map_err(pg_error)?
            .ok_or_else(|| StoreError::NoRequest(id.to_string()))?;
        Ok(read::<IpRequest>(&row, 0)?.current())
    }

    async fn cancel_request(
        &self,
        account: &str,
        id: &str,
        actor: &Actor,
    ) -> Result<IpRequest, StoreError> {
        let n = parse_id(id).ok_or_else(|| StoreError::NoRequest(id.to_string()))?;
        self.retrying(|| async {
            let now = Timestamp::now();
            let mut c = self.client().await?;
            let mut w = self.begin(&mut c).await?;
            let mut r = match locked_request(&w, n).await? {
                Some(r) if r.account == account => r,
                _ => return Err(StoreError::NoRequest(id.to_string())),
            };
            let status = status_at(r.status, r.expires_at, now);
            if status != Status::Pending {
                return Err(StoreError::NotPending {
                    id: id.to_string(),
                    status,
                });
            }
            r.decided_at = Some(now);
            end_request(&mut w, &mut r, Status::Cancelled, actor).await?;
            w.commit().await?;
            Ok(r)
        })
        .await
    }

    async fn expire_due(&self) -> Result<usize, StoreError> {
        // One control plane at a time runs it (each expiry checks again
        // that its request is still pending, so two would do no harm).
        let ran = self.alone(EXPIRY_LOCK, || self.expire_now()).await?;
        Ok(ran.unwrap_or(0))
    }

    async fn link(&self, hash: &str) -> Result<Option<LinkView>, StoreError> {
        let c = self.client().await?;
        self.view(&c, hash).await
    }

    async fn decide(
        &self,
        hash: &str,
        verdict: Verdict,
        actor_ip: std::net::IpAddr,
        user_agent: &str,
    ) -> Result<(IpRequest, Vec<WhitelistEntry>), StoreError> {
        let decided = self
            .retrying(|| async {
                let now = Timestamp::now();
                let mut c = self.client().await?;
                let mut w = self.begin(&mut c).await?;
                let row = w
                    .tx
                    .query_opt("SELECT doc FROM ipgate_links WHERE hash = $1", &[&hash])
                    .await
                    .map_err(pg_error)?
                    .ok_or(StoreError::NoLink)?;
                let link: LinkRecord = read(&row, 0)?;
                let id = parse_id(&link.request).ok_or(StoreError::NoLink)?;
                let mut r = locked_request(&w, id).await?.ok_or(StoreError::NoLink)?;
                let account = locked_account(&w, r.account.as_str())
                    .await?
                    .ok_or_else(|| StoreError::NoAccount(r.account.to_string()))?;
                if !account.has_email(&link.email) {
                    return Err(StoreError::LinkAddressRemoved);
                }
                let status = status_at(r.status, r.expires_at, now);
                if status != Status::Pending {
                    return Err(StoreError::NotPending {
                        id: r.id.clone(),
                        status,
                    });
                }
                let actor = Actor {
                    who: link.email.clone(),
                    ip: Some(actor_ip),
                };
                if verdict == Verdict::Approve {
                    let from = actor_ip.to_string();
                    let step = quorum::approve(&mut r, &link.email, &from, now, user_agent)?;
                    if let quorum::Step::Counted(have) = step {
                        save(&w, &r).await?;
                        w.log(&actor, &quorum::counted(&r, &link.email, user_agent, have))
                            .await?;
                        for to in &account.emails {
                            let mail_id = PgStore::next_id(&w).await?;
                            let job = MailJob::approval_notice(mail_id, to, &r.account, &r.id, have);
                            enqueue_job(&w, &job).await?;
                        }
                        w.commit().await?;
                        return Ok((r, Vec::new()));
                    }
                }
                let mut added = Vec::new();
                if verdict == Verdict::Approve {
                    let existing = networks_of(&w, account.id.as_str()).await?;
                    for ip in &r.ips {
                        let cidr =
                            Cidr::parse(ip).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                        if existing.contains(&cidr) || added.iter().any(|e: &WhitelistEntry| e.cidr == cidr) {
                            continue;
                        }
                        let id = PgStore::next_id(&w).await?.to_string();
                        let e = r.approved_entry(id, cidr, now);
                        insert_entry(&w, account.id.as_str(), &e).await?;
                        w.log(&actor, &crate::store::events::entry_added(&e, Some(&r.id)))
                            .await?;
                        added.push(e);
                    }
                }
                r.decided_by = Some(link.email.clone());
                r.decided_from = Some(actor_ip.to_string());
                r.decided_at = Some(now);
                r.added = added.iter().map(|e| e.id.clone()).collect();
                let (status, event) = match verdict {
                    Verdict::Approve => (Status::Approved, "link.approved"),
                    Verdict::Reject => (Status::Rejected, "link.rejected"),
                };
                let e = Event {
                    event,
                    account: Some(r.account.as_str()),
                    details: json!({"request": r.id, "email": link.email, "user_agent": user_agent}),
                };
                w.log(&actor, &e).await?;
                end_request(&mut w, &mut r, status, &actor).await?;
                for email in &account.emails {
                    let mail_id = PgStore::next_id(&w).await?;
                    enqueue(&w, mail_id, MailKind::Notice, email, &r.account, &r.id).await?;
                }
                if verdict == Verdict::Approve {
                    w.touch(Touch::Account(r.account.to_string()));
                }
                w.commit().await?;
                Ok((r, added))
            })
            .await?;
        Ok(decided)
    }
}
