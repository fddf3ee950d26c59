use super::*;

const LIMITS: Limits = Limits {
    max_ips_per_request: 2,
    max_entries_per_account: 3,
    allow_private_ips: false,
};

fn check(ips: &[&str]) -> Result<Vec<Ipv4Addr>, Vec<Refusal>> {
    let ips: Vec<String> = ips.iter().map(|s| s.to_string()).collect();
    check_submission(&ips, "", &LIMITS)
}

fn first(r: Result<Vec<Ipv4Addr>, Vec<Refusal>>) -> (String, String) {
    match r {
        Err(v) => v
            .first()
            .map(|e| (e.field.clone(), e.message.clone()))
            .unwrap_or_default(),
        Ok(ips) => (format!("accepted {ips:?}"), String::new()),
    }
}

#[test]
fn public_and_documentation_addresses_are_accepted() {
    assert_eq!(
        check(&["203.0.113.10", "8.8.8.8"]).ok().map(|v| v.len()),
        Some(2)
    );
    assert_eq!(
        check(&["198.51.100.7", ""]).ok().map(|v| v.len()),
        Some(1),
        "an empty second field is fine"
    );
}

#[test]
fn each_rule_has_its_own_message() {
    let cases: &[(&[&str], &str, &str)] = &[
        (&[], "ips", "at least one"),
        (&["1.1.1.1", "2.2.2.2", "3.3.3.3"], "ips", "At most 2"),
        (&["2001:db8::1"], "ips[0]", "IPv6"),
        (&["203.0.113.0/24"], "ips[0]", "CIDR"),
        (&["203.0.113.010"], "ips[0]", "leading zero"),
        (&["203.0.113"], "ips[0]", "not an IPv4 address"),
        (&["203.0.113.256"], "ips[0]", "0-255"),
        (&["server.example.com"], "ips[0]", "not an IPv4 address"),
        (&["10.1.2.3"], "ips[0]", "private"),
        (&["192.168.1.1"], "ips[0]", "private"),
        (&["172.20.0.1"], "ips[0]", "private"),
        (&["127.0.0.1"], "ips[0]", "loopback"),
        (&["0.0.0.0"], "ips[0]", "unspecified"),
        (&["100.64.1.1"], "ips[0]", "carrier-grade NAT"),
        (&["169.254.1.1"], "ips[0]", "link-local"),
        (&["224.0.0.1"], "ips[0]", "multicast"),
        (&["255.255.255.255"], "ips[0]", "broadcast"),
        (&["240.0.0.1"], "ips[0]", "reserved"),
        (&["203.0.113.10", "203.0.113.10"], "ips[1]", "twice"),
    ];
    for (ips, field, needle) in cases {
        let (f, m) = first(check(ips));
        assert_eq!(f, *field, "{ips:?}: {m}");
        assert!(m.contains(needle), "{ips:?}: `{m}` lacks `{needle}`");
    }
}

#[test]
fn private_addresses_pass_when_the_operator_allows_them() {
    let limits = Limits {
        allow_private_ips: true,
        ..LIMITS
    };
    assert!(check_submission(&["10.1.2.3".to_string()], "", &limits).is_ok());
}

#[test]
fn remark_rules() {
    let long = "x".repeat(101);
    assert_eq!(
        first(check_submission(&["8.8.8.8".to_string()], &long, &LIMITS)).0,
        "remark"
    );
    assert_eq!(
        first(check_submission(&["8.8.8.8".to_string()], "a\nb", &LIMITS)).0,
        "remark"
    );
    assert!(
        check_submission(&["8.8.8.8".to_string()], &"é".repeat(100), &LIMITS).is_ok(),
        "100 characters, not bytes"
    );
}

#[test]
fn account_state_rules() {
    let listed: Vec<ipnet::IpNet> = vec!["203.0.113.0/28".parse().unwrap_or_default()];
    let ip: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 5);
    let free = AccountState {
        whitelisted: &[],
        entries: 0,
        pending: false,
    };
    assert!(check_against(&[ip], &free, &LIMITS).is_ok());
    let covered = AccountState {
        whitelisted: &listed,
        entries: 1,
        pending: false,
    };
    assert!(
        first(check_against(&[ip], &covered, &LIMITS).map(|_| vec![]))
            .1
            .contains("already whitelisted")
    );
    let busy = AccountState {
        whitelisted: &[],
        entries: 0,
        pending: true,
    };
    assert!(first(check_against(&[ip], &busy, &LIMITS).map(|_| vec![]))
        .1
        .contains("pending request"));
    let full = AccountState {
        whitelisted: &[],
        entries: 2,
        pending: false,
    };
    assert!(
        first(check_against(&[ip, Ipv4Addr::new(8, 8, 8, 8)], &full, &LIMITS).map(|_| vec![]))
            .1
            .contains("at most 3")
    );
}

#[test]
fn pending_past_expiry_is_expired() {
    let at = crate::domain::Timestamp::from_unix;
    assert_eq!(status_at(Status::Pending, at(100), at(99)), Status::Pending);
    assert_eq!(
        status_at(Status::Pending, at(100), at(100)),
        Status::Expired
    );
    assert_eq!(
        status_at(Status::Approved, at(100), at(1000)),
        Status::Approved
    );
}
