//! A [`Dump`] written into an empty PostgreSQL store, in one transaction
//! (all of it, or nothing), for `ipgate store copy`. The security log's
//! records go in byte for byte under their places, with the head, so the
//! chain verifies as it did; ids and the table generation go on from
//! where the source left them.

use super::{doc, pg_error, PgStore};
use crate::seclog::SecRecord;
use crate::store::dump::Dump;
use crate::store::StoreError;
use tokio_postgres::types::ToSql;

/// Rows written per statement for the big tables.
const BATCH: usize = 5_000;

fn id(text: &str, what: &str) -> Result<i64, StoreError> {
    super::parse_id(text).ok_or_else(|| StoreError::Corrupt(format!("{what} id `{text}`")))
}

fn seq(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl PgStore {
    /// Writes `d` into this store, which must hold nothing yet; `progress`
    /// hears each kind of record as it is written (name, done, of).
    pub async fn import(
        &self,
        d: &Dump,
        progress: &mut (dyn FnMut(&str, usize, usize) + Send),
    ) -> Result<(), StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg_error)?;
        let row = tx
            .query_one(
                "SELECT (SELECT seq FROM ipgate_seclog_head FOR UPDATE),
                        (SELECT count(*) FROM ipgate_accounts) + (SELECT count(*) FROM ipgate_users)",
                &[],
            )
            .await
            .map_err(pg_error)?;
        let (head, records): (i64, i64) = (
            row.try_get(0).map_err(pg_error)?,
            row.try_get(1).map_err(pg_error)?,
        );
        if head != 0 || records != 0 {
            return Err(StoreError::NotEmpty);
        }
        for (name, value) in &d.secrets {
            tx.execute(
                "INSERT INTO ipgate_meta (key, value) VALUES ($1, $2)",
                &[&format!("secret:{name}"), value],
            )
            .await
            .map_err(pg_error)?;
        }
        for a in &d.accounts {
            let aid = a.id.as_str();
            tx.execute(
                "INSERT INTO ipgate_accounts (id, doc) VALUES ($1, $2)",
                &[&aid, &doc(a)],
            )
            .await
            .map_err(pg_error)?;
            tx.execute(
                "INSERT INTO ipgate_names (folded, account, identity) VALUES ($1, $2, NULL)",
                &[&aid.to_ascii_lowercase(), &aid],
            )
            .await
            .map_err(pg_error)?;
        }
        progress("accounts", d.accounts.len(), d.accounts.len());
        for (done, chunk) in d.entries.chunks(BATCH).enumerate() {
            let mut ids = Vec::with_capacity(chunk.len());
            let mut accounts = Vec::with_capacity(chunk.len());
            let mut cidrs = Vec::with_capacity(chunk.len());
            let mut docs = Vec::with_capacity(chunk.len());
            let mut ends = Vec::with_capacity(chunk.len());
            for (account, e) in chunk {
                ids.push(id(&e.id, "entry")?);
                accounts.push(account.as_str());
                cidrs.push(e.cidr.to_string());
                docs.push(doc(e));
                ends.push(super::entries::expires_unix(e));
            }
            tx.execute(
                "INSERT INTO ipgate_entries (id, account, cidr, doc, expires_unix)
                 SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::jsonb[], $5::bigint[])",
                &[&ids, &accounts, &cidrs, &docs, &ends],
            )
            .await
            .map_err(pg_error)?;
            progress(
                "entries",
                (done * BATCH + chunk.len()).min(d.entries.len()),
                d.entries.len(),
            );
        }
        for b in &d.blocklist {
            tx.execute(
                "INSERT INTO ipgate_blocklist (id, cidr, doc) VALUES ($1, $2, $3)",
                &[&id(&b.id, "blocklist")?, &b.cidr.to_string(), &doc(b)],
            )
            .await
            .map_err(pg_error)?;
        }
        for i in &d.identities {
            let account = i.account.as_str();
            tx.execute(
                "INSERT INTO ipgate_identities (account, id, doc) VALUES ($1, $2, $3)",
                &[&account, &id(&i.id, "identity")?, &doc(i)],
            )
            .await
            .map_err(pg_error)?;
            tx.execute(
                "INSERT INTO ipgate_names (folded, account, identity) VALUES ($1, $2, $3)",
                &[&i.value.to_ascii_lowercase(), &account, &i.id],
            )
            .await
            .map_err(pg_error)?;
        }
        for k in &d.keys {
            let hash = crate::store::parse_sha256(&k.sha256)
                .ok_or_else(|| StoreError::Corrupt(format!("key {}'s hash", k.id)))?;
            tx.execute(
                "INSERT INTO ipgate_keys (account, id, sha256, doc) VALUES ($1, $2, $3, $4)",
                &[&k.account.as_str(), &id(&k.id, "key")?, &&hash[..], &doc(k)],
            )
            .await
            .map_err(pg_error)?;
        }
        for u in &d.users {
            tx.execute(
                "INSERT INTO ipgate_users (username, doc) VALUES ($1, $2)",
                &[&u.username, &doc(u)],
            )
            .await
            .map_err(pg_error)?;
        }
        for (hash, t) in &d.tokens {
            tx.execute(
                "INSERT INTO ipgate_tokens (hash, username, doc) VALUES ($1, $2, $3)",
                &[hash, &t.username, &doc(t)],
            )
            .await
            .map_err(pg_error)?;
        }
        for (hash, s) in &d.sessions {
            let expires = seq(s.expires_at.unix());
            tx.execute(
                "INSERT INTO ipgate_sessions (hash, expires_unix, doc) VALUES ($1, $2, $3)",
                &[hash, &expires, &doc(s)],
            )
            .await
            .map_err(pg_error)?;
        }
        for r in &d.requests {
            let params: [&(dyn ToSql + Sync); 5] = [
                &id(&r.id, "request")?,
                &r.account.as_str(),
                &r.status.as_str(),
                &seq(r.expires_at.unix()),
                &doc(r),
            ];
            tx.execute(
                "INSERT INTO ipgate_requests (id, account, status, expires_unix, doc) VALUES ($1, $2, $3, $4, $5)",
                &params,
            )
            .await
            .map_err(pg_error)?;
        }
        for (hash, l) in &d.links {
            tx.execute(
                "INSERT INTO ipgate_links (hash, request, doc) VALUES ($1, $2, $3)",
                &[hash, &id(&l.request, "request")?, &doc(l)],
            )
            .await
            .map_err(pg_error)?;
        }
        for m in &d.outbox {
            tx.execute(
                "INSERT INTO ipgate_outbox (id, due_unix, doc) VALUES ($1, $2, $3)",
                &[&seq(m.id), &seq(m.next_attempt_at.unix()), &doc(m)],
            )
            .await
            .map_err(pg_error)?;
        }
        progress("the rest", 1, 1);
        for (done, chunk) in d.log.chunks(BATCH).enumerate() {
            let mut seqs = Vec::with_capacity(chunk.len());
            let mut accounts = Vec::with_capacity(chunk.len());
            let mut texts = Vec::with_capacity(chunk.len());
            for (n, text) in chunk {
                seqs.push(seq(*n));
                // A record that does not read is copied as it is, for the
                // verification to find.
                accounts.push(
                    serde_json::from_str::<SecRecord>(text)
                        .ok()
                        .and_then(|r| r.account),
                );
                texts.push(text.as_str());
            }
            tx.execute(
                "INSERT INTO ipgate_seclog (seq, account, record)
                 SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[])",
                &[&seqs, &accounts, &texts],
            )
            .await
            .map_err(pg_error)?;
            progress(
                "log records",
                (done * BATCH + chunk.len()).min(d.log.len()),
                d.log.len(),
            );
        }
        if let Some(h) = &d.head {
            tx.execute(
                "UPDATE ipgate_seclog_head SET seq = $1, hash = $2",
                &[&seq(h.seq), &h.hash],
            )
            .await
            .map_err(pg_error)?;
        }
        if d.max_id > 0 {
            tx.execute("SELECT setval('ipgate_ids', $1)", &[&seq(d.max_id)])
                .await
                .map_err(pg_error)?;
        }
        if d.generation > 0 {
            tx.execute(
                "SELECT setval('ipgate_table_generation', $1)",
                &[&seq(d.generation)],
            )
            .await
            .map_err(pg_error)?;
        }
        tx.commit().await.map_err(pg_error)
    }
}
