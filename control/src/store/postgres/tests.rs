//! What only the PostgreSQL store has: several stores (control planes) on
//! one database, leases on mail, migrations under a lock, and the
//! database's own refusals.

use super::{PgOptions, PgStore};
use crate::domain::flow::Status;
use crate::domain::users::token_hash;
use crate::seclog::LogKey;
use crate::store::conformance::fresh_pg;
use crate::store::tests::{account, op, test_key};
use crate::store::*;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

async fn open(o: &PgOptions) -> PgStore {
    match PgStore::open(o, test_key()).await {
        Ok(s) => s,
        Err(e) => panic!("opening: {e}"),
    }
}

async fn sql(o: &PgOptions, statement: &str) {
    let s = open(o).await;
    let c = s.client().await.unwrap();
    c.batch_execute(statement).await.unwrap();
}

fn request() -> NewRequest {
    crate::store::tests::new_request(&["203.0.113.10"], &["ops@acme.test", "cto@acme.test"])
}

/// Two control planes' stores (two pools) on one database: of two
/// decisions of one request, one on each, exactly one wins, a hundred
/// times over, and the log stays one chain.
#[tokio::test]
async fn two_stores_on_one_database_decide_a_request_once() {
    let Some(o) = fresh_pg().await else { return };
    let (a, b) = (Arc::new(open(&o).await), Arc::new(open(&o).await));
    let mut acme = account("acme");
    acme.emails = vec!["ops@acme.test".into(), "cto@acme.test".into()];
    a.create_account(acme, &op()).await.unwrap();
    let ip = IpAddr::from([198, 51, 100, 9]);
    for round in 0..100 {
        let r = a.create_request(request(), &op()).await.unwrap();
        let mut tokens = Vec::new();
        for id in b.due_mail().await.unwrap() {
            if let Prepared::Link(l) = b.prepare_mail(id).await.unwrap() {
                b.mail_sent(&l.job).await.unwrap();
                tokens.push(l.token);
            }
        }
        assert_eq!(tokens.len(), 2, "round {round}");
        let (ha, hb) = (token_hash(&tokens[0]), token_hash(&tokens[1]));
        let (sa, sb) = (a.clone(), b.clone());
        let ta = tokio::spawn(async move { sa.decide(&ha, Verdict::Approve, ip, "a").await });
        let tb = tokio::spawn(async move { sb.decide(&hb, Verdict::Reject, ip, "b").await });
        let outcomes = [ta.await.unwrap(), tb.await.unwrap()];
        let won = outcomes.iter().filter(|o| o.is_ok()).count();
        for o in &outcomes {
            assert!(
                matches!(o, Ok(_) | Err(StoreError::NotPending { .. })),
                "round {round}: {o:?}"
            );
        }
        assert_eq!(won, 1, "round {round}");
        let now = b.request("acme", &r.id).await.unwrap();
        assert!(matches!(now.status, Status::Approved | Status::Rejected));
        for id in a.due_mail().await.unwrap() {
            if let Prepared::Notice { job, .. } = a.prepare_mail(id).await.unwrap() {
                a.mail_sent(&job).await.unwrap();
            }
        }
    }
    let v = b.verify_security_log().await.unwrap();
    assert!(v.ok, "{v:?}");
    let decided = a.security_log(None).await.unwrap();
    let n = decided
        .iter()
        .filter(|r| r.event == "link.approved" || r.event == "link.rejected")
        .count();
    assert_eq!(n, 100);
}

/// A mail one control plane has readied is not readied by another until
/// its lease runs out; then it goes again (at least once), with a fresh
/// link.
#[tokio::test]
async fn a_leased_mail_waits_for_its_lease() {
    let Some(o) = fresh_pg().await else { return };
    let (a, b) = (open(&o).await, open(&o).await);
    let mut acme = account("acme");
    acme.emails = vec!["ops@acme.test".into()];
    a.create_account(acme, &op()).await.unwrap();
    let mut one = request();
    one.emails.truncate(1);
    a.create_request(one, &op()).await.unwrap();
    let due = a.due_mail().await.unwrap();
    assert_eq!(due.len(), 1);
    let Prepared::Link(first) = a.prepare_mail(due[0]).await.unwrap() else {
        panic!("a link mail")
    };
    assert!(b.due_mail().await.unwrap().is_empty(), "leased");
    assert!(matches!(
        b.prepare_mail(due[0]).await.unwrap(),
        Prepared::Elsewhere
    ));
    // The first sender died: its lease runs out.
    sql(&o, "UPDATE ipgate_outbox SET lease_until_unix = 0").await;
    assert_eq!(b.due_mail().await.unwrap(), due);
    let Prepared::Link(second) = b.prepare_mail(due[0]).await.unwrap() else {
        panic!("a link mail again")
    };
    assert_eq!(second.job.attempts, 2);
    assert_ne!(first.token, second.token);
    b.mail_sent(&second.job).await.unwrap();
    assert_eq!(a.outbox_depth().await.unwrap(), 0);
}

