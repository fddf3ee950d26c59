//! `ipgate admin import FILE`: whitelist entries from a CSV file, one admin
//! API call per row, with progress on stderr and a summary at the end.
//!
//! Rows are `account,cidr[,remark[,tags]]` (tags separated by `;`); a first
//! row starting with `account` is a header; `#` starts a comment line. An
//! entry already on the whitelist is skipped, so a stopped import can simply
//! be run again. The import stops at the first answer that says the server,
//! not the row, is the problem (bad token, store not writable, unreachable).

use crate::admin_cli::{seg, AdminClient};
use serde_json::{json, Value};
use std::io::{IsTerminal, Read, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// One data row of the file.
#[derive(Debug, PartialEq)]
struct Row {
    line: u64,
    account: String,
    cidr: String,
    remark: String,
    tags: Vec<String>,
}

/// What became of each row so far.
#[derive(Default)]
struct Tally {
    added: usize,
    present: usize,
    refused: Vec<(u64, String)>,
}

pub fn run(client: &AdminClient, file: &Path) -> anyhow::Result<ExitCode> {
    let text = read_input(file)?;
    let (rows, mut tally) = parse(&text);
    let total = rows.len() + tally.refused.len();
    let name = file.display();
    eprintln!("importing {total} rows from {name}");
    let mut progress = Progress::new(total);
    for (line, why) in &tally.refused {
        eprintln!("line {line}: refused: {why}");
        progress.step(&tally);
    }
    let mut stopped = None;
    for row in &rows {
        let body = json!({"cidr": row.cidr, "remark": row.remark, "tags": row.tags});
        let path = format!("/admin/v1/accounts/{}/whitelist", seg(&row.account));
        match client.call("POST", &path, Some(body)) {
            Ok((status, _)) if status.is_success() => tally.added += 1,
            Ok((status, _)) if status == reqwest::StatusCode::CONFLICT => tally.present += 1,
            Ok((status, text))
                if status.is_client_error() && status != reqwest::StatusCode::UNAUTHORIZED =>
            {
                let why = format!("{} {}: {}", row.account, row.cidr, api_message(&text));
                eprintln!("line {}: refused: {why}", row.line);
                tally.refused.push((row.line, why));
            }
            Ok((status, text)) => {
                stopped = Some(format!(
                    "line {}: the admin API answered {status}: {}",
                    row.line,
                    api_message(&text)
                ));
                break;
            }
            Err(e) => {
                stopped = Some(format!("line {}: {e:#}", row.line));
                break;
            }
        }
        progress.step(&tally);
    }
    progress.finish(&tally);
    tally.refused.sort();
    println!(
        "{name}: {} added, {} already on the whitelist, {} refused{}",
        tally.added,
        tally.present,
        tally.refused.len(),
        if tally.refused.is_empty() { "" } else { ":" }
    );
    for (line, why) in &tally.refused {
        println!("  line {line}: {why}");
    }
    if let Some(why) = stopped {
        let done = tally.added + tally.present + tally.refused.len();
        println!(
            "STOPPED after {done} of {total} rows: {why}\n\
             nothing after that line was imported; fix the cause and run the same import again \
             (rows already added are skipped)"
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(if tally.refused.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn read_input(file: &Path) -> anyhow::Result<String> {
    let mut bytes = Vec::new();
    if file == Path::new("-") {
        std::io::stdin().read_to_end(&mut bytes)?;
    } else {
        bytes = std::fs::read(file)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
    }
    // Spreadsheets often start their CSV export with a byte-order mark.
    let bytes = bytes
        .strip_prefix("\u{feff}".as_bytes())
        .map(<[u8]>::to_vec)
        .unwrap_or(bytes);
    String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!(
            "{} is not UTF-8 text (first bad byte at offset {})",
            file.display(),
            e.utf8_error().valid_up_to()
        )
    })
}

/// The rows to send, and the rows refused before any call.
fn parse(text: &str) -> (Vec<Row>, Tally) {
    let mut rows = Vec::new();
    let mut tally = Tally::default();
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
                tally.refused.push((line, format!("not a CSV row: {e}")));
                continue;
            }
            None => continue,
        };
        let field = |n: usize| record.get(n).unwrap_or("").to_string();
        if std::mem::take(&mut first) && field(0).eq_ignore_ascii_case("account") {
            continue;
        }
        if record.len() > 4 {
            tally.refused.push((
                line,
                format!(
                    "{} fields; a row is account,cidr[,remark[,tags]] (quote a remark that has commas)",
                    record.len()
                ),
            ));
            continue;
        }
        let (account, cidr) = (field(0), field(1));
        if account.is_empty() || cidr.is_empty() {
            tally
                .refused
                .push((line, "needs an account and a cidr".to_string()));
            continue;
        }
        let tags = field(3)
            .split(';')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect();
        rows.push(Row {
            line,
            account,
            cidr,
            remark: field(2),
            tags,
        });
    }
    (rows, tally)
}

