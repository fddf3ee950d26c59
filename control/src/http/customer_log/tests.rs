use super::*;
use serde_json::json;

fn rec(seq: u64, account: Option<&str>, actor: &str) -> SecRecord {
    SecRecord {
        seq,
        at: "2026-01-01T00:00:00Z".into(),
        event: "request.submitted".into(),
        account: account.map(str::to_string),
        actor: actor.into(),
        ip: Some(format!("203.0.113.{seq}")),
        details: json!({"request": seq.to_string()}),
        key_id: Some("0123456789abcdef".into()),
        prev: format!("prev{seq}"),
        hash: format!("hash{seq}"),
    }
}

fn head(seq: u64) -> Head {
    Head {
        seq,
        hash: format!("hash{seq}"),
    }
}

/// Ten records, the odd ones acme's, the even ones globex's (and 10 none's).
fn mixed() -> Vec<SecRecord> {
    (1..=10)
        .map(|n| match n {
            10 => rec(n, None, "admin"),
            n if n % 2 == 1 => rec(n, Some("acme"), "alice"),
            n => rec(n, Some("globex"), "gina"),
        })
        .collect()
}

fn seqs(log: &AccountLog) -> Vec<u64> {
    log.records.iter().map(|r| r.seq).collect()
}

fn page(before: Option<u64>, limit: usize) -> Page {
    Page::new(before, Some(limit)).unwrap()
}

#[test]
fn only_the_accounts_records_are_shown_even_if_given_others() {
    let log = select(head(10), mixed(), "acme", page(None, 100));
    assert_eq!(seqs(&log), [9, 7, 5, 3, 1], "newest first");
    assert!(log
        .records
        .iter()
        .all(|r| r.account.as_deref() == Some("acme")));
    let text = serde_json::to_string(&log).unwrap();
    assert!(!text.contains("globex") && !text.contains("gina"), "{text}");
    // A prefix of the id is another account.
    assert_eq!(
        seqs(&select(head(10), mixed(), "acm", page(None, 100))),
        Vec::<u64>::new()
    );
    assert_eq!(
        log.chain,
        ChainHead {
            head: "hash10".into(),
            records: 10
        }
    );
    assert_eq!(log.next_before, None);
}

#[test]
fn records_newer_than_the_head_read_are_left_out() {
    let log = select(head(6), mixed(), "acme", page(None, 100));
    assert_eq!(seqs(&log), [5, 3, 1]);
    assert_eq!(log.chain.records, 6);
}

#[test]
fn pages_go_back_by_before_until_the_oldest() {
    let first = select(head(10), mixed(), "acme", page(None, 2));
    assert_eq!((seqs(&first), first.next_before), (vec![9, 7], Some(7)));
    let second = select(head(10), mixed(), "acme", page(Some(7), 2));
    assert_eq!((seqs(&second), second.next_before), (vec![5, 3], Some(3)));
    let last = select(head(10), mixed(), "acme", page(Some(3), 2));
    assert_eq!((seqs(&last), last.next_before), (vec![1], None));
    // Exactly a page's worth left: no next page.
    let exact = select(head(10), mixed(), "acme", page(Some(5), 2));
    assert_eq!((seqs(&exact), exact.next_before), (vec![3, 1], None));
}

#[test]
fn a_page_is_bounded() {
    assert_eq!(
        Page::new(None, None),
        Ok(Page {
            before: None,
            limit: DEFAULT_LIMIT
        })
    );
    assert_eq!(Page::new(None, Some(MAX_LIMIT)).map(|p| p.limit), Ok(1000));
    assert_eq!(Page::new(None, Some(MAX_LIMIT + 1)), Err(PageError::Limit));
    assert_eq!(Page::new(None, Some(0)), Err(PageError::Limit));
    assert_eq!(Page::new(Some(0), None), Err(PageError::Before));
    assert_eq!(PageError::Limit.field(), "limit");
    let many: Vec<SecRecord> = (1..=2000).map(|n| rec(n, Some("acme"), "a")).collect();
    let log = select(head(2000), many, "acme", Page::new(None, None).unwrap());
    assert_eq!(log.records.len(), DEFAULT_LIMIT);
    assert_eq!(log.next_before, Some(1901));
}

#[test]
fn the_csv_has_a_header_and_one_defused_row_per_record() {
    let mut evil = rec(3, Some("acme"), "=HYPERLINK(\"http://evil\",\"x\")");
    evil.ip = None;
    evil.details = json!({"username": "-1+1", "reason": "wrong password"});
    let log = select(
        head(3),
        vec![rec(1, Some("acme"), "alice"), evil],
        "acme",
        page(None, 100),
    );
    let text = to_csv(&log);
    let lines: Vec<&str> = text.split("\r\n").collect();
    assert_eq!(lines.len(), 4, "{text:?}");
    assert_eq!(
        lines[0],
        "\"seq\",\"at\",\"event\",\"account\",\"actor\",\"ip\",\"details\",\"key_id\",\"prev\",\"hash\""
    );
    assert_eq!(
        lines[1],
        "\"3\",\"2026-01-01T00:00:00Z\",\"request.submitted\",\"acme\",\
         \"'=HYPERLINK(\"\"http://evil\"\",\"\"x\"\")\",\"\",\
         \"{\"\"reason\"\":\"\"wrong password\"\",\"\"username\"\":\"\"-1+1\"\"}\",\
         \"0123456789abcdef\",\"prev3\",\"hash3\""
    );
    assert!(lines[2].starts_with("\"1\",") && lines[2].ends_with(",\"hash1\""));
    assert_eq!(lines[3], "");
}

#[test]
fn the_download_names_the_head_and_the_next_page() {
    let log = select(head(10), mixed(), "acme", page(None, 2));
    let r = csv_response(&log);
    let h = |k: &str| {
        r.headers()
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    assert!(h("content-type").starts_with("text/csv"));
    assert_eq!(
        h("content-disposition"),
        "attachment; filename=\"ipgate-security-log-acme.csv\""
    );
    assert_eq!(
        (h(HEAD_HEADER), h(RECORDS_HEADER), h(NEXT_HEADER)),
        ("hash10".into(), "10".into(), "7".into())
    );
    assert_eq!(h("cache-control"), "no-store");
}

#[test]
fn the_answer_keeps_its_keys_sorted() {
    let log = select(head(0), vec![], "acme", page(None, 1));
    let direct = serde_json::to_string(&log).unwrap();
    let via_value = serde_json::to_string(&serde_json::to_value(&log).unwrap()).unwrap();
    assert_eq!(direct, via_value);
    assert_eq!(
        direct,
        r#"{"account":"acme","chain":{"head":"hash0","records":0},"next_before":null,"records":[]}"#
    );
}