/// A plane that dies holding a lease (its connections gone) leaves the
/// job free at once, not when the lease would have run out.
#[tokio::test]
async fn a_mail_leased_by_a_plane_that_died_is_free_at_once() {
    let Some(o) = fresh_pg().await else { return };
    let (a, b) = (open(&o).await, open(&o).await);
    let mut acme = account("acme");
    acme.emails = vec!["ops@acme.test".into()];
    a.create_account(acme, &op()).await.unwrap();
    let mut one = request();
    one.emails.truncate(1);
    a.create_request(one, &op()).await.unwrap();
    let due = a.due_mail().await.unwrap();
    assert!(matches!(
        a.prepare_mail(due[0]).await.unwrap(),
        Prepared::Link(_)
    ));
    assert!(matches!(
        b.prepare_mail(due[0]).await.unwrap(),
        Prepared::Elsewhere
    ));
    drop(a);
    let deadline = Instant::now() + Duration::from_secs(10);
    while b.due_mail().await.unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the dead plane's lease held on");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let Prepared::Link(again) = b.prepare_mail(due[0]).await.unwrap() else {
        panic!("a link mail again")
    };
    assert_eq!(again.job.attempts, 2);
}

/// Control planes starting at once on an empty database: one runs the
/// migrations, the others wait for it and find nothing to do.
#[tokio::test]
async fn control_planes_starting_together_migrate_once() {
    let Some(o) = fresh_pg().await else { return };
    let opens = (0..4).map(|_| {
        let o = o.clone();
        tokio::spawn(async move { PgStore::open(&o, test_key()).await.map(drop) })
    });
    for t in opens.collect::<Vec<_>>() {
        let opened = t.await.unwrap();
        assert!(opened.is_ok(), "{opened:?}");
    }
    let s = open(&o).await;
    let c = s.client().await.unwrap();
    let row = c
        .query_one("SELECT count(*), max(version) FROM ipgate_migrations", &[])
        .await
        .unwrap();
    let (n, v): (i64, i32) = (row.get(0), row.get(1));
    let all = super::schema::MIGRATIONS.len();
    assert_eq!(
        (n as usize, v as usize),
        (all, all),
        "each migration ran once"
    );
}

#[tokio::test]
async fn a_schema_from_a_newer_ipgate_is_refused_unchanged() {
    let Some(o) = fresh_pg().await else { return };
    sql(&o, "INSERT INTO ipgate_migrations (version) VALUES (99)").await;
    match PgStore::open(&o, test_key()).await {
        Err(e @ StoreError::SchemaTooNew { .. }) => {
            assert!(e.to_string().contains("99"), "{e}")
        }
        Err(e) => panic!("expected SchemaTooNew, got {e}"),
        Ok(_) => panic!("opened a newer schema"),
    }
}

#[tokio::test]
async fn a_store_keyed_with_another_log_key_is_refused() {
    let Some(o) = fresh_pg().await else { return };
    open(&o)
        .await
        .create_account(account("acme"), &op())
        .await
        .unwrap();
    let other = LogKey::new(&[b'x'; 40]).unwrap();
    assert!(matches!(
        PgStore::open(&o, other).await,
        Err(StoreError::LogKeyMismatch { .. })
    ));
}

/// A record edited, a record deleted, or the head moved back, by someone
/// with SQL access but not the log key: verification finds each.
#[tokio::test]
async fn an_edit_made_in_sql_is_found() {
    for (damage, at) in [
        (
            "UPDATE ipgate_seclog SET record = replace(record, 'acme2', 'acme3') WHERE seq = 2",
            Some(2),
        ),
        ("DELETE FROM ipgate_seclog WHERE seq = 2", Some(2)),
        ("UPDATE ipgate_seclog_head SET seq = 2", Some(2)),
    ] {
        let Some(o) = fresh_pg().await else { return };
        let s = open(&o).await;
        for id in ["acme", "acme2", "acme4"] {
            s.create_account(account(id), &op()).await.unwrap();
        }
        assert!(s.verify_security_log().await.unwrap().ok);
        sql(&o, damage).await;
        let v = s.verify_security_log().await.unwrap();
        assert!(!v.ok, "{damage}: {v:?}");
        assert_eq!(v.broken_at, at, "{damage}: {v:?}");
    }
}

