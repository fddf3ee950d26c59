//! Portal users, their sessions and logins, and their API tokens, alike
//! on both backends.

use super::*;
use crate::domain::tokens::Scope;
use crate::domain::users::{token_digest, token_hash, Role, User};
use crate::limits::refusals::Summary;
use serde_json::json;
use std::net::IpAddr;
use std::time::Duration;

on_both!(
    users_belong_to_an_existing_account_once_and_change_with_their_event,
    a_totp_code_works_once_even_for_two_logins_racing,
    a_session_lives_until_it_expires_or_its_user_logs_out,
    expired_sessions_are_swept_without_a_record,
    refused_logins_are_recorded_alone_or_summarised_in_one_change,
    tokens_go_to_existing_users_list_oldest_first_and_are_revoked_once,
);

fn user(username: &str, account: &str) -> User {
    User {
        username: username.into(),
        account: account.parse().unwrap(),
        role: Role::Main,
        password_hash: "$argon2id$not-a-real-hash".into(),
        totp_secret: None,
        totp_last_step: None,
        created_at: Timestamp::from_unix(1_767_225_600),
        updated_at: Timestamp::from_unix(1_767_225_600),
    }
}

async fn with_alice<B: Backing>(b: &B) -> B::S {
    let s = b.open().await;
    s.create_account(account("acme"), &op()).await.unwrap();
    s.create_user(user("alice", "acme"), &op()).await.unwrap();
    s
}

fn session(username: &str, expires_at: Timestamp) -> Session {
    Session {
        username: username.into(),
        account: "acme".parse().unwrap(),
        csrf: "c5rf".into(),
        created_at: Timestamp::now(),
        expires_at,
        two_factor: false,
    }
}

fn in_an_hour() -> Timestamp {
    Timestamp::now().plus_secs(3600)
}

async fn log_of<S: Written>(s: &S) -> Vec<crate::seclog::SecRecord> {
    s.security_log(None).await.unwrap_or_default()
}

async fn users_belong_to_an_existing_account_once_and_change_with_their_event<B: Backing>(b: B) {
    {
        let s = b.open().await;
        assert!(matches!(
            s.create_user(user("alice", "acme"), &op()).await,
            Err(StoreError::NoAccount(_))
        ));
        s.create_account(account("acme"), &op()).await.unwrap();
        let _ = s.take_touched();
        let made = s.create_user(user("alice", "acme"), &op()).await.unwrap();
        assert_eq!(made.username, "alice");
        match s.create_user(user("alice", "acme"), &op()).await {
            Err(StoreError::UserExists(u)) => assert_eq!(u, "alice"),
            other => panic!("a second alice: {other:?}"),
        }
        match s
            .update_user("bob", &op(), "user.changed", json!({}), &|u| u)
            .await
        {
            Err(StoreError::NoUser(u)) => assert_eq!(u, "bob"),
            other => panic!("changing bob: {other:?}"),
        }
        let changed = s
            .update_user(
                "alice",
                &op(),
                "user.role_changed",
                json!({"username": "alice", "role": "sub"}),
                &|mut u| {
                    u.role = Role::Sub;
                    u.totp_secret = Some(vec![1, 2, 3]);
                    u
                },
            )
            .await
            .unwrap();
        assert_eq!(changed.role, Role::Sub);
        assert_eq!(
            s.take_touched().touches,
            vec![],
            "users touch nothing of the table"
        );
    }
    let s = b.open().await;
    let alice = s.user("alice").await.unwrap().unwrap();
    assert_eq!(
        (alice.role, alice.totp_secret, alice.account.as_str()),
        (Role::Sub, Some(vec![1, 2, 3]), "acme")
    );
    assert_eq!(alice.created_at, Timestamp::from_unix(1_767_225_600));
    assert!(s.user("bob").await.unwrap().is_none());
    assert!(
        s.user("Alice").await.unwrap().is_none(),
        "usernames are exact"
    );
    let log = log_of(&s).await;
    let got: Vec<(&str, Option<&str>, &serde_json::Value)> = log
        .iter()
        .map(|r| (r.event.as_str(), r.account.as_deref(), &r.details))
        .collect();
    assert_eq!(got.len(), 3, "refusals log nothing: {got:?}");
    assert_eq!(
        got[1],
        (
            "user.created",
            Some("acme"),
            &json!({"username": "alice", "role": "main"})
        )
    );
    assert_eq!(
        got[2],
        (
            "user.role_changed",
            Some("acme"),
            &json!({"username": "alice", "role": "sub"})
        )
    );
}

