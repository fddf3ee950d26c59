//! Blocked calls in PostgreSQL: `ipgate_blocked_calls`, one row per
//! (account, address), merged by an upsert.

use super::{pg_error, PgStore};
use crate::store::blocked::{BlockedCall, BlockedReport};
use crate::store::{BlockedCallStore, StoreError};
use async_trait::async_trait;

fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn uint(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

#[async_trait]
impl BlockedCallStore for PgStore {
    async fn add_blocked_calls(&self, reports: &[BlockedReport]) -> Result<(), StoreError> {
        if reports.is_empty() {
            return Ok(());
        }
        let c = self.client().await?;
        let st = c
            .prepare(
                "INSERT INTO ipgate_blocked_calls AS t
                    (account, address, calls, first_seen, last_seen, route)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (account, address) DO UPDATE SET
                    calls = LEAST(t.calls + excluded.calls, 9223372036854775807),
                    first_seen = LEAST(t.first_seen, excluded.first_seen),
                    route = CASE WHEN excluded.last_seen >= t.last_seen
                                 THEN excluded.route ELSE t.route END,
                    last_seen = GREATEST(t.last_seen, excluded.last_seen)",
            )
            .await
            .map_err(pg_error)?;
        for r in reports {
            let b = &r.call;
            c.execute(
                &st,
                &[
                    &r.account,
                    &b.address.to_string(),
                    &int(b.calls),
                    &int(b.first_seen),
                    &int(b.last_seen),
                    &b.route,
                ],
            )
            .await
            .map_err(pg_error)?;
        }
        Ok(())
    }

    async fn blocked_calls(
        &self,
        account: &str,
        since: u64,
        limit: usize,
    ) -> Result<Vec<BlockedCall>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT address, calls, first_seen, last_seen, route FROM ipgate_blocked_calls
                 WHERE account = $1 AND last_seen >= $2
                 ORDER BY calls DESC, address LIMIT $3",
                &[&account, &int(since), &int(limit as u64)],
            )
            .await
            .map_err(pg_error)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let address: String = r.try_get(0).map_err(pg_error)?;
            out.push(BlockedCall {
                address: address
                    .parse()
                    .map_err(|_| StoreError::Corrupt(format!("blocked call address {address}")))?,
                calls: uint(r.try_get(1).map_err(pg_error)?),
                first_seen: uint(r.try_get(2).map_err(pg_error)?),
                last_seen: uint(r.try_get(3).map_err(pg_error)?),
                route: r.try_get(4).map_err(pg_error)?,
            });
        }
        // The text order of addresses is not theirs: sort as sled does.
        Ok(crate::store::blocked::top(out, limit))
    }

    async fn sweep_blocked_calls(&self, before: u64) -> Result<usize, StoreError> {
        let c = self.client().await?;
        let n = c
            .execute(
                "DELETE FROM ipgate_blocked_calls WHERE last_seen < $1",
                &[&int(before)],
            )
            .await
            .map_err(pg_error)?;
        Ok(n as usize)
    }
}
