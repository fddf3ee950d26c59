//! What `ipgate admin import --kind K` reads: the rows of each kind, the
//! admin API call each row becomes, and how a conflict (409) is told apart:
//! a row already there (counted, so a file can be imported again) or one
//! that clashes with another account's (refused).

use crate::admin_client::{seg, AdminClient};
use serde_json::{json, Value};
use std::collections::HashMap;

/// The kinds of rows a CSV file can hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// `account,cidr[,remark[,tags]]`: whitelist entries.
    Entries,
    /// `account,value[,remark]`: account identities.
    Identities,
    /// `account,sha256[,remark]`: secret keys, as SHA-256 hex only.
    Keys,
}

/// One data row of the file.
#[derive(Debug, PartialEq)]
pub struct Row {
    pub line: u64,
    pub account: String,
    /// The cidr, identity value or key hash.
    pub value: String,
    pub remark: String,
    pub tags: Vec<String>,
}

impl Kind {
    /// A row's fields, for messages.
    pub fn shape(self) -> &'static str {
        match self {
            Kind::Entries => "account,cidr[,remark[,tags]]",
            Kind::Identities => "account,value[,remark]",
            Kind::Keys => "account,sha256[,remark]",
        }
    }

    pub fn max_fields(self) -> usize {
        match self {
            Kind::Entries => 4,
            Kind::Identities | Kind::Keys => 3,
        }
    }

    /// The second field's name.
    pub fn field(self) -> &'static str {
        match self {
            Kind::Entries => "cidr",
            Kind::Identities => "value",
            Kind::Keys => "sha256",
        }
    }

    /// How the summary counts rows already there.
    pub fn present(self) -> &'static str {
        match self {
            Kind::Entries => "already on the whitelist",
            Kind::Identities | Kind::Keys => "already registered",
        }
    }

    fn list(self) -> &'static str {
        match self {
            Kind::Entries => "whitelist",
            Kind::Identities => "identities",
            Kind::Keys => "keys",
        }
    }

    /// The path rows of this kind are added under.
    pub fn path(self, account: &str) -> String {
        format!("/admin/v1/accounts/{}/{}", seg(account), self.list())
    }

    pub fn body(self, row: &Row) -> Value {
        match self {
            Kind::Entries => json!({"cidr": row.value, "remark": row.remark, "tags": row.tags}),
            Kind::Identities => json!({"value": row.value, "remark": row.remark}),
            Kind::Keys => json!({"sha256": row.value, "remark": row.remark}),
        }
    }

    /// Why a row is refused before any call, if it is.
    pub fn check(self, row: &Row) -> Option<String> {
        let hash = row.value.as_bytes();
        if self == Kind::Keys && (hash.len() != 64 || !hash.iter().all(u8::is_ascii_hexdigit)) {
            return Some(format!(
                "{}: sha256: not 64 hex digits; a keys file holds each key's SHA-256, never the key",
                row.account
            ));
        }
        None
    }

    /// The row as refusals name it. A key row shows the hash's fingerprint.
    pub fn describe(self, row: &Row) -> String {
        match self {
            Kind::Keys => format!("{} {}", row.account, fingerprint(&row.value)),
            _ => format!("{} {}", row.account, row.value),
        }
    }

    /// After a 409: whether the row is already the account's own, read from
    /// the account's list (once per account, then remembered).
    pub fn already_there(
        self,
        client: &AdminClient,
        row: &Row,
        known: &mut HashMap<String, Vec<String>>,
    ) -> anyhow::Result<bool> {
        if self == Kind::Entries {
            // A whitelist conflict is always with the account's own entry.
            return Ok(true);
        }
        if !known.contains_key(&row.account) {
            let (status, text) = client.call("GET", &self.path(&row.account), None)?;
            if !status.is_success() {
                anyhow::bail!("listing {}'s {}: {status}", row.account, self.list());
            }
            let list: Value = serde_json::from_str(&text)?;
            let field = if self == Kind::Keys {
                "fingerprint"
            } else {
                "value"
            };
            let marks = list
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v[field].as_str())
                        .map(str::to_ascii_lowercase)
                        .collect()
                })
                .unwrap_or_default();
            known.insert(row.account.clone(), marks);
        }
        let mark = match self {
            Kind::Keys => fingerprint(&row.value),
            _ => row.value.to_ascii_lowercase(),
        };
        Ok(known
            .get(&row.account)
            .is_some_and(|marks| marks.contains(&mark)))
    }
}

