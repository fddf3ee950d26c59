//! Self-service requests in the store: create (queueing one link mail per
//! account email), list, cancel, decide from a link, and expiry. Every
//! transition is one transaction with its security-log record (and its
//! mails), flushed before returning.

use super::flow_trees::FlowTrees;
use super::mail_jobs::enqueue;
use super::{abort, decode, encode, entry_key, SledStore, StoreError, Touch, TxResult};
use crate::domain::flow::{status_at, Status};
use crate::domain::model::{Source, WhitelistEntry};
use crate::domain::{AccountId, Cidr, Timestamp};
use crate::seclog::{self, Actor, Event, LogKey};
use crate::store::idempotency::IdempotencyKey;
use crate::store::RequestStore;
use crate::store::{quorum, MailJob, MailKind};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// A request as stored and shown.
///
/// Records written before [`Timestamp`] also hold `expires_unix`, the
/// same second as `expires_at` in Unix seconds; it is not read (the
/// struct does not deny unknown fields) and no longer written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpRequest {
    pub id: String,
    pub account: AccountId,
    pub ips: Vec<String>,
    pub remark: String,
    /// The caller's own id for the request (`reference`), if it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    pub status: Status,
    pub requested_by: String,
    pub requested_from: String,
    pub user_agent: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub decided_by: Option<String>,
    pub decided_from: Option<String>,
    pub decided_at: Option<Timestamp>,
    /// How long the entries an approval adds stay (seconds from the
    /// approval); absent: until removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_for_secs: Option<u64>,
    /// How many different account emails must approve it (the account's
    /// `approvals_required` when it was made; 1 is not stored).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub approvals_required: u8,
    /// The approvals counted so far when more than one is needed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvals: Vec<crate::store::quorum::Approval>,
    /// The ids of the entries its approval added.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub added: Vec<String>,
    /// Set once someone said its approval was not theirs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disowned: Option<crate::store::disown::Disowned>,
}

fn one() -> u8 {
    1
}

fn is_one(n: &u8) -> bool {
    *n == 1
}

impl IpRequest {
    /// A new pending request with id `id`, made at `now`.
    pub fn new(id: String, new: &NewRequest, now: Timestamp) -> IpRequest {
        IpRequest {
            id,
            account: new.account.clone(),
            ips: new.ips.clone(),
            remark: new.remark.clone(),
            reference: new.reference.clone(),
            status: Status::Pending,
            requested_by: new.requested_by.clone(),
            requested_from: new.requested_from.clone(),
            user_agent: new.user_agent.clone(),
            created_at: now,
            expires_at: now.plus_secs(new.ttl_secs),
            decided_by: None,
            decided_from: None,
            decided_at: None,
            valid_for_secs: new.valid_for_secs,
            approvals_required: new.approvals_required.max(1),
            approvals: Vec::new(),
            added: Vec::new(),
            disowned: None,
        }
    }

    /// The entry (id `id`) its approval at `now` adds for `cidr`.
    pub fn approved_entry(&self, id: String, cidr: Cidr, now: Timestamp) -> WhitelistEntry {
        let remark = match self.remark.as_str() {
            "" => format!("request {}", self.id),
            r => format!("request {}: {r}", self.id),
        };
        WhitelistEntry {
            id,
            account: self.account.clone(),
            cidr,
            remark: remark.chars().take(200).collect(),
            tags: Vec::new(),
            source: Source::Request,
            created_at: now,
            updated_at: now,
            expires_at: self.valid_for_secs.map(|s| now.plus_secs(s)),
            reminded: 0,
        }
    }

    /// The request with its status as of now (pending past expiry: expired).
    pub fn current(mut self) -> IpRequest {
        self.status = status_at(self.status, self.expires_at, Timestamp::now());
        self
    }

    /// Its status as of now.
    pub fn current_status(&self) -> Status {
        status_at(self.status, self.expires_at, Timestamp::now())
    }
}

