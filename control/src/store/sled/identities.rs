//! Account identities and secret keys. An identity is a name the upstream
//! knows an account by; a key is kept only as its SHA-256. Four trees:
//! `identities` and `keys` hold the records under `account \0 id`;
//! `names` maps every account id and identity, folded to lower case, to
//! its owner, so "is this name free?" is one lookup inside the
//! transaction; `key_hashes` maps each hash to its owner the same way.
//! Every change is one transaction with its security-log record.
//!
//! A store without the `names` index (made by an older ipgate) gets it
//! built from its accounts when it is opened; `meta` says when it is done.

use super::{
    abort, account_prefix, decode, encode, entry_key, flatten, SledStore, StoreError, Touch,
    TxResult,
};
use crate::domain::model::{Identity, SecretKey};
use crate::seclog::{self, Actor, Event};
use crate::store::IdentityStore;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sled::transaction::{Transactional, TransactionalTree};

/// The `meta` key saying the `names` index is complete, and its version.
const READY: &[u8] = b"names-index";
const VERSION: &[u8] = b"1";

/// Who holds a name or a key hash: an account itself (its id), or one of
/// its identities or keys (`id`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Owner {
    account: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<String>,
}

impl Owner {
    /// What the holder is, for a refusal: "the id of account `acme`".
    fn describe(&self) -> String {
        match self.id {
            None => format!("the id of account `{}`", self.account),
            Some(_) => format!("an identity of account `{}`", self.account),
        }
    }
}

/// A name as the `names` index keys it.
pub(crate) fn folded(name: &str) -> Vec<u8> {
    name.to_ascii_lowercase().into_bytes()
}

fn owner_of(tx: &TransactionalTree, key: &[u8]) -> TxResult<Option<Owner>> {
    match tx.get(key)? {
        Some(v) => Ok(Some(decode(&v).or_else(abort)?)),
        None => Ok(None),
    }
}

/// In a transaction: claims `id` for a new account in the `names` index,
/// refusing an id that an account or identity already holds (case
/// ignored).
pub(crate) fn claim_account_id(names: &TransactionalTree, id: &str) -> TxResult<()> {
    let key = folded(id);
    if let Some(owner) = owner_of(names, &key)? {
        return abort(StoreError::IdTaken {
            id: id.to_string(),
            owner: owner.describe(),
        });
    }
    let owner = Owner {
        account: id.to_string(),
        id: None,
    };
    names.insert(key, encode(&owner))?;
    Ok(())
}

/// Parses 64 hex digits (either case) into a hash.
pub fn parse_sha256(hex: &str) -> Option<[u8; 32]> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 || !bytes.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        *o = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(out)
}

impl SledStore {
    /// Indexes every account id (and identity) unless the index is
    /// complete. Runs at open, before anything else can write.
    pub(crate) fn ensure_name_index(&self) -> Result<(), StoreError> {
        if self.meta.get(READY)?.as_deref() == Some(VERSION) {
            return Ok(());
        }
        tracing::info!("indexing the store's account ids and identities (once)");
        self.names.clear()?;
        for a in self.read_accounts()? {
            let owner = Owner {
                account: a.id.to_string(),
                id: None,
            };
            self.names.insert(folded(a.id.as_str()), encode(&owner))?;
        }
        for v in self.identities.iter().values() {
            let i: Identity = decode(&v?)?;
            let owner = Owner {
                account: i.account.into(),
                id: Some(i.id),
            };
            self.names.insert(folded(&i.value), encode(&owner))?;
        }
        self.meta.insert(READY, VERSION)?;
        self.db.flush()?;
        Ok(())
    }

    /// Drops the `names` index, as a store made before it existed would be.
    #[cfg(test)]
    pub(crate) fn forget_name_index(&self) -> Result<(), StoreError> {
        forget_names(self)
    }
}

/// Drops the `names` index and marks it unbuilt: the next open builds it.
pub(crate) fn forget_names(store: &SledStore) -> Result<(), StoreError> {
    store.meta.remove(READY)?;
    store.names.clear()?;
    Ok(())
}

