//! The payload's JSON shape: `Out` borrows a snapshot to write it, `In`
//! owns what is read back. Unknown fields are refused; a key hash is
//! lower-case hex, so a wrong length is a content error, not a parse one.

use super::content::{hex, Contents, Invalid, SnapshotAccount};
use crate::table::Mode;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum WireMode {
    Off,
    Enforce,
    Report,
}

impl From<Mode> for WireMode {
    fn from(m: Mode) -> WireMode {
        match m {
            Mode::Off => WireMode::Off,
            Mode::Enforce => WireMode::Enforce,
            Mode::Report => WireMode::Report,
        }
    }
}

impl From<WireMode> for Mode {
    fn from(m: WireMode) -> Mode {
        match m {
            WireMode::Off => Mode::Off,
            WireMode::Enforce => Mode::Enforce,
            WireMode::Report => Mode::Report,
        }
    }
}

#[derive(Serialize)]
pub(super) struct Out<'a> {
    version: u64,
    made: u64,
    accounts: Vec<AccountOut<'a>>,
    blocklist: &'a [IpNet],
    identities: Vec<OwnedBy<&'a str>>,
    keys: Vec<KeyOut<'a>>,
}

#[derive(Serialize)]
struct AccountOut<'a> {
    id: &'a str,
    mode: WireMode,
    nets: &'a [IpNet],
    /// Left out when empty, so a table without ending entries encodes as
    /// it did before entries could end.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ending: Vec<EndingNet>,
}

/// One of an account's networks that ends, and when (Unix seconds).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EndingNet {
    net: IpNet,
    at: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct OwnedBy<S> {
    name: S,
    account: S,
}

#[derive(Serialize)]
struct KeyOut<'a> {
    sha256: String,
    account: &'a str,
}

impl<'a> From<&'a Contents> for Out<'a> {
    fn from(c: &'a Contents) -> Out<'a> {
        Out {
            version: c.version,
            made: c.made,
            accounts: c
                .accounts
                .iter()
                .map(|a| AccountOut {
                    id: &a.id,
                    mode: a.mode.into(),
                    nets: &a.nets,
                    ending: a
                        .ending
                        .iter()
                        .map(|&(net, at)| EndingNet { net, at })
                        .collect(),
                })
                .collect(),
            blocklist: &c.blocklist,
            identities: c
                .identities
                .iter()
                .map(|(name, account)| OwnedBy {
                    name: name.as_str(),
                    account: account.as_str(),
                })
                .collect(),
            keys: c
                .keys
                .iter()
                .map(|(hash, account)| KeyOut {
                    sha256: hex(hash),
                    account,
                })
                .collect(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct In {
    version: u64,
    made: u64,
    accounts: Vec<AccountIn>,
    blocklist: Vec<IpNet>,
    identities: Vec<OwnedBy<String>>,
    keys: Vec<KeyIn>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountIn {
    id: String,
    mode: WireMode,
    nets: Vec<IpNet>,
    #[serde(default)]
    ending: Vec<EndingNet>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyIn {
    sha256: String,
    account: String,
}

/// 64 lower-case hex digits as 32 bytes.
fn unhex(s: &str) -> Option<[u8; 32]> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let bytes = s.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        if let [hi, lo] = pair {
            *o = digit(*hi)? << 4 | digit(*lo)?;
        }
    }
    Some(out)
}

impl TryFrom<In> for Contents {
    type Error = Invalid;

    fn try_from(w: In) -> Result<Contents, Invalid> {
        let keys = w
            .keys
            .into_iter()
            .map(|k| match unhex(&k.sha256) {
                Some(hash) => Ok((hash, k.account)),
                None => Err(Invalid::KeyHash(k.sha256)),
            })
            .collect::<Result<_, _>>()?;
        Ok(Contents {
            version: w.version,
            made: w.made,
            accounts: w
                .accounts
                .into_iter()
                .map(|a| SnapshotAccount {
                    id: a.id,
                    mode: a.mode.into(),
                    nets: a.nets,
                    ending: a.ending.into_iter().map(|e| (e.net, e.at)).collect(),
                })
                .collect(),
            blocklist: w.blocklist,
            identities: w
                .identities
                .into_iter()
                .map(|i| (i.name, i.account))
                .collect(),
            keys,
        })
    }
}
