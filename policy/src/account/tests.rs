use super::*;
use crate::head::Head;
use crate::table::{AccountPolicy, Mode};
use std::collections::HashMap;

/// A request head as the tests write it: a URI and its headers, read as the
/// proxy reads Pingora's `RequestHeader` (which holds the same `http` types).
#[derive(Clone)]
struct TestHead {
    uri: http::Uri,
    headers: http::HeaderMap,
}

impl TestHead {
    fn append_header(
        &mut self,
        name: impl AsRef<str>,
        value: impl AsRef<[u8]>,
    ) -> Result<(), String> {
        let name =
            http::HeaderName::from_bytes(name.as_ref().as_bytes()).map_err(|e| e.to_string())?;
        let value = http::HeaderValue::from_bytes(value.as_ref()).map_err(|e| e.to_string())?;
        self.headers.append(name, value);
        Ok(())
    }
}

impl Head for TestHead {
    fn path(&self) -> &str {
        self.uri.path()
    }
    fn query(&self) -> Option<&str> {
        self.uri.query()
    }
    fn uri_host(&self) -> Option<&str> {
        self.uri.host()
    }
    fn values<'a, 'n>(
        &'a self,
        name: &'n str,
    ) -> impl DoubleEndedIterator<Item = &'a [u8]> + use<'a, 'n> {
        self.headers.get_all(name).iter().map(|v| v.as_bytes())
    }
}

fn req(uri: &str, headers: &[(&str, &str)]) -> TestHead {
    let mut r = TestHead {
        uri: uri.parse().unwrap(),
        headers: http::HeaderMap::new(),
    };
    for (k, v) in headers {
        r.append_header(k, v).unwrap();
    }
    r
}

