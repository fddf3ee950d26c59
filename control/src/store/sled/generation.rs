//! The store's generation: a number that grows by one each time a control
//! plane starts on this store, flushed before it is used. The sync feed's
//! table versions are built on it, so they only grow across restarts even
//! though the live table counts its versions from 1 at every start.

use super::{SledStore, StoreError};

const KEY: &[u8] = b"table_generation";

impl SledStore {
    /// The next generation, on disk when this returns.
    pub(crate) fn bump_generation(&self) -> Result<u64, StoreError> {
        loop {
            let old = self.meta.get(KEY)?;
            let current = match &old {
                None => 0,
                Some(v) => {
                    let bytes: [u8; 8] = v.as_ref().try_into().map_err(|_| {
                        StoreError::Corrupt("the table generation is not 8 bytes".into())
                    })?;
                    u64::from_be_bytes(bytes)
                }
            };
            let next = current
                .checked_add(1)
                .ok_or_else(|| StoreError::Corrupt("the table generation is at its end".into()))?;
            let swapped = self.meta.compare_and_swap(
                KEY,
                old.as_deref(),
                Some(next.to_be_bytes().as_slice()),
            )?;
            if swapped.is_ok() {
                self.meta.flush()?;
                return Ok(next);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::store::tests::open;

    #[tokio::test]
    async fn each_start_gets_a_larger_generation_even_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let first = {
            let s = open(&dir);
            let a = s.next_generation().await.unwrap();
            let b = s.next_generation().await.unwrap();
            assert!(b > a);
            b
        };
        let s = open(&dir);
        assert!(s.next_generation().await.unwrap() > first);
    }
}
