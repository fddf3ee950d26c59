//! The customer portal: login (password + TOTP, each code once), sessions
//! kept in sled under the hash of their id, the whitelist page with its
//! request form and cancel buttons, and the Security log tab
//! (`security_log`). Every POST carries a CSRF value; the
//! cookies are HttpOnly, SameSite=Strict, and Secure when `public_url` is
//! https. The session id is new at every login.

use crate::api_error::ApiError;
use crate::domain::users::{self, token_hash};
use crate::domain::Timestamp;
use crate::html::{message, respond, unavailable};
use crate::http::csrf::{csrf_ok, csrf_value};
use crate::http::extract::{Caller, Visitor};
use crate::http::state::CustomerState;
use crate::limits::login_limit::Refusal;
use crate::seclog::Actor;
use crate::service::requests::{why_cannot_request, Submission};
use crate::store::{Session, StoreError};
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;
use std::net::IpAddr;
use std::time::Duration;

mod confirm;
mod log_page;
mod pages;
mod security_log;

const SESSION_COOKIE: &str = "ipgate_session";
const PRE_COOKIE: &str = "ipgate_login";
/// How long a portal session lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);

pub fn routes() -> Router<CustomerState> {
    Router::new()
        .route("/", get(|| async { see_other("/portal") }))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/portal", get(whitelist_page))
        .route("/portal/requests/confirm", post(confirm::confirm))
        .route("/portal/requests", post(submit))
        .route("/portal/requests/{id}/cancel", post(cancel))
        .route("/portal/security-log", get(security_log::page))
        .route("/portal/security-log.csv", get(security_log::download))
}

fn see_other(to: &'static str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response()
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

fn set_cookie(resp: &mut Response, name: &str, value: &str, max_age: u64, secure: bool) {
    let secure = if secure { "; Secure" } else { "" };
    let c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}");
    if let Ok(v) = HeaderValue::from_str(&c) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
}

fn random_id() -> String {
    users::new_api_token().0
}

/// A logged-in caller: the session and who it belongs to.
struct Portal {
    caller: Caller,
    session: Session,
    /// The hash the session is stored under.
    session_hash: String,
}

impl FromRequestParts<CustomerState> for Portal {
    type Rejection = NotIn;

    async fn from_request_parts(parts: &mut Parts, state: &CustomerState) -> Result<Portal, NotIn> {
        let v = Visitor::from_request_parts(parts, state)
            .await
            .map_err(|_| NotIn::Login)?;
        portal_caller(state, &parts.headers, v).await
    }
}

/// Why a portal page cannot be shown to this browser.
enum NotIn {
    /// No live session: log in first.
    Login,
    Store(StoreError),
}

impl IntoResponse for NotIn {
    fn into_response(self) -> Response {
        match self {
            NotIn::Login => see_other("/login"),
            NotIn::Store(e) => unavailable(&e),
        }
    }
}

/// The session behind the request's cookie.
async fn portal_caller(
    s: &CustomerState,
    headers: &HeaderMap,
    v: Visitor,
) -> Result<Portal, NotIn> {
    let sid = cookie(headers, SESSION_COOKIE).ok_or(NotIn::Login)?;
    let session_hash = token_hash(&sid);
    let store = &s.publisher.store;
    let session = store
        .session(&session_hash)
        .await
        .map_err(NotIn::Store)?
        .ok_or(NotIn::Login)?;
    let user = store
        .user(&session.username)
        .await
        .map_err(NotIn::Store)?
        .ok_or(NotIn::Login)?;
    if user.totp_secret.is_some() && !session.two_factor {
        return Err(NotIn::Login);
    }
    let account = store
        .account(user.account.as_str())
        .await
        .map_err(NotIn::Store)?
        .ok_or(NotIn::Login)?;
    Ok(Portal {
        caller: Caller {
            user,
            account,
            ip: v.ip,
            user_agent: v.user_agent,
            token: None,
        },
        session,
        session_hash,
    })
}

async fn login_page(State(s): State<CustomerState>) -> Response {
    let pre = random_id();
    let csrf = csrf_value(&s.csrf_key, "login", &pre);
    let mut resp = respond(StatusCode::OK, pages::login(&csrf, None));
    set_cookie(&mut resp, PRE_COOKIE, &pre, 3600, s.secure_cookies);
    resp
}

#[derive(Deserialize)]
struct LoginForm {
    csrf: String,
    username: String,
    password: String,
    #[serde(default)]
    code: String,
}

