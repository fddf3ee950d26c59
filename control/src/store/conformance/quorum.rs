//! Approval quorum, alike on every backend: a request that needs two
//! approvals goes live on the second different email, each approval its
//! own record and notices; an email counts once; one Reject ends it; two
//! approvals racing both count and the IPs go live once.

use super::{Backing, Written};
use crate::domain::flow::Status;
use crate::domain::users::token_hash;
use crate::store::tests::{account, op};
use crate::store::*;
use std::net::IpAddr;
use std::sync::Arc;

const EMAILS: [&str; 2] = ["ops@acme.test", "cto@acme.test"];

fn acme() -> crate::domain::model::Account {
    let mut a = account("acme");
    a.emails = EMAILS.iter().map(|e| e.to_string()).collect();
    a.approvals_required = 2;
    a
}

fn new_request(ip: &str) -> NewRequest {
    NewRequest {
        approvals_required: 2,
        ..crate::store::tests::new_request(&[ip], &EMAILS)
    }
}

/// Sends every due mail; the link tokens by address, and the approval
/// each notice tells of (`None` for an outcome).
async fn send_all<S: Written>(s: &S) -> (Vec<(String, String)>, Vec<Option<u8>>) {
    let (mut links, mut notices) = (Vec::new(), Vec::new());
    for id in s.due_mail().await.unwrap() {
        match s.prepare_mail(id).await.unwrap() {
            Prepared::Link(l) => {
                s.mail_sent(&l.job).await.unwrap();
                links.push((l.job.to.clone(), l.token));
            }
            Prepared::Notice { job, .. } => {
                s.mail_sent(&job).await.unwrap();
                notices.push(job.approval);
            }
            _ => {}
        }
    }
    (links, notices)
}

const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 9));

async fn two_different_emails_are_needed_and_each_approval_is_told<B: Backing>(b: B) {
    let s = b.open().await;
    let created = s.create_account(acme(), &op()).await.unwrap();
    assert_eq!(created.approvals_required, 2);
    let r = s
        .create_request(new_request("203.0.113.10"), &op())
        .await
        .unwrap();
    assert_eq!(r.approvals_required, 2);
    let (links, _) = send_all(&s).await;
    let (first, second) = (token_hash(&links[0].1), token_hash(&links[1].1));

    let (after, added) = s.decide(&first, Verdict::Approve, IP, "ua").await.unwrap();
    assert_eq!(after.status, Status::Pending, "one of two: not live yet");
    assert!(added.is_empty());
    assert_eq!(after.approvals.len(), 1);
    assert_eq!(after.approvals[0].email, links[0].0);
    assert!(s.entries("acme").await.unwrap().is_empty());
    let (_, notices) = send_all(&s).await;
    assert_eq!(
        notices,
        vec![Some(1), Some(1)],
        "every email told of approval 1"
    );
    let view = s.link(&second).await.unwrap().unwrap();
    assert_eq!(view.request.approvals.len(), 1, "the other link sees it");

    assert!(matches!(
        s.decide(&first, Verdict::Approve, IP, "ua").await,
        Err(StoreError::AlreadyApproved {
            have: 1,
            need: 2,
            ..
        })
    ));
    let (done, added) = s.decide(&second, Verdict::Approve, IP, "ua").await.unwrap();
    assert_eq!(done.status, Status::Approved);
    assert_eq!(done.decided_by.as_deref(), Some(links[1].0.as_str()));
    assert_eq!(added.len(), 1);
    assert_eq!(s.entries("acme").await.unwrap().len(), 1);
    let (_, notices) = send_all(&s).await;
    assert_eq!(notices, vec![None, None], "then the outcome to every email");

    let log = s.security_log(Some("acme")).await.unwrap();
    let approvals: Vec<_> = log.iter().filter(|r| r.event == "link.approved").collect();
    assert_eq!(approvals.len(), 2, "each approval its own record");
    assert_eq!(approvals[0].details["approval"], 1);
    assert_eq!(approvals[0].details["of"], 2);
    assert!(s.verify_security_log().await.unwrap().ok);
}

async fn one_reject_ends_a_request_with_approvals<B: Backing>(b: B) {
    let s = b.open().await;
    s.create_account(acme(), &op()).await.unwrap();
    s.create_request(new_request("203.0.113.10"), &op())
        .await
        .unwrap();
    let (links, _) = send_all(&s).await;
    let (first, second) = (token_hash(&links[0].1), token_hash(&links[1].1));
    s.decide(&first, Verdict::Approve, IP, "ua").await.unwrap();
    let (r, added) = s.decide(&second, Verdict::Reject, IP, "ua").await.unwrap();
    assert_eq!(r.status, Status::Rejected);
    assert!(added.is_empty());
    assert!(s.entries("acme").await.unwrap().is_empty());
    assert!(matches!(
        s.decide(&first, Verdict::Approve, IP, "ua").await,
        Err(StoreError::NotPending { .. })
    ));
}

async fn two_approvals_racing_both_count_and_go_live_once<B: Backing>(b: B) {
    let s = Arc::new(b.open().await);
    s.create_account(acme(), &op()).await.unwrap();
    for round in 0..10 {
        let ip = format!("203.0.113.{}", round + 1);
        let r = s.create_request(new_request(&ip), &op()).await.unwrap();
        let (links, _) = send_all(&*s).await;
        assert_eq!(links.len(), 2);
        let race: Vec<_> = links
            .iter()
            .map(|(_, token)| {
                let s = s.clone();
                let hash = token_hash(token);
                tokio::spawn(async move { s.decide(&hash, Verdict::Approve, IP, "race").await })
            })
            .collect();
        let mut statuses = Vec::new();
        let mut added = 0;
        for t in race {
            let (r, a) = t
                .await
                .unwrap()
                .unwrap_or_else(|e| panic!("round {round}: {e}"));
            statuses.push(r.status);
            added += a.len();
        }
        statuses.sort_by_key(|s| s.as_str());
        assert_eq!(
            statuses,
            [Status::Approved, Status::Pending],
            "round {round}"
        );
        assert_eq!(added, 1, "round {round}: live once");
        let now = s.request("acme", &r.id).await.unwrap();
        assert_eq!(now.status, Status::Approved);
        assert_eq!(now.approvals.len(), 2);
        send_all(&*s).await;
    }
    assert_eq!(s.entries("acme").await.unwrap().len(), 10);
    assert!(s.verify_security_log().await.unwrap().ok);
}

on_both!(
    two_different_emails_are_needed_and_each_approval_is_told,
    one_reject_ends_a_request_with_approvals,
    two_approvals_racing_both_count_and_go_live_once,
);
