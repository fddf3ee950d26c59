//! The table's serialised form: what the control plane sends its proxies
//! and what a proxy saves to disk to start from when the control plane is
//! away. An encoded snapshot is a fixed 57-byte header, then the payload:
//!
//! | bytes    | field                                   |
//! |----------|-----------------------------------------|
//! | `0..15`  | magic `IPGATE-SNAPSHOT`                 |
//! | `15..17` | format version, u16 big-endian ([`FORMAT`]) |
//! | `17..25` | payload length, u64 big-endian          |
//! | `25..57` | SHA-256 of the payload                  |
//! | `57..`   | payload: the data as compact JSON       |
//!
//! The payload is JSON (serde_json) because this crate and every reader
//! already have it, an operator can read a saved file with
//! `tail -c +58 FILE | jq`, and the format can grow fields under a new
//! format version; its size is no concern next to what the table itself
//! holds in memory. The header carries the framing JSON does not: the
//! magic refuses a foreign file, the length a cut-short or padded one, the
//! checksum a damaged one, before a byte of the payload is parsed.
//!
//! [`Snapshot::decode`] checks magic, format, length, checksum, syntax and
//! then content, and makes a [`Snapshot`] only when all pass, so a bad file
//! is refused whole with a [`SnapshotError`] naming what is wrong; it never
//! becomes a partial table, let alone an allow-all one. A [`Snapshot`] is
//! valid and in canonical (sorted) order by construction, so the same data
//! always encodes to the same bytes.

mod content;
mod wire;

pub use content::{Contents, Invalid, SnapshotAccount};

use crate::table::{AccountPolicy, Table};
use sha2::{Digest, Sha256};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The first bytes of every encoded snapshot.
pub const MAGIC: &[u8; 15] = b"IPGATE-SNAPSHOT";
/// The format version this build writes and reads.
pub const FORMAT: u16 = 1;
/// Length of the fixed header before the payload.
pub const HEADER_LEN: usize = MAGIC.len() + 2 + 8 + 32;
/// Largest payload decode accepts (1 GiB), checked from the header alone.
pub const MAX_PAYLOAD: u64 = 1 << 30;

/// Why bytes are not a snapshot this build can use.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("not an ipgate snapshot (it does not start with IPGATE-SNAPSHOT)")]
    NotASnapshot,
    #[error("snapshot format version {0} is unknown to this ipgate (it reads version {FORMAT})")]
    UnknownFormat(u16),
    #[error("snapshot payload of {0} bytes is over the limit of {MAX_PAYLOAD} bytes")]
    TooLarge(u64),
    #[error("snapshot is truncated: {got} bytes where {needed} are needed")]
    Truncated { needed: u64, got: u64 },
    #[error("snapshot has {0} bytes after its payload")]
    TrailingBytes(u64),
    #[error("snapshot checksum mismatch: the payload is damaged")]
    Checksum,
    #[error("snapshot payload does not parse: {0}")]
    Parse(serde_json::Error),
    #[error("snapshot content is invalid: {0}")]
    Invalid(#[from] Invalid),
}

/// A whole table's data: valid, in canonical order, ready to encode or to
/// build the table from. Made by [`Snapshot::new`] or [`Snapshot::decode`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot(Contents);

impl Snapshot {
    /// Validates `contents` and puts it in canonical order.
    pub fn new(contents: Contents) -> Result<Snapshot, Invalid> {
        contents.canonical().map(Snapshot)
    }

    pub fn contents(&self) -> &Contents {
        &self.0
    }
    pub fn into_contents(self) -> Contents {
        self.0
    }
    pub fn version(&self) -> u64 {
        self.0.version
    }
    /// When the snapshot was made.
    pub fn made(&self) -> SystemTime {
        // `new` refuses a time the system cannot hold.
        content::unix_time(self.0.made).unwrap_or(UNIX_EPOCH)
    }

    /// The table this snapshot describes, answering exactly as one built
    /// from the same data with `Table::build` and `with_identities`; its
    /// update time is the snapshot's. Entries that ended by now are left
    /// out (and the others end in the table at their time).
    pub fn to_table(&self) -> Table {
        self.to_table_at(unix_seconds(SystemTime::now()))
    }

