//! Accounts' whitelist entries, and the network index kept beside them.

use super::{
    abort, account_prefix, decode, encode, entry_key, flatten, netindex, SledStore, StoreError,
    Touch, TxResult,
};
use crate::domain::model::WhitelistEntry;
use crate::domain::{Cidr, Timestamp};
use crate::seclog::{self, Actor, Event};
use crate::store::{events, AccountNets, EntryStore, MailJob};
use async_trait::async_trait;
use serde_json::json;
use sled::transaction::{Transactional, TransactionalTree};

impl SledStore {
    pub(crate) fn read_entries(&self, account: &str) -> Result<Vec<WhitelistEntry>, StoreError> {
        self.entries
            .scan_prefix(account_prefix(account))
            .values()
            .map(|v| decode(&v?))
            .collect()
    }

    /// The account and network of every entry, in account order, for
    /// building the network index. Only those two fields are decoded,
    /// borrowed from the stored bytes.
    pub(crate) fn for_each_entry_network(
        &self,
        mut f: impl FnMut(&str, &str),
    ) -> Result<(), StoreError> {
        #[derive(serde::Deserialize)]
        struct Network<'a> {
            #[serde(borrow)]
            account: std::borrow::Cow<'a, str>,
            #[serde(borrow)]
            cidr: std::borrow::Cow<'a, str>,
        }
        for v in self.entries.iter().values() {
            let v = v?;
            let n: Network =
                serde_json::from_slice(&v).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            f(&n.account, &n.cidr);
        }
        Ok(())
    }
}

/// Takes the entry under `key` of `account` out of the entries and both
/// of their indexes, inside a transaction; `None` when there is none.
pub(super) fn take_entry(
    entries: &TransactionalTree,
    nets: &TransactionalTree,
    ending: &TransactionalTree,
    account: &str,
    key: &[u8],
) -> TxResult<Option<WhitelistEntry>> {
    let Some(v) = entries.remove(key)? else {
        return Ok(None);
    };
    let e: WhitelistEntry = decode(&v).or_else(abort)?;
    netindex::remove(nets, account, e.cidr)?;
    super::ending::remove(ending, key, &e)?;
    Ok(Some(e))
}

impl SledStore {
    /// Runs `f` as one transaction over the entries, the security log and
    /// the entries' two indexes (networks, ends).
    fn entry_change<T>(
        &self,
        f: impl Fn(
            &TransactionalTree,
            &TransactionalTree,
            &TransactionalTree,
            &TransactionalTree,
        ) -> TxResult<T>,
    ) -> Result<T, StoreError> {
        flatten(
            (&self.entries, &self.seclog, &self.nets, &self.ending)
                .transaction(|(entries, log, nets, ending)| f(entries, log, nets, ending)),
        )
    }
}

