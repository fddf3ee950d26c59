//! Time-bound entries, alike on every backend: the index of what ends,
//! expiry once with its record, reminders once per stage with their mail,
//! and the end an approved request's entries get.

use super::{Backing, Written};
use crate::domain::users::token_hash;
use crate::domain::Timestamp;
use crate::store::tests::{account, entry_of, op};
use crate::store::*;
use std::net::IpAddr;

fn ending(cidr: &str, at: Timestamp) -> crate::domain::model::WhitelistEntry {
    crate::domain::model::WhitelistEntry {
        expires_at: Some(at),
        ..entry_of("acme", cidr)
    }
}

fn acme() -> crate::domain::model::Account {
    let mut a = account("acme");
    a.emails = vec!["ops@acme.test".into(), "cto@acme.test".into()];
    a
}

async fn events<S: Written>(s: &S, name: &str) -> Vec<serde_json::Value> {
    let log = s.security_log(Some("acme")).await.unwrap();
    log.into_iter()
        .filter(|r| r.event == name)
        .map(|r| r.details)
        .collect()
}

async fn policy_ending<S: Written>(s: &S) -> Vec<(String, u64)> {
    let mut seen = Vec::new();
    s.for_each_account_policy(&mut |a| {
        if a.id == "acme" {
            seen = a.ending.iter().map(|(n, t)| (n.to_string(), *t)).collect();
        }
    })
    .await
    .unwrap();
    seen.sort();
    seen
}

async fn a_time_bound_entry_ends_once_with_its_record<B: Backing>(b: B) {
    let now = Timestamp::now();
    let (soon, later) = (now.plus_secs(50), now.plus_secs(100));
    {
        let s = b.open().await;
        s.create_account(acme(), &op()).await.unwrap();
        let added = s
            .add_entries(
                "acme",
                vec![
                    entry_of("acme", "198.51.100.0/24"),
                    ending("203.0.113.10/32", later),
                    ending("203.0.113.11/32", soon),
                ],
                &op(),
            )
            .await
            .unwrap();
        assert_eq!(added[1].expires_at, Some(later));
        assert!(s.entries_ending_by(now).await.unwrap().is_empty());
        let by = |t| s.entries_ending_by(t);
        let cidrs = |v: Vec<crate::domain::model::WhitelistEntry>| {
            v.into_iter()
                .map(|e| e.cidr.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            cidrs(by(now.plus_secs(60)).await.unwrap()),
            ["203.0.113.11/32"]
        );
        assert_eq!(
            cidrs(by(now.plus_secs(200)).await.unwrap()),
            ["203.0.113.11/32", "203.0.113.10/32"],
            "soonest first"
        );
        assert_eq!(
            policy_ending(&s).await,
            vec![
                ("203.0.113.10/32".to_string(), later.unix()),
                ("203.0.113.11/32".to_string(), soon.unix()),
            ]
        );
        let id = &added[2].id;
        assert_eq!(
            s.expire_entry("acme", id, now).await.unwrap(),
            None,
            "not ended yet"
        );
        let gone = s.expire_entry("acme", id, soon).await.unwrap();
        assert_eq!(
            gone.map(|e| e.cidr.to_string()).as_deref(),
            Some("203.0.113.11/32")
        );
        assert_eq!(
            s.expire_entry("acme", id, soon).await.unwrap(),
            None,
            "once"
        );
        assert_eq!(
            s.expire_entry("acme", &added[0].id, Timestamp::MAX)
                .await
                .unwrap(),
            None,
            "a permanent entry never ends"
        );
        assert_eq!(s.entries("acme").await.unwrap().len(), 2);
        let expired = events(&s, "whitelist.expired").await;
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0]["cidr"], "203.0.113.11/32");
        assert_eq!(
            events(&s, "whitelist.added").await[1]["expires_at"],
            serde_json::json!(later)
        );
        assert!(s.verify_security_log().await.unwrap().ok);
    }
    let s = b.open().await;
    assert_eq!(
        policy_ending(&s).await,
        vec![("203.0.113.10/32".to_string(), later.unix())],
        "the index survives reopening"
    );
    let left = s.entries_ending_by(Timestamp::MAX).await.unwrap();
    assert_eq!(left.len(), 1);
    s.remove_entry("acme", &left[0].id, &op()).await.unwrap();
    assert!(s
        .entries_ending_by(Timestamp::MAX)
        .await
        .unwrap()
        .is_empty());
    assert!(policy_ending(&s).await.is_empty());
}

