//! The PostgreSQL store as a [`Dump`], read in one snapshot, for `ipgate
//! store copy` back to sled.

use super::{pg_error, read, PgStore};
use crate::seclog::Head;
use crate::store::dump::Dump;
use crate::store::StoreError;
use serde::de::DeserializeOwned;

/// Every `doc` of `table` in `order`, decoded, with the text column
/// `key` (or an empty string for none).
async fn docs<T: DeserializeOwned>(
    tx: &tokio_postgres::Transaction<'_>,
    table: &str,
    key: &str,
    order: &str,
) -> Result<Vec<(String, T)>, StoreError> {
    let rows = tx
        .query(
            &format!("SELECT {key}::text, doc FROM {table} ORDER BY {order}"),
            &[],
        )
        .await
        .map_err(pg_error)?;
    rows.iter()
        .map(|r| Ok((r.try_get::<_, String>(0).map_err(pg_error)?, read(r, 1)?)))
        .collect()
}

/// A sequence's last value given out (0 for none yet).
async fn sequence(tx: &tokio_postgres::Transaction<'_>, name: &str) -> Result<u64, StoreError> {
    let row = tx
        .query_one(
            &format!("SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM {name}"),
            &[],
        )
        .await
        .map_err(pg_error)?;
    Ok(super::as_id(row.try_get(0).map_err(pg_error)?))
}

fn values<T>(pairs: Vec<(String, T)>) -> Vec<T> {
    pairs.into_iter().map(|(_, v)| v).collect()
}

impl PgStore {
    /// Every record of the store, as of one moment.
    pub async fn export(&self) -> Result<Dump, StoreError> {
        let mut c = self.client().await?;
        let tx = c
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(pg_error)?;
        let tx: &tokio_postgres::Transaction<'_> = &tx;
        let mut d = Dump {
            generation: sequence(tx, "ipgate_table_generation").await?,
            max_id: sequence(tx, "ipgate_ids").await?,
            accounts: values(docs(tx, "ipgate_accounts", "id", "id COLLATE \"C\"").await?),
            entries: docs(tx, "ipgate_entries", "account", "account COLLATE \"C\", id").await?,
            blocklist: values(docs(tx, "ipgate_blocklist", "id", "id").await?),
            identities: values(docs(tx, "ipgate_identities", "account", "account, id").await?),
            keys: values(docs(tx, "ipgate_keys", "account", "account, id").await?),
            users: values(docs(tx, "ipgate_users", "username", "username").await?),
            tokens: docs(tx, "ipgate_tokens", "hash", "hash").await?,
            sessions: docs(tx, "ipgate_sessions", "hash", "hash").await?,
            requests: values(docs(tx, "ipgate_requests", "id", "id").await?),
            links: docs(tx, "ipgate_links", "hash", "hash").await?,
            outbox: values(docs(tx, "ipgate_outbox", "id", "id").await?),
            ..Dump::default()
        };
        for r in tx
            .query(
                "SELECT substr(key, 8), value FROM ipgate_meta WHERE key LIKE 'secret:%'",
                &[],
            )
            .await
            .map_err(pg_error)?
        {
            d.secrets.push((
                r.try_get(0).map_err(pg_error)?,
                r.try_get(1).map_err(pg_error)?,
            ));
        }
        for r in tx
            .query("SELECT seq, record FROM ipgate_seclog ORDER BY seq", &[])
            .await
            .map_err(pg_error)?
        {
            let seq: i64 = r.try_get(0).map_err(pg_error)?;
            d.log
                .push((super::as_id(seq), r.try_get(1).map_err(pg_error)?));
        }
        let h = tx
            .query_one("SELECT seq, hash FROM ipgate_seclog_head", &[])
            .await
            .map_err(pg_error)?;
        let seq: i64 = h.try_get(0).map_err(pg_error)?;
        if seq > 0 {
            d.head = Some(Head {
                seq: super::as_id(seq),
                hash: h.try_get(1).map_err(pg_error)?,
            });
        }
        Ok(d)
    }
}
