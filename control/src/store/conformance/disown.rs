//! "This wasn't me", alike on every backend: an approval notice carries a
//! single-use link of its own, apart from the review links; using it
//! removes what the approval added (or stops a request short of its
//! quorum), freezes the account and tells every email, once.

use super::{Backing, Written};
use crate::domain::flow::Status;
use crate::domain::users::token_hash;
use crate::store::tests::{account, op};
use crate::store::*;
use std::net::IpAddr;

const EMAILS: [&str; 2] = ["ops@acme.test", "cto@acme.test"];
const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 9));

fn acme(quorum: u8) -> crate::domain::model::Account {
    let mut a = account("acme");
    a.emails = EMAILS.iter().map(|e| e.to_string()).collect();
    a.approvals_required = quorum;
    a
}

fn new_request(quorum: u8) -> NewRequest {
    NewRequest {
        approvals_required: quorum,
        ..crate::store::tests::new_request(&["203.0.113.10"], &EMAILS)
    }
}

/// Sends every due mail: review tokens, "this wasn't me" tokens, and the
/// kinds of the notices.
async fn send_all<S: Written>(s: &S) -> (Vec<String>, Vec<String>, Vec<MailKind>) {
    let (mut review, mut not_me, mut kinds) = (Vec::new(), Vec::new(), Vec::new());
    for id in s.due_mail().await.unwrap() {
        match s.prepare_mail(id).await.unwrap() {
            Prepared::Link(l) => {
                s.mail_sent(&l.job).await.unwrap();
                review.push(l.token);
            }
            Prepared::Notice { job, disown, .. } => {
                s.mail_sent(&job).await.unwrap();
                kinds.push(job.kind);
                not_me.extend(disown);
            }
            _ => {}
        }
    }
    (review, not_me, kinds)
}

async fn a_disowned_approval_is_undone_frozen_and_told_once<B: Backing>(b: B) {
    let s = b.open().await;
    s.create_account(acme(1), &op()).await.unwrap();
    s.create_request(new_request(1), &op()).await.unwrap();
    let (review, _, _) = send_all(&s).await;
    let review_hash = token_hash(&review[0]);
    let (_, added) = s
        .decide(&review_hash, Verdict::Approve, IP, "ua")
        .await
        .unwrap();
    assert_eq!(added.len(), 1);
    let (_, not_me, kinds) = send_all(&s).await;
    assert_eq!(kinds, [MailKind::Notice, MailKind::Notice]);
    assert_eq!(not_me.len(), 2, "every approval notice its own link");
    assert_ne!(not_me[0], not_me[1]);
    let (first, second) = (token_hash(&not_me[0]), token_hash(&not_me[1]));
    assert!(
        s.link(&first).await.unwrap().is_none(),
        "never a review link"
    );
    assert!(s.disown_link(&review_hash).await.unwrap().is_none());
    let (link, r) = s.disown_link(&first).await.unwrap().unwrap();
    assert_eq!(r.status, Status::Approved);
    assert!(EMAILS.contains(&link.email.as_str()));

    let (r, removed) = s.disown(&first, IP, "Firefox").await.unwrap();
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0].cidr.to_string(), "203.0.113.10/32");
    assert_eq!(
        r.disowned.as_ref().map(|d| d.email.as_str()),
        Some(link.email.as_str())
    );
    assert!(s.entries("acme").await.unwrap().is_empty());
    assert!(s.account("acme").await.unwrap().unwrap().frozen);
    let (_, offered, kinds) = send_all(&s).await;
    assert_eq!(
        kinds,
        [MailKind::Disowned, MailKind::Disowned],
        "every email told"
    );
    assert!(offered.is_empty());

    assert!(
        matches!(s.disown(&first, IP, "ua").await, Err(StoreError::NoLink)),
        "once"
    );
    assert!(matches!(
        s.disown(&second, IP, "ua").await,
        Err(StoreError::AlreadyDisowned(_))
    ));
    assert!(s.account("acme").await.unwrap().unwrap().frozen);
    let log = s.security_log(Some("acme")).await.unwrap();
    let ev: Vec<&str> = log.iter().map(|r| r.event.as_str()).collect();
    assert_eq!(
        ev.iter().filter(|e| **e == "request.disowned").count(),
        1,
        "{ev:?}"
    );
    let removed = log.iter().find(|r| r.event == "whitelist.removed").unwrap();
    assert_eq!(removed.details["reason"], "disowned");
    assert!(s.verify_security_log().await.unwrap().ok);
}

async fn disowning_an_approval_short_of_the_quorum_stops_the_request<B: Backing>(b: B) {
    let s = b.open().await;
    s.create_account(acme(2), &op()).await.unwrap();
    let req = s.create_request(new_request(2), &op()).await.unwrap();
    let (review, _, _) = send_all(&s).await;
    s.decide(&token_hash(&review[0]), Verdict::Approve, IP, "ua")
        .await
        .unwrap();
    let (_, not_me, _) = send_all(&s).await;
    assert_eq!(
        not_me.len(),
        2,
        "an approval short of the quorum offers it too"
    );
    let (r, removed) = s.disown(&token_hash(&not_me[1]), IP, "ua").await.unwrap();
    assert!(removed.is_empty());
    assert_eq!(r.status, Status::Cancelled);
    assert_eq!(
        s.request("acme", &req.id).await.unwrap().status,
        Status::Cancelled
    );
    assert!(matches!(
        s.decide(&token_hash(&review[1]), Verdict::Approve, IP, "ua")
            .await,
        Err(StoreError::NotPending { .. })
    ));
    assert!(s.entries("acme").await.unwrap().is_empty());
    assert!(s.account("acme").await.unwrap().unwrap().frozen);
}

on_both!(
    a_disowned_approval_is_undone_frozen_and_told_once,
    disowning_an_approval_short_of_the_quorum_stops_the_request,
);
