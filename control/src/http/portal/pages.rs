//! The portal's HTML: the login page and the whitelist page (status box,
//! summary cards, the caller's IP, the request form, and the searchable
//! tables of whitelisted IPs and of requests). Values are escaped here.

use crate::flow::Status;
use crate::html::{esc, page};
use crate::http::extract::Caller;
use crate::model::WhitelistEntry;
use crate::store::IpRequest;
use std::time::Duration;

/// A message above the page.
pub enum Note {
    None,
    Done(&'static str),
    Errors(Vec<String>),
}

pub fn login(csrf: &str, error: Option<&str>) -> String {
    let error = error
        .map(|e| format!("<div class=\"box bad\" id=\"error\">{}</div>", esc(e)))
        .unwrap_or_default();
    page(
        "Log in",
        &format!(
            "<h1>ipgate portal: log in</h1>{error}\
<form method=\"post\" action=\"/login\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
<label>Username <input name=\"username\" id=\"username\" autocomplete=\"username\" required></label>\
<label>Password <input name=\"password\" id=\"password\" type=\"password\" autocomplete=\"current-password\" required></label>\
<label>Code from your authenticator app <input name=\"code\" id=\"code\" inputmode=\"numeric\" autocomplete=\"one-time-code\" maxlength=\"6\"></label>\
<p><button type=\"submit\" id=\"login\">Log in</button></p></form>",
            csrf = esc(csrf)
        ),
    )
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
}

fn date(rfc3339: &str) -> &str {
    rfc3339.get(..10).unwrap_or(rfc3339)
}

fn matches(q: &str, fields: &[&str]) -> bool {
    let q = q.to_lowercase();
    q.is_empty() || fields.iter().any(|f| f.to_lowercase().contains(&q))
}

fn status_box(v: &WhitelistView) -> String {
    let c = v.caller;
    let two_factor = if c.user.totp_secret.is_some() {
        "on"
    } else {
        "off"
    };
    let feature = match c.account.whitelist {
        crate::model::WhitelistMode::Enforce => "on (enforced)",
        crate::model::WhitelistMode::Report => {
            "on (report only: calls from other IPs are logged, not refused)"
        }
        crate::model::WhitelistMode::Off => "off",
    };
    let (class, can) = match v.why_not {
        None => (
            "ok",
            "You can request up to two IPv4 addresses below.".to_string(),
        ),
        Some(why) => ("warn", esc(why)),
    };
    format!(
        "<div class=\"box {class}\" id=\"status\"><b>Security status</b>\
<p>Two-factor authentication: <b>{two_factor}</b> &middot; IP whitelist: <b>{feature}</b> &middot; role: <b>{role}</b></p><p>{can}</p></div>",
        role = match c.user.role {
            crate::users::Role::Main => "main user",
            crate::users::Role::Sub => "sub user",
        }
    )
}

/// "24 hours", "90 minutes", "45 seconds".
fn plain_duration(d: Duration) -> String {
    let s = d.as_secs();
    let (n, unit) = if s >= 3600 && s.is_multiple_of(3600) {
        (s / 3600, "hour")
    } else if s >= 60 && s.is_multiple_of(60) {
        (s / 60, "minute")
    } else {
        (s, "second")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

fn cards(v: &WhitelistView) -> String {
    let count = |s: Status| v.requests.iter().filter(|r| r.status == s).count();
    let ttl = plain_duration(v.link_ttl);
    let card = |id: &str, n: String, label: &str| {
        format!(
            "<div class=\"card\" id=\"{id}\"><b>{}</b>{}</div>",
            esc(&n),
            esc(label)
        )
    };
    format!(
        "<div class=\"cards\">{}{}{}{}</div>",
        card(
            "active",
            v.entries.len().to_string(),
            "whitelisted IPs active now"
        ),
        card(
            "pending",
            count(Status::Pending).to_string(),
            "pending requests"
        ),
        card(
            "approved",
            count(Status::Approved).to_string(),
            "approved requests"
        ),
        card("validity", ttl, "link validity"),
    )
}

fn form(v: &WhitelistView) -> String {
    if v.why_not.is_some() {
        return String::new();
    }
    let second = if v.max_ips >= 2 {
        "<label>IP address 2 (optional) <input name=\"ip2\" id=\"ip2\" placeholder=\"198.51.100.7\"></label>"
    } else {
        ""
    };
    format!(
        "<h2>Request whitelisting</h2><form method=\"post\" action=\"/portal/requests\" class=\"box\">\
<input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
<label>IP address 1 <input name=\"ip1\" id=\"ip1\" required placeholder=\"203.0.113.10\"></label>{second}\
<label>Remark (optional, up to 100 characters) <input name=\"remark\" id=\"remark\" maxlength=\"100\" size=\"50\"></label>\
<p class=\"muted\">IPv4 addresses of your servers only. For IPv6 or networks (CIDR), contact us. \
Nothing is whitelisted until someone approves from the link mailed to each address of your account.</p>\
<button type=\"submit\" id=\"submit\">Request whitelisting</button></form>",
        csrf = esc(v.csrf)
    )
}

fn entries_table(v: &WhitelistView) -> String {
    let rows: String = v
        .entries
        .iter()
        .filter(|e| matches(v.query, &[&e.cidr, &e.remark, &e.created_at]))
        .map(|e| {
            let ip = e.cidr.strip_suffix("/32").unwrap_or(&e.cidr);
            format!(
                "<tr><td class=\"ip\">{}</td><td>active</td><td>{}</td><td>{}</td></tr>",
                esc(ip),
                esc(date(&e.created_at)),
                esc(&e.remark)
            )
        })
        .collect();
    let rows = if rows.is_empty() {
        "<tr><td colspan=\"4\" class=\"muted\">none</td></tr>".to_string()
    } else {
        rows
    };
    format!("<h2>Whitelisted IPs</h2><table id=\"whitelist\"><tr><th>IP / network</th><th>Status</th><th>Added</th><th>Remark</th></tr>{rows}</table>")
}

fn requests_table(v: &WhitelistView) -> String {
    let rows: String = v
        .requests
        .iter()
        .filter(|r| {
            let ips = r.ips.join(" ");
            let by = r.decided_by.clone().unwrap_or_default();
            matches(
                v.query,
                &[&ips, r.status.as_str(), &r.remark, &r.requested_by, &by, &r.id],
            )
        })
        .map(|r| {
            let decided = match (&r.decided_by, &r.decided_at) {
                (Some(by), Some(at)) => format!("{} at {}", esc(by), esc(at)),
                (None, Some(at)) => esc(at),
                _ => "&ndash;".to_string(),
            };
            let action = if r.status == Status::Pending {
                format!(
                    "<form method=\"post\" action=\"/portal/requests/{id}/cancel\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><button type=\"submit\">Cancel</button></form>",
                    id = esc(&r.id),
                    csrf = esc(v.csrf)
                )
            } else {
                String::new()
            };
            format!(
                "<tr id=\"request-{id}\"><td>{id}</td><td>{ips}</td><td class=\"status\">{status}</td><td>{by} at {at}</td><td>{decided}</td><td>{expires}</td><td>{remark}</td><td>{action}</td></tr>",
                id = esc(&r.id),
                ips = esc(&r.ips.join(", ")),
                status = r.status.as_str(),
                by = esc(&r.requested_by),
                at = esc(&r.created_at),
                expires = esc(&r.expires_at),
                remark = esc(&r.remark),
            )
        })
        .collect();
    let rows = if rows.is_empty() {
        "<tr><td colspan=\"8\" class=\"muted\">none</td></tr>".to_string()
    } else {
        rows
    };
    format!("<h2>Request history</h2><table id=\"requests\"><tr><th>#</th><th>IPs</th><th>Status</th><th>Requested</th><th>Approver and time</th><th>Link expiry</th><th>Remark</th><th></th></tr>{rows}</table>")
}

pub fn whitelist(v: &WhitelistView) -> String {
    let c = v.caller;
    let note = match &v.note {
        Note::None => String::new(),
        Note::Done(t) => format!("<div class=\"box ok\" id=\"note\">{}</div>", esc(t)),
        Note::Errors(es) => format!(
            "<div class=\"box bad\" id=\"errors\"><ul>{}</ul></div>",
            es.iter()
                .map(|e| format!("<li>{}</li>", esc(e)))
                .collect::<String>()
        ),
    };
    let body = format!(
        "<form method=\"post\" action=\"/logout\" style=\"float:right\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><button type=\"submit\">Log out</button></form>\
<h1>IP whitelist: {name}</h1><p class=\"muted\">Logged in as {user} (account {account})</p>{note}{status}{cards}\
<p>Your current IP address: <b id=\"your-ip\">{ip}</b></p>{form}\
<form method=\"get\" action=\"/portal\"><label>Search both tables <input name=\"q\" id=\"q\" value=\"{q}\"></label> <button type=\"submit\">Search</button></form>\
{entries}{requests}",
        csrf = esc(v.csrf),
        name = esc(&c.account.name),
        user = esc(&c.user.username),
        account = esc(&c.account.id),
        status = status_box(v),
        cards = cards(v),
        ip = esc(&c.ip.to_string()),
        form = form(v),
        q = esc(v.query),
        entries = entries_table(v),
        requests = requests_table(v),
    );
    page("IP whitelist", &body)
}
