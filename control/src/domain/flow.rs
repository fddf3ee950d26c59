//! The self-service request's rules, as pure functions: which IPs a
//! customer may ask for (each check with its own message, docs/api.md),
//! and the request's states. No I/O here; the store applies the results.

use crate::domain::Timestamp;
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;

/// A request's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = RequestStatus)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pending,
    Approved,
    Rejected,
    Expired,
    Cancelled,
}

impl Status {
    /// The lower-case name, as the API and pages spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Approved => "approved",
            Status::Rejected => "rejected",
            Status::Expired => "expired",
            Status::Cancelled => "cancelled",
        }
    }
}

/// The knobs from `[control]`.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_ips_per_request: usize,
    pub max_entries_per_account: usize,
    pub allow_private_ips: bool,
}

/// One refusal, addressed to a form field (`ips[0]`, `ips`, `remark`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refusal {
    pub field: String,
    pub message: String,
}

fn refuse(field: impl Into<String>, message: impl Into<String>) -> Refusal {
    Refusal {
        field: field.into(),
        message: message.into(),
    }
}

pub const MAX_REMARK: usize = 100;

/// Special-purpose IPv4 ranges a customer cannot self-whitelist, with why.
/// Documentation ranges (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24)
/// are allowed on purpose: they are what examples and tests use.
const SPECIAL: &[(&str, &str)] = &[
    ("0.0.0.0/8", "an unspecified (\"this network\") address"),
    ("10.0.0.0/8", "a private address"),
    ("100.64.0.0/10", "a carrier-grade NAT (shared) address"),
    ("127.0.0.0/8", "a loopback address"),
    ("169.254.0.0/16", "a link-local address"),
    ("172.16.0.0/12", "a private address"),
    (
        "192.0.0.0/24",
        "an IETF protocol-assignment (reserved) address",
    ),
    ("192.168.0.0/16", "a private address"),
    ("198.18.0.0/15", "a benchmarking (reserved) address"),
    ("224.0.0.0/4", "a multicast address"),
    ("255.255.255.255/32", "the broadcast address"),
    ("240.0.0.0/4", "a reserved address"),
];

/// Why `ip` is special-purpose, if it is.
pub fn special_purpose(ip: Ipv4Addr) -> Option<&'static str> {
    SPECIAL.iter().find_map(|(net, why)| {
        let net: Ipv4Net = net.parse().ok()?;
        net.contains(&ip).then_some(*why)
    })
}

/// Parses one typed address: a dotted quad, nothing else.
fn parse_one(field: &str, raw: &str, allow_private: bool) -> Result<Ipv4Addr, Refusal> {
    let s = raw.trim();
    if s.is_empty() {
        return Err(refuse(field, "Enter an IPv4 address such as 203.0.113.10."));
    }
    if s.contains(':') {
        return Err(refuse(
            field,
            "IPv6 addresses cannot be requested here: contact us and our team will add them.",
        ));
    }
    if s.contains('/') {
        return Err(refuse(
            field,
            "Enter one address, not a range (CIDR). For ranges, contact us.",
        ));
    }
    let octets: Vec<&str> = s.split('.').collect();
    if octets.len() != 4
        || octets
            .iter()
            .any(|o| o.is_empty() || o.len() > 3 || !o.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(refuse(field, format!("`{s}` is not an IPv4 address; write four numbers 0-255 separated by dots, e.g. 203.0.113.10.")));
    }
    if octets.iter().any(|o| o.len() > 1 && o.starts_with('0')) {
        return Err(refuse(field, format!("`{s}` has a leading zero in a number, which is ambiguous; write it without leading zeros.")));
    }
    let ip: Ipv4Addr = s.parse().map_err(|_| {
        refuse(
            field,
            format!("`{s}` is not an IPv4 address: each number must be 0-255."),
        )
    })?;
    if !allow_private {
        if let Some(why) = special_purpose(ip) {
            return Err(refuse(field, format!("{ip} is {why} and cannot be reached from the internet; enter your server's public IP.")));
        }
    }
    Ok(ip)
}

/// Checks a submission on its own: count, syntax, special-purpose, duplicates, remark.
pub fn check_submission(
    ips: &[String],
    remark: &str,
    limits: &Limits,
) -> Result<Vec<Ipv4Addr>, Vec<Refusal>> {
    let mut errors = Vec::new();
    if ips.is_empty() || ips.iter().all(|s| s.trim().is_empty()) {
        errors.push(refuse("ips", "Enter at least one IP address."));
    }
    let given: Vec<(usize, &String)> = ips
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.trim().is_empty())
        .collect();
    if given.len() > limits.max_ips_per_request {
        errors.push(refuse(
            "ips",
            format!(
                "At most {} IP addresses per request.",
                limits.max_ips_per_request
            ),
        ));
    }
    let mut parsed: Vec<Ipv4Addr> = Vec::new();
    for (i, raw) in given {
        match parse_one(&format!("ips[{i}]"), raw, limits.allow_private_ips) {
            Ok(ip) if parsed.contains(&ip) => errors.push(refuse(
                format!("ips[{i}]"),
                format!("{ip} is given twice in this request."),
            )),
            Ok(ip) => parsed.push(ip),
            Err(e) => errors.push(e),
        }
    }
    if remark.chars().count() > MAX_REMARK {
        errors.push(refuse(
            "remark",
            format!("A remark is at most {MAX_REMARK} characters."),
        ));
    }
    if remark.chars().any(char::is_control) {
        errors.push(refuse("remark", "A remark is one line of text."));
    }
    if errors.is_empty() {
        Ok(parsed)
    } else {
        Err(errors)
    }
}

/// What the account already has, for the checks that need it.
pub struct AccountState<'a> {
    pub whitelisted: &'a [ipnet::IpNet],
    pub entries: usize,
    pub pending: bool,
}

/// Checks a parsed submission against the account's current state.
pub fn check_against(
    ips: &[Ipv4Addr],
    state: &AccountState<'_>,
    limits: &Limits,
) -> Result<(), Vec<Refusal>> {
    let mut errors = Vec::new();
    if state.pending {
        errors.push(refuse(
            "ips",
            "This account already has a pending request: approve, reject or cancel it first.",
        ));
    }
    for (i, ip) in ips.iter().enumerate() {
        let addr = std::net::IpAddr::V4(*ip);
        if state.whitelisted.iter().any(|n| n.contains(&addr)) {
            errors.push(refuse(
                format!("ips[{i}]"),
                format!("{ip} is already whitelisted for this account."),
            ));
        }
    }
    if state.entries + ips.len() > limits.max_entries_per_account {
        errors.push(refuse(
            "ips",
            format!(
                "This account has {} of at most {} whitelist entries; ask us to remove unused ones first.",
                state.entries, limits.max_entries_per_account
            ),
        ));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// A stored status as of `now`: pending past its expiry is expired.
pub fn status_at(status: Status, expires_at: Timestamp, now: Timestamp) -> Status {
    match status {
        Status::Pending if now >= expires_at => Status::Expired,
        s => s,
    }
}

#[cfg(test)]
mod tests;