async fn a_totp_code_works_once_even_for_two_logins_racing<B: Backing>(b: B) {
    let s = with_alice(&b).await;
    let alice = s.user("alice").await.unwrap().unwrap();
    let live = session("alice", in_an_hour());
    let actor = op();
    let (one, two) = tokio::join!(
        s.login(&alice, Some(1000), "hash-1", &live, &actor),
        s.login(&alice, Some(1000), "hash-2", &live, &actor),
    );
    let won = [&one, &two].iter().filter(|r| r.is_ok()).count();
    assert_eq!(won, 1, "{one:?} {two:?}");
    assert!(
        [&one, &two]
            .iter()
            .any(|r| matches!(r, Err(StoreError::CodeUsed))),
        "{one:?} {two:?}"
    );
    let (winner, loser) = if one.is_ok() {
        ("hash-1", "hash-2")
    } else {
        ("hash-2", "hash-1")
    };
    assert!(s.session(winner).await.unwrap().is_some());
    assert!(s.session(loser).await.unwrap().is_none(), "no session kept");
    assert_eq!(
        s.user("alice").await.unwrap().unwrap().totp_last_step,
        Some(1000)
    );
    // An older step is used up too; a newer one works; no step at all
    // (no 2FA) leaves the step alone.
    assert!(matches!(
        s.login(&alice, Some(999), "hash-3", &live, &op()).await,
        Err(StoreError::CodeUsed)
    ));
    s.login(&alice, Some(1001), "hash-4", &live, &op())
        .await
        .unwrap();
    s.login(&alice, None, "hash-5", &live, &op()).await.unwrap();
    assert_eq!(
        s.user("alice").await.unwrap().unwrap().totp_last_step,
        Some(1001)
    );
    let ghost = user("ghost", "acme");
    match s.login(&ghost, None, "hash-6", &live, &op()).await {
        Err(StoreError::NoUser(u)) => assert_eq!(u, "ghost"),
        other => panic!("a login of nobody: {other:?}"),
    }
    assert!(s.session("hash-6").await.unwrap().is_none());
    let logins: Vec<(Option<String>, serde_json::Value)> = log_of(&s)
        .await
        .into_iter()
        .filter(|r| r.event == "login.succeeded")
        .map(|r| (r.account, r.details))
        .collect();
    let acme = Some("acme".to_string());
    assert_eq!(
        logins,
        vec![
            (
                acme.clone(),
                json!({"username": "alice", "two_factor": true})
            ),
            (
                acme.clone(),
                json!({"username": "alice", "two_factor": true})
            ),
            (acme, json!({"username": "alice", "two_factor": false})),
        ]
    );
    assert_eq!(log_of(&s).await.len(), 5, "refused logins log nothing here");
}

async fn a_session_lives_until_it_expires_or_its_user_logs_out<B: Backing>(b: B) {
    let expires = in_an_hour();
    {
        let s = with_alice(&b).await;
        let alice = s.user("alice").await.unwrap().unwrap();
        let mut live = session("alice", expires);
        live.two_factor = true;
        s.login(&alice, None, "live", &live, &op()).await.unwrap();
        let gone = session("alice", Timestamp::now().plus_secs(0));
        s.login(&alice, None, "expired", &gone, &op())
            .await
            .unwrap();
        // A second login under the same hash replaces the session.
        let replaced = session("alice", Timestamp::from_unix(1));
        s.login(&alice, None, "replaced", &live, &op())
            .await
            .unwrap();
        s.login(&alice, None, "replaced", &replaced, &op())
            .await
            .unwrap();
    }
    let s = b.open().await;
    let got = s.session("live").await.unwrap().unwrap();
    assert_eq!(
        (
            got.username.as_str(),
            got.account.as_str(),
            got.csrf.as_str()
        ),
        ("alice", "acme", "c5rf")
    );
    assert_eq!((got.expires_at, got.two_factor), (expires, true));
    assert!(s.session("expired").await.unwrap().is_none());
    assert!(s.session("replaced").await.unwrap().is_none());
    assert!(s.session("never").await.unwrap().is_none());

    let before = log_of(&s).await.len();
    s.end_session("never", &op()).await.unwrap();
    assert_eq!(log_of(&s).await.len(), before, "no session, no record");
    s.end_session("live", &op()).await.unwrap();
    assert!(s.session("live").await.unwrap().is_none());
    let log = log_of(&s).await;
    assert_eq!(log.len(), before + 1);
    let last = &log[before];
    assert_eq!(
        (last.event.as_str(), last.account.as_deref(), &last.details),
        ("logout", Some("acme"), &json!({"username": "alice"}))
    );
    // Ending an expired session still logs it out.
    s.end_session("expired", &op()).await.unwrap();
    assert_eq!(log_of(&s).await.len(), before + 2);
    let v = s.verify_security_log().await.unwrap();
    assert!(v.ok, "{v:?}");
}

