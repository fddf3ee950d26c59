//! Pays sled's one-time start-up costs at open instead of on the first
//! change a user makes.
//!
//! After opening an existing store, sled's first few flushes do one-time
//! bookkeeping over the whole log: walking every segment it recovered,
//! among other things. On the million-entry bench store (1.3 GB) that made
//! some of the first writes' flushes take 3-20 ms instead of 0.1 ms, so
//! the first approval after a restart went live in 6-15 ms. A handful of
//! tiny writes, each flushed, at open, takes that cost before the store
//! serves anyone (`cargo bench --bench million` prints both).

use super::{SledStore, StoreError};
use crate::domain::Timestamp;

/// Flushed writes made at open. In the bench the slow ones were all among
/// the first ten; this leaves room.
const ROUNDS: u64 = 16;

/// The meta key written: when this store was last opened (unix seconds,
/// big-endian), the only thing these writes change.
const OPENED: &[u8] = b"opened";

impl SledStore {
    pub(super) fn settle(&self) -> Result<(), StoreError> {
        let opened = Timestamp::now().unix().to_be_bytes();
        for _ in 0..ROUNDS {
            self.meta.insert(OPENED, &opened[..])?;
            self.db.flush()?;
        }
        Ok(())
    }
}
