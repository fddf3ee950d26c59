//! Submissions' idempotency keys and references, alike on every backend.

use super::requests::{new_request, user, EMAILS};
use super::{Backing, Written};
use crate::store::idempotency::{IdempotencyKey, KeyRecord};
use crate::store::tests::{account, op};
use crate::store::*;
use std::sync::Arc;

fn acme() -> crate::domain::model::Account {
    let mut a = account("acme");
    a.emails = EMAILS.iter().map(|e| e.to_string()).collect();
    a
}

fn key(raw: &str) -> IdempotencyKey {
    IdempotencyKey::parse(raw.as_bytes(), "fp".into()).unwrap()
}

fn keyed(ips: &[&str], raw: &str) -> NewRequest {
    let mut n = new_request(ips, 3600);
    n.idempotency = Some(key(raw));
    n
}

async fn log_len<S: Written>(s: &S) -> usize {
    s.security_log(None).await.unwrap().len()
}

async fn a_key_is_saved_with_its_request_and_refuses_another<B: Backing>(b: B) {
    let s = b.open().await;
    s.create_account(acme(), &op()).await.unwrap();
    s.create_account(account("globex"), &op()).await.unwrap();
    let first = s
        .create_request(keyed(&["203.0.113.10"], "order-1"), &user())
        .await
        .unwrap();
    let k = key("order-1");
    let rec: KeyRecord = s.idempotency_key("acme", &k.hash).await.unwrap().unwrap();
    assert_eq!((rec.request, rec.fingerprint), (first.clone(), "fp".into()));
    assert!(s
        .idempotency_key("globex", &k.hash)
        .await
        .unwrap()
        .is_none());
    assert!(!b.holds(&s, "order-1").await, "only the key's hash is kept");
    s.cancel_request("acme", &first.id, &user()).await.unwrap();

    // The key refuses a second request, pending one or not, and changes nothing.
    let (log, mails) = (log_len(&s).await, s.outbox_depth().await.unwrap());
    assert!(matches!(
        s.create_request(keyed(&["203.0.113.11"], "order-1"), &user())
            .await,
        Err(StoreError::KeyUsed)
    ));
    assert_eq!(s.requests("acme").await.unwrap().len(), 1);
    assert_eq!(
        (log_len(&s).await, s.outbox_depth().await.unwrap()),
        (log, mails)
    );
    // Another key is another submission; live keys are not swept.
    s.create_request(keyed(&["203.0.113.11"], "order-2"), &user())
        .await
        .unwrap();
    assert_eq!(s.sweep_idempotency_keys().await.unwrap(), 0);
    assert!(s.idempotency_key("acme", &k.hash).await.unwrap().is_some());
}

async fn two_submissions_racing_with_one_key_create_one_request<B: Backing>(b: B) {
    let s = Arc::new(b.open().await);
    s.create_account(acme(), &op()).await.unwrap();
    for round in 0..10 {
        let raw = format!("race-{round}");
        let race: Vec<_> = (0..2)
            .map(|_| {
                let (s, raw) = (s.clone(), raw.clone());
                tokio::spawn(async move {
                    s.create_request(keyed(&["203.0.113.10"], &raw), &user())
                        .await
                })
            })
            .collect();
        let mut created = Vec::new();
        for t in race {
            match t.await.unwrap() {
                Ok(r) => created.push(r),
                Err(StoreError::KeyUsed) => {}
                Err(e) => panic!("round {round}: {e}"),
            }
        }
        assert_eq!(created.len(), 1, "round {round}");
        s.cancel_request("acme", &created[0].id, &user())
            .await
            .unwrap();
    }
    assert_eq!(s.requests("acme").await.unwrap().len(), 10);
    assert!(s.verify_security_log().await.unwrap().ok);
}

async fn a_reference_is_kept_with_its_request<B: Backing>(b: B) {
    let s = b.open().await;
    s.create_account(acme(), &op()).await.unwrap();
    let mut n = new_request(&["203.0.113.10"], 3600);
    n.reference = Some("PO-2026/17".into());
    let r = s.create_request(n, &user()).await.unwrap();
    assert_eq!(r.reference.as_deref(), Some("PO-2026/17"));
    assert_eq!(s.request("acme", &r.id).await.unwrap(), r);
    assert_eq!(s.requests("acme").await.unwrap(), std::slice::from_ref(&r));
    s.cancel_request("acme", &r.id, &user()).await.unwrap();
    let plain = s
        .create_request(new_request(&["203.0.113.11"], 3600), &user())
        .await
        .unwrap();
    assert_eq!(s.request("acme", &plain.id).await.unwrap().reference, None);
}

on_both!(
    a_key_is_saved_with_its_request_and_refuses_another,
    two_submissions_racing_with_one_key_create_one_request,
    a_reference_is_kept_with_its_request,
);
