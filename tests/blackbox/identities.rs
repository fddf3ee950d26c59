//! Account identities and secret keys through the admin API, black-box:
//! names are unique over every account's ids and identities ignoring case,
//! a key is kept and shown only as a hash and a fingerprint, and each
//! change is live in the proxy when it is answered.

use crate::common::identities as setup;
use crate::common::*;
use serde_json::json;
use setup::*;

#[test]
fn identities_are_unique_ignoring_case_over_all_accounts_and_live_when_answered() {
    let up = Upstream::start();
    let gate = gate(&up);
    let as_name = |name: &str| gate.get("127.0.0.1", "/sms/x", &[("X-Account-Id", name)]).0;
    assert_eq!(as_name("Sender-1"), 403, "unknown before it is registered");

    let path = "/admin/v1/accounts/acme/identities";
    let (s, made) = gate.admin(
        "POST",
        path,
        Some(json!({"value": "Sender-1", "remark": "sms"})),
    );
    assert_eq!(s, 201, "{made}");
    assert_eq!(
        (&made["account"], &made["value"], &made["remark"]),
        (&json!("acme"), &json!("Sender-1"), &json!("sms"))
    );
    assert!(
        made["id"].as_str().is_some() && made["created_at"].as_str().is_some(),
        "{made}"
    );
    assert_eq!(
        as_name("SENDER-1"),
        200,
        "live, case ignored, before the answer"
    );
    assert_eq!(values(&gate, "acme"), ["Sender-1"]);

    for (account, value, field, owner) in [
        (
            "globex",
            "sender-1",
            "value",
            "an identity of account `acme`",
        ),
        ("acme", "SENDER-1", "value", "an identity of account `acme`"),
        ("acme", "Globex", "value", "the id of account `globex`"),
    ] {
        let (s, v) = gate.admin(
            "POST",
            &format!("/admin/v1/accounts/{account}/identities"),
            Some(json!({"value": value})),
        );
        assert_eq!((s, error(&v).0), (409, field), "{value}: {v}");
        assert!(error(&v).1.contains(owner), "{v}");
    }
    for id in ["SENDER-1", "ACME"] {
        let (s, v) = gate.admin(
            "POST",
            "/admin/v1/accounts",
            Some(json!({"id": id, "name": id})),
        );
        assert_eq!((s, error(&v).0), (409, "id"), "{id}: {v}");
    }
    let refusals = [
        ("ghost", json!({"value": "sender-9"}), 404, "account"),
        ("acme", json!({"value": "bad value"}), 400, "value"),
        ("acme", json!({"value": ""}), 400, "value"),
        ("acme", json!({"value": "x".repeat(129)}), 400, "value"),
        ("acme", json!({"value": "ok", "typo": 1}), 400, "body"),
        ("acme", json!(["sender-9", "remark"]), 400, "body"),
    ];
    for (account, body, status, field) in refusals {
        let p = format!("/admin/v1/accounts/{account}/identities");
        let (s, v) = gate.admin("POST", &p, Some(body.clone()));
        assert_eq!((s, error(&v).0), (status, field), "{body}: {v}");
    }
    let (s, v) = gate.admin("POST", "/admin/v1/accounts", Some(json!(["x", "y"])));
    assert_eq!(
        (s, error(&v).0),
        (400, "body"),
        "arrays are no bodies anywhere: {v}"
    );
    for p in [
        "/admin/v1/accounts/ghost/identities",
        "/admin/v1/accounts/acme/identities/999999",
        "/admin/v1/accounts/acme/identities/abc",
        "/admin/v1/accounts/globex/identities/1",
    ] {
        let method = if p.ends_with("identities") {
            "GET"
        } else {
            "DELETE"
        };
        assert_eq!(gate.admin(method, p, None).0, 404, "{p}");
    }

    let id = made["id"].as_str().unwrap_or_default();
    let (s, gone) = gate.admin("DELETE", &format!("{path}/{id}"), None);
    assert_eq!((s, &gone["value"]), (200, &json!("Sender-1")), "{gone}");
    assert_eq!(
        as_name("sender-1"),
        403,
        "gone from the proxy before the answer"
    );
    assert!(values(&gate, "acme").is_empty());
    let (s, v) = gate.admin(
        "POST",
        "/admin/v1/accounts/globex/identities",
        Some(json!({"value": "sender-1"})),
    );
    assert_eq!(s, 201, "free again once removed: {v}");

    let (_, log) = gate.admin("GET", "/admin/v1/security-log?account=acme", None);
    let events = events(&log);
    assert_eq!(
        events,
        [
            "account.created",
            "whitelist.added",
            "identity.added",
            "identity.removed"
        ]
    );
    let log = log.as_array().cloned().unwrap_or_default();
    assert_eq!(log[2]["details"]["value"], "Sender-1");
    assert_eq!(log[3]["details"]["value"], "Sender-1");
}