    /// [`Snapshot::to_table`] as of `now` (Unix seconds).
    pub fn to_table_at(&self, now: u64) -> Table {
        let c = &self.0;
        let accounts = c.accounts.iter().map(|a| {
            let policy = AccountPolicy::ending(a.mode, &a.nets, &a.ending, now);
            (a.id.clone(), policy)
        });
        Table::build(c.version, accounts, &c.blocklist)
            .with_identities(c.identities.iter().cloned(), c.keys.iter().cloned())
            .made_at(self.made())
    }

    /// The header and payload, as laid out in the module docs.
    pub fn encode(&self) -> Vec<u8> {
        // Serialising these plain structs cannot fail (no maps, no custom
        // impls); were it to, the empty payload is refused by `decode` as
        // unparsable, never read as an empty table.
        let payload = serde_json::to_vec(&wire::Out::from(&self.0)).unwrap_or_default();
        let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT.to_be_bytes());
        out.extend_from_slice(&(payload.len() as u64).to_be_bytes());
        out.extend_from_slice(&Sha256::digest(&payload));
        out.extend_from_slice(&payload);
        out
    }

    /// Checks a header and returns the payload length it announces, for a
    /// reader that reads the header first and then exactly the payload.
    pub fn check_header(header: &[u8; HEADER_LEN]) -> Result<u64, SnapshotError> {
        Ok(Header::parse(header)?.len)
    }

    /// The snapshot `data` encodes, or what is wrong with it. Never
    /// panics; allocates only once the checksum has matched.
    pub fn decode(data: &[u8]) -> Result<Snapshot, SnapshotError> {
        let Some((header, payload)) = data.split_first_chunk::<HEADER_LEN>() else {
            let seen = data.len().min(MAGIC.len());
            if data.get(..seen) != MAGIC.get(..seen) {
                return Err(SnapshotError::NotASnapshot);
            }
            return Err(SnapshotError::Truncated {
                needed: HEADER_LEN as u64,
                got: data.len() as u64,
            });
        };
        let header = Header::parse(header)?;
        let got = payload.len() as u64;
        if got < header.len {
            return Err(SnapshotError::Truncated {
                needed: HEADER_LEN as u64 + header.len,
                got: data.len() as u64,
            });
        }
        if got > header.len {
            return Err(SnapshotError::TrailingBytes(got - header.len));
        }
        if Sha256::digest(payload).as_slice() != header.sha256 {
            return Err(SnapshotError::Checksum);
        }
        let parsed: wire::In = serde_json::from_slice(payload).map_err(SnapshotError::Parse)?;
        Ok(Snapshot::new(parsed.try_into()?)?)
    }
}

/// A parsed header.
struct Header<'a> {
    len: u64,
    sha256: &'a [u8; 32],
}

impl<'a> Header<'a> {
    fn parse(header: &'a [u8; HEADER_LEN]) -> Result<Header<'a>, SnapshotError> {
        let (magic, rest) = split::<15>(header)?;
        let (format, rest) = split::<2>(rest)?;
        let (len, rest) = split::<8>(rest)?;
        let (sha256, _) = split::<32>(rest)?;
        if magic != MAGIC {
            return Err(SnapshotError::NotASnapshot);
        }
        let format = u16::from_be_bytes(*format);
        if format != FORMAT {
            return Err(SnapshotError::UnknownFormat(format));
        }
        let len = u64::from_be_bytes(*len);
        if len > MAX_PAYLOAD {
            return Err(SnapshotError::TooLarge(len));
        }
        Ok(Header { len, sha256 })
    }
}

/// The first `N` bytes and the rest; the header's fields always fit.
fn split<const N: usize>(b: &[u8]) -> Result<(&[u8; N], &[u8]), SnapshotError> {
    b.split_first_chunk::<N>().ok_or(SnapshotError::Truncated {
        needed: HEADER_LEN as u64,
        got: 0,
    })
}

/// Seconds since the Unix epoch, for [`Contents::made`].
pub fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

#[cfg(test)]
mod tests;
