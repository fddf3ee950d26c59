//! Walking the security log's chain: every record in order, each chaining
//! to the one before, unkeyed (plain SHA-256) records only before the first
//! keyed one, keyed ones under the configured key, and a head that names
//! the last.

use super::key::{self, LogKey};
use super::{Head, SecRecord, GENESIS, HEAD_KEY};
use serde::Serialize;

/// The record the head names, if the head and that record can be read.
pub fn head_record(log: &sled::Tree) -> Result<Option<SecRecord>, sled::Error> {
    let Some(head) = log
        .get(HEAD_KEY)?
        .and_then(|v| serde_json::from_slice::<Head>(&v).ok())
    else {
        return Ok(None);
    };
    Ok(log
        .get(head.seq.to_be_bytes())?
        .and_then(|v| serde_json::from_slice(&v).ok()))
}

/// The outcome of a verification.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Verification {
    pub ok: bool,
    pub records: u64,
    /// The head hash: keep a copy elsewhere to catch truncation.
    pub head: String,
    /// The id of the key the chain was checked with.
    pub key_id: String,
    /// The first keyed record; those before it were written before log
    /// keys and are plain SHA-256. None: no keyed record (yet).
    #[schema(required = true)]
    pub keyed_from: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broken_at: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Why `rec` (which chains to the record before it) does not hold, if so.
fn check_record(rec: &SecRecord, key: &LogKey, keyed_from: Option<u64>) -> Option<String> {
    match &rec.key_id {
        None if keyed_from.is_some() => {
            Some("not keyed, yet after keyed records (rewritten without the log key)".into())
        }
        None if !key::same(&rec.compute_hash(key), &rec.hash) => {
            Some("content does not match its hash (edited)".into())
        }
        None => None,
        Some(id) if id != key.id() => Some(format!(
            "written with log key `{id}`, not with the configured key `{}`",
            key.id()
        )),
        Some(_) if !key::same(&rec.compute_hash(key), &rec.hash) => {
            Some("content does not match its HMAC (edited, or rehashed without the log key)".into())
        }
        Some(_) => None,
    }
}

/// Walks the whole chain of a sled log tree, checking keyed records with
/// `key`.
pub fn verify(log: &sled::Tree, key: &LogKey) -> Result<Verification, sled::Error> {
    let records = log.iter().filter_map(|item| match item {
        // The head sits beside the records under a shorter key.
        Ok((k, _)) if k.len() != 8 => None,
        Ok((k, v)) => Some(Ok((
            u64::from_be_bytes(k.as_ref().try_into().unwrap_or([0; 8])),
            v.to_vec(),
        ))),
        Err(e) => Some(Err(e)),
    });
    let head = || -> Result<Option<Head>, sled::Error> {
        Ok(log
            .get(HEAD_KEY)?
            .and_then(|v| serde_json::from_slice(&v).ok()))
    };
    verify_chain(records, head, key)
}

/// Walks a chain given as `(seq it is stored under, record bytes)` in
/// order, and the head as stored (read after the records; none when it is
/// missing or unreadable), checking keyed records with `key`. Any store's
/// log verifies here, so every backend judges a chain alike.
pub fn verify_chain<E>(
    records: impl Iterator<Item = Result<(u64, Vec<u8>), E>>,
    head: impl FnOnce() -> Result<Option<Head>, E>,
    key: &LogKey,
) -> Result<Verification, E> {
    let mut prev = GENESIS.to_string();
    let mut expected = 1u64;
    let mut keyed_from: Option<u64> = None;
    let broken =
        |seq: u64, reason: String, n: u64, head: &str, keyed_from: Option<u64>| Verification {
            ok: false,
            records: n,
            head: head.to_string(),
            key_id: key.id().to_string(),
            keyed_from,
            broken_at: Some(seq),
            reason: Some(reason),
        };
    for item in records {
        let (key_seq, v) = item?;
        let rec: SecRecord = match serde_json::from_slice(&v) {
            Ok(r) => r,
            Err(e) => {
                return Ok(broken(
                    key_seq,
                    format!("record is not readable: {e}"),
                    expected - 1,
                    &prev,
                    keyed_from,
                ))
            }
        };
        if rec.seq != expected || key_seq != expected {
            return Ok(broken(
                expected,
                format!("record {expected} is missing (found {key_seq})"),
                expected - 1,
                &prev,
                keyed_from,
            ));
        }
        if rec.prev != prev {
            return Ok(broken(
                rec.seq,
                "does not chain to the record before it".into(),
                expected - 1,
                &prev,
                keyed_from,
            ));
        }
        if let Some(why) = check_record(&rec, key, keyed_from) {
            return Ok(broken(rec.seq, why, expected - 1, &prev, keyed_from));
        }
        if rec.key_id.is_some() && keyed_from.is_none() {
            keyed_from = Some(rec.seq);
        }
        prev = rec.hash;
        expected += 1;
    }
    let n = expected - 1;
    match head()? {
        None if n == 0 => {}
        Some(h) if h.seq == n && h.hash == prev => {}
        Some(h) => {
            return Ok(broken(
                h.seq,
                format!(
                    "the head names record {} but the chain ends at {n} (truncated)",
                    h.seq
                ),
                n,
                &prev,
                keyed_from,
            ));
        }
        None => {
            return Ok(broken(
                n,
                "the head is missing".into(),
                n,
                &prev,
                keyed_from,
            ))
        }
    }
    Ok(Verification {
        ok: true,
        records: n,
        head: prev,
        key_id: key.id().to_string(),
        keyed_from,
        broken_at: None,
        reason: None,
    })
}