/// What a submission brings to the store.
pub struct NewRequest {
    pub account: AccountId,
    pub ips: Vec<String>,
    pub remark: String,
    /// The caller's own id for the request, if it gave one.
    pub reference: Option<String>,
    pub requested_by: String,
    pub requested_from: String,
    pub user_agent: String,
    pub ttl_secs: u64,
    /// How long the entries stay once approved; `None`: until removed.
    pub valid_for_secs: Option<u64>,
    /// How many different account emails must approve.
    pub approvals_required: u8,
    /// The account's emails: each gets its own link mail.
    pub emails: Vec<String>,
    /// The submission's `Idempotency-Key`, saved with the request; a key
    /// of the account still live refuses the request
    /// ([`StoreError::KeyUsed`]).
    pub idempotency: Option<IdempotencyKey>,
}

/// What an emailed link decides (the proxy's own `Decision`, allow or deny,
/// is another thing: `ipgate_policy::Decision`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Approve,
    Reject,
}

/// A link and its request, as the link page sees them.
#[derive(Debug, Clone)]
pub struct LinkView {
    pub link: LinkRecord,
    pub request: IpRequest,
    /// The link's address is still one of the account's emails: a link
    /// works only as long as the address it was sent to is on the account.
    pub address_current: bool,
}

/// A link's stored form, keyed by the token's hash.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LinkRecord {
    pub request: String,
    pub email: String,
}

pub(crate) fn request_key(id: &str) -> Result<[u8; 8], StoreError> {
    id.parse::<u64>()
        .map(u64::to_be_bytes)
        .map_err(|_| StoreError::NoRequest(id.to_string()))
}

/// Ends a pending request inside a transaction: status, index, links, log.
pub(super) fn end_request(
    req: &mut IpRequest,
    status: Status,
    trees: &FlowTrees,
    key: &LogKey,
    actor: &Actor,
) -> TxResult<()> {
    // Links stay (hashes only) so a later visit can say what happened;
    // they work only while their request is pending.
    let FlowTrees {
        requests,
        pending,
        seclog: log,
        ..
    } = trees;
    req.status = status;
    if let Some(p) = pending.get(req.account.as_bytes())? {
        if p.as_ref() == req.id.as_bytes() {
            pending.remove(req.account.as_bytes())?;
        }
    }
    requests.insert(&request_key(&req.id).or_else(abort)?, encode(req))?;
    let e = crate::store::events::request_ended(req, status);
    seclog::append(log, key, actor, &e)?;
    Ok(())
}

impl SledStore {
    fn next_request_id(&self) -> Result<u64, StoreError> {
        Ok(self.db.generate_id()? + 1)
    }
}

#[async_trait]
impl RequestStore for SledStore {
    /// Saves a new pending request. Refuses when one is already pending
    /// (a pending one past its expiry is first marked expired).
    async fn create_request(
        &self,
        new: NewRequest,
        actor: &Actor,
    ) -> Result<IpRequest, StoreError> {
        let now = Timestamp::now();
        let id = self.next_request_id()?.to_string();
        let req = IpRequest::new(id.clone(), &new, now);
        let key = request_key(&id)?;
        let mail_ids = self.mail_ids(new.emails.len())?;
        self.flow_transaction(|t: &FlowTrees| -> TxResult<()> {
            let FlowTrees {
                requests,
                pending,
                seclog: log,
                outbox,
                links,
                ..
            } = t;
            if let Some(k) = &new.idempotency {
                super::idempotency::claim(links, new.account.as_str(), k, &req, now)?;
            }
            if let Some(p) = pending.get(new.account.as_bytes())? {
                let old_key = request_key(&String::from_utf8_lossy(&p)).unwrap_or_default();
                if let Some(raw) = requests.get(old_key)? {
                    let mut old: IpRequest = decode(&raw).or_else(abort)?;
                    if status_at(old.status, old.expires_at, now) == Status::Pending {
                        return abort(StoreError::PendingExists);
                    }
                    end_request(
                        &mut old,
                        Status::Expired,
                        t,
                        &self.log_key,
                        &Actor::system(),
                    )?;
                }
            }
            requests.insert(&key, encode(&req))?;
            for (mail_id, email) in mail_ids.iter().zip(&new.emails) {
                enqueue(outbox, *mail_id, MailKind::Link, email, &new.account, &id)?;
            }
            pending.insert(new.account.as_bytes(), id.as_bytes())?;
            let e = crate::store::events::request_submitted(&req, &new.emails);
            seclog::append(log, &self.log_key, actor, &e)?;
            Ok(())
        })?;
        self.flush().await?;
        Ok(req)
    }

