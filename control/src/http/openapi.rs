//! The OpenAPI 3.1 document of the admin API and the customer API
//! (docs/openapi.json), generated from the `#[utoipa::path]` operations on
//! their handlers, and the [`ApiRouter`] both routers are built with.
//!
//! Drift between what is served and what is documented is ruled out in
//! two steps. An [`ApiRouter`] routes each handler at the method and path
//! of its own `#[utoipa::path]`, so no route has a path or method of its
//! own to get out of step. The tests then check that the operations the
//! two routers were built from and the operations of [`ApiDoc`] are the
//! same set, that each handler is routed under its own operation, that
//! the real routers serve no API path besides those, and that the
//! checked-in docs/openapi.json is [`document`]'s output.

use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{on, MethodFilter};
use axum::Router;
use utoipa::openapi::path::HttpMethod;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// Both JSON APIs: the operator's (`admin`) and the customers' (`customer`).
#[derive(OpenApi)]
#[openapi(
    info(
        title = "ipgate",
        version = env!("CARGO_PKG_VERSION"),
        description = "The admin API (admin listener, Bearer admin token) and the customer API \
                       (portal listener, Bearer API token of an account's main user). Every \
                       refusal is `{\"errors\":[{\"field\",\"message\"}]}` unless said otherwise. \
                       Generated from the code; see docs/api.md.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        crate::http::admin::handlers::create_account,
        crate::http::admin::handlers::list_accounts,
        crate::http::admin::handlers::get_account,
        crate::http::admin::handlers::patch_account,
        crate::http::admin::handlers::list_entries,
        crate::http::admin::handlers::add_entry,
        crate::http::admin::handlers::remove_entry,
        crate::http::admin::identities::list_identities,
        crate::http::admin::identities::add_identity,
        crate::http::admin::identities::remove_identity,
        crate::http::admin::identities::list_keys,
        crate::http::admin::identities::add_key,
        crate::http::admin::identities::remove_key,
        crate::http::admin::handlers::list_blocks,
        crate::http::admin::handlers::add_block,
        crate::http::admin::handlers::remove_block,
        crate::http::admin::users::create_user,
        crate::http::admin::users::get_user,
        crate::http::admin::users::enrol_totp,
        crate::http::admin::tokens::issue_token,
        crate::http::admin::tokens::list_tokens,
        crate::http::admin::tokens::revoke_token,
        crate::http::admin::handlers::security_log,
        crate::http::admin::handlers::verify_security_log,
        crate::http::admin::proxies::list_proxies,
        crate::http::customer_api::me,
        crate::http::customer_api::list_whitelist,
        crate::http::customer_api::get_entry,
        crate::http::customer_api::submit,
        crate::http::customer_api::list_requests,
        crate::http::customer_api::get_request,
        crate::http::customer_api::cancel,
        crate::http::customer_log::api::account_security_log,
        crate::http::blocked_calls::blocked_calls,
    ),
    // Only referenced by name (issue_token's body is optional).
    components(schemas(crate::http::admin::tokens::NewToken)),
    tags(
        (name = "admin", description = "The operator's API on the admin listener (loopback by \
                                        default): accounts, whitelist entries, identities, \
                                        keys, the blocklist, users, API tokens, the security log."),
        (name = "customer", description = "The customer API on the portal listener: who am I, \
                                           the account's whitelist, IP requests, the account's \
                                           security log. A token needs \
                                           the `read` scope for GET, `request` for POST."),
    ),
    modifiers(&SecuritySchemes),
)]
pub struct ApiDoc;

/// The two Bearer schemes: `admin_token` and `api_token`.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The operator's admin token (`IPGATE_ADMIN_TOKEN`, at least 16 bytes).",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API token of an account's main user, issued with \
                         `POST /admin/v1/users/{username}/tokens`; its scopes are \
                         `read` (GET routes) and `request` (POST routes).",
                    ))
                    .build(),
            ),
        );
    }
}

