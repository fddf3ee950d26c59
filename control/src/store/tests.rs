use super::*;
use crate::model::{now, Source, WhitelistMode};

fn account(id: &str) -> Account {
    Account {
        id: id.into(),
        name: "Acme".into(),
        emails: vec!["ops@acme.test".into()],
        whitelist: WhitelistMode::Enforce,
        created_at: now(),
        updated_at: now(),
    }
}

fn entry(cidr: &str) -> WhitelistEntry {
    WhitelistEntry {
        id: String::new(),
        account: "acme".into(),
        cidr: cidr.into(),
        remark: String::new(),
        tags: vec![],
        source: Source::Admin,
        created_at: now(),
        updated_at: now(),
    }
}

#[tokio::test]
async fn changes_survive_reopening() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    {
        let s = Store::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        s.create_account(account("acme"))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let added = s
            .add_entries(
                "acme",
                vec![entry("203.0.113.10/32"), entry("2001:db8::/64")],
            )
            .await;
        assert_eq!(added.map(|v| v.len()).ok(), Some(2));
    }
    let s = Store::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let cidrs: Vec<String> = s
        .entries("acme")
        .unwrap_or_default()
        .into_iter()
        .map(|e| e.cidr)
        .collect();
    assert_eq!(
        cidrs,
        vec!["203.0.113.10/32".to_string(), "2001:db8::/64".to_string()]
    );
}

#[tokio::test]
async fn refusals_change_nothing() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let s = Store::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        s.add_entries("ghost", vec![entry("203.0.113.10/32")]).await,
        Err(StoreError::NoAccount(_))
    ));
    s.create_account(account("acme"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        s.create_account(account("acme")).await,
        Err(StoreError::AccountExists(_))
    ));
    s.add_entries("acme", vec![entry("203.0.113.10/32")])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let dup = s
        .add_entries(
            "acme",
            vec![entry("198.51.100.1/32"), entry("203.0.113.10/32")],
        )
        .await;
    assert!(matches!(dup, Err(StoreError::Duplicate(_))));
    assert_eq!(
        s.entries("acme").unwrap_or_default().len(),
        1,
        "a refused batch adds nothing"
    );
    assert!(matches!(
        s.remove_entry("acme", "999").await,
        Err(StoreError::NoEntry(_))
    ));
    assert!(matches!(
        s.remove_entry("acme", "x").await,
        Err(StoreError::NoEntry(_))
    ));
}

#[tokio::test]
async fn entries_of_one_account_do_not_leak_into_another_with_a_longer_name() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let s = Store::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    s.create_account(account("acme"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    s.create_account(account("acme2"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    s.add_entries("acme2", vec![entry("203.0.113.10/32")])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(s.entries("acme").unwrap_or_default().is_empty());
}
