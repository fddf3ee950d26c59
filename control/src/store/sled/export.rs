//! The sled store as a [`Dump`] (and a dump written into an empty sled
//! store), for `ipgate store copy`.

use super::{decode, SledStore, StoreError};
use crate::seclog::Head;
use crate::store::dump::Dump;

/// The id in the last 8 bytes of a key (`account \0 id`, or the id alone).
fn id_of(key: &[u8]) -> u64 {
    key.len()
        .checked_sub(8)
        .and_then(|at| key[at..].try_into().ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0)
}

/// The text of a key that is one, for a record filed under it.
fn text(key: &[u8]) -> Result<String, StoreError> {
    String::from_utf8(key.to_vec()).map_err(|e| StoreError::Corrupt(format!("a key: {e}")))
}

impl SledStore {
    /// Every record of the store.
    pub fn export(&self) -> Result<Dump, StoreError> {
        let mut d = Dump::default();
        let mut max_id = 0u64;
        for kv in self.meta.iter() {
            let (k, v) = kv?;
            if let Some(name) = k.strip_prefix(b"secret:") {
                d.secrets.push((text(name)?, v.to_vec()));
            }
        }
        d.generation = match self.meta.get(b"table_generation")? {
            Some(v) => u64::from_be_bytes(
                v.as_ref()
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("the table generation".into()))?,
            ),
            None => 0,
        };
        for v in self.accounts.iter().values() {
            d.accounts.push(decode(&v?)?);
        }
        for kv in self.entries.iter() {
            let (k, v) = kv?;
            let account = k
                .len()
                .checked_sub(9)
                .map(|n| text(&k[..n]))
                .transpose()?
                .unwrap_or_default();
            max_id = max_id.max(id_of(&k));
            d.entries.push((account, decode(&v)?));
        }
        for kv in self.blocklist.iter() {
            let (k, v) = kv?;
            max_id = max_id.max(id_of(&k));
            d.blocklist.push(decode(&v)?);
        }
        for kv in self.identities.iter() {
            let (k, v) = kv?;
            max_id = max_id.max(id_of(&k));
            d.identities.push(decode(&v)?);
        }
        for kv in self.keys.iter() {
            let (k, v) = kv?;
            max_id = max_id.max(id_of(&k));
            d.keys.push(decode(&v)?);
        }
        for v in self.users.iter().values() {
            d.users.push(decode(&v?)?);
        }
        for kv in self.tokens.iter() {
            let (k, v) = kv?;
            let t: crate::domain::tokens::ApiToken = decode(&v)?;
            max_id = max_id.max(t.id.parse().unwrap_or(0));
            d.tokens.push((text(&k)?, t));
        }
        for kv in self.sessions.iter() {
            let (k, v) = kv?;
            d.sessions.push((text(&k)?, decode(&v)?));
        }
        for kv in self.requests.iter() {
            let (k, v) = kv?;
            max_id = max_id.max(id_of(&k));
            d.requests.push(decode(&v)?);
        }
        for kv in self.links.iter() {
            let (k, v) = kv?;
            d.links.push((text(&k)?, decode(&v)?));
        }
        for kv in self.outbox.iter() {
            let (k, v) = kv?;
            max_id = max_id.max(id_of(&k));
            d.outbox.push(decode(&v)?);
        }
        for kv in self.seclog.iter() {
            let (k, v) = kv?;
            if k.len() == 8 {
                d.log.push((id_of(&k), text(&v)?));
            } else if k.as_ref() == b"head" {
                d.head = Some(decode::<Head>(&v)?);
            }
        }
        d.max_id = max_id;
        Ok(d)
    }
}
