use super::*;
use pingora_http::RequestHeader;

fn req(uri: &str, headers: &[(&str, &str)]) -> RequestHeader {
    let mut r = RequestHeader::build("GET", uri.as_bytes(), None).unwrap_or_else(|e| panic!("{e}"));
    for (k, v) in headers {
        r.append_header(k.to_string(), *v)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    r
}

fn all() -> Vec<AccountSource> {
    vec![
        AccountSource::BasicUser,
        AccountSource::Query("username".into()),
        AccountSource::Header("x-account-id".into()),
        AccountSource::PathSegment(1),
    ]
}

fn got(r: &RequestHeader, rest: &str) -> Result<Option<String>, AccountError> {
    extract(&all(), r, rest).map(|o| o.map(|c| c.into_owned()))
}

#[test]
fn each_source_is_read() {
    // "acme:secret"
    assert_eq!(
        got(
            &req("/x", &[("Authorization", "Basic YWNtZTpzZWNyZXQ=")]),
            ""
        ),
        Ok(Some("acme".into()))
    );
    assert_eq!(
        got(&req("/x?a=1&username=acme%2Bprod", &[]), ""),
        Ok(Some("acme+prod".into()))
    );
    assert_eq!(
        got(&req("/x", &[("X-Account-Id", "beta")]), ""),
        Ok(Some("beta".into()))
    );
    assert_eq!(
        got(&req("/x", &[]), "/v1/gamma/messages"),
        Ok(Some("gamma".into()))
    );
    assert_eq!(got(&req("/x", &[]), "/v1"), Ok(None));
}

#[test]
fn first_hit_wins() {
    let r = req(
        "/x?username=second",
        &[
            ("Authorization", "basic YWNtZTpzZWNyZXQ="),
            ("X-Account-Id", "third"),
        ],
    );
    assert_eq!(got(&r, ""), Ok(Some("acme".into())));
}

#[test]
fn bearer_tokens_are_not_basic_auth() {
    assert_eq!(
        got(&req("/x", &[("Authorization", "Bearer abc")]), ""),
        Ok(None)
    );
}

#[test]
fn malformed_values_are_refused_not_guessed() {
    assert_eq!(
        got(&req("/x", &[("Authorization", "Basic !!!")]), ""),
        Err(AccountError::BadBasicAuth)
    );
    // "nocolon"
    assert_eq!(
        got(&req("/x", &[("Authorization", "Basic bm9jb2xvbg==")]), ""),
        Err(AccountError::BadBasicAuth)
    );
    assert_eq!(
        got(&req("/x", &[("X-Account-Id", "a b")]), ""),
        Err(AccountError::BadAccountId)
    );
    assert_eq!(
        got(
            &req("/x", &[("X-Account-Id", "a"), ("X-Account-Id", "b")]),
            ""
        ),
        Err(AccountError::BadAccountId)
    );
    assert_eq!(
        got(&req("/x?username=a&username=b", &[]), ""),
        Err(AccountError::BadAccountId)
    );
    let long = "a".repeat(200);
    assert_eq!(
        got(&req("/x", &[("X-Account-Id", long.as_str())]), ""),
        Err(AccountError::BadAccountId)
    );
}

#[test]
fn a_later_good_source_still_wins_over_an_earlier_bad_one() {
    let r = req("/x?username=acme", &[("Authorization", "Basic !!!")]);
    assert_eq!(got(&r, ""), Ok(Some("acme".into())));
}

#[test]
fn account_id_rule() {
    assert!(valid_account_id("acme-prod_1@x.y+z"));
    assert!(!valid_account_id(""));
    assert!(!valid_account_id("a/b"));
    assert!(!valid_account_id(&"a".repeat(129)));
}