/// A key hash's fingerprint as ipgate shows it: `sha256:` and its first 12
/// hex digits (lower case).
fn fingerprint(hex: &str) -> String {
    let head: String = hex.chars().take(12).collect();
    format!("sha256:{}", head.to_ascii_lowercase())
}

/// The rows to send, and the rows refused before any call (line, why).
pub fn parse(text: &str, kind: Kind) -> (Vec<Row>, Vec<(u64, String)>) {
    let mut rows = Vec::new();
    let mut refused = Vec::new();
    let mut first = true;
    // One physical line per row, so every message names the right line (the
    // reader's own count leaves out blank lines); remarks are one line anyway.
    for (i, text) in text.lines().enumerate() {
        let line = i as u64 + 1;
        if text.trim().is_empty() || text.trim_start().starts_with('#') {
            continue;
        }
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .trim(csv::Trim::All)
            .from_reader(text.as_bytes());
        let record = match reader.records().next() {
            Some(Ok(r)) => r,
            Some(Err(e)) => {
                refused.push((line, format!("not a CSV row: {e}")));
                continue;
            }
            None => continue,
        };
        let field = |n: usize| record.get(n).unwrap_or("").to_string();
        if std::mem::take(&mut first) && field(0).eq_ignore_ascii_case("account") {
            continue;
        }
        if record.len() > kind.max_fields() {
            let why = format!(
                "{} fields; a row is {} (quote a remark that has commas)",
                record.len(),
                kind.shape()
            );
            refused.push((line, why));
            continue;
        }
        let (account, value) = (field(0), field(1));
        if account.is_empty() || value.is_empty() {
            refused.push((line, format!("needs an account and a {}", kind.field())));
            continue;
        }
        let tags = field(3)
            .split(';')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect();
        let row = Row {
            line,
            account,
            value,
            remark: field(2),
            tags,
        };
        match kind.check(&row) {
            Some(why) => refused.push((line, why)),
            None => rows.push(row),
        }
    }
    (rows, refused)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_headers_comments_and_bad_rows() {
        let text = "account,cidr,remark,tags\n\
                    acme, 203.0.113.10 ,\"prod, eu\",a;b\n\
                    # a comment\n\
                    \n\
                    globex,2001:db8::/64\n\
                    acme\n\
                    acme,1.2.3.4,r,t,extra\n";
        let (rows, refused) = parse(text, Kind::Entries);
        assert_eq!(
            rows,
            vec![
                Row {
                    line: 2,
                    account: "acme".into(),
                    value: "203.0.113.10".into(),
                    remark: "prod, eu".into(),
                    tags: vec!["a".into(), "b".into()],
                },
                Row {
                    line: 5,
                    account: "globex".into(),
                    value: "2001:db8::/64".into(),
                    remark: String::new(),
                    tags: vec![],
                },
            ]
        );
        let lines: Vec<u64> = refused.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, vec![6, 7]);
        assert!(refused[0].1.contains("needs an account and a cidr"));
        assert!(refused[1].1.contains("5 fields"));
    }

    #[test]
    fn a_first_row_that_is_data_is_kept() {
        let (rows, refused) = parse("acme,203.0.113.10\n", Kind::Entries);
        assert_eq!(rows.len(), 1);
        assert!(refused.is_empty());
    }

    #[test]
    fn identity_and_key_rows_have_three_fields_and_keys_are_hashes() {
        let (rows, refused) = parse("acme,sender-1,r\nacme,sender-2,r,extra\n", Kind::Identities);
        assert_eq!(rows.len(), 1);
        assert!(
            refused[0].1.contains("account,value[,remark]"),
            "{refused:?}"
        );
        let hash = "AB".repeat(32);
        let text = format!("account,sha256\nacme,{hash},prod\nacme,my-raw-secret-key\n");
        let (rows, refused) = parse(&text, Kind::Keys);
        assert_eq!(rows.len(), 1);
        assert_eq!(Kind::Keys.describe(&rows[0]), "acme sha256:abababababab");
        assert_eq!(refused.len(), 1);
        assert!(refused[0].1.contains("never the key"), "{refused:?}");
        assert!(
            !refused[0].1.contains("my-raw-secret-key"),
            "the key is not echoed"
        );
        assert_eq!(Kind::Keys.body(&rows[0])["sha256"], hash.as_str());
    }
}
