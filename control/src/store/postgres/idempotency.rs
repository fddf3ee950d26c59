//! Submissions' idempotency keys in PostgreSQL (`store::idempotency`):
//! `ipgate_idempotency`, one row per account and key hash (its primary
//! key), saved in the request's own change, deleted when past its 24
//! hours.

use super::{doc, pg_error, read, Change, PgStore};
use crate::domain::Timestamp;
use crate::store::idempotency::{expired_before, IdempotencyKey, KeyRecord};
use crate::store::{IdempotencyStore, IpRequest, StoreError};
use async_trait::async_trait;

fn unix(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Refuses ([`StoreError::KeyUsed`]) inside a change when `key` of
/// `account` is still live, before the change does anything else.
pub(super) async fn check(
    w: &Change<'_>,
    account: &str,
    key: &IdempotencyKey,
    now: Timestamp,
) -> Result<(), StoreError> {
    let row =
        w.tx.query_opt(
            "SELECT 1 FROM ipgate_idempotency WHERE account = $1 AND key_hash = $2 AND created_unix > $3",
            &[&account, &key.hash, &unix(expired_before(now))],
        )
        .await
        .map_err(pg_error)?;
    match row {
        Some(_) => Err(StoreError::KeyUsed),
        None => Ok(()),
    }
}

/// Saves `key` of `account` as answering `request`, inside its change. A
/// row past its 24 hours is replaced; a live one (a change racing this
/// one saved it) refuses ([`StoreError::KeyUsed`]): the primary key makes
/// that so whatever else the changes lock.
pub(super) async fn claim(
    w: &Change<'_>,
    account: &str,
    key: &IdempotencyKey,
    request: &IpRequest,
    now: Timestamp,
) -> Result<(), StoreError> {
    let record = KeyRecord::new(key, request, now);
    let saved = w
        .tx
        .execute(
            "INSERT INTO ipgate_idempotency (account, key_hash, created_unix, doc) VALUES ($1, $2, $3, $4)
             ON CONFLICT (account, key_hash) DO UPDATE
                 SET created_unix = EXCLUDED.created_unix, doc = EXCLUDED.doc
                 WHERE ipgate_idempotency.created_unix <= $5",
            &[
                &account,
                &key.hash,
                &unix(now.unix()),
                &doc(&record),
                &unix(expired_before(now)),
            ],
        )
        .await
        .map_err(pg_error)?;
    if saved == 1 {
        Ok(())
    } else {
        Err(StoreError::KeyUsed)
    }
}

#[async_trait]
impl IdempotencyStore for PgStore {
    async fn idempotency_key(
        &self,
        account: &str,
        hash: &str,
    ) -> Result<Option<KeyRecord>, StoreError> {
        let c = self.client().await?;
        let row = c
            .query_opt(
                "SELECT doc FROM ipgate_idempotency WHERE account = $1 AND key_hash = $2",
                &[&account, &hash],
            )
            .await
            .map_err(pg_error)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let r: KeyRecord = read(&row, 0)?;
        Ok(r.live(Timestamp::now()).then_some(r))
    }

    async fn sweep_idempotency_keys(&self) -> Result<usize, StoreError> {
        let c = self.client().await?;
        let n = c
            .execute(
                "DELETE FROM ipgate_idempotency WHERE created_unix <= $1",
                &[&unix(expired_before(Timestamp::now()))],
            )
            .await
            .map_err(pg_error)?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }
}
