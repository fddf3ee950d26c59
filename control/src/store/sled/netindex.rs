//! The `nets` tree: one record per account, its whitelist mode and its
//! networks packed in a few bytes apiece. It is derived from the
//! `accounts` and `entries` trees and changed in the same transactions
//! that create accounts, change their mode, or add or remove entries. The
//! table is built at start from this tree alone, so start-up reads ~20
//! bytes per network instead of every account's and entry's JSON
//! (`cargo bench --bench million`).
//!
//! A store without the index (made by an older ipgate) gets it built when
//! it is opened; `meta` says when it is complete.

use super::{abort, SledStore, StoreError, TxResult};
use crate::domain::model::WhitelistMode;
use crate::domain::Cidr;
use crate::store::AccountNets;
use ipgate_config::net::parse_cidr;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use sled::transaction::TransactionalTree;
use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};

/// The `meta` key saying the index is complete, and its format's version.
const READY: &[u8] = b"nets-index";
const VERSION: &[u8] = b"1";

const V4: u8 = 4;
const V6: u8 = 6;

fn mode_byte(m: WhitelistMode) -> u8 {
    match m {
        WhitelistMode::Off => 0,
        WhitelistMode::Enforce => 1,
        WhitelistMode::Report => 2,
    }
}

/// The mode a stored byte stands for: [`mode_byte`] read backwards.
fn mode_of(b: u8) -> Option<WhitelistMode> {
    [
        WhitelistMode::Off,
        WhitelistMode::Enforce,
        WhitelistMode::Report,
    ]
    .into_iter()
    .find(|m| mode_byte(*m) == b)
}

fn corrupt() -> StoreError {
    StoreError::Corrupt("an account's record in the network index".into())
}

/// Appends one network: family, prefix length, address bytes.
fn pack_into(out: &mut Vec<u8>, net: &IpNet) {
    match net {
        IpNet::V4(n) => {
            out.extend_from_slice(&[V4, n.prefix_len()]);
            out.extend_from_slice(&n.addr().octets());
        }
        IpNet::V6(n) => {
            out.extend_from_slice(&[V6, n.prefix_len()]);
            out.extend_from_slice(&n.addr().octets());
        }
    }
}

/// An account's record: its mode, then its networks.
pub(crate) fn pack(mode: WhitelistMode, nets: &[IpNet]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + nets.len() * 6);
    out.push(mode_byte(mode));
    for n in nets {
        pack_into(&mut out, n);
    }
    out
}

/// Reads an account's record: its mode, and its networks added to `out`.
pub(crate) fn unpack_into(bytes: &[u8], out: &mut Vec<IpNet>) -> Result<WhitelistMode, StoreError> {
    let (&m, mut bytes) = bytes.split_first().ok_or_else(corrupt)?;
    let mode = mode_of(m).ok_or_else(corrupt)?;
    while let [family, prefix, rest @ ..] = bytes {
        let (net, rest) = match *family {
            V4 => {
                let (a, rest) = rest.split_first_chunk::<4>().ok_or_else(corrupt)?;
                let n = Ipv4Net::new(Ipv4Addr::from(*a), *prefix).map_err(|_| corrupt())?;
                (IpNet::V4(n), rest)
            }
            V6 => {
                let (a, rest) = rest.split_first_chunk::<16>().ok_or_else(corrupt)?;
                let n = Ipv6Net::new(Ipv6Addr::from(*a), *prefix).map_err(|_| corrupt())?;
                (IpNet::V6(n), rest)
            }
            _ => return Err(corrupt()),
        };
        out.push(net);
        bytes = rest;
    }
    if bytes.is_empty() {
        Ok(mode)
    } else {
        Err(corrupt())
    }
}

/// A stored network's text as a network. Entries are only ever written
/// parsed, so this fails only for a damaged store; leaving the network out
/// (of the index or the table) can only deny more.
pub(crate) fn parsed(cidr: &str) -> Option<IpNet> {
    match parse_cidr(cidr) {
        Ok(n) => Some(n),
        Err(e) => {
            tracing::error!(cidr, error = %e, "skipping an unparsable stored network");
            None
        }
    }
}

/// An existing account's record, read in a transaction. A missing record
/// means the index is damaged: the change is refused rather than made on
/// one side only.
fn record(tx: &TransactionalTree, account: &str) -> TxResult<(WhitelistMode, Vec<IpNet>)> {
    let Some(v) = tx.get(account.as_bytes())? else {
        return abort(corrupt());
    };
    let mut nets = Vec::new();
    let mode = unpack_into(&v, &mut nets).or_else(abort)?;
    Ok((mode, nets))
}

/// In a transaction: a new account, with no networks.
pub(crate) fn create(tx: &TransactionalTree, account: &str, mode: WhitelistMode) -> TxResult<()> {
    tx.insert(account.as_bytes(), pack(mode, &[]))?;
    Ok(())
}

