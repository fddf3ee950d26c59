//! The sled store as a [`Dump`] (and a dump written into an empty sled
//! store), for `ipgate store copy`.

use super::{decode, encode, entry_key, SledStore, StoreError};
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

impl SledStore {
    /// Writes `d` into this store, which must hold nothing yet. The
    /// indexes (networks, names) are marked unbuilt: the next open builds
    /// them from the records, so open the store again before serving it.
    pub fn import(&self, d: &Dump) -> Result<(), StoreError> {
        if !self.accounts.is_empty() || !self.users.is_empty() || !self.seclog.is_empty() {
            return Err(StoreError::NotEmpty);
        }
        for (name, value) in &d.secrets {
            self.meta
                .insert(format!("secret:{name}").as_bytes(), value.as_slice())?;
        }
        if d.generation > 0 {
            self.meta
                .insert(b"table_generation", &d.generation.to_be_bytes()[..])?;
        }
        for a in &d.accounts {
            self.accounts.insert(a.id.as_bytes(), encode(a))?;
        }
        for (account, e) in &d.entries {
            let n = parsed_id(&e.id, "entry")?;
            self.entries.insert(entry_key(account, n), encode(e))?;
        }
        for b in &d.blocklist {
            let n = parsed_id(&b.id, "blocklist")?;
            self.blocklist.insert(n.to_be_bytes(), encode(b))?;
        }
        for i in &d.identities {
            let n = parsed_id(&i.id, "identity")?;
            self.identities
                .insert(entry_key(i.account.as_str(), n), encode(i))?;
        }
        for k in &d.keys {
            let n = parsed_id(&k.id, "key")?;
            let hash = crate::store::parse_sha256(&k.sha256)
                .ok_or_else(|| StoreError::Corrupt(format!("key {}'s hash", k.id)))?;
            self.keys
                .insert(entry_key(k.account.as_str(), n), encode(k))?;
            self.key_hashes
                .insert(&hash[..], super::identities::key_owner_record(k))?;
        }
        for u in &d.users {
            self.users.insert(u.username.as_bytes(), encode(u))?;
        }
        for (hash, t) in &d.tokens {
            self.tokens.insert(hash.as_bytes(), encode(t))?;
        }
        for (hash, s) in &d.sessions {
            self.sessions.insert(hash.as_bytes(), encode(s))?;
        }
        for r in &d.requests {
            let n = parsed_id(&r.id, "request")?;
            self.requests.insert(n.to_be_bytes(), encode(r))?;
            if r.status == crate::domain::flow::Status::Pending {
                self.pending.insert(r.account.as_bytes(), r.id.as_bytes())?;
            }
        }
        for (hash, l) in &d.links {
            self.links.insert(hash.as_bytes(), encode(l))?;
        }
        for m in &d.outbox {
            self.outbox.insert(m.id.to_be_bytes(), encode(m))?;
        }
        for (n, text) in &d.log {
            self.seclog.insert(n.to_be_bytes(), text.as_bytes())?;
        }
        if let Some(h) = &d.head {
            self.seclog.insert(b"head", encode(h))?;
        }
        // Ids go on from the largest given out.
        while self.db.generate_id()? < d.max_id {}
        super::netindex::forget(self)?;
        super::ending::forget(self)?;
        super::identities::forget_names(self)?;
        self.db.flush()?;
        Ok(())
    }
}

fn parsed_id(text: &str, what: &str) -> Result<u64, StoreError> {
    text.parse()
        .map_err(|_| StoreError::Corrupt(format!("{what} id `{text}`")))
}
