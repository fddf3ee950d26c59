//! "This wasn't me" links in the sled store (`store::disown`): kept in the
//! links tree under their own prefix, used once in one transaction with
//! everything the report changes.

use super::entries::take_entry;
use super::flow_trees::FlowTrees;
use super::requests::{end_request, request_key, IpRequest, LinkRecord};
use super::{abort, decode, encode, entry_key, SledStore, StoreError, Touch, TxResult};
use crate::domain::flow::Status;
use crate::domain::model::{Account, WhitelistEntry};
use crate::domain::Timestamp;
use crate::seclog::{self, Actor};
use crate::store::disown::{self, Disowned};
use crate::store::{DisownStore, MailJob, MailKind};
use async_trait::async_trait;

#[async_trait]
impl DisownStore for SledStore {
    async fn disown_link(&self, hash: &str) -> Result<Option<(LinkRecord, IpRequest)>, StoreError> {
        let Some(raw) = self.links.get(disown::link_key(hash).as_bytes())? else {
            return Ok(None);
        };
        let link: LinkRecord = decode(&raw)?;
        let Some(r) = self.requests.get(request_key(&link.request)?)? else {
            return Ok(None);
        };
        Ok(Some((link, decode::<IpRequest>(&r)?.current())))
    }

    async fn disown(
        &self,
        hash: &str,
        ip: std::net::IpAddr,
        user_agent: &str,
    ) -> Result<(IpRequest, Vec<WhitelistEntry>), StoreError> {
        let (link, r) = self.disown_link(hash).await?.ok_or(StoreError::NoLink)?;
        let account = self
            .read_account(r.account.as_str())?
            .ok_or_else(|| StoreError::NoAccount(r.account.to_string()))?;
        let mail_ids = self.mail_ids(account.emails.len())?;
        let key = disown::link_key(hash);
        let now = Timestamp::now();
        let actor = Actor {
            who: link.email.clone(),
            ip: Some(ip),
        };
        let done = self.flow_transaction(|t: &FlowTrees| -> TxResult<_> {
            if t.links.remove(key.as_bytes())?.is_none() {
                return abort(StoreError::NoLink);
            }
            let rkey = request_key(&link.request).or_else(abort)?;
            let Some(raw) = t.requests.get(rkey)? else {
                return abort(StoreError::NoLink);
            };
            let mut r: IpRequest = decode(&raw).or_else(abort)?;
            if let Some(d) = &r.disowned {
                return abort(StoreError::AlreadyDisowned(d.email.clone()));
            }
            let acct = r.account.to_string();
            let mut removed = Vec::new();
            let cancelled = r.current_status() == Status::Pending;
            if cancelled {
                end_request(&mut r, Status::Cancelled, t, &self.log_key, &actor)?;
            } else if r.status == Status::Approved {
                for id in &r.added {
                    let Ok(n) = id.parse::<u64>() else { continue };
                    let ek = entry_key(&acct, n);
                    let Some(e) = take_entry(t.entries, t.nets, t.ending, &acct, &ek)? else {
                        continue;
                    };
                    let event = disown::entry_removed(&e, &r.id);
                    seclog::append(t.seclog, &self.log_key, &actor, &event)?;
                    removed.push(e);
                }
            }
            r.disowned = Some(Disowned {
                email: link.email.clone(),
                from: ip.to_string(),
                at: now,
            });
            t.requests.insert(&rkey, encode(&r))?;
            if let Some(raw) = t.accounts.get(acct.as_bytes())? {
                let mut a: Account = decode(&raw).or_else(abort)?;
                a.frozen = true;
                t.accounts.insert(acct.as_bytes(), encode(&a))?;
            }
            seclog::append(
                t.seclog,
                &self.log_key,
                &actor,
                &disown::event(&r, &removed, cancelled, user_agent),
            )?;
            for (mail_id, to) in mail_ids.iter().zip(&account.emails) {
                let job = MailJob::queued(*mail_id, MailKind::Disowned, to, &r.account, &r.id);
                t.outbox.insert(&mail_id.to_be_bytes(), encode(&job))?;
            }
            Ok((r, removed))
        })?;
        self.flush().await?;
        self.touched(Touch::Account(done.0.account.to_string()));
        Ok(done)
    }
}
