//! `ipgate admin import [--kind K] FILE`: whitelist entries (the default),
//! account identities or key hashes from a CSV file, one admin API call per
//! row, with progress on stderr and a summary at the end.
//!
//! Rows are `account,cidr[,remark[,tags]]` (tags separated by `;`),
//! `account,value[,remark]` or `account,sha256[,remark]` (see `kind`); a
//! first row starting with `account` is a header; `#` starts a comment
//! line. A row already there is skipped, so a stopped import can simply be
//! run again. The import stops at the first answer that says the server,
//! not the row, is the problem (bad token, store not writable, unreachable).

mod kind;

use crate::admin_client::AdminClient;
pub use kind::Kind;
use serde_json::Value;
use std::collections::HashMap;
use std::io::{IsTerminal, Read, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// What became of each row so far.
#[derive(Default)]
struct Tally {
    added: usize,
    present: usize,
    refused: Vec<(u64, String)>,
}

pub fn run(client: &AdminClient, file: &Path, kind: Kind) -> anyhow::Result<ExitCode> {
    let text = read_input(file)?;
    let (rows, refused) = kind::parse(&text, kind);
    let mut tally = Tally {
        refused,
        ..Tally::default()
    };
    let total = rows.len() + tally.refused.len();
    let name = file.display();
    eprintln!("importing {total} rows from {name}");
    let mut progress = Progress::new(total);
    for (line, why) in &tally.refused {
        eprintln!("line {line}: refused: {why}");
        progress.step(&tally);
    }
    let mut known = HashMap::new();
    let mut stopped = None;
    for row in &rows {
        let answer = client.call("POST", &kind.path(&row.account), Some(kind.body(row)));
        let answer = match answer {
            Ok((status, text)) if status == reqwest::StatusCode::CONFLICT => kind
                .already_there(client, row, &mut known)
                .map(|present| (status, text, present)),
            Ok((status, text)) => Ok((status, text, false)),
            Err(e) => Err(e),
        };
        match answer {
            Ok((status, _, _)) if status.is_success() => {
                tally.added += 1;
                // The account's list, if read, no longer holds all it has.
                known.remove(&row.account);
            }
            Ok((_, _, true)) => tally.present += 1,
            Ok((status, text, _))
                if status.is_client_error() && status != reqwest::StatusCode::UNAUTHORIZED =>
            {
                let why = format!("{}: {}", kind.describe(row), api_message(&text));
                eprintln!("line {}: refused: {why}", row.line);
                tally.refused.push((row.line, why));
            }
            Ok((status, text, _)) => {
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
        "{name}: {} added, {} {}, {} refused{}",
        tally.added,
        tally.present,
        kind.present(),
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
    fn api_errors_read_as_field_and_message() {
        assert_eq!(
            api_message(r#"{"errors":[{"field":"cidr","message":"host bits set"}]}"#),
            "cidr: host bits set"
        );
        assert_eq!(api_message("plain text\n"), "plain text");
    }
}