async fn expired_sessions_are_swept_without_a_record<B: Backing>(b: B) {
    let s = with_alice(&b).await;
    let alice = s.user("alice").await.unwrap().unwrap();
    for (hash, expires) in [
        ("old-1", Timestamp::from_unix(1)),
        ("live-1", in_an_hour()),
        ("old-2", Timestamp::now()),
        ("live-2", Timestamp::MAX),
    ] {
        s.login(&alice, None, hash, &session("alice", expires), &op())
            .await
            .unwrap();
    }
    let before = log_of(&s).await.len();
    assert_eq!(s.sweep_sessions().await.unwrap(), 2);
    assert_eq!(s.sweep_sessions().await.unwrap(), 0);
    assert_eq!(log_of(&s).await.len(), before, "sweeping is not logged");
    for live in ["live-1", "live-2"] {
        assert!(s.session(live).await.unwrap().is_some(), "{live}");
    }
    // A swept session is gone: ending it records nothing.
    s.end_session("old-1", &op()).await.unwrap();
    assert_eq!(log_of(&s).await.len(), before);
}

fn summary(source: &str, account: Option<&str>, ip: [u8; 4]) -> Summary {
    Summary {
        source: source.into(),
        account: account.map(str::to_string),
        ip: IpAddr::from(ip),
        suppressed: 7,
        reasons: [("bad_password", 5), ("unknown_user", 2)]
            .into_iter()
            .collect(),
        usernames: vec!["alice".into(), "root".into()],
        window_start: Timestamp::from_unix(1_767_225_600),
        window_secs: 600,
    }
}

async fn refused_logins_are_recorded_alone_or_summarised_in_one_change<B: Backing>(b: B) {
    let s = b.open().await;
    let long = "x".repeat(100);
    s.login_failed(&long, None, "unknown_user", &op())
        .await
        .unwrap();
    s.login_failed("alice", Some("acme"), "bad_password", &op())
        .await
        .unwrap();
    s.login_failed_summaries(&[]).await.unwrap();
    s.login_failed_summaries(&[
        summary("192.0.2.1", Some("acme"), [192, 0, 2, 1]),
        summary("2001:db8:1::/48", None, [198, 51, 100, 9]),
    ])
    .await
    .unwrap();
    let log = log_of(&s).await;
    assert_eq!(log.len(), 4, "an empty batch records nothing");
    assert_eq!(
        (log[0].event.as_str(), log[0].account.as_deref()),
        ("login.failed", None)
    );
    assert_eq!(
        log[0].details,
        json!({"username": "x".repeat(64), "reason": "unknown_user"})
    );
    assert_eq!(
        (log[1].account.as_deref(), &log[1].details),
        (
            Some("acme"),
            &json!({"username": "alice", "reason": "bad_password"})
        )
    );
    assert_eq!(log[1].actor, "admin");
    for (r, (account, ip)) in log[2..]
        .iter()
        .zip([(Some("acme"), "192.0.2.1"), (None, "198.51.100.9")])
    {
        assert_eq!(r.event, "login.failed_summary");
        assert_eq!(r.account.as_deref(), account);
        assert_eq!((r.actor.as_str(), r.ip.as_deref()), ("system", Some(ip)));
    }
    assert_eq!(
        log[3].details,
        json!({
            "source": "2001:db8:1::/48",
            "suppressed": 7,
            "reasons": {"bad_password": 5, "unknown_user": 2},
            "usernames": ["alice", "root"],
            "window_start": "2026-01-01T00:00:00Z",
            "window_secs": 600,
        })
    );
    let v = s.verify_security_log().await.unwrap();
    assert!(v.ok && v.records == 4, "{v:?}");
}