/// The document as pretty JSON with a final newline: the text of
/// docs/openapi.json.
pub fn document() -> String {
    match ApiDoc::openapi().to_pretty_json() {
        Ok(json) => json + "\n",
        // Not reached: the document has only string keys and no floats.
        // Were it ever, this text differs from the checked-in file, so
        // the test that compares them fails and shows it.
        Err(e) => format!("the OpenAPI document could not be written as JSON: {e}\n"),
    }
}

/// One routed operation: the method and path of a `#[utoipa::path]`, and
/// which handler serves it there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed {
    pub method: Method,
    pub path: String,
    /// The type name of the operation (`…::__path_create_account`).
    pub operation: &'static str,
    /// The type name of the handler (`…::create_account`).
    pub handler: &'static str,
}

/// An axum router whose routes are `#[utoipa::path]` operations: each
/// handler is routed at the method(s) and path its operation declares,
/// and the table of what was routed stays readable ([`ApiRouter::routed`]).
pub struct ApiRouter<S> {
    router: Router<S>,
    routed: Vec<Routed>,
}

impl<S: Clone + Send + Sync + 'static> Default for ApiRouter<S> {
    fn default() -> Self {
        ApiRouter {
            router: Router::new(),
            routed: Vec::new(),
        }
    }
}

impl<S: Clone + Send + Sync + 'static> ApiRouter<S> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Routes `handler` where `operation` says: pass the `__path_NAME`
    /// value `#[utoipa::path]` makes for handler `NAME`.
    pub fn operation<P, H, T>(mut self, _operation: P, handler: H) -> Self
    where
        P: utoipa::Path,
        H: Handler<T, S>,
        T: 'static,
    {
        let path = P::path();
        let mut filter: Option<MethodFilter> = None;
        for m in P::methods() {
            let (method, f) = method_of(&m);
            filter = Some(filter.map_or(f, |all| all.or(f)));
            self.routed.push(Routed {
                method,
                path: path.clone(),
                operation: std::any::type_name::<P>(),
                handler: std::any::type_name::<H>(),
            });
        }
        if let Some(f) = filter {
            self.router = self.router.route(&path, on(f, handler));
        }
        self
    }

    /// What was routed, in order.
    pub fn routed(&self) -> &[Routed] {
        &self.routed
    }

    pub fn into_router(self) -> Router<S> {
        self.router
    }
}