fn sha(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// acme (alias `acme-user`, phone `15550001`, key `acme-key`) and globex
/// (key `globex-key`).
fn table() -> Table {
    Table::build(
        1,
        vec![
            ("acme".to_string(), AccountPolicy::new(Mode::Enforce, &[])),
            ("globex".to_string(), AccountPolicy::new(Mode::Enforce, &[])),
        ],
        &[],
    )
    .with_identities(
        vec![
            ("acme-user".to_string(), "acme".to_string()),
            ("15550001".to_string(), "acme".to_string()),
        ],
        vec![
            (sha("acme-key"), "acme".to_string()),
            (sha("globex-key"), "globex".to_string()),
        ],
    )
}

fn all() -> Vec<AccountSource> {
    [
        "basic_user",
        "query:username",
        "header:x-account-id",
        "path_segment:1",
        "form:username",
        "json:/from",
        "key:bearer",
        "key:header:x-api-key",
        "key:form:api_key",
    ]
    .iter()
    .map(|s| AccountSource::try_from(s.to_string()).unwrap())
    .collect()
}

/// Who the call is judged as: `Ok(Some(id))`, `Ok(None)` for nobody,
/// `Err(what)` for the rest.
fn who(r: &TestHead, rest: &str, body: Body<'_>) -> Result<Option<String>, String> {
    who_typed(r, rest, body, None)
}

/// As `who`, with the call's Content-Type set to `ct` for a read body.
fn who_typed(
    r: &TestHead,
    rest: &str,
    body: Body<'_>,
    ct: Option<&[u8]>,
) -> Result<Option<String>, String> {
    let mut r = r.clone();
    if let Some(ct) = ct {
        let _ = r.append_header("content-type", ct);
    }
    let r = &r;
    let t = table();
    let lookup = Lookup {
        table: &t,
        answers: None,
    };
    match identify(&all(), r, rest, body, lookup) {
        Identified::Done(Caller::Account(a)) => Ok(Some(a.id().to_string())),
        Identified::Done(Caller::Nobody) => Ok(None),
        Identified::Done(Caller::Unknown) => Err("unknown".into()),
        Identified::Done(Caller::Ambiguous) => Err("ambiguous".into()),
        Identified::Done(Caller::Malformed(e)) => Err(format!("malformed: {e:?}")),
        Identified::NeedBody => Err("need body".into()),
        Identified::Introspect(_) => Err("introspect".into()),
    }
}

fn acme() -> Result<Option<String>, String> {
    Ok(Some("acme".into()))
}

const FORM: Option<&[u8]> = Some(b"application/x-www-form-urlencoded");
const JSON: Option<&[u8]> = Some(b"application/json; charset=utf-8");

#[test]
fn each_source_resolves_alone() {
    let basic = [("Authorization", "Basic YWNtZTpzZWNyZXQ=")]; // acme:secret
    assert_eq!(who(&req("/x", &basic), "", Body::None), acme());
    assert_eq!(
        who(&req("/x?a=1&username=ACME-USER", &[]), "", Body::None),
        acme()
    );
    assert_eq!(
        who(&req("/x", &[("X-Account-Id", " Acme ")]), "", Body::None),
        acme()
    );
    assert_eq!(
        who(&req("/x", &[]), "/v17.0/15550001/messages", Body::None),
        acme()
    );
    assert_eq!(
        who_typed(&req("/x", &[]), "", Body::Read(b"username=acme&to=1"), FORM),
        acme()
    );
    assert_eq!(
        who_typed(
            &req("/x", &[]),
            "",
            Body::Read(br#"{"from":15550001}"#),
            JSON
        ),
        acme()
    );
    let bearer = [("Authorization", "Bearer acme-key")];
    assert_eq!(who(&req("/x", &bearer), "", Body::None), acme());
    assert_eq!(
        who(&req("/x", &[("X-Api-Key", "acme-key")]), "", Body::None),
        acme()
    );
    assert_eq!(
        who_typed(&req("/x", &[]), "", Body::Read(b"api_key=acme-key"), FORM),
        acme()
    );
    assert_eq!(who(&req("/x", &[]), "/v1", Body::None), Ok(None));
}

#[test]
fn sources_that_agree_are_one_account() {
    let r = req(
        "/x?username=acme-user",
        &[
            ("Authorization", "Bearer acme-key"),
            ("X-Account-Id", "ACME"),
        ],
    );
    assert_eq!(
        who_typed(&r, "/v17.0/15550001", Body::Read(b"username=acme"), FORM),
        acme()
    );
}

#[test]
fn a_second_account_named_beside_the_credentials_is_ambiguous() {
    let cases: Vec<(TestHead, &str)> = vec![
        (
            req(
                "/x",
                &[
                    ("X-Account-Id", "globex"),
                    ("Authorization", "Bearer acme-key"),
                ],
            ),
            "",
        ),
        (
            req(
                "/x?username=acme",
                &[("Authorization", "Basic Z2xvYmV4Ong=")],
            ),
            "",
        ), // globex:x
        (
            req("/x", &[("Authorization", "Bearer globex-key")]),
            "/v17.0/15550001",
        ),
        (
            req(
                "/x",
                &[
                    ("X-Api-Key", "globex-key"),
                    ("Authorization", "Bearer acme-key"),
                ],
            ),
            "",
        ),
        // One that resolves beside one that does not.
        (
            req(
                "/x?username=nobody",
                &[("Authorization", "Bearer acme-key")],
            ),
            "",
        ),
        (
            req(
                "/x",
                &[
                    ("Authorization", "Bearer stolen-elsewhere"),
                    ("X-Account-Id", "acme"),
                ],
            ),
            "",
        ),
    ];
    for (r, rest) in cases {
        assert_eq!(
            who(&r, rest, Body::None),
            Err("ambiguous".into()),
            "{:?}",
            r.headers
        );
    }
    let form = Body::Read(b"username=globex");
    assert_eq!(
        who_typed(&req("/x?username=acme", &[]), "", form, FORM),
        Err("ambiguous".into())
    );
    let json = Body::Read(br#"{"from":"globex"}"#);
    assert_eq!(
        who_typed(
            &req("/x", &[("Authorization", "Bearer acme-key")]),
            "",
            json,
            JSON
        ),
        Err("ambiguous".into())
    );
}

#[test]
fn names_nobody_knows_are_unknown() {
    assert_eq!(
        who(&req("/x?username=nobody", &[]), "", Body::None),
        Err("unknown".into())
    );
    let r = req(
        "/x?username=nobody",
        &[("Authorization", "Bearer not-a-key")],
    );
    assert_eq!(who(&r, "", Body::None), Err("unknown".into()));
}

#[test]
fn malformed_sources_are_refused_never_passed_over() {
    let cases: Vec<(TestHead, &str)> = vec![
        (
            req("/x", &[("Authorization", "Basic YWNtZTpzZWNyZXQ")]),
            "BadBasicAuth",
        ), // unpadded
        (req("/x", &[("Authorization", "Basic !!!")]), "BadBasicAuth"),
        (
            req("/x", &[("Authorization", "Basic bm9jb2xvbg==")]),
            "BadBasicAuth",
        ),
        (
            req(
                "/x",
                &[
                    ("Authorization", "Bearer acme-key"),
                    ("Authorization", "Bearer x"),
                ],
            ),
            "Repeated",
        ),
        (req("/x", &[("Authorization", "Bearer ")]), "BadKey"),
        (req("/x", &[("X-Account-Id", "a b")]), "BadAccountId"),
        (
            req("/x", &[("X-Account-Id", "acme"), ("X-Account-Id", "acme")]),
            "Repeated",
        ),
        (req("/x?username=acme&username=acme", &[]), "Repeated"),
        (req("/x?user%6Eame=acme", &[]), "DisguisedName"),
        (req("/x?Username=acme", &[]), "DisguisedName"),
        (req("/x?username=%ff", &[]), "BadEncoding"),
        (req("/x", &[("X-Account-Id", "")]), "BadAccountId"),
    ];
    for (r, want) in cases {
        // Beside a source that names acme correctly: still refused.
        let mut r = r;
        let _ = r.append_header("X-Api-Key", "acme-key");
        assert_eq!(
            who(&r, "", Body::None),
            Err(format!("malformed: {want}")),
            "{:?}",
            r.headers
        );
    }
    let long = "a".repeat(200);
    let r = req("/x", &[("X-Account-Id", long.as_str())]);
    assert_eq!(
        who(&r, "", Body::None),
        Err("malformed: BadAccountId".into())
    );
}

#[test]
fn bodies_are_read_strictly() {
    let r = req("/x", &[]);
    for (body, ct, want) in [
        (
            &b"username=acme&username=globex"[..],
            FORM,
            "malformed: Repeated",
        ),
        (
            b"user%6Eame=globex&username=acme",
            FORM,
            "malformed: DisguisedName",
        ),
        (
            br#"{"from":"acme","from":"globex"}"#,
            JSON,
            "malformed: BadBody",
        ),
        (br#"{"from":"acme""#, JSON, "malformed: BadBody"),
        (
            br#"{"From":"globex","from":"acme"}"#,
            JSON,
            "malformed: DisguisedName",
        ),
        (b"username=acme", Some(b"text/plain"), "malformed: BodyType"),
        (b"username=acme", None, "malformed: BodyType"),
    ] {
        assert_eq!(
            who_typed(&r, "", Body::Read(body), ct),
            Err(want.into()),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
    // A JSON body on a route that also reads forms: the form sources are absent.
    assert_eq!(
        who_typed(&r, "", Body::Read(br#"{"from":"acme"}"#), JSON),
        acme()
    );
    assert_eq!(who(&r, "", Body::Read(b"")), Ok(None));
    let two_types = req(
        "/x",
        &[
            ("Content-Type", "application/json"),
            ("Content-Type", "text/plain"),
        ],
    );
    assert_eq!(
        who(&two_types, "", Body::Read(br#"{"from":"acme"}"#)),
        Err("malformed: Repeated".into())
    );
    assert_eq!(who(&r, "", Body::Unread), Err("need body".into()));
    // A malformed head source is answered without reading the body.
    let bad = req("/x?username=a&username=b", &[]);
    assert_eq!(
        who(&bad, "", Body::Unread),
        Err("malformed: Repeated".into())
    );
}

struct Answers(HashMap<[u8; 32], Option<Arc<str>>>);

impl KeyAnswers for Answers {
    fn cached(&self, sha256: &[u8; 32]) -> Option<Option<Arc<str>>> {
        self.0.get(sha256).cloned()
    }
}

#[test]
fn unregistered_keys_go_to_introspection_and_its_answers_resolve() {
    let t = table();
    let answers = Answers(HashMap::from([
        (sha("introspected-acme"), Some(Arc::from("ACME-USER"))),
        (sha("revoked"), None),
    ]));
    let lookup = Lookup {
        table: &t,
        answers: Some(&answers),
    };
    let sources = vec![
        AccountSource::Key(KeySource::Bearer),
        AccountSource::Query("username".into()),
    ];
    let call = |token: &str, q: &str| {
        let r = req(
            &format!("/x{q}"),
            &[("Authorization", &format!("Bearer {token}"))],
        );
        match identify(&sources, &r, "", Body::None, lookup) {
            Identified::Done(Caller::Account(a)) => format!("account {}", a.id()),
            Identified::Done(c) => format!("{c:?}"),
            Identified::NeedBody => "need body".into(),
            Identified::Introspect(k) => {
                assert_eq!(k.sha256, sha(token));
                assert_eq!(format!("{k:?}"), "PendingKey([redacted])");
                "introspect".into()
            }
        }
    };
    assert_eq!(
        call("acme-key", ""),
        "account acme",
        "registered keys need no introspection"
    );
    assert_eq!(call("new-key", ""), "introspect");
    assert_eq!(call("introspected-acme", "?username=acme"), "account acme");
    assert_eq!(call("introspected-acme", "?username=globex"), "Ambiguous");
    assert_eq!(call("revoked", ""), "Unknown");
}

#[test]
fn account_id_rule() {
    assert!(valid_account_id("acme-prod_1@x.y+z"));
    assert!(!valid_account_id(""));
    assert!(!valid_account_id("a/b"));
    assert!(!valid_account_id(&"a".repeat(129)));
}
