//! The portal's HTML: the login page, the tabs every logged-in page starts
//! with, and the whitelist page (status box, summary cards, the caller's
//! IP, the request form, and the searchable tables of whitelisted IPs and
//! of requests). The templates escape every value.

use crate::domain::flow::Status;
use crate::domain::model::WhitelistEntry;
use crate::domain::Timestamp;
use crate::html::page;
use crate::http::extract::Caller;
use crate::plain_time::{plain_duration, time_until};
use crate::store::blocked::BlockedCall;
use crate::store::IpRequest;
use maud::{html, Markup, PreEscaped};
use std::time::Duration;

/// A message above the page.
pub enum Note {
    None,
    Done(&'static str),
    Errors(Vec<String>),
}

pub fn login(csrf: &str, error: Option<&str>) -> Markup {
    page(
        "Log in",
        html! {
            h1 { "ipgate portal: log in" }
            @if let Some(e) = error {
                div class="box bad" id="error" { (e) }
            }
            form method="post" action="/login" {
                input type="hidden" name="csrf" value=(csrf);
                label { "Username " input name="username" id="username" autocomplete="username" required; }
                label { "Password " input name="password" id="password" type="password" autocomplete="current-password" required; }
                label { "Code from your authenticator app " input name="code" id="code" inputmode="numeric" autocomplete="one-time-code" maxlength="6"; }
                p { button type="submit" id="login" { "Log in" } }
            }
        },
    )
}

/// The portal's tabs.
#[derive(Clone, Copy, PartialEq)]
pub enum Tab {
    Whitelist,
    SecurityLog,
}

/// The tab bar, `active` marked as the current page.
pub fn tabs(active: Tab) -> Markup {
    let tab = |t: Tab, id: &str, href: &str, label: &str| {
        html! {
            @if t == active {
                a id=(id) href=(href) aria-current="page" { (label) }
            } @else {
                a id=(id) href=(href) { (label) }
            }
        }
    };
    html! {
        nav class="tabs" {
            (tab(Tab::Whitelist, "tab-whitelist", "/portal", "IP whitelist"))
            (tab(Tab::SecurityLog, "tab-security-log", "/portal/security-log", "Security log"))
        }
    }
}

/// The logout button and the heading of a logged-in page.
pub fn header(c: &Caller, csrf: &str, title: &str) -> Markup {
    html! {
        form method="post" action="/logout" style="float:right" {
            input type="hidden" name="csrf" value=(csrf);
            button type="submit" { "Log out" }
        }
        h1 { (title) ": " (c.account.name) }
        p class="muted" { "Logged in as " (c.user.username) " (account " (c.account.id.as_str()) ")" }
    }
}

pub struct WhitelistView<'a> {
    pub caller: &'a Caller,
    pub csrf: &'a str,
    pub why_not: Option<&'static str>,
    pub entries: &'a [WhitelistEntry],
    pub requests: &'a [IpRequest],
    pub link_ttl: Duration,
    pub max_ips: usize,
    pub query: &'a str,
    pub note: Note,
    /// When the page is made, for "expires in".
    pub now: Timestamp,
    /// The account's blocked calls of the last 7 days, most first.
    pub blocked: &'a [BlockedCall],
    /// The address "Request this IP" put in the form (IPv4 only).
    pub prefill: Option<std::net::Ipv4Addr>,
}

fn date(rfc3339: &str) -> &str {
    rfc3339.get(..10).unwrap_or(rfc3339)
}

fn matches(q: &str, fields: &[&str]) -> bool {
    let q = q.to_lowercase();
    q.is_empty() || fields.iter().any(|f| f.to_lowercase().contains(&q))
}

fn status_box(v: &WhitelistView) -> Markup {
    let c = v.caller;
    let two_factor = if c.user.totp_secret.is_some() {
        "on"
    } else {
        "off"
    };
    let feature = match c.account.whitelist {
        crate::domain::model::WhitelistMode::Enforce => "on (enforced)",
        crate::domain::model::WhitelistMode::Report => {
            "on (report only: calls from other IPs are logged, not refused)"
        }
        crate::domain::model::WhitelistMode::Off => "off",
    };
    let (class, can) = match v.why_not {
        None => ("ok", "You can request up to two IPv4 addresses below."),
        Some(why) => ("warn", why),
    };
    let role = match c.user.role {
        crate::domain::users::Role::Main => "main user",
        crate::domain::users::Role::Sub => "sub user",
    };
    html! {
        div class={ "box " (class) } id="status" {
            b { "Security status" }
            p {
                "Two-factor authentication: " b { (two_factor) } " " (PreEscaped("&middot;"))
                " IP whitelist: " b { (feature) } " " (PreEscaped("&middot;"))
                " role: " b { (role) }
            }
            p { (can) }
        }
    }
}

