//! The security log, server secrets and the table generation in
//! PostgreSQL.

use super::{pg_error, PgStore};
use crate::seclog::{self, Actor, Event, Head, SecRecord, Verification};
use crate::store::{LogStore, MetaStore, StoreError, Touch};
use async_trait::async_trait;

impl PgStore {
    /// Refuses a log whose newest record is keyed with another key, so one
    /// chain never mixes keys.
    pub(super) async fn check_log_key(&self) -> Result<(), StoreError> {
        let c = self.client().await?;
        let row = c
            .query_opt(
                "SELECT l.record FROM ipgate_seclog l JOIN ipgate_seclog_head h ON l.seq = h.seq",
                &[],
            )
            .await
            .map_err(pg_error)?;
        let Some(row) = row else {
            return Ok(());
        };
        let text: String = row.try_get(0).map_err(pg_error)?;
        // An unreadable head record is the start-up verification's to report.
        let Ok(head) = serde_json::from_str::<SecRecord>(&text) else {
            return Ok(());
        };
        match head.key_id {
            Some(id) if id != self.log_key.id() => Err(StoreError::LogKeyMismatch {
                stored: id,
                configured: self.log_key.id().to_string(),
            }),
            _ => Ok(()),
        }
    }
}

#[async_trait]
impl LogStore for PgStore {
    async fn record_all(&self, records: &[(Actor, Event<'_>)]) -> Result<(), StoreError> {
        self.retrying(|| async {
            let mut c = self.client().await?;
            let mut w = self.begin(&mut c).await?;
            for (actor, event) in records {
                w.log(actor, event).await?;
            }
            w.commit().await
        })
        .await
    }

    async fn security_log(&self, account: Option<&str>) -> Result<Vec<SecRecord>, StoreError> {
        let c = self.client().await?;
        let rows = match account {
            Some(a) => {
                c.query(
                    "SELECT record FROM ipgate_seclog WHERE account = $1 ORDER BY seq",
                    &[&a],
                )
                .await
            }
            None => {
                c.query("SELECT record FROM ipgate_seclog ORDER BY seq", &[])
                    .await
            }
        }
        .map_err(pg_error)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let text: String = row.try_get(0).map_err(pg_error)?;
            match serde_json::from_str::<SecRecord>(&text) {
                Ok(r) => out.push(r),
                Err(e) => tracing::error!(error = %e, "unreadable security-log record"),
            }
        }
        Ok(out)
    }

    async fn security_log_head(&self) -> Result<Head, StoreError> {
        let c = self.client().await?;
        let row = c
            .query_opt("SELECT seq, hash FROM ipgate_seclog_head", &[])
            .await
            .map_err(pg_error)?;
        let Some(row) = row else {
            return Ok(seclog::genesis());
        };
        let seq: i64 = row.try_get(0).map_err(pg_error)?;
        // The head row of an empty log names record 0.
        if seq <= 0 {
            return Ok(seclog::genesis());
        }
        Ok(Head {
            seq: super::as_id(seq),
            hash: row.try_get(1).map_err(pg_error)?,
        })
    }

    async fn verify_security_log(&self) -> Result<Verification, StoreError> {
        let mut c = self.client().await?;
        // One snapshot for the records and the head, so a change committing
        // meanwhile is either wholly in it or not at all.
        let tx = c
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(pg_error)?;
        let rows = tx
            .query("SELECT seq, record FROM ipgate_seclog ORDER BY seq", &[])
            .await
            .map_err(pg_error)?;
        let head_row = tx
            .query_opt("SELECT seq, hash FROM ipgate_seclog_head", &[])
            .await
            .map_err(pg_error)?;
        tx.commit().await.map_err(pg_error)?;
        let records = rows.iter().map(|row| {
            let seq: i64 = row.try_get(0).map_err(pg_error)?;
            let text: String = row.try_get(1).map_err(pg_error)?;
            Ok((u64::try_from(seq).unwrap_or(0), text.into_bytes()))
        });
        let head = || -> Result<Option<Head>, StoreError> {
            let Some(row) = &head_row else {
                return Ok(None);
            };
            let seq: i64 = row.try_get(0).map_err(pg_error)?;
            let hash: String = row.try_get(1).map_err(pg_error)?;
            // The head row of an empty log names record 0.
            Ok((seq > 0).then(|| Head {
                seq: u64::try_from(seq).unwrap_or(0),
                hash,
            }))
        };
        seclog::verify_chain(records, head, &self.log_key)
    }

    fn log_key_id(&self) -> &str {
        self.log_key.id()
    }
}

#[async_trait]
impl MetaStore for PgStore {
    async fn secret(&self, name: &str) -> Result<[u8; 32], StoreError> {
        let fresh: [u8; 32] = rand::random();
        let key = format!("secret:{name}");
        let c = self.client().await?;
        c.execute(
            "INSERT INTO ipgate_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
            &[&key, &&fresh[..]],
        )
        .await
        .map_err(pg_error)?;
        let row = c
            .query_one("SELECT value FROM ipgate_meta WHERE key = $1", &[&key])
            .await
            .map_err(pg_error)?;
        let stored: Vec<u8> = row.try_get(0).map_err(pg_error)?;
        stored
            .try_into()
            .map_err(|_| StoreError::Corrupt(format!("secret {name}")))
    }

    async fn next_generation(&self) -> Result<u64, StoreError> {
        let c = self.client().await?;
        let row = c
            .query_one("SELECT nextval('ipgate_table_generation')", &[])
            .await
            .map_err(pg_error)?;
        let n: i64 = row.try_get(0).map_err(pg_error)?;
        Ok(super::as_id(n))
    }

    fn take_touched(&self) -> crate::store::Noted {
        self.journal.take()
    }

    fn untake_touched(&self, touches: Vec<Touch>) {
        for t in touches {
            self.journal.note(t);
        }
    }

    async fn watch_changes(&self) -> Result<bool, StoreError> {
        self.follow_changes().await
    }
}