/// A login refused: the same words whatever was wrong.
fn refused(s: &CustomerState, pre: Option<&str>, status: StatusCode, why: &str) -> Response {
    let pre = pre.map(str::to_string).unwrap_or_else(random_id);
    let csrf = csrf_value(&s.csrf_key, "login", &pre);
    let mut resp = respond(status, pages::login(&csrf, Some(why)));
    set_cookie(&mut resp, PRE_COOKIE, &pre, 3600, s.secure_cookies);
    resp
}

/// What a refused login leaves in the security log (see `refusals`): a
/// `login.failed` record while its source and account are under the
/// window's count, else only a count; and any summary now due.
async fn note_refusal(
    s: &CustomerState,
    ip: IpAddr,
    username: &str,
    account: Option<&str>,
    reason: &'static str,
    actor: &Actor,
) -> Result<(), StoreError> {
    let noted = s.login_refusals.note(ip, account, username, reason);
    let store = &s.publisher.store;
    store.login_failed_summaries(&noted.summaries).await?;
    if noted.record {
        store.login_failed(username, account, reason, actor).await?;
    }
    Ok(())
}

/// A login refused for its credentials: counted against the user from
/// this client (backoff), noted in the security log, answered 401 (503
/// when the store cannot take the record).
async fn wrong_credentials(
    s: &CustomerState,
    pre: Option<&str>,
    ip: IpAddr,
    username: &str,
    account: Option<&str>,
    reason: &'static str,
    actor: &Actor,
) -> Response {
    s.login_limit.failed(username, ip);
    if let Err(e) = note_refusal(s, ip, username, account, reason, actor).await {
        return unavailable(&e);
    }
    refused(s, pre, StatusCode::UNAUTHORIZED, WRONG)
}

/// A login not tried now (see `login_limit`): 429, with how long to wait.
fn too_many(s: &CustomerState, pre: Option<&str>, refusal: Refusal) -> Response {
    let secs = refusal.retry_after_secs();
    let why = match refusal {
        Refusal::Client => {
            "Too many login attempts from your address. Wait a minute and try again.".to_string()
        }
        Refusal::Backoff(_) => format!(
            "Too many failed attempts for this username from your address. Try again in {secs} seconds."
        ),
    };
    let mut resp = refused(s, pre, StatusCode::TOO_MANY_REQUESTS, &why);
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    resp
}

/// A real Argon2id hash to check unknown users' passwords against.
static DUMMY_HASH: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    users::hash_password("not a password anyone has").unwrap_or_default()
});

static ARGON2_SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

const WRONG: &str = "Wrong username, password or code.";

