//! Self-service requests in the store: create (with one link per account
//! email, only hashes kept), list, cancel, and expiry. Every transition is
//! one transaction with its security-log record, flushed before returning.

use super::{abort, decode, encode, flatten, Store, StoreError, TxResult};
use crate::flow::{status_at, Status};
use crate::model::{rfc3339, unix_now};
use crate::seclog::{self, Actor, Event};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sled::transaction::{Transactional, TransactionalTree};

/// The trees a request's transitions touch: requests, links, pending, security log.
type FlowTrees = (
    TransactionalTree,
    TransactionalTree,
    TransactionalTree,
    TransactionalTree,
);

/// A request as stored and shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpRequest {
    pub id: String,
    pub account: String,
    pub ips: Vec<String>,
    pub remark: String,
    pub status: Status,
    pub requested_by: String,
    pub requested_from: String,
    pub user_agent: String,
    pub created_at: String,
    pub expires_at: String,
    pub expires_unix: u64,
    pub decided_by: Option<String>,
    pub decided_from: Option<String>,
    pub decided_at: Option<String>,
    /// Hashes of this request's links (never the links themselves).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub link_hashes: Vec<String>,
}

impl IpRequest {
    /// The request with its status as of now (pending past expiry: expired).
    pub fn current(mut self) -> IpRequest {
        self.status = status_at(self.status, self.expires_unix, unix_now());
        self
    }
}

/// What a submission brings to the store.
pub struct NewRequest {
    pub account: String,
    pub ips: Vec<String>,
    pub remark: String,
    pub requested_by: String,
    pub requested_from: String,
    pub user_agent: String,
    pub ttl_secs: u64,
    /// (token hash, email) per account email.
    pub links: Vec<(String, String)>,
}

/// A link's stored form, keyed by the token's hash.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LinkRecord {
    pub request: String,
    pub email: String,
}

fn request_key(id: &str) -> Result<[u8; 8], StoreError> {
    id.parse::<u64>()
        .map(u64::to_be_bytes)
        .map_err(|_| StoreError::NoRequest(id.to_string()))
}

/// Ends a pending request inside a transaction: status, index, links, log.
fn end_request(
    req: &mut IpRequest,
    status: Status,
    trees: &FlowTrees,
    actor: &Actor,
) -> TxResult<()> {
    let (requests, links, pending, log) = trees;
    req.status = status;
    for h in &req.link_hashes {
        links.remove(h.as_bytes())?;
    }
    if let Some(p) = pending.get(req.account.as_bytes())? {
        if p.as_ref() == req.id.as_bytes() {
            pending.remove(req.account.as_bytes())?;
        }
    }
    requests.insert(&request_key(&req.id).or_else(abort)?, encode(req))?;
    let event = match status {
        Status::Cancelled => "request.cancelled",
        Status::Expired => "request.expired",
        Status::Approved => "request.approved",
        Status::Rejected => "request.rejected",
        Status::Pending => "request.pending",
    };
    let e = Event {
        event,
        account: Some(&req.account),
        details: json!({"request": req.id}),
    };
    seclog::append(log, actor, &e)?;
    Ok(())
}

impl Store {
    fn next_request_id(&self) -> Result<u64, StoreError> {
        Ok(self.db.generate_id()? + 1)
    }

