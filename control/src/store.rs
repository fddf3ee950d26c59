//! The sled store: typed methods over four trees. Every change is one
//! multi-tree transaction, flushed to disk before the method returns, so a
//! caller that answers after it never answers for a change a crash can lose.

use crate::model::{Account, BlockEntry, WhitelistEntry};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sled::transaction::{
    ConflictableTransactionError, TransactionError, Transactional, TransactionalTree,
};
use sled::{Db, Tree};
use std::path::Path;

/// Why the store refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the store at {path} cannot be opened")]
    Open { path: String, source: sled::Error },
    #[error("the store failed: {0}")]
    Sled(#[from] sled::Error),
    #[error("a stored record is corrupt: {0}")]
    Corrupt(String),
    #[error("account `{0}` does not exist")]
    NoAccount(String),
    #[error("account `{0}` already exists")]
    AccountExists(String),
    #[error("entry `{0}` does not exist")]
    NoEntry(String),
    #[error("{0} is already on this list")]
    Duplicate(String),
}

type TxResult<T> = Result<T, ConflictableTransactionError<StoreError>>;

fn abort<T>(e: StoreError) -> TxResult<T> {
    Err(ConflictableTransactionError::Abort(e))
}

fn flatten<T>(r: Result<T, TransactionError<StoreError>>) -> Result<T, StoreError> {
    r.map_err(|e| match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => StoreError::Sled(e),
    })
}

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    // Serialising these plain structs to JSON cannot fail.
    serde_json::to_vec(v).unwrap_or_default()
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn entry_key(account: &str, id: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(account.len() + 9);
    k.extend_from_slice(account.as_bytes());
    k.push(0);
    k.extend_from_slice(&id.to_be_bytes());
    k
}

fn account_prefix(account: &str) -> Vec<u8> {
    let mut k = account.as_bytes().to_vec();
    k.push(0);
    k
}

/// The opened store.
#[derive(Clone)]
pub struct Store {
    db: Db,
    accounts: Tree,
    entries: Tree,
    blocklist: Tree,
}

