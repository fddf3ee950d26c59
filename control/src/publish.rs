//! From store to proxy: builds the whole table at start and republishes one
//! account (or the blocklist) after each change, before the change is
//! answered. Writers hold one async mutex, so the table's versions follow
//! the store's order of changes.

use crate::model::{Account, WhitelistEntry};
use crate::store::{Store, StoreError};
use ipgate_config::net::parse_cidr;
use ipgate_proxy::{AccountPolicy, LiveTable, Table};
use ipnet::IpNet;
use std::collections::HashMap;
use std::sync::Arc;

fn net(cidr: &str) -> Option<IpNet> {
    match parse_cidr(cidr) {
        Ok(n) => Some(n),
        Err(e) => {
            // Never written that way; skipping it can only deny more.
            tracing::error!(cidr, error = %e, "skipping an unparsable stored network");
            None
        }
    }
}

fn nets<'a>(cidrs: impl Iterator<Item = &'a str>) -> Vec<IpNet> {
    cidrs.filter_map(net).collect()
}

/// The proxy's view of one account.
pub fn policy(account: &Account, entries: &[WhitelistEntry]) -> AccountPolicy {
    AccountPolicy::new(
        account.whitelist.into(),
        &nets(entries.iter().map(|e| e.cidr.as_str())),
    )
}

/// One range of accounts' networks, read from the store.
fn networks_in(
    store: &Store,
    from: Option<&str>,
    to: Option<&str>,
) -> Result<HashMap<String, Vec<IpNet>>, StoreError> {
    let mut by_account: HashMap<String, Vec<IpNet>> = HashMap::new();
    store.for_each_entry_network(from, to, |account, cidr| {
        let Some(n) = net(cidr) else { return };
        match by_account.get_mut(account) {
            Some(v) => v.push(n),
            None => {
                by_account.insert(account.to_string(), vec![n]);
            }
        }
    })?;
    Ok(by_account)
}

/// Builds the whole table from the store. The entries are read in one
/// range of accounts per core: at a million entries reading them is most
/// of the start-up time (`cargo bench --bench million`).
pub fn load_table(store: &Store) -> Result<Table, StoreError> {
    let all = store.accounts()?; // in id order
    let parts = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8)
        .min(all.len().max(1));
    let bounds: Vec<Option<&str>> = std::iter::once(None)
        .chain((1..parts).map(|k| Some(all[k * all.len() / parts].id.as_str())))
        .chain(std::iter::once(None))
        .collect();
    let maps = std::thread::scope(|s| {
        let readers: Vec<_> = bounds
            .windows(2)
            .map(|w| {
                let (from, to) = (w[0], w[1]);
                s.spawn(move || networks_in(store, from, to))
            })
            .collect();
        readers
            .into_iter()
            .map(|r| {
                r.join()
                    .unwrap_or_else(|_| Err(StoreError::Corrupt("a reader thread failed".into())))
            })
            .collect::<Result<Vec<_>, _>>()
    })?;
    let mut accounts = Vec::with_capacity(all.len());
    for a in all {
        let networks = maps
            .iter()
            .find_map(|m| m.get(&a.id))
            .map(Vec::as_slice)
            .unwrap_or_default();
        accounts.push((a.id, AccountPolicy::new(a.whitelist.into(), networks)));
    }
    let blocked = nets(store.blocklist()?.iter().map(|b| b.cidr.as_str()));
    Ok(Table::build(1, accounts, &blocked))
}

/// The store and the live table, changed together.
pub struct Publisher {
    pub store: Store,
    pub table: Arc<LiveTable>,
    writer: tokio::sync::Mutex<()>,
}

impl Publisher {
    pub fn new(store: Store, table: Arc<LiveTable>) -> Publisher {
        Publisher {
            store,
            table,
            writer: tokio::sync::Mutex::new(()),
        }
    }

    /// Runs one store change and then republishes what it touched. The
    /// change is on disk and live in the proxy when this returns `Ok`.
    pub async fn change<T, F, Fut>(&self, touched: Touched<'_>, change: F) -> Result<T, StoreError>
    where
        F: FnOnce(Store) -> Fut,
        Fut: std::future::Future<Output = Result<T, StoreError>>,
    {
        let _writer = self.writer.lock().await;
        let out = change(self.store.clone()).await?;
        match touched {
            Touched::Account(id) => {
                let next = match self.store.account(id)? {
                    Some(a) => Some(policy(&a, &self.store.entries(id)?)),
                    None => None,
                };
                self.table.update(|t| t.with_account(id, next));
            }
            Touched::Nothing => {}
            Touched::Blocklist => {
                let blocked = nets(self.store.blocklist()?.iter().map(|b| b.cidr.as_str()));
                self.table.update(|t| t.with_blocklist(&blocked));
            }
        }
        Ok(out)
    }
}

/// What a change touched, so only that part of the table is rebuilt.
#[derive(Debug, Clone, Copy)]
pub enum Touched<'a> {
    Account(&'a str),
    Blocklist,
    /// Users, tokens: nothing the proxy sees.
    Nothing,
}