    /// One account's requests, newest first, statuses as of now.
    async fn requests(&self, account: &str) -> Result<Vec<IpRequest>, StoreError> {
        let mut out = Vec::new();
        for v in self.requests.iter().values().rev() {
            let r: IpRequest = decode(&v?)?;
            if r.account == account {
                out.push(r.current());
            }
        }
        Ok(out)
    }

    /// One request of an account.
    async fn request(&self, account: &str, id: &str) -> Result<IpRequest, StoreError> {
        let key = request_key(id)?;
        match self.requests.get(key)? {
            Some(v) => {
                let r: IpRequest = decode(&v)?;
                if r.account == account {
                    Ok(r.current())
                } else {
                    Err(StoreError::NoRequest(id.to_string()))
                }
            }
            None => Err(StoreError::NoRequest(id.to_string())),
        }
    }

    /// Cancels a pending request of `account`; its links stop working at once.
    async fn cancel_request(
        &self,
        account: &str,
        id: &str,
        actor: &Actor,
    ) -> Result<IpRequest, StoreError> {
        let key = request_key(id)?;
        let now = Timestamp::now();
        let req = self.flow_transaction(|t: &FlowTrees| -> TxResult<IpRequest> {
            let requests = t.requests;
            let Some(raw) = requests.get(key)? else {
                return abort(StoreError::NoRequest(id.to_string()));
            };
            let mut r: IpRequest = decode(&raw).or_else(abort)?;
            if r.account != account {
                return abort(StoreError::NoRequest(id.to_string()));
            }
            let status = status_at(r.status, r.expires_at, now);
            if status != Status::Pending {
                return abort(StoreError::NotPending {
                    id: id.to_string(),
                    status,
                });
            }
            r.decided_at = Some(now);
            end_request(&mut r, Status::Cancelled, t, &self.log_key, actor)?;
            Ok(r)
        })?;
        self.flush().await?;
        Ok(req)
    }

    /// Marks every pending request past its expiry as expired; returns how many.
    async fn expire_due(&self) -> Result<usize, StoreError> {
        let now = Timestamp::now();
        let mut due = Vec::new();
        for item in self.pending.iter() {
            let (_, id) = item?;
            let id = String::from_utf8_lossy(&id).to_string();
            if let Ok(key) = request_key(&id) {
                if let Some(v) = self.requests.get(key)? {
                    let r: IpRequest = decode(&v)?;
                    if r.status == Status::Pending && now >= r.expires_at {
                        due.push(key);
                    }
                }
            }
        }
        let mut n = 0;
        for key in due {
            let ended = self.flow_transaction(|t: &FlowTrees| -> TxResult<bool> {
                let requests = t.requests;
                let Some(raw) = requests.get(key)? else {
                    return Ok(false);
                };
                let mut r: IpRequest = decode(&raw).or_else(abort)?;
                if r.status != Status::Pending || now < r.expires_at {
                    return Ok(false);
                }
                end_request(&mut r, Status::Expired, t, &self.log_key, &Actor::system())?;
                Ok(true)
            })?;
            n += usize::from(ended);
        }
        if n > 0 {
            self.flush().await?;
        }
        Ok(n)
    }

    /// A link (by its token's hash) and its request, statuses as of now.
    async fn link(&self, hash: &str) -> Result<Option<LinkView>, StoreError> {
        let Some(raw) = self.links.get(hash.as_bytes())? else {
            return Ok(None);
        };
        let link: LinkRecord = decode(&raw)?;
        match self.requests.get(request_key(&link.request)?)? {
            Some(r) => {
                let request = decode::<IpRequest>(&r)?.current();
                let address_current = self
                    .read_account(request.account.as_str())?
                    .is_some_and(|a| a.has_email(&link.email));
                Ok(Some(LinkView {
                    request,
                    link,
                    address_current,
                }))
            }
            None => Ok(None),
        }
    }

