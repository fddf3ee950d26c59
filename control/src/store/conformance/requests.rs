//! Requests, links and their mail, alike on every backend.

use super::Backing;
use crate::domain::flow::Status;
use crate::domain::users::token_hash;
use crate::seclog::Actor;
use crate::store::tests::{account, op};
use crate::store::*;
use std::net::IpAddr;
use std::sync::Arc;

pub(super) const EMAILS: [&str; 2] = ["ops@acme.test", "cto@acme.test"];

fn acme() -> crate::domain::model::Account {
    let mut a = account("acme");
    a.emails = EMAILS.iter().map(|e| e.to_string()).collect();
    a
}

pub(super) fn new_request(ips: &[&str], ttl_secs: u64) -> NewRequest {
    NewRequest {
        remark: "prod".into(),
        ttl_secs,
        ..crate::store::tests::new_request(ips, &EMAILS)
    }
}

pub(super) fn user() -> Actor {
    Actor {
        who: "alice".into(),
        ip: Some(IpAddr::from([192, 0, 2, 1])),
    }
}

/// Sends every due mail as the sender would (readied, then recorded as
/// sent); the link tokens minted, by recipient.
async fn mint_links<S: Written>(s: &S) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for id in s.due_mail().await.unwrap() {
        if let Prepared::Link(l) = s.prepare_mail(id).await.unwrap() {
            s.mail_sent(&l.job).await.unwrap();
            out.push((l.job.to.clone(), l.token));
        }
    }
    out
}

use super::Written;

async fn events<S: Written>(s: &S) -> Vec<String> {
    let log = s.security_log(None).await.unwrap();
    log.into_iter().map(|r| r.event).collect()
}

async fn a_request_goes_live_through_one_link_and_every_email_is_told<B: Backing>(b: B) {
    let s = b.open().await;
    s.create_account(acme(), &op()).await.unwrap();
    let req = s
        .create_request(
            new_request(&["203.0.113.10", "198.51.100.7"], 3600),
            &user(),
        )
        .await
        .unwrap();
    assert_eq!(req.status, Status::Pending);
    assert_eq!(
        s.outbox_depth().await.unwrap(),
        2,
        "one link mail per email"
    );
    let links = mint_links(&s).await;
    assert_eq!(s.outbox_depth().await.unwrap(), 0);
    assert_eq!(links.len(), 2);
    assert_ne!(links[0].1, links[1].1, "every email its own link");

    let hash = token_hash(&links[0].1);
    let view = s.link(&hash).await.unwrap().unwrap();
    assert_eq!(view.request.id, req.id);
    assert_eq!(view.link.email, links[0].0);
    assert!(view.address_current);
    assert!(
        s.entries("acme").await.unwrap().is_empty(),
        "opening changes nothing"
    );

    let ip = IpAddr::from([198, 51, 100, 9]);
    let (decided, added) = s
        .decide(&hash, Verdict::Approve, ip, "Firefox")
        .await
        .unwrap();
    assert_eq!(decided.status, Status::Approved);
    assert_eq!(decided.decided_by.as_deref(), Some(links[0].0.as_str()));
    assert_eq!(decided.decided_from.as_deref(), Some("198.51.100.9"));
    assert_eq!(added.len(), 2);
    let live: Vec<String> = s
        .entries("acme")
        .await
        .unwrap()
        .iter()
        .map(|e| e.cidr.to_string())
        .collect();
    assert_eq!(live, ["203.0.113.10/32", "198.51.100.7/32"]);
    assert_eq!(
        s.take_touched().touches.last(),
        Some(&Touch::Account("acme".into()))
    );

    // The other link, and the same one again, find it decided.
    for token in [&links[1].1, &links[0].1] {
        let again = s.decide(&token_hash(token), Verdict::Reject, ip, "x").await;
        assert!(
            matches!(
                again,
                Err(StoreError::NotPending {
                    status: Status::Approved,
                    ..
                })
            ),
            "{again:?}"
        );
    }
    assert!(matches!(
        s.decide("no-such-hash", Verdict::Approve, ip, "x").await,
        Err(StoreError::NoLink)
    ));

    // An outcome notice to every email.
    let mut notices = 0;
    for id in s.due_mail().await.unwrap() {
        match s.prepare_mail(id).await.unwrap() {
            Prepared::Notice {
                job,
                request,
                disown,
            } => {
                notices += 1;
                assert_eq!(request.status, Status::Approved);
                assert!(
                    disown.is_some(),
                    "an approval notice offers \"this wasn't me\""
                );
                s.mail_sent(&job).await.unwrap();
            }
            Prepared::Link(l) => s.mail_sent(&l.job).await.unwrap(),
            Prepared::Reminder { job, .. } => s.mail_sent(&job).await.unwrap(),
            Prepared::Dropped | Prepared::Elsewhere => {}
        }
    }
    assert_eq!(notices, 2);
    assert_eq!(s.outbox_depth().await.unwrap(), 0);
    assert_eq!(
        events(&s).await,
        [
            "account.created",
            "request.submitted",
            "mail.sent",
            "mail.sent",
            "whitelist.added",
            "whitelist.added",
            "link.approved",
            "request.approved",
            "mail.sent",
            "mail.sent",
        ]
    );
    let v = s.verify_security_log().await.unwrap();
    assert!(v.ok, "{v:?}");
    drop(s);
    let s = b.open().await;
    assert_eq!(
        s.requests("acme").await.unwrap()[0].status,
        Status::Approved
    );
    assert_eq!(s.entries("acme").await.unwrap().len(), 2);
}