/// In a transaction: `account`'s mode is now `mode`.
pub(crate) fn set_mode(tx: &TransactionalTree, account: &str, mode: WhitelistMode) -> TxResult<()> {
    let (old, nets) = record(tx, account)?;
    if old != mode {
        tx.insert(account.as_bytes(), pack(mode, &nets))?;
    }
    Ok(())
}

/// In a transaction: `account` gains these networks.
pub(crate) fn add(
    tx: &TransactionalTree,
    account: &str,
    cidrs: impl IntoIterator<Item = Cidr>,
) -> TxResult<()> {
    let added: Vec<IpNet> = cidrs.into_iter().map(Cidr::net).collect();
    if added.is_empty() {
        return Ok(());
    }
    let (mode, mut nets) = record(tx, account)?;
    nets.extend(added);
    tx.insert(account.as_bytes(), pack(mode, &nets))?;
    Ok(())
}

/// In a transaction: `account` loses one copy of this network.
pub(crate) fn remove(tx: &TransactionalTree, account: &str, cidr: Cidr) -> TxResult<()> {
    let gone = cidr.net();
    let (mode, mut nets) = record(tx, account)?;
    if let Some(i) = nets.iter().position(|n| *n == gone) {
        nets.remove(i);
    }
    tx.insert(account.as_bytes(), pack(mode, &nets))?;
    Ok(())
}

/// Drops the index and marks it unbuilt: the next open builds it.
pub(crate) fn forget(store: &SledStore) -> Result<(), StoreError> {
    store.meta.remove(READY)?;
    store.nets.clear()?;
    Ok(())
}

impl SledStore {
    /// Builds the index from the accounts and entries unless it is
    /// complete. Runs at open, before anything else can write.
    pub(crate) fn ensure_net_index(&self) -> Result<(), StoreError> {
        if self.meta.get(READY)?.as_deref() == Some(VERSION) {
            return Ok(());
        }
        tracing::info!("building the store's network index from its entries (once)");
        let mut by_account: HashMap<String, Vec<IpNet>> = HashMap::new();
        self.for_each_entry_network(|account, cidr| {
            if let Some(n) = parsed(cidr) {
                by_account.entry(account.to_string()).or_default().push(n);
            }
        })?;
        self.nets.clear()?;
        for a in self.read_accounts()? {
            let nets = by_account.remove(a.id.as_str()).unwrap_or_default();
            self.nets
                .insert(a.id.as_bytes(), pack(a.whitelist, &nets))?;
        }
        self.meta.insert(READY, VERSION)?;
        self.db.flush()?;
        Ok(())
    }

    /// Drops the index, as a store made before it existed would be.
    #[cfg(test)]
    pub(crate) fn forget_net_index(&self) -> Result<(), StoreError> {
        forget(self)
    }
}

impl SledStore {
    /// Every account's mode and networks, in id order, for building the
    /// table at start, with the end times of those that end.
    pub(crate) fn account_policies(
        &self,
        f: &mut (dyn for<'a> FnMut(AccountNets<'a>) + Send),
    ) -> Result<(), StoreError> {
        let ending = self.ending_networks()?;
        let mut nets = Vec::new();
        for kv in self.nets.iter() {
            let (k, v) = kv?;
            let id = std::str::from_utf8(&k)
                .map_err(|e| StoreError::Corrupt(format!("network index key: {e}")))?;
            nets.clear();
            let mode = unpack_into(&v, &mut nets)?;
            f(AccountNets {
                id,
                mode,
                nets: &nets,
                ending: ending.get(id).map(Vec::as_slice).unwrap_or_default(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packed_record_comes_back_the_same() {
        let nets: Vec<IpNet> = [
            "192.0.2.7/32",
            "10.0.0.0/8",
            "0.0.0.0/0",
            "2001:db8::/32",
            "::1/128",
        ]
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect();
        for mode in [
            WhitelistMode::Off,
            WhitelistMode::Enforce,
            WhitelistMode::Report,
        ] {
            let mut back = Vec::new();
            assert_eq!(unpack_into(&pack(mode, &nets), &mut back).ok(), Some(mode));
            assert_eq!(back, nets);
        }
    }

    #[test]
    fn damaged_bytes_are_an_error_not_a_network() {
        let good = pack(
            WhitelistMode::Enforce,
            &["192.0.2.0/24".parse().unwrap_or_default()],
        );
        for bad in [
            &good[..good.len() - 1],       // cut short
            &[][..],                       // no mode
            &[7u8][..],                    // unknown mode
            &[1u8, 9, 24, 1, 2, 3, 4][..], // unknown family
            &[1u8, 4, 33, 1, 2, 3, 4][..], // prefix too long
            &[1u8, 4][..],                 // a lone byte
        ] {
            let mut out = Vec::new();
            assert!(
                matches!(unpack_into(bad, &mut out), Err(StoreError::Corrupt(_))),
                "{bad:?} was accepted"
            );
        }
    }
}
