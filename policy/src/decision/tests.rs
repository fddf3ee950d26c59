use super::*;
use crate::table::AccountPolicy;
use ipnet::IpNet;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or_else(|_| panic!("bad test ip {s}"))
}

fn table() -> Table {
    let nets = |l: &[&str]| -> Vec<IpNet> { l.iter().filter_map(|s| s.parse().ok()).collect() };
    Table::build(
        1,
        vec![
            (
                "enf".to_string(),
                AccountPolicy::new(Mode::Enforce, &nets(&["203.0.113.10/32", "2001:db8::/64"])),
            ),
            (
                "rep".to_string(),
                AccountPolicy::new(Mode::Report, &nets(&["203.0.113.10/32"])),
            ),
            ("off".to_string(), AccountPolicy::new(Mode::Off, &[])),
        ],
        &nets(&["203.0.113.66/32"]),
    )
}

/// The caller as the sources would find it: known, or unknown.
fn who<'t>(t: &'t Table, id: &str) -> Caller<'t> {
    t.account(id).map_or(Caller::Unknown, Caller::Account)
}

const STRICT: Policy = Policy {
    unknown_account: UnknownAccount::Deny,
    deny_unidentified: true,
};
const LAX: Policy = Policy {
    unknown_account: UnknownAccount::Allow,
    deny_unidentified: false,
};

#[test]
fn whitelisted_ip_is_allowed_in_enforce() {
    let t = table();
    assert_eq!(
        decide(&t, STRICT, ip("203.0.113.10"), true, who(&t, "enf")),
        Decision::Allow(AllowReason::Whitelisted)
    );
    assert_eq!(
        decide(&t, STRICT, ip("2001:db8::42"), true, who(&t, "enf")),
        Decision::Allow(AllowReason::Whitelisted)
    );
}

#[test]
fn other_ip_is_denied_in_enforce_and_reported_in_report() {
    let t = table();
    assert_eq!(
        decide(&t, STRICT, ip("198.51.100.1"), true, who(&t, "enf")),
        Decision::Deny(DenyReason::IpNotWhitelisted)
    );
    assert_eq!(
        decide(&t, STRICT, ip("198.51.100.1"), true, who(&t, "rep")),
        Decision::Report(DenyReason::IpNotWhitelisted)
    );
    assert_eq!(
        decide(&t, STRICT, ip("203.0.113.10"), true, who(&t, "rep")),
        Decision::Allow(AllowReason::Whitelisted)
    );
}

#[test]
fn feature_off_allows_any_ip() {
    let t0 = table();
    assert_eq!(
        decide(&t0, STRICT, ip("198.51.100.1"), true, who(&t0, "off")),
        Decision::Allow(AllowReason::FeatureOff)
    );
}

#[test]
fn blocklist_wins_over_whitelist_and_route() {
    let t = table();
    let t = t.with_account(
        "enf",
        Some(AccountPolicy::new(
            Mode::Enforce,
            &["203.0.113.66/32".parse().unwrap_or(IpNet::default())],
        )),
    );
    assert_eq!(
        decide(&t, STRICT, ip("203.0.113.66"), true, who(&t, "enf")),
        Decision::Deny(DenyReason::IpBlocked)
    );
    assert_eq!(
        decide(&t, STRICT, ip("203.0.113.66"), false, Caller::Nobody),
        Decision::Deny(DenyReason::IpBlocked)
    );
    assert_eq!(
        decide(&t, LAX, ip("203.0.113.66"), true, who(&t, "off")),
        Decision::Deny(DenyReason::IpBlocked)
    );
}

#[test]
fn no_route_comes_before_account() {
    let t0 = table();
    assert_eq!(
        decide(&t0, STRICT, ip("203.0.113.10"), false, who(&t0, "enf")),
        Decision::Deny(DenyReason::NoRoute)
    );
}

#[test]
fn unidentified_and_unknown_follow_policy() {
    let t = table();
    assert_eq!(
        decide(&t, STRICT, ip("198.51.100.1"), true, Caller::Nobody),
        Decision::Deny(DenyReason::Unidentified)
    );
    assert_eq!(
        decide(&t, LAX, ip("198.51.100.1"), true, Caller::Nobody),
        Decision::Allow(AllowReason::Unidentified)
    );
    assert_eq!(
        decide(&t, STRICT, ip("198.51.100.1"), true, who(&t, "ghost")),
        Decision::Deny(DenyReason::UnknownAccount)
    );
    assert_eq!(
        decide(&t, LAX, ip("198.51.100.1"), true, who(&t, "ghost")),
        Decision::Allow(AllowReason::UnknownAccount)
    );
}

#[test]
fn status_codes_match_the_contract() {
    let pairs: Vec<(&str, u16)> = DenyReason::ALL
        .iter()
        .map(|r| (r.code(), r.status()))
        .collect();
    assert_eq!(
        pairs,
        vec![
            ("ip_blocked", 403),
            ("no_route", 404),
            ("unidentified", 401),
            ("ambiguous_account", 401),
            ("unknown_account", 403),
            ("ip_not_whitelisted", 403),
            ("introspection_unavailable", 503),
            ("body_too_large", 413),
            ("no_table", 503),
            ("stale_table", 503),
        ]
    );
}

#[test]
fn ambiguous_and_malformed_callers_are_refused_whatever_the_policy() {
    let t = table();
    for policy in [STRICT, LAX] {
        assert_eq!(
            decide(&t, policy, ip("203.0.113.10"), true, Caller::Ambiguous),
            Decision::Deny(DenyReason::AmbiguousAccount)
        );
        assert_eq!(
            decide(
                &t,
                policy,
                ip("203.0.113.10"),
                true,
                Caller::Malformed(crate::account::AccountError::Repeated)
            ),
            Decision::Deny(DenyReason::Unidentified)
        );
    }
}

#[test]
fn a_refusing_table_refuses_everything_first_whatever_the_policy() {
    use crate::table::Refusal;
    let no_table = Table::refusing(Refusal::NoTable);
    let stale = table().with_refusal(Some(Refusal::Stale));
    for policy in [STRICT, LAX] {
        for (found, caller) in [
            (true, Caller::Nobody),
            (false, Caller::Nobody),
            (true, Caller::Unknown),
        ] {
            assert_eq!(
                decide(&no_table, policy, ip("203.0.113.10"), found, caller),
                Decision::Deny(DenyReason::NoTable)
            );
        }
        // Even a whitelisted caller of a feature-off account.
        for id in ["enf", "off"] {
            assert_eq!(
                decide(&stale, policy, ip("203.0.113.10"), true, who(&stale, id)),
                Decision::Deny(DenyReason::StaleTable)
            );
        }
    }
    assert_eq!(DenyReason::NoTable.status(), 503);
}
