//! The decision: a pure function of (table snapshot, policy, client IP,
//! route found, caller) to a typed outcome. The proxy's paths only
//! gather these inputs and acts on the answer.

use crate::account::Caller;
use crate::table::{Mode, Refusal, Table};
use ipgate_config::UnknownAccount;
use std::net::IpAddr;

/// The knobs from `[proxy]` that change decisions.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub unknown_account: UnknownAccount,
    pub deny_unidentified: bool,
}

/// Why a request is refused (or, in report mode, would be).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DenyReason {
    IpBlocked,
    NoRoute,
    Unidentified,
    AmbiguousAccount,
    UnknownAccount,
    IpNotWhitelisted,
    /// A key could not be introspected (endpoint down, slow or confused).
    IntrospectionUnavailable,
    /// The body a source must read is over `proxy.max_inspect_body`.
    BodyTooLarge,
    /// A following proxy has no table yet (`Refusal::NoTable`).
    NoTable,
    /// A following proxy's table is older than `sync.max_stale`.
    StaleTable,
}

impl DenyReason {
    pub const ALL: [DenyReason; 10] = [
        DenyReason::IpBlocked,
        DenyReason::NoRoute,
        DenyReason::Unidentified,
        DenyReason::AmbiguousAccount,
        DenyReason::UnknownAccount,
        DenyReason::IpNotWhitelisted,
        DenyReason::IntrospectionUnavailable,
        DenyReason::BodyTooLarge,
        DenyReason::NoTable,
        DenyReason::StaleTable,
    ];

    /// The `code` in the JSON body and the `reason` metric label.
    pub fn code(self) -> &'static str {
        match self {
            DenyReason::IpBlocked => "ip_blocked",
            DenyReason::NoRoute => "no_route",
            DenyReason::Unidentified => "unidentified",
            DenyReason::AmbiguousAccount => "ambiguous_account",
            DenyReason::UnknownAccount => "unknown_account",
            DenyReason::IpNotWhitelisted => "ip_not_whitelisted",
            DenyReason::IntrospectionUnavailable => "introspection_unavailable",
            DenyReason::BodyTooLarge => "body_too_large",
            DenyReason::NoTable => "no_table",
            DenyReason::StaleTable => "stale_table",
        }
    }

    pub fn status(self) -> u16 {
        match self {
            DenyReason::NoRoute => 404,
            DenyReason::Unidentified | DenyReason::AmbiguousAccount => 401,
            DenyReason::IntrospectionUnavailable | DenyReason::NoTable | DenyReason::StaleTable => {
                503
            }
            DenyReason::BodyTooLarge => 413,
            DenyReason::IpBlocked | DenyReason::UnknownAccount | DenyReason::IpNotWhitelisted => {
                403
            }
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            DenyReason::IpBlocked => "Requests from this IP address are blocked.",
            DenyReason::NoRoute => "No API is served at this host and path.",
            DenyReason::Unidentified => "No account was found in the request; send your API credentials.",
            DenyReason::AmbiguousAccount => {
                "The request names more than one account, or names one the gateway does not know beside one it does; send only your own credentials."
            }
            DenyReason::IntrospectionUnavailable => {
                "The API key could not be checked right now; try again shortly."
            }
            DenyReason::BodyTooLarge => {
                "The request body is too large for this API's account check."
            }
            DenyReason::NoTable => {
                "The gateway has not received its whitelist table yet; try again shortly."
            }
            DenyReason::StaleTable => {
                "The gateway's whitelist table is out of date; try again shortly."
            }
            DenyReason::UnknownAccount => "This account is not known to the gateway.",
            DenyReason::IpNotWhitelisted => {
                "This IP address is not whitelisted for this account. Ask your account's main user to request it in the portal."
            }
        }
    }
}

/// Why a request is let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AllowReason {
    Whitelisted,
    FeatureOff,
    UnknownAccount,
    Unidentified,
}

impl AllowReason {
    pub const ALL: [AllowReason; 4] = [
        AllowReason::Whitelisted,
        AllowReason::FeatureOff,
        AllowReason::UnknownAccount,
        AllowReason::Unidentified,
    ];

    pub fn label(self) -> &'static str {
        match self {
            AllowReason::Whitelisted => "whitelisted",
            AllowReason::FeatureOff => "feature_off",
            AllowReason::UnknownAccount => "unknown_account",
            AllowReason::Unidentified => "unidentified",
        }
    }
}

/// What to do with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    Allow(AllowReason),
    /// Let through because the account is in report mode; `enforce` would deny.
    Report(DenyReason),
    Deny(DenyReason),
}

impl Decision {
    pub fn forwards(self) -> bool {
        !matches!(self, Decision::Deny(_))
    }
}

/// Decides one request, in this order: the table's refusal (no table yet,
/// or a stale one), blocklist, route, account, policy.
/// A malformed source is refused even when unidentified calls are allowed.
/// `ip` must be canonical (IPv4-mapped IPv6 folded).
#[inline]
pub fn decide(
    table: &Table,
    policy: Policy,
    ip: IpAddr,
    route_found: bool,
    caller: Caller<'_>,
) -> Decision {
    if let Some(why) = table.refusal() {
        return Decision::Deny(match why {
            Refusal::NoTable => DenyReason::NoTable,
            Refusal::Stale => DenyReason::StaleTable,
        });
    }
    if table.is_blocked(ip) {
        return Decision::Deny(DenyReason::IpBlocked);
    }
    if !route_found {
        return Decision::Deny(DenyReason::NoRoute);
    }
    let acct = match caller {
        Caller::Account(a) => a,
        Caller::Nobody if !policy.deny_unidentified => {
            return Decision::Allow(AllowReason::Unidentified)
        }
        Caller::Nobody | Caller::Malformed(_) => return Decision::Deny(DenyReason::Unidentified),
        Caller::Ambiguous => return Decision::Deny(DenyReason::AmbiguousAccount),
        Caller::Unknown => {
            return match policy.unknown_account {
                UnknownAccount::Allow => Decision::Allow(AllowReason::UnknownAccount),
                UnknownAccount::Deny => Decision::Deny(DenyReason::UnknownAccount),
            }
        }
    };
    match acct.mode {
        Mode::Off => Decision::Allow(AllowReason::FeatureOff),
        _ if acct.allowed.contains(ip) => Decision::Allow(AllowReason::Whitelisted),
        Mode::Enforce => Decision::Deny(DenyReason::IpNotWhitelisted),
        Mode::Report => Decision::Report(DenyReason::IpNotWhitelisted),
    }
}

#[cfg(test)]
mod tests;