#[test]
fn a_key_is_kept_as_its_hash_and_shown_only_by_its_fingerprint() {
    let up = Upstream::start();
    let mut gate = gate(&up);
    let bearer = format!("Bearer {KEY}");
    let with_key = |g: &Server| {
        g.get("127.0.0.1", "/keyed/x", &[("Authorization", &bearer)])
            .0
    };
    assert_eq!(with_key(&gate), 403, "an unknown key");

    let path = "/admin/v1/accounts/acme/keys";
    let (s, made) = gate.admin("POST", path, Some(json!({"key": KEY, "remark": "prod"})));
    assert_eq!(s, 201, "{made}");
    let mut fields: Vec<&str> = made
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    fields.sort();
    assert_eq!(
        fields,
        ["created_at", "fingerprint", "id", "remark"],
        "{made}"
    );
    assert_eq!(made["fingerprint"], format!("sha256:{}", &KEY_SHA256[..12]));
    assert_eq!(with_key(&gate), 200, "live before the answer");

    let upper = SECOND_SHA256.to_uppercase();
    let (s, second) = gate.admin("POST", path, Some(json!({"sha256": upper})));
    assert_eq!(s, 201, "{second}");
    assert_eq!(
        second["fingerprint"],
        format!("sha256:{}", &SECOND_SHA256[..12])
    );

    let refusals = [
        (path, json!({"key": KEY, "sha256": KEY_SHA256}), 400, "key"),
        (path, json!({"remark": "neither"}), 400, "key"),
        (path, json!({"key": ""}), 400, "key"),
        (path, json!({"key": " padded "}), 400, "key"),
        (path, json!({"sha256": "abc"}), 400, "sha256"),
        (
            path,
            json!({"sha256": format!("{}zz", &KEY_SHA256[..62])}),
            400,
            "sha256",
        ),
        (path, json!([KEY]), 400, "body"),
        (
            path,
            json!({"sha256": KEY_SHA256.to_uppercase()}),
            409,
            "key",
        ),
        (
            "/admin/v1/accounts/globex/keys",
            json!({"key": KEY}),
            409,
            "key",
        ),
        (
            "/admin/v1/accounts/ghost/keys",
            json!({"key": "k"}),
            404,
            "account",
        ),
    ];
    for (p, body, status, field) in refusals {
        let (s, v) = gate.admin("POST", p, Some(body.clone()));
        assert_eq!((s, error(&v).0), (status, field), "{p} {body}: {v}");
    }
    let (s, list) = gate.admin("GET", path, None);
    assert_eq!(s, 200);
    assert_eq!(list.as_array().map(Vec::len), Some(2), "{list}");
    let (_, log) = gate.admin("GET", "/admin/v1/security-log", None);
    for (what, shown) in [
        ("list", list.to_string()),
        ("security log", log.to_string()),
    ] {
        for secret in [KEY, KEY_SHA256, SECOND_SHA256] {
            assert!(
                !shown.contains(secret),
                "the {what} shows {secret}: {shown}"
            );
        }
    }
    assert!(log
        .to_string()
        .contains(&format!("sha256:{}", &KEY_SHA256[..12])));
    assert_eq!(
        gate.admin("GET", "/admin/v1/accounts/ghost/keys", None).0,
        404
    );
    assert_eq!(gate.admin("DELETE", &format!("{path}/999999"), None).0, 404);

    let id = made["id"].as_str().unwrap_or_default();
    let (s, gone) = gate.admin("DELETE", &format!("{path}/{id}"), None);
    assert_eq!(
        (s, &gone["fingerprint"]),
        (200, &made["fingerprint"]),
        "{gone}"
    );
    assert!(gone.get("sha256").is_none(), "{gone}");
    assert_eq!(
        with_key(&gate),
        403,
        "gone from the proxy before the answer"
    );
    assert_eq!(
        gate.security_events("acme")[2..],
        ["key.added", "key.added", "key.removed"]
    );
    let (s, v) = gate.admin("POST", path, Some(json!({"key": KEY})));
    assert_eq!(s, 201, "{v}");

    // Neither the store nor the server's log holds the key itself.
    gate.kill();
    assert!(!gate.log().contains(KEY), "the server logged the key");
    let db = sled::open(gate.dir.path().join("store")).unwrap();
    for name in db.tree_names() {
        let tree = db.open_tree(&name).unwrap();
        for kv in tree.iter() {
            let (k, v) = kv.unwrap();
            for bytes in [&k[..], &v[..]] {
                assert!(
                    !bytes.windows(KEY.len()).any(|w| w == KEY.as_bytes()),
                    "tree {} holds the key",
                    String::from_utf8_lossy(&name)
                );
            }
        }
    }
    drop(db);
    gate.restart();
    assert_eq!(
        with_key(&gate),
        200,
        "the table built at start holds the hash"
    );
}
