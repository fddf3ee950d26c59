//! The Security log tab's HTML: the chain's head and record count to note
//! down, the account's records newest first (one page), links to older
//! pages and to the CSV download. The template escapes every value.

use super::pages::{header, tabs, Tab};
use crate::html::page;
use crate::http::customer_log::{AccountLog, MAX_LIMIT};
use crate::http::extract::Caller;
use maud::{html, Markup, PreEscaped};

pub struct LogView<'a> {
    pub caller: &'a Caller,
    pub csrf: &'a str,
    pub log: &'a AccountLog,
    /// The `before` this page was asked with.
    pub before: Option<u64>,
}

/// Where the CSV of this page and the ones older than it downloads from.
fn download_href(before: Option<u64>) -> String {
    match before {
        Some(b) => format!("/portal/security-log.csv?before={b}&limit={MAX_LIMIT}"),
        None => format!("/portal/security-log.csv?limit={MAX_LIMIT}"),
    }
}

fn chain_box(log: &AccountLog) -> Markup {
    html! {
        div class="box" id="chain" {
            b { "The log's chain" }
            p {
                "The security log is one hash chain over every record ipgate keeps. It holds "
                b id="chain-records" { (log.chain.records) } " records; the newest one's hash (the chain's head) is "
                code id="chain-head" { (log.chain.head) } "."
            }
            p class="muted" {
                "Note the count and the head now and then: later the count only grows, your records keep \
                 their hashes, and we can show that the head you noted is still in the chain."
            }
        }
    }
}

fn records_table(log: &AccountLog) -> Markup {
    html! {
        table id="security-log" {
            tr { th { "#" } th { "Time (UTC)" } th { "Event" } th { "By" } th { "From" } th { "Details" } }
            @for r in &log.records {
                tr id={ "log-" (r.seq) } {
                    td { (r.seq) }
                    td class="nowrap" { (r.at) }
                    td class="event nowrap" { (r.event) }
                    td { (r.actor) }
                    td class="ip" {
                        @match &r.ip {
                            Some(ip) => { (ip) }
                            None => { (PreEscaped("&ndash;")) }
                        }
                    }
                    td { code { (r.details.to_string()) } }
                }
            }
            @if log.records.is_empty() {
                tr { td colspan="6" class="muted" { "none" } }
            }
        }
    }
}

pub fn security_log(v: &LogView) -> Markup {
    let log = v.log;
    let body = html! {
        (header(v.caller, v.csrf, "Security log"))
        (tabs(Tab::SecurityLog))
        (chain_box(log))
        p {
            "Every security step on your account, newest first: logins, requests and their decisions, \
             whitelist, identity, key and user changes. "
            a id="download" href=(download_href(v.before)) download { "Download CSV" }
            " (up to " (MAX_LIMIT) " records from this page on)."
        }
        (records_table(log))
        p {
            @if v.before.is_some() {
                a id="newest" href="/portal/security-log" { "Newest records" }
                " "
            }
            @if let Some(next) = log.next_before {
                a id="older" href={ "/portal/security-log?before=" (next) } { "Older records" }
            }
        }
    };
    page("Security log", body)
}
