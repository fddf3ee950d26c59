//! `ipgate admin identity|key` and `ipgate admin import --kind
//! identities|keys`, black-box: the commands wrap the admin routes, a key
//! is read from stdin and never printed, and imports can be run again.

use crate::common::identities as setup;
use crate::common::*;
use serde_json::{json, Value};
use setup::*;

#[test]
fn the_cli_manages_identities_and_keys_without_showing_a_key() {
    let up = Upstream::start();
    let gate = gate(&up);
    let ok = |args: &[&str], stdin: &str| {
        let out = cli(&gate, args, stdin);
        assert!(out.status.success(), "{args:?}: {}", text(&out));
        serde_json::from_slice::<Value>(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", text(&out)))
    };
    let made = ok(
        &[
            "identity",
            "add",
            "acme",
            "wa-15550001",
            "--remark",
            "phone id",
        ],
        "",
    );
    assert_eq!(
        (&made["value"], &made["remark"]),
        (&json!("wa-15550001"), &json!("phone id"))
    );
    let list = ok(&["identity", "list", "acme"], "");
    assert_eq!(list[0]["id"], made["id"]);
    let out = cli(&gate, &["identity", "add", "globex", "WA-15550001"], "");
    assert!(
        !out.status.success() && text(&out).contains("409"),
        "{}",
        text(&out)
    );
    let id = made["id"].as_str().unwrap_or_default();
    ok(&["identity", "remove", "acme", id], "");
    assert!(values(&gate, "acme").is_empty());

    let key = ok(
        &[
            "key",
            "add",
            "acme",
            "--key-stdin",
            "--remark",
            "from stdin",
        ],
        &format!("{KEY}\n"),
    );
    assert_eq!(key["fingerprint"], format!("sha256:{}", &KEY_SHA256[..12]));
    let by_hash = ok(&["key", "add", "acme", "--sha256", SECOND_SHA256], "");
    let list = cli(&gate, &["key", "list", "acme"], "");
    let shown = text(&list);
    assert!(
        list.status.success() && shown.contains(&format!("sha256:{}", &SECOND_SHA256[..12])),
        "{shown}"
    );
    for secret in [KEY, KEY_SHA256, SECOND_SHA256] {
        assert!(!shown.contains(secret), "{shown}");
    }
    let id = by_hash["id"].as_str().unwrap_or_default();
    ok(&["key", "remove", "acme", id], "");
    let keys = ok(&["key", "list", "acme"], "");
    assert_eq!(keys.as_array().map(Vec::len), Some(1));

    for (args, stdin) in [
        (&["key", "add", "acme"][..], ""),
        (
            &["key", "add", "acme", "--key-stdin", "--sha256", KEY_SHA256][..],
            "",
        ),
        (&["key", "add", "acme", "--key-stdin"][..], ""),
        (&["key", "add", "globex", "--key-stdin"][..], KEY),
    ] {
        let out = cli(&gate, args, stdin);
        assert!(!out.status.success(), "{args:?}: {}", text(&out));
        assert!(
            !text(&out).contains(KEY),
            "{args:?} printed the key: {}",
            text(&out)
        );
    }
}

#[test]
fn identities_and_key_hashes_import_from_csv_and_can_be_imported_again() {
    let up = Upstream::start();
    let gate = gate(&up);
    gate.admin(
        "POST",
        "/admin/v1/accounts/globex/identities",
        Some(json!({"value": "taken-1"})),
    );
    // Line 4 repeats line 3 after acme's list was read for line 2's refusal.
    let csv = "account,value,remark\n\
               acme,TAKEN-1\n\
               acme,sender-1,\"sms, eu\"\n\
               acme,SENDER-1\n\
               acme,15550001\n\
               globex,SENDER-2\n\
               acme,Globex\n\
               nosuch,sender-3\n\
               acme,bad value\n\
               acme,sender-4,r,extra\n";
    let file = gate.dir.path().join("identities.csv");
    std::fs::write(&file, csv).unwrap();
    let file = file.to_string_lossy();
    let out = cli(&gate, &["import", "--kind", "identities", &file], "");
    let (stdout, all) = (String::from_utf8_lossy(&out.stdout), text(&out));
    assert!(!out.status.success(), "{all}");
    assert!(
        all.contains("[100%] 9/9 rows: 3 added, 1 already there, 5 refused"),
        "{all}"
    );
    assert!(
        stdout.contains("3 added, 1 already registered, 5 refused"),
        "{stdout}"
    );
    for line in [
        "line 2: acme TAKEN-1: value: `TAKEN-1` is already an identity of account `globex`",
        "line 7: acme Globex: value: `Globex` is already the id of account `globex`",
        "line 8: nosuch sender-3: account:",
        "line 9: acme bad value: value:",
        "line 10: 4 fields; a row is account,value[,remark]",
    ] {
        assert!(stdout.contains(line), "{line}\n{stdout}");
    }
    assert_eq!(values(&gate, "acme"), ["sender-1", "15550001"]);
    let again = cli(&gate, &["import", "--kind", "identities", &file], "");
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("0 added, 4 already registered, 5 refused"),
        "{}",
        text(&again)
    );
    assert_eq!(values(&gate, "acme").len(), 2);
    assert_eq!(values(&gate, "globex"), ["taken-1", "SENDER-2"]);

    let keys = format!(
        "account,sha256,remark\nglobex,{},one\nglobex,{}\nacme,{}\nacme,{KEY}\n",
        IMPORT_SHA256[0],
        IMPORT_SHA256[1].to_uppercase(),
        IMPORT_SHA256[0]
    );
    for (round, summary) in [
        (1, "2 added, 0 already registered, 2 refused"),
        (2, "0 added, 2 already registered, 2 refused"),
    ] {
        let out = cli(&gate, &["import", "--kind", "keys", "-"], &keys);
        let (stdout, all) = (String::from_utf8_lossy(&out.stdout), text(&out));
        assert!(stdout.contains(summary), "round {round}: {all}");
        assert!(
            stdout.contains(&format!(
                "line 4: acme sha256:{}: key: this key",
                &IMPORT_SHA256[0][..12]
            )),
            "{stdout}"
        );
        assert!(
            stdout.contains("line 5: acme: sha256: not 64 hex digits"),
            "{stdout}"
        );
        for secret in [KEY, IMPORT_SHA256[0], IMPORT_SHA256[1]] {
            assert!(!all.contains(secret), "round {round} shows {secret}: {all}");
        }
    }
    let (_, list) = gate.admin("GET", "/admin/v1/accounts/globex/keys", None);
    assert_eq!(list.as_array().map(Vec::len), Some(2), "{list}");
    assert_eq!(list[0]["remark"], "one");
}