#[tokio::test]
async fn a_password_in_the_url_is_refused_before_connecting() {
    let o = PgOptions::new("postgres://ipgate:secret@127.0.0.1:1/x", None);
    match PgStore::open(&o, test_key()).await {
        Err(e @ StoreError::PgConfig(_)) => {
            let text = e.to_string();
            assert!(text.contains("IPGATE_STORE_PASSWORD"), "{text}");
            assert!(
                !text.contains("secret"),
                "the password is not repeated: {text}"
            );
        }
        Err(e) => panic!("expected PgConfig, got {e}"),
        Ok(_) => panic!("connected with a password in the URL"),
    }
    assert!(matches!(
        PgStore::open(&PgOptions::new("mysql://x", None), test_key()).await,
        Err(StoreError::PgConfig(_))
    ));
}

/// Nothing listening: the store says so within its timeout.
#[tokio::test]
async fn an_unreachable_server_is_unavailable_within_the_timeout() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut o = PgOptions::new(&format!("postgres://ipgate@127.0.0.1:{port}/x"), None);
    o.timeout = Duration::from_secs(1);
    let started = Instant::now();
    let opened = PgStore::open(&o, test_key()).await;
    assert!(
        matches!(opened, Err(StoreError::Unavailable(_))),
        "{:?}",
        opened.err()
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_wrong_password_is_refused_with_the_servers_reason() {
    let Some(mut o) = fresh_pg().await else {
        return;
    };
    o.password = Some("not-the-password".into());
    match PgStore::open(&o, test_key()).await {
        Err(e) => assert!(e.to_string().contains("password"), "{e}"),
        Ok(_) => panic!("opened with a wrong password"),
    }
}

/// What one control plane changes reaches another on the same database
/// through the change feed, at the same store version; and a change made
/// on a plane that has not yet followed first takes in what came before.
#[tokio::test]
async fn a_change_on_one_store_reaches_the_other_at_the_same_version() {
    let Some(o) = fresh_pg().await else { return };
    let (a, b) = (open(&o).await, open(&o).await);
    let before = b.take_touched();
    assert!(before.touches.is_empty());
    let watching = {
        let b = b.clone();
        tokio::spawn(async move { b.watch_changes().await })
    };
    a.create_account(account("acme"), &op()).await.unwrap();
    let seen = tokio::time::timeout(Duration::from_secs(10), watching)
        .await
        .expect("the change reached the other store")
        .unwrap();
    assert!(matches!(seen, Ok(true)), "{seen:?}");
    let (on_a, on_b) = (a.take_touched(), b.take_touched());
    assert_eq!(on_b.touches, [Touch::Account("acme".into())]);
    assert_eq!(on_b.version, on_a.version);
    assert!(on_a.version > before.version);

    // b has not followed a's next change when it makes its own.
    let entry = crate::store::tests::entry_of("acme", "203.0.113.10/32");
    a.add_entries("acme", vec![entry], &op()).await.unwrap();
    let block = crate::domain::model::BlockEntry {
        id: String::new(),
        cidr: "192.0.2.0/24".parse().unwrap(),
        remark: String::new(),
        created_at: crate::domain::Timestamp::now(),
    };
    b.add_block(block, &op()).await.unwrap();
    let on_b = b.take_touched();
    assert_eq!(
        on_b.touches,
        [Touch::Account("acme".into()), Touch::Blocklist],
        "a's change first, then b's own"
    );
    // a learns of b's change, and both stand at one version.
    assert!(matches!(a.watch_changes().await, Ok(true)));
    let on_a = a.take_touched();
    assert!(on_a.touches.contains(&Touch::Blocklist));
    assert_eq!(on_a.version, on_b.version);
}

/// Expiry runs on one control plane at a time: while another holds the
/// job's lock, a plane expires nothing; once it lets go, the plane does.
#[tokio::test]
async fn expiry_runs_on_one_control_plane_at_a_time() {
    let Some(o) = fresh_pg().await else { return };
    let (a, b) = (open(&o).await, open(&o).await);
    let mut acme = account("acme");
    acme.emails = vec!["ops@acme.test".into()];
    a.create_account(acme, &op()).await.unwrap();
    let mut due = request();
    due.ttl_secs = 0;
    a.create_request(due, &op()).await.unwrap();
    let (held_tx, held_rx) = tokio::sync::oneshot::channel();
    let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
    let holder = {
        let b = b.clone();
        tokio::spawn(async move {
            b.alone(super::requests::EXPIRY_LOCK, || async {
                let _ = held_tx.send(());
                let _ = release_rx.await;
                Ok(())
            })
            .await
        })
    };
    held_rx.await.unwrap();
    assert_eq!(
        a.expire_due().await.unwrap(),
        0,
        "another plane runs the job"
    );
    release_tx.send(()).unwrap();
    assert!(matches!(holder.await.unwrap(), Ok(Some(()))));
    assert_eq!(a.expire_due().await.unwrap(), 1);
    assert_eq!(b.expire_due().await.unwrap(), 0);
}
