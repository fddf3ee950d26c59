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

fn nets<'a>(cidrs: impl Iterator<Item = &'a str>) -> Vec<IpNet> {
    cidrs
        .filter_map(|c| match parse_cidr(c) {
            Ok(n) => Some(n),
            Err(e) => {
                // Never written that way; skipping it can only deny more.
                tracing::error!(cidr = c, error = %e, "skipping an unparsable stored network");
                None
            }
        })
        .collect()
}

/// The proxy's view of one account.
pub fn policy(account: &Account, entries: &[WhitelistEntry]) -> AccountPolicy {
    AccountPolicy::new(
        account.whitelist.into(),
        &nets(entries.iter().map(|e| e.cidr.as_str())),
    )
}

/// Builds the whole table from the store.
pub fn load_table(store: &Store) -> Result<Table, StoreError> {
    let mut by_account: HashMap<String, Vec<String>> = HashMap::new();
    for e in store.all_entries() {
        let e = e?;
        by_account.entry(e.account).or_default().push(e.cidr);
    }
    let mut accounts = Vec::new();
    for a in store.accounts()? {
        let cidrs = by_account.remove(&a.id).unwrap_or_default();
        let policy =
            AccountPolicy::new(a.whitelist.into(), &nets(cidrs.iter().map(String::as_str)));
        accounts.push((a.id, policy));
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
