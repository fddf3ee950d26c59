//! One approval through its link, as the benches time it, and the
//! proxy's answer for an address.

use ipgate_config::UnknownAccount;
use ipgate_control::domain::users::token_hash;
use ipgate_control::seclog::Actor;
use ipgate_control::service::publish::Publisher;
use ipgate_control::store::{NewRequest, Prepared, Verdict};
use ipgate_policy::account::Caller;
use ipgate_policy::{decide, Decision, LiveTable, Policy};
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

const POLICY: Policy = Policy {
    unknown_account: UnknownAccount::Deny,
    deny_unidentified: true,
};

pub fn allowed(table: &LiveTable, account: &str, ip: IpAddr) -> bool {
    let table = table.load();
    let caller = table
        .account(account)
        .map_or(Caller::Unknown, Caller::Account);
    matches!(decide(&table, POLICY, ip, true, caller), Decision::Allow(_))
}

/// One whole approval; the time from Approve until the table allows it.
pub async fn approval(publisher: &Publisher, account: &str, ip: Ipv4Addr) -> Duration {
    let store = &publisher.store;
    let new = NewRequest {
        account: account.parse().unwrap(),
        ips: vec![ip.to_string()],
        remark: "bench".into(),
        reference: None,
        requested_by: "alice".into(),
        requested_from: "198.51.100.7".into(),
        user_agent: "bench".into(),
        ttl_secs: 86_400,
        valid_for_secs: None,
        approvals_required: 1,
        emails: vec![format!("ops@{account}.test")],
        idempotency: None,
    };
    store.create_request(new, &Actor::system()).await.unwrap();
    let mut token = None;
    for id in store.due_mail().await.unwrap() {
        match store.prepare_mail(id).await.unwrap() {
            Prepared::Link(link) => {
                store.mail_sent(&link.job).await.unwrap();
                token = Some(link.token);
            }
            Prepared::Notice { job, .. } => store.mail_sent(&job).await.unwrap(),
            _ => {}
        }
    }
    let hash = token_hash(&token.unwrap_or_else(|| panic!("no link was made")));
    let ip = IpAddr::V4(ip);
    assert!(!allowed(&publisher.table, account, ip));
    let started = Instant::now();
    let from = IpAddr::from([198, 51, 100, 7]);
    publisher
        .change(|st| async move { st.decide(&hash, Verdict::Approve, from, "bench").await })
        .await
        .unwrap();
    while !allowed(&publisher.table, account, ip) {
        std::hint::spin_loop();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "never went live"
        );
    }
    started.elapsed()
}