/// The API's first error, as `field: message`, or the raw text.
fn api_message(text: &str) -> String {
    let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    match (
        v["errors"][0]["field"].as_str(),
        v["errors"][0]["message"].as_str(),
    ) {
        (Some(f), Some(m)) if !f.is_empty() => format!("{f}: {m}"),
        (_, Some(m)) => m.to_string(),
        _ => text.trim().chars().take(200).collect(),
    }
}

/// Progress on stderr: redrawn in place on a terminal, else a line about
/// every 5 % or every 2 s.
struct Progress {
    total: usize,
    done: usize,
    tty: bool,
    last: Instant,
    every: usize,
}

impl Progress {
    fn new(total: usize) -> Progress {
        Progress {
            total,
            done: 0,
            tty: std::io::stderr().is_terminal(),
            last: Instant::now(),
            every: (total / 20).max(1),
        }
    }

    fn step(&mut self, tally: &Tally) {
        self.done += 1;
        let due = self.tty
            || self.done.is_multiple_of(self.every)
            || self.last.elapsed() >= Duration::from_secs(2);
        if due && self.done < self.total {
            self.show(tally);
        }
    }

    fn finish(&mut self, tally: &Tally) {
        self.show(tally);
        if self.tty {
            eprintln!();
        }
    }

    fn show(&mut self, tally: &Tally) {
        self.last = Instant::now();
        let pct = (self.done * 100).checked_div(self.total).unwrap_or(100);
        let text = format!(
            "[{pct:>3}%] {}/{} rows: {} added, {} already there, {} refused",
            self.done,
            self.total,
            tally.added,
            tally.present,
            tally.refused.len()
        );
        let mut err = std::io::stderr().lock();
        let _ = if self.tty {
            write!(err, "\r{text}")
        } else {
            writeln!(err, "{text}")
        };
    }
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
        let (rows, tally) = parse(text);
        assert_eq!(
            rows,
            vec![
                Row {
                    line: 2,
                    account: "acme".into(),
                    cidr: "203.0.113.10".into(),
                    remark: "prod, eu".into(),
                    tags: vec!["a".into(), "b".into()],
                },
                Row {
                    line: 5,
                    account: "globex".into(),
                    cidr: "2001:db8::/64".into(),
                    remark: String::new(),
                    tags: vec![],
                },
            ]
        );
        let lines: Vec<u64> = tally.refused.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, vec![6, 7]);
        assert!(tally.refused[0].1.contains("needs an account and a cidr"));
        assert!(tally.refused[1].1.contains("5 fields"));
    }

    #[test]
    fn a_first_row_that_is_data_is_kept() {
        let (rows, tally) = parse("acme,203.0.113.10\n");
        assert_eq!(rows.len(), 1);
        assert!(tally.refused.is_empty());
    }

    #[test]
    fn api_errors_read_as_field_and_message() {
        assert_eq!(
            api_message(r#"{"errors":[{"field":"cidr","message":"host bits set"}]}"#),
            "cidr: host bits set"
        );
        assert_eq!(api_message("plain text\n"), "plain text");
    }
}