fn token_for(username: &str, secret: &str, scopes: Vec<Scope>) -> ApiToken {
    ApiToken::new(
        username,
        &token_digest(secret),
        scopes,
        Timestamp::from_unix(1_767_225_600),
        Duration::from_secs(3600),
    )
}

async fn tokens_go_to_existing_users_list_oldest_first_and_are_revoked_once<B: Backing>(b: B) {
    let issued = {
        let s = with_alice(&b).await;
        s.create_user(user("bob", "acme"), &op()).await.unwrap();
        match s
            .issue_token(
                token_for("ghost", "secret-token-0", vec![]),
                &token_hash("secret-token-0"),
                &op(),
            )
            .await
        {
            Err(StoreError::NoUser(u)) => assert_eq!(u, "ghost"),
            other => panic!("a token for nobody: {other:?}"),
        }
        assert!(s
            .token(&token_hash("secret-token-0"))
            .await
            .unwrap()
            .is_none());
        let mut issued = Vec::new();
        for (who, secret) in [
            ("alice", "secret-token-1"),
            ("bob", "secret-token-2"),
            ("alice", "secret-token-3"),
            ("alice", "secret-token-4"),
        ] {
            let t = s
                .issue_token(
                    token_for(who, secret, vec![Scope::Read]),
                    &token_hash(secret),
                    &op(),
                )
                .await
                .unwrap();
            assert!(!t.id.is_empty());
            issued.push(t);
        }
        issued
    };
    let s = b.open().await;
    assert_eq!(
        s.token(&token_hash("secret-token-3"))
            .await
            .unwrap()
            .as_ref(),
        Some(&issued[2])
    );
    let alices = s.tokens_of("alice").await.unwrap();
    assert_eq!(
        alices,
        vec![issued[0].clone(), issued[2].clone(), issued[3].clone()]
    );
    assert_eq!(s.tokens_of("bob").await.unwrap(), vec![issued[1].clone()]);
    assert!(s.tokens_of("carol").await.unwrap().is_empty());

    let before = log_of(&s).await.len();
    for (who, id) in [
        ("bob", issued[0].id.as_str()),
        ("alice", "x"),
        ("alice", ""),
    ] {
        match s.revoke_token(who, id, &op()).await {
            Err(StoreError::NoToken(named)) => assert_eq!(named, id),
            other => panic!("revoking {id:?} of {who}: {other:?}"),
        }
    }
    assert_eq!(log_of(&s).await.len(), before, "refusals log nothing");
    let revoked = s.revoke_token("alice", &issued[2].id, &op()).await.unwrap();
    assert_eq!(revoked, issued[2]);
    assert!(s
        .token(&token_hash("secret-token-3"))
        .await
        .unwrap()
        .is_none());
    assert!(matches!(
        s.revoke_token("alice", &issued[2].id, &op()).await,
        Err(StoreError::NoToken(_))
    ));
    assert_eq!(s.tokens_of("alice").await.unwrap().len(), 2);

    let log = log_of(&s).await;
    let first = log
        .iter()
        .find(|r| r.event == "user.token_issued")
        .unwrap_or_else(|| panic!("no token_issued record"));
    assert_eq!(first.account.as_deref(), Some("acme"));
    assert_eq!(
        first.details,
        json!({
            "username": "alice",
            "token_id": issued[0].id,
            "fingerprint": issued[0].fingerprint,
            "scopes": ["read"],
            "expires_at": "2026-01-01T01:00:00Z",
        })
    );
    let last = log.last().unwrap_or_else(|| panic!("an empty log"));
    assert_eq!(
        (last.event.as_str(), last.account.as_deref()),
        ("user.token_revoked", Some("acme"))
    );
    assert_eq!(
        last.details,
        json!({
            "username": "alice",
            "token_id": issued[2].id,
            "fingerprint": issued[2].fingerprint,
        })
    );
    assert!(
        !b.holds(&s, "secret-token-4").await,
        "something in the store holds a token itself"
    );
    assert!(
        b.holds(&s, &token_hash("secret-token-4")).await,
        "a token is kept under its hash"
    );
}
