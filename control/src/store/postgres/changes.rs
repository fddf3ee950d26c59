//! The change feed between control planes sharing one database. Every
//! change that touches the proxy's table writes a row of `ipgate_changes`
//! (its place in the security log and what it touched) and a `NOTIFY` in
//! its transaction; every control plane listens, and also polls (a
//! notification is not durable: one sent while a listener reconnects is
//! lost), reads the rows after the newest it has noted, and notes their
//! touches for its publisher to republish.

use super::{pg_error, PgStore};
use crate::store::{StoreError, Touch};
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_postgres::{AsyncMessage, GenericClient};

/// The channel the changes are announced on.
const CHANNEL: &str = "ipgate_changes";

/// How often the feed is read without a notification.
pub const POLL: Duration = Duration::from_millis(500);

/// The connection listening for announcements.
pub(super) struct Listener {
    client: tokio_postgres::Client,
    woken: Arc<Notify>,
}

fn as_seq(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The changes after `after`, in order: the newest's place and what they
/// touched.
pub(super) async fn since(
    c: &impl GenericClient,
    after: u64,
) -> Result<(u64, Vec<Touch>), StoreError> {
    let rows = c
        .query(
            "SELECT seq, touches FROM ipgate_changes WHERE seq > $1 ORDER BY seq",
            &[&as_seq(after)],
        )
        .await
        .map_err(pg_error)?;
    let mut newest = after;
    let mut touches = Vec::new();
    for row in rows {
        let seq: i64 = row.try_get(0).map_err(pg_error)?;
        let these: Vec<Touch> = super::read(&row, 1)?;
        newest = newest.max(super::as_id(seq));
        touches.extend(these);
    }
    Ok((newest, touches))
}

/// Records a change's touches at `seq` and announces it, inside its
/// transaction (the announcement goes out when it commits).
pub(super) async fn record(
    c: &impl GenericClient,
    seq: u64,
    touches: &[Touch],
) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO ipgate_changes (seq, touches) VALUES ($1, $2)",
        &[&as_seq(seq), &super::doc(&touches)],
    )
    .await
    .map_err(pg_error)?;
    c.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &seq.to_string()])
        .await
        .map_err(pg_error)?;
    Ok(())
}

impl PgStore {
    /// The newest change's place (0 for none).
    pub(super) async fn newest_change(&self) -> Result<u64, StoreError> {
        let c = self.client().await?;
        let row = c
            .query_one("SELECT COALESCE(MAX(seq), 0) FROM ipgate_changes", &[])
            .await
            .map_err(pg_error)?;
        Ok(super::as_id(row.try_get(0).map_err(pg_error)?))
    }

    /// Waits for an announcement (or [`POLL`]), then notes the changes
    /// after the newest noted; true when there were any.
    pub(super) async fn follow_changes(&self) -> Result<bool, StoreError> {
        match self.listening().await {
            Ok(woken) => {
                tokio::select! {
                    _ = woken.notified() => {}
                    _ = tokio::time::sleep(POLL) => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for other control planes' changes; polling");
                tokio::time::sleep(POLL).await;
            }
        }
        let c = self.client().await?;
        let after = self.journal.version();
        let (newest, touches) = since(&**c, after).await?;
        if newest == after {
            return Ok(false);
        }
        self.journal.note_up_to(touches, newest);
        Ok(true)
    }

    /// The listening connection's wake-up, connecting it first if it is
    /// not (or no longer) open. The same connection holds this store's
    /// holder lock (see `outbox`): while it is open, the mail this store
    /// leased is known to be its.
    pub(super) async fn listening(&self) -> Result<Arc<Notify>, StoreError> {
        let mut held = self.listener.lock().await;
        if let Some(l) = held.as_ref().filter(|l| !l.client.is_closed()) {
            return Ok(l.woken.clone());
        }
        let (client, mut conn) = self
            .config
            .connect(tokio_postgres::NoTls)
            .await
            .map_err(pg_error)?;
        let woken = Arc::new(Notify::new());
        let wake = woken.clone();
        tokio::spawn(async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
            while let Some(m) = messages.next().await {
                match m {
                    Ok(AsyncMessage::Notification(_)) => wake.notify_one(),
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "the change listener's connection ended");
                        break;
                    }
                }
            }
            // Whoever waits reads the feed now, and reconnects next time.
            wake.notify_one();
        });
        client
            .batch_execute(&format!("LISTEN {CHANNEL}"))
            .await
            .map_err(pg_error)?;
        client
            .execute(
                "SELECT pg_advisory_lock($1::int4, $2::int4)",
                &[&super::outbox::HOLDERS, &self.holder],
            )
            .await
            .map_err(pg_error)?;
        *held = Some(Listener {
            client,
            woken: woken.clone(),
        });
        Ok(woken)
    }
}