async fn each_reminder_is_queued_once_and_mailed_about_its_entry<B: Backing>(b: B) {
    let s = b.open().await;
    s.create_account(acme(), &op()).await.unwrap();
    let end = Timestamp::now().plus_secs(3600);
    let e = s
        .add_entries("acme", vec![ending("203.0.113.10/32", end)], &op())
        .await
        .unwrap()
        .remove(0);
    assert!(s.remind_entry("acme", &e.id, 1, true).await.unwrap());
    assert_eq!(s.outbox_depth().await.unwrap(), 2, "one mail per email");
    assert!(
        !s.remind_entry("acme", &e.id, 1, true).await.unwrap(),
        "once"
    );
    assert!(s.remind_entry("acme", &e.id, 2, false).await.unwrap());
    assert_eq!(
        s.outbox_depth().await.unwrap(),
        2,
        "a skipped stage mails nothing"
    );
    assert_eq!(s.entries("acme").await.unwrap()[0].reminded, 2);
    assert!(!s.remind_entry("acme", "999999", 1, true).await.unwrap());
    assert!(!s.remind_entry("ghost", &e.id, 1, true).await.unwrap());
    let logged = events(&s, "whitelist.expiry_reminder").await;
    assert_eq!(logged.len(), 1);
    assert_eq!(logged[0]["emails"], 2);

    let due = s.due_mail().await.unwrap();
    assert_eq!(due.len(), 2);
    let mut to = Vec::new();
    match s.prepare_mail(due[0]).await.unwrap() {
        Prepared::Reminder { job, entry } => {
            assert_eq!(job.kind, MailKind::Reminder);
            assert_eq!(entry.id, e.id);
            assert_eq!(entry.expires_at, Some(end));
            to.push(job.to.clone());
            s.mail_sent(&job).await.unwrap();
        }
        _ => panic!("a reminder job readies as a reminder"),
    }
    // Its entry gone, the other reminder is dropped with its record.
    s.remove_entry("acme", &e.id, &op()).await.unwrap();
    assert!(matches!(
        s.prepare_mail(due[1]).await.unwrap(),
        Prepared::Dropped
    ));
    assert_eq!(s.outbox_depth().await.unwrap(), 0);
    assert!(to[0].ends_with("@acme.test"));
}

async fn an_approved_request_for_a_time_adds_entries_that_end<B: Backing>(b: B) {
    let s = b.open().await;
    s.create_account(acme(), &op()).await.unwrap();
    let new = NewRequest {
        valid_for_secs: Some(7 * 86_400),
        ..crate::store::tests::new_request(&["203.0.113.10"], &["ops@acme.test", "cto@acme.test"])
    };
    let req = s.create_request(new, &op()).await.unwrap();
    assert_eq!(req.valid_for_secs, Some(7 * 86_400));
    assert_eq!(
        s.request("acme", &req.id).await.unwrap().valid_for_secs,
        Some(7 * 86_400),
        "kept with the request"
    );
    let mut token = None;
    for id in s.due_mail().await.unwrap() {
        if let Prepared::Link(l) = s.prepare_mail(id).await.unwrap() {
            token = Some(l.token);
        }
    }
    let hash = token_hash(&token.unwrap());
    let ip = IpAddr::from([198, 51, 100, 9]);
    let (decided, added) = s.decide(&hash, Verdict::Approve, ip, "test").await.unwrap();
    let at = decided.decided_at.unwrap();
    let end = added[0].expires_at.unwrap();
    assert!(
        (at.unix() + 7 * 86_400).abs_diff(end.unix()) <= 1,
        "ends 7 days after the approval: {at} -> {end}"
    );
    assert_eq!(s.entries_ending_by(Timestamp::MAX).await.unwrap().len(), 1);
}

on_both!(
    a_time_bound_entry_ends_once_with_its_record,
    each_reminder_is_queued_once_and_mailed_about_its_entry,
    an_approved_request_for_a_time_adds_entries_that_end,
);