    /// Saves a new pending request. Refuses when one is already pending
    /// (a pending one past its expiry is first marked expired).
    pub async fn create_request(
        &self,
        new: NewRequest,
        actor: &Actor,
    ) -> Result<IpRequest, StoreError> {
        let now = unix_now();
        let id = self.next_request_id()?.to_string();
        let req = IpRequest {
            id: id.clone(),
            account: new.account.clone(),
            ips: new.ips.clone(),
            remark: new.remark.clone(),
            status: Status::Pending,
            requested_by: new.requested_by.clone(),
            requested_from: new.requested_from.clone(),
            user_agent: new.user_agent.clone(),
            created_at: rfc3339(now),
            expires_at: rfc3339(now + new.ttl_secs),
            expires_unix: now + new.ttl_secs,
            decided_by: None,
            decided_from: None,
            decided_at: None,
            link_hashes: new.links.iter().map(|(h, _)| h.clone()).collect(),
        };
        let key = request_key(&id)?;
        flatten((&self.requests, &self.links, &self.pending, &self.seclog).transaction(
            |t: &FlowTrees| -> TxResult<()> {
                let (requests, links, pending, log) = t;
                if let Some(p) = pending.get(new.account.as_bytes())? {
                    let old_key = request_key(&String::from_utf8_lossy(&p)).unwrap_or_default();
                    if let Some(raw) = requests.get(old_key)? {
                        let mut old: IpRequest = decode(&raw).or_else(abort)?;
                        if status_at(old.status, old.expires_unix, now) == Status::Pending {
                            return abort(StoreError::PendingExists);
                        }
                        end_request(&mut old, Status::Expired, t, &Actor::system())?;
                    }
                }
                requests.insert(&key, encode(&req))?;
                for (hash, email) in &new.links {
                    links.insert(hash.as_bytes(), encode(&LinkRecord { request: id.clone(), email: email.clone() }))?;
                }
                pending.insert(new.account.as_bytes(), id.as_bytes())?;
                let e = Event {
                    event: "request.submitted",
                    account: Some(&new.account),
                    details: json!({
                        "request": id, "ips": req.ips, "remark": req.remark, "user_agent": req.user_agent,
                        "emails": new.links.iter().map(|(_, e)| e).collect::<Vec<_>>(), "expires_at": req.expires_at,
                    }),
                };
                seclog::append(log, actor, &e)?;
                Ok(())
            },
        ))?;
        self.flush().await?;
        Ok(req)
    }

    /// One account's requests, newest first, statuses as of now.
    pub fn requests(&self, account: &str) -> Result<Vec<IpRequest>, StoreError> {
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
    pub fn request(&self, account: &str, id: &str) -> Result<IpRequest, StoreError> {
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
    pub async fn cancel_request(
        &self,
        account: &str,
        id: &str,
        actor: &Actor,
    ) -> Result<IpRequest, StoreError> {
        let key = request_key(id)?;
        let now = unix_now();
        let req = flatten(
            (&self.requests, &self.links, &self.pending, &self.seclog).transaction(
                |t: &FlowTrees| -> TxResult<IpRequest> {
                    let requests = &t.0;
                    let Some(raw) = requests.get(key)? else {
                        return abort(StoreError::NoRequest(id.to_string()));
                    };
                    let mut r: IpRequest = decode(&raw).or_else(abort)?;
                    if r.account != account {
                        return abort(StoreError::NoRequest(id.to_string()));
                    }
                    let status = status_at(r.status, r.expires_unix, now);
                    if status != Status::Pending {
                        return abort(StoreError::NotPending {
                            id: id.to_string(),
                            status,
                        });
                    }
                    r.decided_at = Some(rfc3339(now));
                    end_request(&mut r, Status::Cancelled, t, actor)?;
                    Ok(r)
                },
            ),
        )?;
        self.flush().await?;
        Ok(req)
    }

    /// Marks every pending request past its expiry as expired; returns how many.
    pub async fn expire_due(&self) -> Result<usize, StoreError> {
        let now = unix_now();
        let mut due = Vec::new();
        for item in self.pending.iter() {
            let (_, id) = item?;
            let id = String::from_utf8_lossy(&id).to_string();
            if let Ok(key) = request_key(&id) {
                if let Some(v) = self.requests.get(key)? {
                    let r: IpRequest = decode(&v)?;
                    if r.status == Status::Pending && now >= r.expires_unix {
                        due.push(key);
                    }
                }
            }
        }
        let mut n = 0;
        for key in due {
            let ended = flatten(
                (&self.requests, &self.links, &self.pending, &self.seclog).transaction(
                    |t: &FlowTrees| -> TxResult<bool> {
                        let requests = &t.0;
                        let Some(raw) = requests.get(key)? else {
                            return Ok(false);
                        };
                        let mut r: IpRequest = decode(&raw).or_else(abort)?;
                        if r.status != Status::Pending || now < r.expires_unix {
                            return Ok(false);
                        }
                        end_request(&mut r, Status::Expired, t, &Actor::system())?;
                        Ok(true)
                    },
                ),
            )?;
            n += usize::from(ended);
        }
        if n > 0 {
            self.flush().await?;
        }
        Ok(n)
    }
}
