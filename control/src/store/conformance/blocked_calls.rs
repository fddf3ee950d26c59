//! Blocked calls: merged per (account, address), listed by calls, swept
//! after their time, never shown to another account.

use super::Backing;
use crate::store::blocked::{BlockedCall, BlockedReport};
use crate::store::BlockedCallStore;

on_both!(
    reports_merge_per_account_and_address,
    old_calls_are_swept_and_not_listed,
);

fn report(
    account: &str,
    address: &str,
    calls: u64,
    first: u64,
    last: u64,
    route: &str,
) -> BlockedReport {
    BlockedReport {
        account: account.to_string(),
        call: BlockedCall {
            address: address.parse().unwrap(),
            calls,
            first_seen: first,
            last_seen: last,
            route: route.to_string(),
        },
    }
}

async fn reports_merge_per_account_and_address<B: Backing>(b: B) {
    let s = b.open().await;
    s.add_blocked_calls(&[
        report("acme", "198.51.100.7", 3, 100, 200, "sms"),
        report("acme", "2001:db8::1", 1, 150, 150, "waba"),
        report("acme-longer", "198.51.100.7", 50, 100, 100, "sms"),
    ])
    .await
    .unwrap();
    s.add_blocked_calls(&[report("acme", "198.51.100.7", 4, 90, 300, "waba")])
        .await
        .unwrap();
    let got = s.blocked_calls("acme", 0, 50).await.unwrap();
    assert_eq!(
        got,
        vec![
            report("acme", "198.51.100.7", 7, 90, 300, "waba").call,
            report("acme", "2001:db8::1", 1, 150, 150, "waba").call,
        ]
    );
    assert_eq!(s.blocked_calls("acme", 0, 1).await.unwrap().len(), 1);
    assert!(s.blocked_calls("nobody", 0, 50).await.unwrap().is_empty());
    // An older report does not take the route of a newer one.
    s.add_blocked_calls(&[report("acme", "198.51.100.7", 1, 95, 250, "sms")])
        .await
        .unwrap();
    let got = s.blocked_calls("acme", 0, 50).await.unwrap();
    assert_eq!(
        (got[0].calls, got[0].route.as_str(), got[0].last_seen),
        (8, "waba", 300)
    );
    drop(s);
    let s = b.open().await;
    assert_eq!(
        s.blocked_calls("acme-longer", 0, 50).await.unwrap()[0].calls,
        50
    );
}

async fn old_calls_are_swept_and_not_listed<B: Backing>(b: B) {
    let s = b.open().await;
    s.add_blocked_calls(&[
        report("acme", "198.51.100.1", 5, 10, 20, "sms"),
        report("acme", "198.51.100.2", 1, 10, 1000, "sms"),
    ])
    .await
    .unwrap();
    let listed = s.blocked_calls("acme", 500, 50).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(s.sweep_blocked_calls(500).await.unwrap(), 1);
    let all = s.blocked_calls("acme", 0, 50).await.unwrap();
    assert_eq!(all.iter().map(|c| c.calls).collect::<Vec<_>>(), vec![1]);
}