async fn login(
    State(s): State<CustomerState>,
    v: Visitor,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    let pre = cookie(&headers, PRE_COOKIE);
    let Ok(Form(f)) = form else {
        return refused(
            &s,
            pre.as_deref(),
            StatusCode::BAD_REQUEST,
            "Fill in username, password and code.",
        );
    };
    let csrf_good = pre
        .as_deref()
        .is_some_and(|p| csrf_ok(&csrf_value(&s.csrf_key, "login", p), &f.csrf));
    if !csrf_good {
        return refused(
            &s,
            None,
            StatusCode::FORBIDDEN,
            "This form expired. Please log in again.",
        );
    }
    let username: String = f.username.trim().chars().take(128).collect();
    let store = &s.publisher.store;
    let actor = Actor {
        who: username.clone(),
        ip: Some(v.ip),
    };
    let user = match store.user(&username).await {
        Ok(u) => u,
        Err(e) => return unavailable(&e),
    };
    let account = user.as_ref().map(|u| u.account.to_string());
    if let Err(refusal) = s.login_limit.check(&username, v.ip) {
        let _ = note_refusal(
            &s,
            v.ip,
            &username,
            account.as_deref(),
            refusal.reason(),
            &actor,
        )
        .await;
        return too_many(&s, pre.as_deref(), refusal);
    }
    // Hash even for an unknown user, so timing does not tell which names exist.
    let stored_hash = user.as_ref().map(|u| u.password_hash.clone());
    let password = f.password.clone();
    // At most two Argon2 checks at once, so a login flood cannot take every core.
    let Ok(_permit) = ARGON2_SLOTS.acquire().await else {
        return refused(
            &s,
            pre.as_deref(),
            StatusCode::SERVICE_UNAVAILABLE,
            "Try again in a minute.",
        );
    };
    let password_ok = tokio::task::spawn_blocking(move || match stored_hash {
        Some(h) => users::check_password(&password, &h),
        None => {
            let _ = users::check_password(&password, &DUMMY_HASH);
            false
        }
    })
    .await
    .unwrap_or(false);
    let Some(user) = user.filter(|_| password_ok) else {
        let reason = if account.is_some() {
            "wrong password"
        } else {
            "unknown user"
        };
        return wrong_credentials(
            &s,
            pre.as_deref(),
            v.ip,
            &username,
            account.as_deref(),
            reason,
            &actor,
        )
        .await;
    };
    let step = match &user.totp_secret {
        Some(secret) => match users::check_totp(
            secret,
            &f.code,
            Timestamp::now().unix(),
            user.totp_last_step,
        ) {
            Some(step) => Some(step),
            None => {
                return wrong_credentials(
                    &s,
                    pre.as_deref(),
                    v.ip,
                    &username,
                    account.as_deref(),
                    "wrong or reused code",
                    &actor,
                )
                .await;
            }
        },
        None => None,
    };
    let sid = random_id();
    let now = Timestamp::now();
    let session = Session {
        username: user.username.clone(),
        account: user.account.clone(),
        csrf: random_id(),
        created_at: now,
        expires_at: now + SESSION_TTL,
        two_factor: step.is_some(),
    };
    match store
        .login(&user, step, &token_hash(&sid), &session, &actor)
        .await
    {
        Ok(()) => s.login_limit.succeeded(&username, v.ip),
        Err(StoreError::CodeUsed) => {
            return wrong_credentials(
                &s,
                pre.as_deref(),
                v.ip,
                &username,
                account.as_deref(),
                "wrong or reused code",
                &actor,
            )
            .await;
        }
        Err(e) => return unavailable(&e),
    }
    // A replaced session cookie ends the old session, if there was one.
    if let Some(old) = cookie(&headers, SESSION_COOKIE) {
        let _ = store.end_session(&token_hash(&old), &actor).await;
    }
    tracing::info!(user = %user.username, account = %user.account, ip = %v.ip, "portal login");
    let mut resp = see_other("/portal");
    set_cookie(
        &mut resp,
        SESSION_COOKIE,
        &sid,
        SESSION_TTL.as_secs(),
        s.secure_cookies,
    );
    set_cookie(&mut resp, PRE_COOKIE, "", 0, s.secure_cookies);
    resp
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn logout(
    State(s): State<CustomerState>,
    p: Portal,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Response {
    if !form.is_ok_and(|Form(f)| csrf_ok(&p.session.csrf, &f.csrf)) {
        return forged();
    }
    let actor = Actor {
        who: p.caller.user.username.clone(),
        ip: Some(p.caller.ip),
    };
    if let Err(e) = s.publisher.store.end_session(&p.session_hash, &actor).await {
        return unavailable(&e);
    }
    let mut resp = see_other("/login");
    set_cookie(&mut resp, SESSION_COOKIE, "", 0, s.secure_cookies);
    resp
}

fn forged() -> Response {
    message(
        StatusCode::FORBIDDEN,
        "Form not accepted",
        "bad",
        "This form did not come from your portal page. Nothing was changed: go back to the portal and try again.",
    )
}

#[derive(Deserialize, Default)]
struct PageQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    done: String,
    /// "Request this IP": an address to put in the form.
    #[serde(default)]
    ip1: String,
}

async fn render(
    s: &CustomerState,
    p: &Portal,
    q: &PageQuery,
    status: StatusCode,
    note: pages::Note,
) -> Response {
    let store = &s.publisher.store;
    let now = crate::domain::Timestamp::now();
    let entries = match store.entries(p.caller.account.id.as_str()).await {
        // An entry that has ended is gone from the proxy already.
        Ok(e) => e.into_iter().filter(|e| !e.ended(now)).collect::<Vec<_>>(),
        Err(e) => return unavailable(&e),
    };
    let requests = match store.requests(p.caller.account.id.as_str()).await {
        Ok(r) => r,
        Err(e) => return unavailable(&e),
    };
    let blocked =
        match crate::http::blocked_calls::recent(store, p.caller.account.id.as_str()).await {
            Ok(b) => b,
            Err(e) => return unavailable(&e),
        };
    let view = pages::WhitelistView {
        caller: &p.caller,
        csrf: &p.session.csrf,
        why_not: why_cannot_request(&p.caller.user, &p.caller.account),
        entries: &entries,
        requests: &requests,
        link_ttl: s.link_ttl,
        max_ips: s.limits.max_ips_per_request,
        query: q.q.trim(),
        note,
        now,
        blocked: &blocked,
        // Only an IPv4 address fills the form; anything else is ignored.
        prefill: q.ip1.trim().parse().ok(),
    };
    respond(status, pages::whitelist(&view))
}

/// The whitelist page again, with why the last step was refused.
async fn refusal(s: &CustomerState, p: &Portal, e: ApiError) -> Response {
    let messages = e.errors.into_iter().map(|e| e.message).collect();
    render(
        s,
        p,
        &PageQuery::default(),
        e.status,
        pages::Note::Errors(messages),
    )
    .await
}

async fn whitelist_page(
    State(s): State<CustomerState>,
    p: Portal,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Response {
    let q = query.map(|Query(q)| q).unwrap_or_default();
    let note = match q.done.as_str() {
        "submitted" => pages::Note::Done("Request saved. Every email address of your account got its own confirmation link; the addresses go live as soon as one of them approves (or as many as your account needs)."),
        "cancelled" => pages::Note::Done("Request cancelled; its links no longer work."),
        _ => pages::Note::None,
    };
    render(&s, &p, &q, StatusCode::OK, note).await
}

#[derive(Deserialize)]
struct RequestForm {
    csrf: String,
    #[serde(default)]
    ip1: String,
    #[serde(default)]
    ip2: String,
    #[serde(default)]
    remark: String,
    /// One of the form's choices ("" for until removed, "7d" ...).
    #[serde(default)]
    valid_for: String,
}

impl RequestForm {
    /// The form as posted, when it parses and carries the session's CSRF
    /// value.
    fn posted(p: &Portal, form: Result<Form<RequestForm>, FormRejection>) -> Option<RequestForm> {
        let Ok(Form(f)) = form else {
            return None;
        };
        csrf_ok(&p.session.csrf, &f.csrf).then_some(f)
    }

    /// The addresses filled in, in order.
    fn ips(&self) -> Vec<String> {
        [self.ip1.trim(), self.ip2.trim()]
            .into_iter()
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }
}

async fn submit(
    State(s): State<CustomerState>,
    p: Portal,
    form: Result<Form<RequestForm>, FormRejection>,
) -> Response {
    let Some(f) = RequestForm::posted(&p, form) else {
        return forged();
    };
    match s
        .requests()
        .submit(
            &p.caller.requester(),
            &Submission {
                ips: &f.ips(),
                remark: &f.remark,
                valid_for: Some(&f.valid_for),
                reference: None,
            },
            None,
        )
        .await
    {
        Ok(_) => see_other("/portal?done=submitted"),
        Err(e) => refusal(&s, &p, e).await,
    }
}

async fn cancel(
    State(s): State<CustomerState>,
    p: Portal,
    Path(id): Path<String>,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Response {
    if !form.is_ok_and(|Form(f)| csrf_ok(&p.session.csrf, &f.csrf)) {
        return forged();
    }
    if p.caller.user.role != users::Role::Main {
        let why = "Only your account's main user can cancel requests.".to_string();
        return render(
            &s,
            &p,
            &PageQuery::default(),
            StatusCode::FORBIDDEN,
            pages::Note::Errors(vec![why]),
        )
        .await;
    }
    match s.requests().cancel(&p.caller.requester(), id).await {
        Ok(_) => see_other("/portal?done=cancelled"),
        Err(e) => refusal(&s, &p, e).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cookie_line(secure: bool) -> String {
        let mut r = see_other("/portal");
        set_cookie(&mut r, SESSION_COOKIE, "abc", 60, secure);
        r.headers()
            .get(header::SET_COOKIE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    }

    #[test]
    fn session_cookies_carry_their_flags() {
        assert_eq!(
            cookie_line(false),
            "ipgate_session=abc; Path=/; HttpOnly; SameSite=Strict; Max-Age=60"
        );
        assert!(cookie_line(true).ends_with("; Secure"));
    }

    #[test]
    fn cookies_are_read_by_exact_name() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("xipgate_session=no; ipgate_session=yes"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE).as_deref(), Some("yes"));
        assert_eq!(cookie(&HeaderMap::new(), SESSION_COOKIE), None);
    }
}