async fn a_rejection_adds_nothing<B: Backing>(b: B) {
    let s = b.open().await;
    s.create_account(acme(), &op()).await.unwrap();
    s.create_request(new_request(&["203.0.113.10"], 3600), &user())
        .await
        .unwrap();
    let links = mint_links(&s).await;
    let ip = IpAddr::from([198, 51, 100, 9]);
    let (r, added) = s
        .decide(&token_hash(&links[1].1), Verdict::Reject, ip, "x")
        .await
        .unwrap();
    assert_eq!((r.status, added.len()), (Status::Rejected, 0));
    assert!(s.entries("acme").await.unwrap().is_empty());
}

async fn one_request_is_pending_at_a_time_and_a_cancelled_one_ends_its_links<B: Backing>(b: B) {
    let s = b.open().await;
    s.create_account(acme(), &op()).await.unwrap();
    let first = s
        .create_request(new_request(&["203.0.113.10"], 3600), &user())
        .await
        .unwrap();
    assert!(matches!(
        s.create_request(new_request(&["203.0.113.11"], 3600), &user())
            .await,
        Err(StoreError::PendingExists)
    ));
    let links = mint_links(&s).await;
    assert!(matches!(
        s.cancel_request("globex", &first.id, &user()).await,
        Err(StoreError::NoRequest(_))
    ));
    assert!(matches!(
        s.cancel_request("acme", "not-a-number", &user()).await,
        Err(StoreError::NoRequest(_))
    ));
    let cancelled = s.cancel_request("acme", &first.id, &user()).await.unwrap();
    assert_eq!(cancelled.status, Status::Cancelled);
    assert!(matches!(
        s.cancel_request("acme", &first.id, &user()).await,
        Err(StoreError::NotPending {
            status: Status::Cancelled,
            ..
        })
    ));
    let ip = IpAddr::from([198, 51, 100, 9]);
    assert!(matches!(
        s.decide(&token_hash(&links[0].1), Verdict::Approve, ip, "x")
            .await,
        Err(StoreError::NotPending {
            status: Status::Cancelled,
            ..
        })
    ));
    let second = s
        .create_request(new_request(&["203.0.113.11"], 3600), &user())
        .await
        .unwrap();
    let listed: Vec<String> = s
        .requests("acme")
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(
        listed,
        [second.id.clone(), first.id.clone()],
        "newest first"
    );
    assert_eq!(s.request("acme", &second.id).await.unwrap().remark, "prod");
    assert!(matches!(
        s.request("globex", &second.id).await,
        Err(StoreError::NoRequest(_))
    ));
}

async fn an_expired_request_ends_and_its_link_mail_is_dropped<B: Backing>(b: B) {
    let s = b.open().await;
    s.create_account(acme(), &op()).await.unwrap();
    let r = s
        .create_request(new_request(&["203.0.113.10"], 0), &user())
        .await
        .unwrap();
    assert_eq!(
        s.request("acme", &r.id).await.unwrap().status,
        Status::Expired
    );
    for id in s.due_mail().await.unwrap() {
        assert!(matches!(
            s.prepare_mail(id).await.unwrap(),
            Prepared::Dropped
        ));
    }
    assert_eq!(s.outbox_depth().await.unwrap(), 0);
    assert_eq!(s.expire_due().await.unwrap(), 1);
    assert_eq!(s.expire_due().await.unwrap(), 0);
    // A new request may follow at once.
    s.create_request(new_request(&["203.0.113.10"], 3600), &user())
        .await
        .unwrap();
    let log = events(&s).await;
    assert_eq!(log.iter().filter(|e| *e == "mail.dropped").count(), 2);
    assert_eq!(log.iter().filter(|e| *e == "request.expired").count(), 1);
}