impl Store {
    /// Opens (or creates) the store at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let db = sled::Config::new()
            .path(path)
            .open()
            .map_err(|source| StoreError::Open {
                path: path.display().to_string(),
                source,
            })?;
        Ok(Store {
            accounts: db.open_tree("accounts")?,
            entries: db.open_tree("entries")?,
            blocklist: db.open_tree("blocklist")?,
            db,
        })
    }

    async fn flush(&self) -> Result<(), StoreError> {
        self.db.flush_async().await?;
        Ok(())
    }

    fn next_id(&self) -> Result<u64, StoreError> {
        Ok(self.db.generate_id()? + 1)
    }

    pub fn account(&self, id: &str) -> Result<Option<Account>, StoreError> {
        self.accounts.get(id)?.map(|v| decode(&v)).transpose()
    }

    pub fn accounts(&self) -> Result<Vec<Account>, StoreError> {
        self.accounts.iter().values().map(|v| decode(&v?)).collect()
    }

    pub async fn create_account(&self, account: Account) -> Result<Account, StoreError> {
        let key = account.id.clone();
        let value = encode(&account);
        flatten(self.accounts.transaction(|tx| {
            if tx.get(key.as_bytes())?.is_some() {
                return abort(StoreError::AccountExists(key.clone()));
            }
            tx.insert(key.as_bytes(), value.as_slice())?;
            Ok(())
        }))?;
        self.flush().await?;
        Ok(account)
    }

    /// Replaces an existing account with `f(old)`.
    pub async fn update_account(
        &self,
        id: &str,
        f: impl Fn(Account) -> Account,
    ) -> Result<Account, StoreError> {
        let updated = flatten(self.accounts.transaction(|tx| {
            let Some(old) = tx.get(id.as_bytes())? else {
                return abort(StoreError::NoAccount(id.to_string()));
            };
            let old: Account = match decode(&old) {
                Ok(a) => a,
                Err(e) => return abort(e),
            };
            let new = f(old);
            tx.insert(id.as_bytes(), encode(&new))?;
            Ok(new)
        }))?;
        self.flush().await?;
        Ok(updated)
    }

    /// An account's whitelist entries, oldest first.
    pub fn entries(&self, account: &str) -> Result<Vec<WhitelistEntry>, StoreError> {
        self.entries
            .scan_prefix(account_prefix(account))
            .values()
            .map(|v| decode(&v?))
            .collect()
    }

    /// Every account's entries, for building the table at start.
    pub fn all_entries(&self) -> impl Iterator<Item = Result<WhitelistEntry, StoreError>> + '_ {
        self.entries
            .iter()
            .values()
            .map(|v| v.map_err(StoreError::from).and_then(|v| decode(&v)))
    }

    /// Adds entries to an account in one transaction. Refuses the whole
    /// batch if the account is missing or any network is already on it.
    pub async fn add_entries(
        &self,
        account: &str,
        new: Vec<WhitelistEntry>,
    ) -> Result<Vec<WhitelistEntry>, StoreError> {
        let mut keyed = Vec::with_capacity(new.len());
        for mut e in new {
            let id = self.next_id()?;
            e.id = id.to_string();
            keyed.push((entry_key(account, id), e));
        }
        let existing: Vec<String> = self.entries(account)?.into_iter().map(|e| e.cidr).collect();
        flatten((&self.accounts, &self.entries).transaction(
            |(accounts, entries): &(TransactionalTree, TransactionalTree)| {
                if accounts.get(account.as_bytes())?.is_none() {
                    return abort(StoreError::NoAccount(account.to_string()));
                }
                for (key, e) in &keyed {
                    if existing.contains(&e.cidr) {
                        return abort(StoreError::Duplicate(e.cidr.clone()));
                    }
                    entries.insert(key.as_slice(), encode(e))?;
                }
                Ok(())
            },
        ))?;
        self.flush().await?;
        Ok(keyed.into_iter().map(|(_, e)| e).collect())
    }

    pub async fn remove_entry(
        &self,
        account: &str,
        id: &str,
    ) -> Result<WhitelistEntry, StoreError> {
        let n: u64 = id
            .parse()
            .map_err(|_| StoreError::NoEntry(id.to_string()))?;
        let key = entry_key(account, n);
        let removed = flatten(
            self.entries
                .transaction(|tx| match tx.remove(key.as_slice())? {
                    Some(v) => decode(&v).or_else(abort),
                    None => abort(StoreError::NoEntry(id.to_string())),
                }),
        )?;
        self.flush().await?;
        Ok(removed)
    }

    pub fn blocklist(&self) -> Result<Vec<BlockEntry>, StoreError> {
        self.blocklist
            .iter()
            .values()
            .map(|v| decode(&v?))
            .collect()
    }

    pub async fn add_block(&self, mut entry: BlockEntry) -> Result<BlockEntry, StoreError> {
        let id = self.next_id()?;
        entry.id = id.to_string();
        let existing = self.blocklist()?;
        if existing.iter().any(|b| b.cidr == entry.cidr) {
            return Err(StoreError::Duplicate(entry.cidr));
        }
        let value = encode(&entry);
        flatten(self.blocklist.transaction(|tx| {
            tx.insert(&id.to_be_bytes(), value.as_slice())?;
            Ok(())
        }))?;
        self.flush().await?;
        Ok(entry)
    }

    pub async fn remove_block(&self, id: &str) -> Result<BlockEntry, StoreError> {
        let n: u64 = id
            .parse()
            .map_err(|_| StoreError::NoEntry(id.to_string()))?;
        let removed = flatten(self.blocklist.transaction(
            |tx| match tx.remove(&n.to_be_bytes())? {
                Some(v) => decode(&v).or_else(abort),
                None => abort(StoreError::NoEntry(id.to_string())),
            },
        ))?;
        self.flush().await?;
        Ok(removed)
    }
}

#[cfg(test)]
mod tests;