#[async_trait]
impl EntryStore for SledStore {
    async fn for_each_account_policy(
        &self,
        f: &mut (dyn for<'a> FnMut(AccountNets<'a>) + Send),
    ) -> Result<(), StoreError> {
        self.account_policies(f)
    }

    async fn entries_ending_by(&self, until: Timestamp) -> Result<Vec<WhitelistEntry>, StoreError> {
        SledStore::entries_ending_by(self, until)
    }

    async fn expire_entry(
        &self,
        account: &str,
        id: &str,
        now: Timestamp,
    ) -> Result<Option<WhitelistEntry>, StoreError> {
        let Ok(n) = id.parse::<u64>() else {
            return Ok(None);
        };
        let key = entry_key(account, n);
        let removed = self.entry_change(|tx, log, nets, ending| {
            let Some(v) = tx.get(key.as_slice())? else {
                return Ok(None);
            };
            if !decode::<WhitelistEntry>(&v).or_else(abort)?.ended(now) {
                return Ok(None);
            }
            let e = take_entry(tx, nets, ending, account, &key)?;
            if let Some(e) = &e {
                seclog::append(
                    log,
                    &self.log_key,
                    &Actor::system(),
                    &events::entry_expired(e),
                )?;
            }
            Ok(e)
        })?;
        if removed.is_some() {
            self.flush().await?;
            self.touched(Touch::Account(account.to_string()));
        }
        Ok(removed)
    }

    async fn remind_entry(
        &self,
        account: &str,
        id: &str,
        stage: u8,
        mail: bool,
    ) -> Result<bool, StoreError> {
        let Ok(n) = id.parse::<u64>() else {
            return Ok(false);
        };
        let Some(acct) = self.read_account(account)? else {
            return Ok(false);
        };
        let emails = if mail {
            acct.emails.clone()
        } else {
            Vec::new()
        };
        let mail_ids = self.mail_ids(emails.len())?;
        let key = entry_key(account, n);
        let reminded = flatten((&self.entries, &self.seclog, &self.outbox).transaction(
            |(tx, log, outbox): &(TransactionalTree, TransactionalTree, TransactionalTree)| {
                let Some(v) = tx.get(key.as_slice())? else {
                    return Ok(false);
                };
                let mut e: WhitelistEntry = decode(&v).or_else(abort)?;
                if e.reminded >= stage {
                    return Ok(false);
                }
                e.reminded = stage;
                tx.insert(key.as_slice(), encode(&e))?;
                for (mail_id, email) in mail_ids.iter().zip(&emails) {
                    let job = MailJob::reminder(*mail_id, email, &acct.id, &e.id);
                    outbox.insert(&mail_id.to_be_bytes(), encode(&job))?;
                }
                if !emails.is_empty() {
                    let event = events::entry_reminder(&e, emails.len());
                    seclog::append(log, &self.log_key, &Actor::system(), &event)?;
                }
                Ok(true)
            },
        ))?;
        if reminded {
            self.flush().await?;
        }
        Ok(reminded)
    }

    /// An account's whitelist entries, oldest first.
    async fn entries(&self, account: &str) -> Result<Vec<WhitelistEntry>, StoreError> {
        self.read_entries(account)
    }

    /// Adds entries to an account in one transaction. Refuses the whole
    /// batch if the account is missing or any network is already on it.
    async fn add_entries(
        &self,
        account: &str,
        new: Vec<WhitelistEntry>,
        actor: &Actor,
    ) -> Result<Vec<WhitelistEntry>, StoreError> {
        let mut keyed = Vec::with_capacity(new.len());
        for mut e in new {
            let id = self.next_id()?;
            e.id = id.to_string();
            keyed.push((entry_key(account, id), e));
        }
        let existing: Vec<Cidr> = self
            .entries(account)
            .await?
            .into_iter()
            .map(|e| e.cidr)
            .collect();
        let trees = (
            &self.accounts,
            &self.entries,
            &self.seclog,
            &self.nets,
            &self.ending,
        );
        flatten(trees.transaction(
            |(accounts, entries, log, nets, ending): &(
                TransactionalTree,
                TransactionalTree,
                TransactionalTree,
                TransactionalTree,
                TransactionalTree,
            )| {
                if accounts.get(account.as_bytes())?.is_none() {
                    return abort(StoreError::NoAccount(account.to_string()));
                }
                for (key, e) in &keyed {
                    if existing.contains(&e.cidr) {
                        return abort(StoreError::Duplicate(e.cidr.to_string()));
                    }
                    entries.insert(key.as_slice(), encode(e))?;
                    super::ending::add(ending, key, e)?;
                    seclog::append(log, &self.log_key, actor, &events::entry_added(e, None))?;
                }
                netindex::add(nets, account, keyed.iter().map(|(_, e)| e.cidr))?;
                Ok(())
            },
        ))?;
        self.flush().await?;
        self.touched(Touch::Account(account.to_string()));
        Ok(keyed.into_iter().map(|(_, e)| e).collect())
    }

    async fn remove_entry(
        &self,
        account: &str,
        id: &str,
        actor: &Actor,
    ) -> Result<WhitelistEntry, StoreError> {
        let n: u64 = id
            .parse()
            .map_err(|_| StoreError::NoEntry(id.to_string()))?;
        let key = entry_key(account, n);
        let removed = self.entry_change(|tx, log, nets, ending| {
            let Some(e) = take_entry(tx, nets, ending, account, &key)? else {
                return abort(StoreError::NoEntry(id.to_string()));
            };
            let event = Event {
                event: "whitelist.removed",
                account: Some(account),
                details: json!({"entry": e.id, "cidr": e.cidr}),
            };
            seclog::append(log, &self.log_key, actor, &event)?;
            Ok(e)
        })?;
        self.flush().await?;
        self.touched(Touch::Account(account.to_string()));
        Ok(removed)
    }
}