fn method_of(m: &HttpMethod) -> (Method, MethodFilter) {
    match m {
        HttpMethod::Get => (Method::GET, MethodFilter::GET),
        HttpMethod::Post => (Method::POST, MethodFilter::POST),
        HttpMethod::Put => (Method::PUT, MethodFilter::PUT),
        HttpMethod::Delete => (Method::DELETE, MethodFilter::DELETE),
        HttpMethod::Options => (Method::OPTIONS, MethodFilter::OPTIONS),
        HttpMethod::Head => (Method::HEAD, MethodFilter::HEAD),
        HttpMethod::Patch => (Method::PATCH, MethodFilter::PATCH),
        HttpMethod::Trace => (Method::TRACE, MethodFilter::TRACE),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::admin::AdminToken;
    use serde::Serialize;
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::Arc;
    use utoipa::openapi::path::{Operation, ParameterIn, PathItem};

    const CHECKED_IN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json");

    #[test]
    fn checked_in_document_is_current() {
        let generated = document();
        if std::env::var_os("IPGATE_WRITE_OPENAPI").is_some() {
            std::fs::write(CHECKED_IN, &generated).unwrap();
            return;
        }
        let checked_in = std::fs::read_to_string(CHECKED_IN).unwrap_or_default();
        assert!(
            checked_in == generated,
            "docs/openapi.json is not what the code generates: the API's routes, \
             annotations or types changed. Regenerate it with\n\n    \
             IPGATE_WRITE_OPENAPI=1 cargo test -p ipgate-control --lib openapi\n\n\
             and commit it with the change."
        );
    }

    fn operations(item: &PathItem) -> Vec<(Method, &Operation)> {
        [
            (Method::GET, &item.get),
            (Method::PUT, &item.put),
            (Method::POST, &item.post),
            (Method::DELETE, &item.delete),
            (Method::OPTIONS, &item.options),
            (Method::HEAD, &item.head),
            (Method::PATCH, &item.patch),
            (Method::TRACE, &item.trace),
        ]
        .into_iter()
        .filter_map(|(m, op)| op.as_ref().map(|op| (m, op)))
        .collect()
    }

    /// (method, path) of each operation in the document, with its tags.
    fn documented() -> BTreeMap<(String, String), Vec<String>> {
        let doc = ApiDoc::openapi();
        let mut out = BTreeMap::new();
        for (path, item) in &doc.paths.paths {
            for (method, op) in operations(item) {
                let tags = op.tags.clone().unwrap_or_default();
                out.insert((method.to_string(), path.clone()), tags);
            }
        }
        out
    }

    fn table<S: Clone + Send + Sync + 'static>(r: &ApiRouter<S>) -> BTreeSet<(String, String)> {
        r.routed()
            .iter()
            .map(|r| (r.method.to_string(), r.path.clone()))
            .collect()
    }

    #[test]
    fn routers_and_document_have_the_same_operations() {
        let admin = crate::http::admin::operations();
        let customer = crate::http::customer_api::operations();
        let documented = documented();
        let tagged = |tag: &str| -> BTreeSet<(String, String)> {
            documented
                .iter()
                .filter(|(_, tags)| tags.iter().any(|t| t == tag))
                .map(|(k, _)| k.clone())
                .collect()
        };
        assert_eq!(table(&admin), tagged("admin"), "admin routes vs document");
        assert_eq!(
            table(&customer),
            tagged("customer"),
            "customer routes vs document"
        );
        for (k, tags) in &documented {
            assert_eq!(tags.len(), 1, "{k:?} has one tag: {tags:?}");
        }
        let routed = admin.routed().len() + customer.routed().len();
        assert_eq!(routed, documented.len(), "each operation routed once");
        assert!(table(&admin)
            .iter()
            .all(|(_, p)| p.starts_with("/admin/v1/")));
        assert!(table(&customer)
            .iter()
            .all(|(_, p)| p.starts_with("/api/v1/")));
    }

    #[test]
    fn each_handler_is_routed_under_its_own_operation() {
        let admin = crate::http::admin::operations();
        let customer = crate::http::customer_api::operations();
        for r in admin.routed().iter().chain(customer.routed()) {
            assert_eq!(
                r.operation.replace("::__path_", "::"),
                r.handler,
                "{} {} is routed to another handler than its operation's",
                r.method,
                r.path
            );
        }
    }

    /// (method, path) of a router's own routes (not its fallback's), read
    /// from its `Debug` form, the one view of an axum router's table there
    /// is: `routes: {RouteId(n): MethodRouter(MethodRouter { get: .., head:
    /// .., ... })}` and `node: Node { paths: {RouteId(n): "/path"} }`. A
    /// method whose endpoint is not `None` is served. Should axum change
    /// that form, this panics or finds nothing, and the test fails.
    fn served<S>(router: &Router<S>) -> BTreeSet<(String, String)> {
        const METHODS: [&str; 8] = [
            "get", "head", "delete", "options", "patch", "post", "put", "trace",
        ];
        let text = format!("{router:?}");
        let own = text.split(", fallback_router:").next().unwrap_or_default();
        let (routes, paths) = own
            .split_once("node: Node { paths: {")
            .expect("axum's Router Debug form changed: update served()");
        let path_of: BTreeMap<&str, &str> = paths
            .split("RouteId(")
            .skip(1)
            .filter_map(|s| {
                let (id, rest) = s.split_once("): \"")?;
                Some((id, rest.split('"').next()?))
            })
            .collect();
        let mut out = BTreeSet::new();
        for chunk in routes.split("RouteId(").skip(1) {
            let (id, rest) = chunk
                .split_once("): MethodRouter(MethodRouter { ")
                .expect("a route that is not a MethodRouter");
            let path = path_of[id];
            for field in rest.split(", ") {
                let Some((name, endpoint)) = field.split_once(": ") else {
                    continue;
                };
                if METHODS.contains(&name) && endpoint != "None" {
                    out.insert((name.to_uppercase(), path.to_string()));
                }
                if name == "connect" {
                    break;
                }
            }
        }
        assert!(!out.is_empty(), "no route read from {text}");
        out
    }

    #[test]
    fn the_real_routers_serve_exactly_the_operations() {
        let token = Arc::new(AdminToken::new("0123456789abcdef-openapi").unwrap());
        let admin = served(&crate::http::admin::app(token));
        assert_eq!(
            admin,
            table(&crate::http::admin::operations()),
            "the admin listener's routes"
        );

        let portal = served(&crate::http::app());
        let api: BTreeSet<(String, String)> = portal
            .iter()
            .filter(|(_, p)| p.starts_with("/api/"))
            .cloned()
            .collect();
        assert_eq!(
            api,
            table(&crate::http::customer_api::operations()),
            "the portal listener's /api/ routes"
        );
        assert!(
            portal.contains(&("GET".into(), "/portal".into())),
            "the pages are read too: {portal:?}"
        );
    }

    #[test]
    fn path_parameters_are_the_paths_placeholders() {
        let doc = ApiDoc::openapi();
        for (path, item) in &doc.paths.paths {
            let placeholders: BTreeSet<String> = path
                .split('/')
                .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
                .map(str::to_string)
                .collect();
            for (method, op) in operations(item) {
                let params: BTreeSet<String> = op
                    .parameters
                    .iter()
                    .flatten()
                    .filter(|p| p.parameter_in == ParameterIn::Path)
                    .map(|p| p.name.clone())
                    .collect();
                assert_eq!(params, placeholders, "{method} {path}");
            }
        }
    }

    #[test]
    fn operations_have_ids_security_and_an_error_shape() {
        let doc = ApiDoc::openapi();
        let mut ids = BTreeSet::new();
        for (path, item) in &doc.paths.paths {
            for (method, op) in operations(item) {
                let id = op.operation_id.clone().unwrap_or_default();
                assert!(ids.insert(id.clone()), "operation id {id} twice");
                assert_eq!(
                    op.security.as_ref().map(Vec::len),
                    Some(1),
                    "{method} {path} names its security scheme"
                );
                assert!(
                    op.responses.responses.contains_key("401"),
                    "{method} {path} documents its 401"
                );
            }
        }
    }

    #[test]
    fn every_reference_resolves() {
        let doc: serde_json::Value = serde_json::from_str(&document()).unwrap();
        let mut refs = Vec::new();
        let mut stack = vec![&doc];
        while let Some(v) = stack.pop() {
            match v {
                serde_json::Value::Object(m) => {
                    if let Some(serde_json::Value::String(r)) = m.get("$ref") {
                        refs.push(r.clone());
                    }
                    stack.extend(m.values());
                }
                serde_json::Value::Array(a) => stack.extend(a),
                _ => {}
            }
        }
        assert!(!refs.is_empty());
        for r in refs {
            let pointer = r.strip_prefix('#').unwrap_or_default();
            assert!(doc.pointer(pointer).is_some(), "{r} points nowhere");
        }
    }

    /// `x` serializes with its keys in sorted order, as a
    /// `serde_json::Value` of it would: the typed answers are the bytes the
    /// `json!` answers were.
    fn keys_sorted<T: Serialize>(x: &T) {
        let direct = serde_json::to_string(x).unwrap();
        let via_value = serde_json::to_string(&serde_json::to_value(x).unwrap()).unwrap();
        assert_eq!(direct, via_value);
    }

    #[test]
    fn typed_answers_keep_the_json_they_had() {
        use crate::domain::model::{Source, WhitelistMode};
        use crate::domain::tokens::Scope;
        use crate::domain::users::Role;
        use crate::http::admin::tokens::IssuedToken;
        use crate::http::admin::users::TotpEnrolment;
        use crate::http::customer_api::*;
        let s = |v: &str| v.to_string();
        let at = |v: &str| v.parse::<crate::domain::Timestamp>().unwrap();
        let acme = || "acme".parse::<crate::domain::AccountId>().unwrap();
        for token in [
            None,
            Some(MeToken {
                expires_at: Some(at("2030-01-01T00:00:00Z")),
                fingerprint: s("sha256:0123456789ab"),
                id: s("t1"),
                scopes: vec![Scope::Read],
            }),
        ] {
            keys_sorted(&Me {
                account: MeAccount {
                    id: acme(),
                    name: s("Acme"),
                    whitelist: WhitelistMode::Enforce,
                },
                can_request: false,
                token,
                two_factor: true,
                user: MeUser {
                    role: Role::Main,
                    username: s("alice"),
                },
                why_not: Some("why"),
                your_ip: s("203.0.113.1"),
            });
        }
        keys_sorted(&CustomerEntry {
            cidr: "203.0.113.1/32".parse().unwrap(),
            created_at: at("2026-01-01T00:00:00Z"),
            expires_at: None,
            id: s("e1"),
            remark: s("r"),
            source: Source::Request,
            status: EntryStatus::Active,
        });
        // The request view is what it was: the stored request as a JSON
        // value (which has no expiry seconds any more), the times and the
        // account as the strings they were; and `valid_for_secs`, which
        // the stored request leaves out when it has none, as it does
        // `reference`.
        let request = crate::store::IpRequest {
            id: s("r1"),
            account: acme(),
            ips: vec![s("203.0.113.1"), s("203.0.113.2")],
            remark: s("prod"),
            reference: None,
            status: crate::domain::flow::Status::Approved,
            requested_by: s("alice"),
            requested_from: s("198.51.100.7"),
            user_agent: s("curl/8"),
            created_at: at("2026-01-01T00:00:00Z"),
            expires_at: at("2026-01-02T00:00:00Z"),
            decided_by: Some(s("ops@acme.test")),
            decided_from: None,
            decided_at: Some(at("2026-01-01T01:00:00Z")),
            valid_for_secs: None,
            approvals_required: 1,
            approvals: Vec::new(),
            added: Vec::new(),
            disowned: None,
        };
        let mut stored = serde_json::to_value(&request).unwrap();
        stored["valid_for_secs"] = serde_json::Value::Null;
        stored["approvals"] = serde_json::json!([]);
        stored["approvals_required"] = serde_json::json!(1);
        stored["reference"] = serde_json::Value::Null;
        assert_eq!(
            serde_json::to_string(&view(&request)).unwrap(),
            serde_json::to_string(&stored).unwrap()
        );
        assert_eq!(
            serde_json::to_string(&view(&request)).unwrap(),
            r#"{"account":"acme","approvals":[],"approvals_required":1,"created_at":"2026-01-01T00:00:00Z","decided_at":"2026-01-01T01:00:00Z","decided_by":"ops@acme.test","decided_from":null,"expires_at":"2026-01-02T00:00:00Z","id":"r1","ips":["203.0.113.1","203.0.113.2"],"reference":null,"remark":"prod","requested_by":"alice","requested_from":"198.51.100.7","status":"approved","user_agent":"curl/8","valid_for_secs":null}"#
        );
        keys_sorted(&RequestView {
            account: acme(),
            approvals: vec![ApprovalView {
                at: at("2026-01-01T00:30:00Z"),
                email: s("ops@acme.test"),
                from: s("192.0.2.1"),
            }],
            approvals_required: 2,
            created_at: at("2026-01-01T00:00:00Z"),
            decided_at: Some(at("2026-01-01T01:00:00Z")),
            decided_by: None,
            decided_from: Some(s("f")),
            expires_at: at("2026-01-02T00:00:00Z"),
            id: s("r1"),
            ips: vec![s("203.0.113.1")],
            reference: Some(s("po-1")),
            remark: s(""),
            requested_by: s("alice"),
            requested_from: s("203.0.113.2"),
            status: crate::domain::flow::Status::Pending,
            user_agent: s("curl"),
            valid_for_secs: Some(60),
        });
        keys_sorted(&IssuedToken {
            created_at: Some(at("2026-01-01T00:00:00Z")),
            expires_at: None,
            fingerprint: s("sha256:0123456789ab"),
            id: s("t1"),
            scopes: vec![Scope::Read, Scope::Request],
            token: s("secret"),
            username: s("alice"),
        });
        keys_sorted(&TotpEnrolment {
            otpauth_uri: s("otpauth://totp/x"),
            secret: s("ABC"),
        });
    }
}