fn cards(v: &WhitelistView) -> Markup {
    let count = |s: Status| v.requests.iter().filter(|r| r.status == s).count();
    let ttl = plain_duration(v.link_ttl);
    let card = |id: &str, n: String, label: &str| {
        html! {
            div class="card" id=(id) { b { (n) } (label) }
        }
    };
    html! {
        div class="cards" {
            (card(
                "active",
                v.entries.len().to_string(),
                "whitelisted IPs active now"
            ))
            (card(
                "pending",
                count(Status::Pending).to_string(),
                "pending requests"
            ))
            (card(
                "approved",
                count(Status::Approved).to_string(),
                "approved requests"
            ))
            (card("validity", ttl, "link validity"))
        }
    }
}

/// How a request becomes live, step by step.
fn steps() -> Markup {
    html! {
        h2 { "How it works" }
        ol class="steps" id="steps" {
            li { b { "Submit" } " the IP addresses of your servers here." }
            li { b { "Email" } ": every address of your account gets its own confirmation link." }
            li { b { "Open the link" } " and check the request: opening it changes nothing." }
            li { b { "Approve" } " (as many addresses as your account needs)." }
            li { b { "Live" } ": calls from the IPs are accepted at once." }
        }
    }
}

fn form(v: &WhitelistView) -> Markup {
    if v.why_not.is_some() {
        return html! {};
    }
    html! {
        h2 { "Request whitelisting" }
        form method="post" action="/portal/requests/confirm" class="box" id="new-request" {
            input type="hidden" name="csrf" value=(v.csrf);
            label {
                "IP address 1 "
                input name="ip1" id="ip1" required placeholder="203.0.113.10"
                    value=[v.prefill.map(|ip| ip.to_string())];
            }
            @if v.max_ips >= 2 {
                label { "IP address 2 (optional) " input name="ip2" id="ip2" placeholder="198.51.100.7"; }
            }
            label { "Remark (optional, up to 100 characters) " input name="remark" id="remark" maxlength="100" size="50"; }
            label {
                "Whitelist for "
                select name="valid_for" id="valid_for" {
                    option value="" selected { "until removed" }
                    option value="1d" { "1 day" }
                    option value="7d" { "7 days" }
                    option value="30d" { "30 days" }
                    option value="90d" { "90 days" }
                }
            }
            p class="muted" {
                "IPv4 addresses of your servers only. For IPv6 or networks (CIDR), contact us. \
    Nothing is whitelisted until someone approves from the link mailed to each address of your account. \
    An address whitelisted for a time leaves the whitelist by itself when that time is over; every account email is reminded before then."
            }
            button type="submit" id="submit" { "Continue" }
        }
    }
}

fn entries_table(v: &WhitelistView) -> Markup {
    let shown: Vec<(&WhitelistEntry, String, String)> = v
        .entries
        .iter()
        .map(|e| (e, e.cidr.to_string(), e.created_at.to_string()))
        .filter(|(e, cidr, created)| matches(v.query, &[cidr, &e.remark, created]))
        .collect();
    html! {
        h2 { "Whitelisted IPs" }
        table id="whitelist" {
            tr { th { "IP / network" } th { "Status" } th { "Added" } th { "Expires" } th { "Remark" } }
            @for (e, cidr, created) in &shown {
                tr {
                    td class="ip" { (cidr.strip_suffix("/32").unwrap_or(cidr)) }
                    td { "active" }
                    td { (date(created)) }
                    @match e.expires_at {
                        Some(at) => {
                            td class="expires" title=(at.to_string()) {
                                (time_until(at, v.now)) " (" (at.to_string()) ")"
                            }
                        }
                        None => { td class="expires muted" { "never" } }
                    }
                    td { (e.remark) }
                }
            }
            @if shown.is_empty() {
                tr { td colspan="5" class="muted" { "none" } }
            }
        }
    }
}

