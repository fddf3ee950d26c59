//! One shard of accounts: a dense array of account records plus a small
//! open-addressing index over it (8 bytes a slot, at most half full, linear
//! probing). A lookup reads one index slot and then one record, whose id
//! and first ranges are stored inline. Shards are immutable; a change
//! builds a new shard.

use super::{AccountPolicy, Mode};
use crate::ranges::RangeSet;
use smallvec::SmallVec;

/// What a lookup returns: the account's mode and its networks.
#[derive(Debug, Clone, Copy)]
pub struct AccountView<'a> {
    pub mode: Mode,
    pub allowed: &'a RangeSet,
    id: &'a [u8],
}

impl<'a> AccountView<'a> {
    /// The account's id as the operator created it.
    pub fn id(&self) -> &'a str {
        // Ids are ASCII (made from a `&str`).
        std::str::from_utf8(self.id).unwrap_or_default()
    }

    /// Whether both views are of one account (of one snapshot).
    #[inline]
    pub fn same(&self, other: &AccountView<'_>) -> bool {
        std::ptr::eq(self.allowed, other.allowed)
    }
}

/// An account as stored, 128 bytes in two cache lines: the first holds
/// what an IPv4 decision reads (id inline up to 16 bytes, mode, IPv4
/// ranges), the second the IPv6 range and bookkeeping.
#[derive(Debug, Clone)]
#[repr(C, align(64))]
struct Record {
    id: SmallVec<[u8; 16]>,
    mode: Mode,
    allowed: RangeSet,
    hash: u64,
    entries: usize,
}

impl Record {
    fn new(hash: u64, id: &str, p: AccountPolicy) -> Record {
        Record {
            id: SmallVec::from_slice(id.as_bytes()),
            mode: p.mode,
            allowed: p.allowed,
            hash,
            entries: p.entries,
        }
    }
}

/// Index slot: 16 bits of the hash and the record's position + 1 (0 =
/// empty). Four bytes a slot keeps a shard's index in a few cache lines.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    tag: u16,
    pos: u16,
}

/// Most accounts one shard holds; the table (256 shards) holds about 16.7M.
pub const MAX_PER_SHARD: usize = u16::MAX as usize - 1;

#[derive(Debug, Clone)]
pub struct Shard {
    mask: usize,
    index: Box<[Slot]>,
    records: Vec<Record>,
}

#[inline]
fn tag(hash: u64) -> u16 {
    (hash >> 40) as u16
}

impl Shard {
    pub fn empty() -> Shard {
        Shard::build(Vec::new())
    }

    /// The account `id` (ASCII-case-insensitively), whose folded id hashes to `hash`.
    #[inline]
    pub fn get(&self, hash: u64, id: &str) -> Option<AccountView<'_>> {
        let mut i = hash as usize & self.mask;
        let t = tag(hash);
        loop {
            let slot = self.index[i];
            if slot.pos == 0 {
                return None;
            }
            if slot.tag == t {
                if let Some(r) = self.records.get(slot.pos as usize - 1) {
                    if r.id.as_slice() == id.as_bytes() || r.id.eq_ignore_ascii_case(id.as_bytes())
                    {
                        return Some(AccountView {
                            id: &r.id,
                            mode: r.mode,
                            allowed: &r.allowed,
                        });
                    }
                }
            }
            i = (i + 1) & self.mask;
        }
    }

    fn build(mut records: Vec<Record>) -> Shard {
        if records.len() > MAX_PER_SHARD {
            tracing::error!(
                accounts = records.len(),
                "a table shard is over its limit; the newest accounts are left out"
            );
            records.truncate(MAX_PER_SHARD);
        }
        let cap = (records.len() * 2).next_power_of_two().max(8);
        let mask = cap - 1;
        let mut index = vec![Slot::default(); cap].into_boxed_slice();
        for (pos, r) in records.iter().enumerate() {
            let mut i = r.hash as usize & mask;
            while index[i].pos != 0 {
                i = (i + 1) & mask;
            }
            index[i] = Slot {
                tag: tag(r.hash),
                pos: pos as u16 + 1,
            };
        }
        Shard {
            mask,
            index,
            records,
        }
    }

    /// Builds a shard from accounts with distinct ids.
    pub fn from_accounts(accounts: impl Iterator<Item = (u64, String, AccountPolicy)>) -> Shard {
        Shard::build(
            accounts
                .map(|(hash, id, policy)| Record::new(hash, &id, policy))
                .collect(),
        )
    }

    /// A new shard with `id` replaced by `policy`, or removed when `None`.
    /// Returns it with the entry count of the account replaced or removed.
    pub fn with(
        &self,
        hash: u64,
        id: &str,
        policy: Option<AccountPolicy>,
    ) -> (Shard, Option<usize>) {
        let mut old = None;
        let mut records = Vec::with_capacity(self.records.len() + 1);
        for r in &self.records {
            if r.hash == hash && r.id.eq_ignore_ascii_case(id.as_bytes()) {
                old = Some(r.entries);
            } else {
                records.push(r.clone());
            }
        }
        if let Some(policy) = policy {
            records.push(Record::new(hash, id, policy));
        }
        (Shard::build(records), old)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv4_decision_reads_one_cache_line() {
        assert_eq!(std::mem::size_of::<Record>(), 128);
        assert_eq!(std::mem::align_of::<Record>(), 64);
        assert_eq!(std::mem::offset_of!(Record, allowed), 32);
        assert_eq!(
            std::mem::size_of::<SmallVec<[(u32, u32); 3]>>(),
            32,
            "IPv4 ranges end the first line"
        );
        assert_eq!(std::mem::size_of::<Slot>(), 4);
    }
}