/// What the `key_hashes` index holds for `key`'s hash: its owner.
pub(crate) fn key_owner_record(key: &SecretKey) -> Vec<u8> {
    encode(&Owner {
        account: key.account.to_string(),
        id: Some(key.id.clone()),
    })
}

#[async_trait]
impl IdentityStore for SledStore {
    /// An account's identities, oldest first.
    async fn identities(&self, account: &str) -> Result<Vec<Identity>, StoreError> {
        scan(&self.identities, Some(account))
    }

    /// Every identity of every account.
    async fn all_identities(&self) -> Result<Vec<Identity>, StoreError> {
        scan(&self.identities, None)
    }

    async fn identity(&self, account: &str, id: &str) -> Result<Option<Identity>, StoreError> {
        get(&self.identities, account, id)
    }

    /// The account an identity value (case ignored) names, if it is an
    /// identity (not an account id).
    async fn identity_owner(&self, value: &str) -> Result<Option<String>, StoreError> {
        match self.names.get(folded(value))? {
            Some(v) => {
                let o: Owner = decode(&v)?;
                Ok(o.id.is_some().then_some(o.account))
            }
            None => Ok(None),
        }
    }

    /// An account's secret keys (hashes), oldest first.
    async fn keys(&self, account: &str) -> Result<Vec<SecretKey>, StoreError> {
        scan(&self.keys, Some(account))
    }

    /// Every secret key (hash) of every account.
    async fn all_keys(&self) -> Result<Vec<SecretKey>, StoreError> {
        scan(&self.keys, None)
    }

    async fn key(&self, account: &str, id: &str) -> Result<Option<SecretKey>, StoreError> {
        get(&self.keys, account, id)
    }

    /// The account whose key hashes to `sha256`.
    async fn key_owner(&self, sha256: &[u8; 32]) -> Result<Option<String>, StoreError> {
        match self.key_hashes.get(sha256)? {
            Some(v) => Ok(Some(decode::<Owner>(&v)?.account)),
            None => Ok(None),
        }
    }

    /// Gives `identity.value` to `identity.account`; refuses a value any
    /// account id or identity already holds (case ignored).
    async fn add_identity(
        &self,
        mut identity: Identity,
        actor: &Actor,
    ) -> Result<Identity, StoreError> {
        let n = self.next_id()?;
        identity.id = n.to_string();
        let key = entry_key(identity.account.as_str(), n);
        let name = folded(&identity.value);
        let owner = Owner {
            account: identity.account.to_string(),
            id: Some(identity.id.clone()),
        };
        let event = Event {
            event: "identity.added",
            account: Some(identity.account.as_str()),
            details: json!({"identity": identity.id, "value": identity.value, "remark": identity.remark}),
        };
        let trees = (&self.accounts, &self.identities, &self.names, &self.seclog);
        flatten(trees.transaction(|(accounts, identities, names, log)| {
            if accounts.get(identity.account.as_bytes())?.is_none() {
                return abort(StoreError::NoAccount(identity.account.to_string()));
            }
            if let Some(held) = owner_of(names, &name)? {
                return abort(StoreError::NameTaken {
                    value: identity.value.clone(),
                    owner: held.describe(),
                });
            }
            identities.insert(key.as_slice(), encode(&identity))?;
            names.insert(name.as_slice(), encode(&owner))?;
            seclog::append(log, &self.log_key, actor, &event)?;
            Ok(())
        }))?;
        self.flush().await?;
        self.touched(Touch::Name(identity.value.clone()));
        Ok(identity)
    }

    async fn remove_identity(
        &self,
        account: &str,
        id: &str,
        actor: &Actor,
    ) -> Result<Identity, StoreError> {
        let key = record_key(account, id).ok_or_else(|| StoreError::NoIdentity(id.into()))?;
        let trees = (&self.identities, &self.names, &self.seclog);
        let removed = flatten(trees.transaction(|(identities, names, log)| {
            let Some(v) = identities.remove(key.as_slice())? else {
                return abort(StoreError::NoIdentity(id.to_string()));
            };
            let i: Identity = decode(&v).or_else(abort)?;
            let name = folded(&i.value);
            if owner_of(names, &name)?.is_some_and(|o| o.id.as_deref() == Some(id)) {
                names.remove(name)?;
            }
            let event = Event {
                event: "identity.removed",
                account: Some(account),
                details: json!({"identity": i.id, "value": i.value}),
            };
            seclog::append(log, &self.log_key, actor, &event)?;
            Ok(i)
        }))?;
        self.flush().await?;
        self.touched(Touch::Name(removed.value.clone()));
        Ok(removed)
    }