fn requests_table(v: &WhitelistView) -> Markup {
    let shown: Vec<&IpRequest> = v
        .requests
        .iter()
        .filter(|r| {
            let ips = r.ips.join(" ");
            let by = r.decided_by.clone().unwrap_or_default();
            matches(
                v.query,
                &[
                    &ips,
                    r.status.as_str(),
                    &r.remark,
                    &r.requested_by,
                    &by,
                    &r.id,
                ],
            )
        })
        .collect();
    html! {
        h2 { "Request history" }
        table id="requests" {
            tr {
                th { "#" } th { "IPs" } th { "Status" } th { "Requested" }
                th { "Approver and time" } th { "Link expiry" } th { "Remark" } th {}
            }
            @for r in &shown {
                tr id={ "request-" (r.id) } {
                    td { (r.id) }
                    td {
                        (r.ips.join(", "))
                        @if let Some(s) = r.valid_for_secs {
                            span class="muted" { " for " (plain_duration(Duration::from_secs(s))) }
                        }
                    }
                    td class="status" { (r.status.as_str()) }
                    td { (r.requested_by) " at " (r.created_at.to_string()) }
                    td {
                        @match (&r.decided_by, &r.decided_at) {
                            (Some(by), Some(at)) => { (by) " at " (at.to_string()) }
                            (None, Some(at)) => { (at.to_string()) }
                            _ => { (PreEscaped("&ndash;")) }
                        }
                    }
                    td { (r.expires_at.to_string()) }
                    td { (r.remark) }
                    td {
                        @if r.status == Status::Pending {
                            form method="post" action={ "/portal/requests/" (r.id) "/cancel" } {
                                input type="hidden" name="csrf" value=(v.csrf);
                                button type="submit" { "Cancel" }
                            }
                        }
                    }
                }
            }
            @if shown.is_empty() {
                tr { td colspan="8" class="muted" { "none" } }
            }
        }
    }
}

/// Addresses whose calls were refused for not being whitelisted, each
/// IPv4 one with a link that puts it in the request form (nothing is
/// requested until the form is sent and confirmed).
fn blocked_table(v: &WhitelistView) -> Markup {
    let shown: Vec<(&BlockedCall, String)> = v
        .blocked
        .iter()
        .map(|b| (b, b.address.to_string()))
        .filter(|(b, a)| matches(v.query, &[a, &b.route]))
        .collect();
    let can_request = v.why_not.is_none();
    html! {
        h2 { "Blocked calls (last 7 days)" }
        p class="muted" {
            "Calls to the API refused because they came from an address not on your whitelist. \
    If one of them is your server, request it; if none are, your credentials may be in someone else's hands. \
    New calls can take 10 seconds to show."
        }
        table id="blocked-calls" {
            tr { th { "Address" } th { "Calls" } th { "First seen" } th { "Last seen" } th { "Route" } th {} }
            @for (b, address) in &shown {
                tr class="blocked" {
                    td class="ip" { (address) }
                    td class="calls" { (b.calls) }
                    td { (Timestamp::from_unix(b.first_seen).to_string()) }
                    td { (Timestamp::from_unix(b.last_seen).to_string()) }
                    td { (b.route) }
                    td {
                        @if !can_request {
                        } @else if b.address.is_ipv4() {
                            a class="button request-ip" href={ "/portal?ip1=" (address) "#new-request" } { "Request this IP" }
                        } @else {
                            span class="muted" { "IPv6: contact us" }
                        }
                    }
                }
            }
            @if shown.is_empty() {
                tr { td colspan="6" class="muted" { "none" } }
            }
        }
    }
}

pub fn whitelist(v: &WhitelistView) -> Markup {
    let c = v.caller;
    let body = html! {
        (header(c, v.csrf, "IP whitelist"))
        (tabs(Tab::Whitelist))
        @match &v.note {
            Note::None => {}
            Note::Done(t) => { div class="box ok" id="note" { (t) } }
            Note::Errors(es) => {
                div class="box bad" id="errors" {
                    ul { @for e in es { li { (e) } } }
                }
            }
        }
        (status_box(v))
        (cards(v))
        (steps())
        p { "Your current IP address: " b id="your-ip" { (c.ip) } }
        (form(v))
        form method="get" action="/portal" {
            label { "Search the tables " input name="q" id="q" value=(v.query); }
            " "
            button type="submit" { "Search" }
        }
        (entries_table(v))
        (blocked_table(v))
        (requests_table(v))
    };
    page("IP whitelist", body)
}
