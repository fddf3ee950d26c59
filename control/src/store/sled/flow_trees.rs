//! The trees a request's transitions touch, by name, and the one sled
//! transaction over all of them that creating, cancelling, expiring and
//! deciding a request, and readying its mail, each run in.

use super::{flatten, SledStore, StoreError, TxResult};
use sled::transaction::{Transactional, TransactionalTree};

/// The request flow's trees inside one transaction.
pub(crate) struct FlowTrees<'a> {
    /// Requests, by id (big-endian).
    pub requests: &'a TransactionalTree,
    /// Links, by their token's hash: which request and email each is for.
    pub links: &'a TransactionalTree,
    /// Each account's pending request id, by account.
    pub pending: &'a TransactionalTree,
    /// The security log.
    pub seclog: &'a TransactionalTree,
    /// Queued mail jobs, by id.
    pub outbox: &'a TransactionalTree,
    /// Whitelist entries, by account and id.
    pub entries: &'a TransactionalTree,
    /// The network index of the entries.
    pub nets: &'a TransactionalTree,
    /// The time-bound entries by end time.
    pub ending: &'a TransactionalTree,
    /// Submissions' idempotency keys.
    pub idempotency: &'a TransactionalTree,
}

impl SledStore {
    /// Runs `f` as one transaction over the request flow's trees (sled may
    /// run it again on a conflict). Never read a plain tree inside `f`:
    /// sled deadlocks.
    pub(crate) fn flow_transaction<T>(
        &self,
        f: impl Fn(&FlowTrees) -> TxResult<T>,
    ) -> Result<T, StoreError> {
        // sled takes at most 9 trees in one transaction. The accounts
        // tree was the ninth, though no transition reads or writes it
        // inside one (accounts are read before, under the publisher); the
        // idempotency keys took its place.
        let trees = (
            &self.requests,
            &self.links,
            &self.pending,
            &self.seclog,
            &self.outbox,
            &self.entries,
            &self.idempotency,
            &self.nets,
            &self.ending,
        );
        flatten(trees.transaction(
            |(requests, links, pending, seclog, outbox, entries, idempotency, nets, ending)| {
                f(&FlowTrees {
                    requests,
                    links,
                    pending,
                    seclog,
                    outbox,
                    entries,
                    nets,
                    ending,
                    idempotency,
                })
            },
        ))
    }
}