    /// Registers a key's hash for `key.account`; refuses a hash already
    /// registered to any account.
    async fn add_key(
        &self,
        mut key: SecretKey,
        hash: [u8; 32],
        actor: &Actor,
    ) -> Result<SecretKey, StoreError> {
        let n = self.next_id()?;
        key.id = n.to_string();
        let at = entry_key(key.account.as_str(), n);
        let owner = Owner {
            account: key.account.to_string(),
            id: Some(key.id.clone()),
        };
        let event = Event {
            event: "key.added",
            account: Some(key.account.as_str()),
            details: json!({"key_id": key.id, "fingerprint": key.fingerprint, "remark": key.remark}),
        };
        let trees = (&self.accounts, &self.keys, &self.key_hashes, &self.seclog);
        flatten(trees.transaction(|(accounts, keys, hashes, log)| {
            if accounts.get(key.account.as_bytes())?.is_none() {
                return abort(StoreError::NoAccount(key.account.to_string()));
            }
            if let Some(held) = owner_of(hashes, &hash)? {
                return abort(StoreError::KeyTaken {
                    fingerprint: key.fingerprint.clone(),
                    account: held.account,
                });
            }
            keys.insert(at.as_slice(), encode(&key))?;
            hashes.insert(&hash[..], encode(&owner))?;
            seclog::append(log, &self.log_key, actor, &event)?;
            Ok(())
        }))?;
        self.flush().await?;
        self.touched(Touch::Key(hash));
        Ok(key)
    }

    async fn remove_key(
        &self,
        account: &str,
        id: &str,
        actor: &Actor,
    ) -> Result<SecretKey, StoreError> {
        let at = record_key(account, id).ok_or_else(|| StoreError::NoKey(id.into()))?;
        let trees = (&self.keys, &self.key_hashes, &self.seclog);
        let removed = flatten(trees.transaction(|(keys, hashes, log)| {
            let Some(v) = keys.remove(at.as_slice())? else {
                return abort(StoreError::NoKey(id.to_string()));
            };
            let k: SecretKey = decode(&v).or_else(abort)?;
            let Some(hash) = parse_sha256(&k.sha256) else {
                return abort(StoreError::Corrupt(format!("key {id}'s hash")));
            };
            if owner_of(hashes, &hash)?.is_some_and(|o| o.id.as_deref() == Some(id)) {
                hashes.remove(&hash[..])?;
            }
            let event = Event {
                event: "key.removed",
                account: Some(account),
                details: json!({"key_id": k.id, "fingerprint": k.fingerprint}),
            };
            seclog::append(log, &self.log_key, actor, &event)?;
            Ok(k)
        }))?;
        self.flush().await?;
        if let Some(hash) = parse_sha256(&removed.sha256) {
            self.touched(Touch::Key(hash));
        }
        Ok(removed)
    }
}

/// The tree key of record `id` (decimal) of `account`.
fn record_key(account: &str, id: &str) -> Option<Vec<u8>> {
    id.parse().ok().map(|n| entry_key(account, n))
}

fn get<T: serde::de::DeserializeOwned>(
    tree: &sled::Tree,
    account: &str,
    id: &str,
) -> Result<Option<T>, StoreError> {
    match record_key(account, id) {
        Some(k) => tree.get(k)?.map(|v| decode(&v)).transpose(),
        None => Ok(None),
    }
}

fn scan<T: serde::de::DeserializeOwned>(
    tree: &sled::Tree,
    account: Option<&str>,
) -> Result<Vec<T>, StoreError> {
    let iter = match account {
        Some(a) => tree.scan_prefix(account_prefix(a)),
        None => tree.iter(),
    };
    iter.values().map(|v| decode(&v?)).collect()
}

#[cfg(test)]
mod tests;