async fn a_link_of_an_address_taken_off_the_account_stops_working<B: Backing>(b: B) {
    let s = b.open().await;
    s.create_account(acme(), &op()).await.unwrap();
    s.create_request(new_request(&["203.0.113.10"], 3600), &user())
        .await
        .unwrap();
    let links = mint_links(&s).await;
    let gone = links[0].0.clone();
    let keep = gone.clone();
    s.update_account("acme", &op(), &move |mut a| {
        a.emails.retain(|e| *e != keep);
        a
    })
    .await
    .unwrap();
    let hash = token_hash(&links[0].1);
    assert!(!s.link(&hash).await.unwrap().unwrap().address_current);
    let ip = IpAddr::from([198, 51, 100, 9]);
    assert!(matches!(
        s.decide(&hash, Verdict::Approve, ip, "x").await,
        Err(StoreError::LinkAddressRemoved)
    ));
    assert!(s.entries("acme").await.unwrap().is_empty());
    // The other address still decides.
    let (r, _) = s
        .decide(&token_hash(&links[1].1), Verdict::Approve, ip, "x")
        .await
        .unwrap();
    assert_eq!(r.status, Status::Approved);
}

async fn a_failed_mail_waits_out_its_backoff<B: Backing>(b: B) {
    let s = b.open().await;
    s.create_account(acme(), &op()).await.unwrap();
    s.create_request(new_request(&["203.0.113.10"], 3600), &user())
        .await
        .unwrap();
    let due = s.due_mail().await.unwrap();
    assert_eq!(due.len(), 2);
    let Prepared::Link(l) = s.prepare_mail(due[0]).await.unwrap() else {
        panic!("a link mail");
    };
    let next = s.mail_failed(&l.job, "connection refused").await.unwrap();
    assert_eq!(next.attempts, 1);
    assert_eq!(next.last_error.as_deref(), Some("connection refused"));
    assert_eq!(
        s.due_mail().await.unwrap(),
        [due[1]],
        "not due until its retry"
    );
    assert_eq!(s.outbox_depth().await.unwrap(), 2);
    let failed = s.security_log(Some("acme")).await.unwrap();
    let last = failed.last().unwrap();
    assert_eq!(last.event, "mail.failed");
    assert_eq!(last.details["retry_in_secs"], 1);
    s.mail_dropped(&l.job, "bad address").await.unwrap();
    assert_eq!(s.outbox_depth().await.unwrap(), 1);
}

/// Two decisions of one request at once, on two links: exactly one wins,
/// every time.
async fn two_decisions_racing_exactly_one_wins<B: Backing>(b: B) {
    let s = Arc::new(b.open().await);
    s.create_account(acme(), &op()).await.unwrap();
    let ip = IpAddr::from([198, 51, 100, 9]);
    for round in 0..20 {
        let r = s
            .create_request(
                new_request(&[&format!("203.0.113.{}", round + 1)], 3600),
                &user(),
            )
            .await
            .unwrap();
        let links = mint_links(&*s).await;
        assert_eq!(links.len(), 2);
        let race = links.iter().enumerate().map(|(i, (_, token))| {
            let s = s.clone();
            let hash = token_hash(token);
            let verdict = if i == 0 {
                Verdict::Approve
            } else {
                Verdict::Reject
            };
            tokio::spawn(async move { s.decide(&hash, verdict, ip, "race").await })
        });
        let mut won = 0;
        for t in race.collect::<Vec<_>>() {
            match t.await.unwrap() {
                Ok(_) => won += 1,
                Err(StoreError::NotPending { .. }) => {}
                Err(e) => panic!("round {round}: {e}"),
            }
        }
        assert_eq!(won, 1, "round {round}");
        let now = s.request("acme", &r.id).await.unwrap();
        assert!(matches!(now.status, Status::Approved | Status::Rejected));
        for id in s.due_mail().await.unwrap() {
            match s.prepare_mail(id).await.unwrap() {
                Prepared::Notice { job, .. } => s.mail_sent(&job).await.unwrap(),
                Prepared::Link(l) => s.mail_sent(&l.job).await.unwrap(),
                _ => {}
            }
        }
    }
    let log = events(&*s).await;
    assert_eq!(
        log.iter()
            .filter(|e| *e == "link.approved" || *e == "link.rejected")
            .count(),
        20
    );
    assert!(s.verify_security_log().await.unwrap().ok);
}

on_both!(
    a_request_goes_live_through_one_link_and_every_email_is_told,
    a_rejection_adds_nothing,
    one_request_is_pending_at_a_time_and_a_cancelled_one_ends_its_links,
    an_expired_request_ends_and_its_link_mail_is_dropped,
    a_link_of_an_address_taken_off_the_account_stops_working,
    a_failed_mail_waits_out_its_backoff,
    two_decisions_racing_exactly_one_wins,
);