    /// Decides a pending request from one of its links, in one transaction:
    /// the status (only if still pending, so of two racing decisions one
    /// wins), the new entries on approval, the end of every other link, the
    /// security-log records and an outcome notice to every account email.
    /// Run it under the publisher so the entries go live before it answers.
    async fn decide(
        &self,
        hash: &str,
        verdict: Verdict,
        actor_ip: std::net::IpAddr,
        user_agent: &str,
    ) -> Result<(IpRequest, Vec<WhitelistEntry>), StoreError> {
        let view = self.link(hash).await?.ok_or(StoreError::NoLink)?;
        let account = self
            .read_account(view.request.account.as_str())?
            .ok_or_else(|| StoreError::NoAccount(view.request.account.to_string()))?;
        // Writers are serialised by the publisher, so the account is current.
        if !account.has_email(&view.link.email) {
            return Err(StoreError::LinkAddressRemoved);
        }
        let existing: Vec<Cidr> = self
            .read_entries(account.id.as_str())?
            .into_iter()
            .map(|e| e.cidr)
            .collect();
        let mut new_entries = Vec::new();
        if verdict == Verdict::Approve {
            for ip in &view.request.ips {
                let cidr = Cidr::parse(ip).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                if existing.contains(&cidr) {
                    continue;
                }
                let id = self.next_id()?;
                new_entries.push((
                    entry_key(account.id.as_str(), id),
                    view.request
                        .approved_entry(id.to_string(), cidr, Timestamp::now()),
                ));
            }
        }
        let mail_ids = self.mail_ids(account.emails.len())?;
        let now = Timestamp::now();
        let actor = Actor {
            who: view.link.email.clone(),
            ip: Some(actor_ip),
        };
        let key = request_key(&view.request.id)?;
        let decided = self.flow_transaction(|t: &FlowTrees| -> TxResult<(IpRequest, bool)> {
            let FlowTrees {
                requests,
                links,
                seclog: log,
                outbox,
                entries,
                nets,
                ending,
                ..
            } = t;
            if links.get(hash.as_bytes())?.is_none() {
                return abort(StoreError::NoLink);
            }
            let Some(raw) = requests.get(key)? else {
                return abort(StoreError::NoLink);
            };
            let mut r: IpRequest = decode(&raw).or_else(abort)?;
            let status = status_at(r.status, r.expires_at, now);
            if status != Status::Pending {
                return abort(StoreError::NotPending {
                    id: r.id.clone(),
                    status,
                });
            }
            if verdict == Verdict::Approve {
                let email = &view.link.email;
                let step = quorum::approve(&mut r, email, &actor_ip.to_string(), now, user_agent)
                    .or_else(abort)?;
                if let quorum::Step::Counted(have) = step {
                    requests.insert(&key, encode(&r))?;
                    let e = quorum::counted(&r, email, user_agent, have);
                    seclog::append(log, &self.log_key, &actor, &e)?;
                    for (mail_id, to) in mail_ids.iter().zip(&account.emails) {
                        let job = MailJob::approval_notice(*mail_id, to, &r.account, &r.id, have);
                        outbox.insert(&mail_id.to_be_bytes(), encode(&job))?;
                    }
                    return Ok((r, false));
                }
            }
            r.decided_by = Some(view.link.email.clone());
            r.decided_from = Some(actor_ip.to_string());
            r.decided_at = Some(now);
            r.added = new_entries.iter().map(|(_, e)| e.id.clone()).collect();
            for (k, e) in &new_entries {
                entries.insert(k.as_slice(), encode(e))?;
                super::ending::add(ending, k, e)?;
                let event = crate::store::events::entry_added(e, Some(&r.id));
                seclog::append(log, &self.log_key, &actor, &event)?;
            }
            super::netindex::add(nets, r.account.as_str(), new_entries.iter().map(|(_, e)| e.cidr))?;
            let (status, event) = match verdict {
                Verdict::Approve => (Status::Approved, "link.approved"),
                Verdict::Reject => (Status::Rejected, "link.rejected"),
            };
            let e = Event {
                event,
                account: Some(r.account.as_str()),
                details: json!({"request": r.id, "email": view.link.email, "user_agent": user_agent}),
            };
            seclog::append(log, &self.log_key, &actor, &e)?;
            end_request(&mut r, status, t, &self.log_key, &actor)?;
            for (mail_id, email) in mail_ids.iter().zip(&account.emails) {
                enqueue(outbox, *mail_id, MailKind::Notice, email, &r.account, &r.id)?;
            }
            Ok((r, true))
        })?;
        self.flush().await?;
        let (decided, ended) = decided;
        if !ended {
            return Ok((decided, Vec::new()));
        }
        if verdict == Verdict::Approve {
            self.touched(Touch::Account(decided.account.to_string()));
        }
        Ok((decided, new_entries.into_iter().map(|(_, e)| e).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Requests as the code before `Timestamp` wrote them: `expires_at`
    /// and `expires_unix` side by side. They read with the same times and
    /// are written back without the seconds, the rest unchanged.
    #[test]
    fn requests_stored_with_expiry_seconds_still_read() {
        let pending = r#"{"id":"5","account":"acme","ips":["203.0.113.10","198.51.100.7"],"remark":"prod","status":"pending","requested_by":"alice","requested_from":"192.0.2.1","user_agent":"curl/8","created_at":"2026-01-01T00:00:00Z","expires_at":"2026-01-02T00:00:00Z","expires_unix":1767312000,"decided_by":null,"decided_from":null,"decided_at":null}"#;
        let r: IpRequest = decode(pending.as_bytes()).unwrap();
        assert_eq!(r.account, "acme");
        assert_eq!(r.ips, ["203.0.113.10", "198.51.100.7"]);
        assert_eq!(r.created_at, Timestamp::from_unix(1_767_225_600));
        assert_eq!(r.expires_at, Timestamp::from_unix(1_767_312_000));
        assert_eq!(r.decided_at, None);
        assert_eq!(
            String::from_utf8(encode(&r)).unwrap(),
            pending.replace(r#""expires_unix":1767312000,"#, "")
        );
        // Long expired by now, so current() reads it as expired.
        assert_eq!(r.current().status, Status::Expired);

        let decided = r#"{"id":"6","account":"acme","ips":["203.0.113.11"],"remark":"","status":"approved","requested_by":"alice","requested_from":"192.0.2.1","user_agent":"Mozilla/5.0","created_at":"2026-01-01T00:00:00Z","expires_at":"2026-01-02T00:00:00Z","expires_unix":1767312000,"decided_by":"ops@acme.test","decided_from":"198.51.100.9","decided_at":"2026-01-01T00:05:00Z"}"#;
        let r: IpRequest = decode(decided.as_bytes()).unwrap();
        assert_eq!(r.decided_at, Some(Timestamp::from_unix(1_767_225_900)));
        assert_eq!(r.current().status, Status::Approved);
    }

    #[test]
    fn a_request_of_a_malformed_account_or_time_is_corrupt() {
        let good = r#"{"id":"5","account":"acme","ips":[],"remark":"","status":"pending","requested_by":"a","requested_from":"192.0.2.1","user_agent":"","created_at":"2026-01-01T00:00:00Z","expires_at":"2026-01-02T00:00:00Z","decided_by":null,"decided_from":null,"decided_at":null}"#;
        assert!(decode::<IpRequest>(good.as_bytes()).is_ok());
        for bad in [
            good.replace(r#""account":"acme""#, r#""account":"ac/me""#),
            good.replace("2026-01-02T00:00:00Z", "tomorrow"),
        ] {
            assert!(matches!(
                decode::<IpRequest>(bad.as_bytes()),
                Err(StoreError::Corrupt(_))
            ));
        }
    }
}
