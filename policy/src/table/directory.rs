//! Who a name or a key belongs to: the identities (aliases) the operator
//! registers for accounts, matched ASCII-case-insensitively, and the SHA-256
//! hashes of accounts' secret keys. Sharded like the accounts, so one
//! change copies one small map, and read without locks or allocation.

use smallvec::SmallVec;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;

/// Shards of a directory; a change copies one.
const SHARDS: usize = 64;

/// An account id as a directory holds it: inline up to 24 bytes, so a
/// lookup reads the map's slot and nothing else.
pub type Owner = SmallVec<[u8; 24]>;

/// A name as a directory holds it (folded to lower case), inline up to 32 bytes.
pub type NameKey = SmallVec<[u8; 32]>;

/// One shard: key -> the account id owning it.
type Part<K> = HashMap<K, Owner, ahash::RandomState>;

/// A map from `K` to the account id that owns it, in immutable shards.
#[derive(Debug, Clone)]
pub struct Directory<K> {
    hasher: ahash::RandomState,
    shards: Box<[Arc<Part<K>>]>,
    len: usize,
}

impl<K: Hash + Eq + Clone> Directory<K> {
    pub fn new() -> Directory<K> {
        let hasher = ahash::RandomState::new();
        let empty = Arc::new(HashMap::with_hasher(hasher.clone()));
        Directory {
            shards: (0..SHARDS).map(|_| empty.clone()).collect(),
            hasher,
            len: 0,
        }
    }

    fn shard_of<Q: Hash + ?Sized>(&self, key: &Q) -> usize {
        (self.hasher.hash_one(key) >> 58) as usize % SHARDS
    }

    /// The account owning `key`.
    #[inline]
    pub fn get<Q>(&self, key: &Q) -> Option<&str>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shards[self.shard_of(key)]
            .get(key)
            .map(|a| std::str::from_utf8(a).unwrap_or_default())
    }

    /// Fills the directory in one go (at start); a later duplicate wins.
    pub fn extend(&mut self, items: impl IntoIterator<Item = (K, Owner)>) {
        let mut parts: Vec<Vec<(K, Owner)>> = (0..SHARDS).map(|_| Vec::new()).collect();
        for (k, a) in items {
            let i = self.shard_of(&k);
            parts[i].push((k, a));
        }
        for (i, part) in parts.into_iter().enumerate() {
            if part.is_empty() {
                continue;
            }
            let mut map = (*self.shards[i]).clone();
            map.extend(part);
            self.shards[i] = Arc::new(map);
        }
        self.len = self.shards.iter().map(|s| s.len()).sum();
    }

    /// A copy with `key` given to `account`, or removed when `None`.
    /// Copies only that key's shard.
    pub fn with(&self, key: K, account: Option<Owner>) -> Directory<K> {
        let mut next = self.clone();
        let i = self.shard_of(&key);
        let mut map = (*self.shards[i]).clone();
        let before = map.len();
        match account {
            Some(a) => {
                map.insert(key, a);
            }
            None => {
                map.remove(&key);
            }
        }
        next.len = next.len + map.len() - before;
        next.shards[i] = Arc::new(map);
        next
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl<K: Hash + Eq + Clone> Default for Directory<K> {
    fn default() -> Self {
        Directory::new()
    }
}

/// Longest identity (account id or alias) the table matches.
pub const MAX_NAME: usize = 128;

/// `name` lower-cased into `buf`, or `None` when it is longer than
/// [`MAX_NAME`] (no identity is).
#[inline]
pub fn folded<'b>(name: &[u8], buf: &'b mut [u8; MAX_NAME]) -> Option<&'b [u8]> {
    let out = buf.get_mut(..name.len())?;
    for (o, b) in out.iter_mut().zip(name) {
        *o = b.to_ascii_lowercase();
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_copy_and_count() {
        let name = |s: &str| NameKey::from_slice(s.as_bytes());
        let owner = |s: &str| Owner::from_slice(s.as_bytes());
        let mut d: Directory<NameKey> = Directory::new();
        d.extend([
            (name("sender-1"), owner("acme")),
            (name("sender-2"), owner("acme")),
        ]);
        assert_eq!(d.len(), 2);
        let d2 = d.with(name("sender-1"), None);
        assert_eq!((d.len(), d2.len()), (2, 1));
        assert_eq!(d.get(&b"sender-1"[..]), Some("acme"));
        assert_eq!(d2.get(&b"sender-1"[..]), None);
        let d3 = d2.with(name("sender-2"), Some(owner("beta")));
        assert_eq!((d3.len(), d3.get(&b"sender-2"[..])), (1, Some("beta")));
    }

    #[test]
    fn folding_lowercases_ascii_only_and_bounds_length() {
        let mut buf = [0u8; MAX_NAME];
        assert_eq!(folded(b"AcMe-1", &mut buf), Some(&b"acme-1"[..]));
        assert_eq!(folded(&[b'a'; MAX_NAME + 1], &mut buf), None);
    }
}
