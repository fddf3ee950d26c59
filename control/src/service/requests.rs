//! The request use cases: submit, cancel, and decide from a link. Each is
//! one store change through the publisher (so it is live in the proxy table
//! before it returns), then its count in the metrics, the mail sender's
//! wake-up where it queued mail, and its log line. The customer API, the
//! portal and the link pages each call one of these, so none of them can
//! forget a step.

use crate::api_error::{ApiError, FieldError};
use crate::domain::flow::{self, AccountState, Limits, Status};
use crate::domain::model::{Account, WhitelistMode};
use crate::domain::users::{Role, User};
use crate::metrics::FlowMetrics;
use crate::seclog::Actor;
use crate::service::publish::Publisher;
use crate::store::idempotency::{self, IdempotencyKey, KeyRecord};
use crate::store::{IpRequest, LinkView, NewRequest, StoreError, Verdict};
use axum::http::StatusCode;
use std::net::IpAddr;
use std::time::Duration;

type ApiResult<T> = Result<T, ApiError>;

/// What the request use cases work with: the publisher, the flow's limits,
/// the link lifetime, the metrics and the mail sender's wake-up.
pub struct Requests<'a> {
    pub publisher: &'a Publisher,
    pub limits: &'a Limits,
    pub link_ttl: Duration,
    pub metrics: &'a FlowMetrics,
    /// Wakes the mail sender after a change queued mail.
    pub mail_wake: &'a tokio::sync::Notify,
}

/// Who submits or cancels: a user of an account, from an address and a
/// browser.
pub struct Requester<'a> {
    pub user: &'a User,
    pub account: &'a Account,
    pub ip: IpAddr,
    pub user_agent: &'a str,
}

/// What a submission asks for, as sent.
#[derive(Debug, serde::Serialize)]
pub struct Submission<'a> {
    pub ips: &'a [String],
    pub remark: &'a str,
    /// How long to whitelist once approved (`parse_valid_for`).
    pub valid_for: Option<&'a str>,
    /// The caller's own id for the request.
    pub reference: Option<&'a str>,
}

/// The longest `reference`, in characters.
pub const MAX_REFERENCE_LEN: usize = 64;

/// Why this user may not submit a request, if so.
pub fn why_cannot_request(user: &User, account: &Account) -> Option<&'static str> {
    if user.role != Role::Main {
        return Some(
            "Only your account's main user can request whitelist changes: ask them, or contact us.",
        );
    }
    if user.totp_secret.is_none() {
        return Some("Two-factor authentication is off for your account: contact us to enrol your authenticator app, then try again.");
    }
    if account.whitelist == WhitelistMode::Off {
        return Some("The IP whitelist feature is off for your account: contact us to turn it on.");
    }
    if account.frozen {
        return Some("Self-service whitelist requests are frozen for your account, because someone reported an approval as not theirs: contact us to review it and lift the freeze.");
    }
    None
}

fn refusals(status: StatusCode, r: Vec<flow::Refusal>) -> ApiError {
    ApiError {
        status,
        errors: r
            .into_iter()
            .map(|r| FieldError {
                field: r.field,
                message: r.message,
            })
            .collect(),
    }
}

impl Requests<'_> {
    /// Checks a submission (each rule its own message) and
    /// saves it as pending with one link mail queued per account email. The
    /// customer API and the portal form both come here.
    ///
    /// With an `Idempotency-Key` (the header's raw value), a key the
    /// account used in the last 24 hours answers with the request it
    /// created then, as it was created, and changes nothing; the same key
    /// with another submission is refused (422). Only a submission that
    /// created a request keeps its key: after a refusal the same key can
    /// be sent again.
    pub async fn submit(
        &self,
        c: &Requester<'_>,
        s: &Submission<'_>,
        key: Option<&[u8]>,
    ) -> ApiResult<IpRequest> {
        let key = key
            .map(|k| IdempotencyKey::parse(k, idempotency::fingerprint(s)))
            .transpose()
            .map_err(|e| ApiError::bad(idempotency::HEADER, e.to_string()))?;
        if let Some(why) = why_cannot_request(c.user, c.account) {
            return Err(ApiError::new(StatusCode::FORBIDDEN, "account", why));
        }
        let Some(key) = key else {
            return self.create(c, s, None).await;
        };
        if let Some(first) = self.first_answer(c, &key).await? {
            return first;
        }
        match self.create(c, s, Some(key.clone())).await {
            // A submission with the same key may have won a race with
            // this one: then its answer is this one's.
            Err(e) if e.status == StatusCode::CONFLICT => match self.first_answer(c, &key).await? {
                Some(first) => first,
                None => Err(e),
            },
            other => other,
        }
    }

    /// The answer a key already used gives, if it is live: its request,
    /// or a refusal when it came with another submission.
    async fn first_answer(
        &self,
        c: &Requester<'_>,
        key: &IdempotencyKey,
    ) -> ApiResult<Option<ApiResult<IpRequest>>> {
        let store = &self.publisher.store;
        let Some(record) = store
            .idempotency_key(c.account.id.as_str(), &key.hash)
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(replay(record, key, c)))
    }

    async fn create(
        &self,
        c: &Requester<'_>,
        s: &Submission<'_>,
        key: Option<IdempotencyKey>,
    ) -> ApiResult<IpRequest> {
        let mut new = self.check(c, s).await?;
        new.idempotency = key;
        let actor = Actor {
            who: c.user.username.clone(),
            ip: Some(c.ip),
        };
        let req = self
            .publisher
            .change(|st| async move { st.create_request(new, &actor).await })
            .await?;
        self.metrics.count(Status::Pending, 1);
        self.mail_wake.notify_one();
        tracing::info!(account = %req.account, request = %req.id, ips = ?req.ips, "request submitted");
        Ok(req)
    }

    /// Every check of a submission, each rule its own message, without
    /// saving anything: the request as it would be saved (with no
    /// idempotency key). The portal's confirmation page shows it before
    /// the request is sent.
    pub async fn check(&self, c: &Requester<'_>, s: &Submission<'_>) -> ApiResult<NewRequest> {
        if let Some(why) = why_cannot_request(c.user, c.account) {
            return Err(ApiError::new(StatusCode::FORBIDDEN, "account", why));
        }
        let valid_for_secs = parse_valid_for(s.valid_for)?;
        let reference = check_reference(s.reference)?;
        let ips = flow::check_submission(s.ips, s.remark, self.limits)
            .map_err(|r| refusals(StatusCode::BAD_REQUEST, r))?;
        let store = &self.publisher.store;
        let entries = store.entries(c.account.id.as_str()).await?;
        let nets: Vec<ipnet::IpNet> = entries.iter().map(|e| e.cidr.net()).collect();
        let pending = store
            .requests(c.account.id.as_str())
            .await?
            .iter()
            .any(|r| r.status == Status::Pending);
        let state = AccountState {
            whitelisted: &nets,
            entries: entries.len(),
            pending,
        };
        flow::check_against(&ips, &state, self.limits).map_err(|r| {
            let status = if pending {
                StatusCode::CONFLICT
            } else {
                StatusCode::BAD_REQUEST
            };
            refusals(status, r)
        })?;
        if c.account.emails.is_empty() {
            return Err(ApiError::bad(
                "account",
                "Your account has no email address to confirm the request: contact us.",
            ));
        }
        if c.account.emails.len() < usize::from(c.account.approvals_required) {
            return Err(ApiError::bad(
                "account",
                format!(
                    "Your account needs {} approvals but has {} email addresses to give them: contact us.",
                    c.account.approvals_required,
                    c.account.emails.len()
                ),
            ));
        }
        let new = NewRequest {
            account: c.account.id.clone(),
            ips: ips.iter().map(|ip| ip.to_string()).collect(),
            remark: s.remark.trim().to_string(),
            reference,
            requested_by: c.user.username.clone(),
            requested_from: c.ip.to_string(),
            user_agent: c.user_agent.to_string(),
            ttl_secs: self.link_ttl.as_secs(),
            valid_for_secs,
            approvals_required: c.account.approvals_required,
            emails: c.account.emails.clone(),
            idempotency: None,
        };
        Ok(new)
    }

    /// The requester's side of cancelling a pending request (API and portal).
    pub async fn cancel(&self, c: &Requester<'_>, id: String) -> ApiResult<IpRequest> {
        let actor = Actor {
            who: c.user.username.clone(),
            ip: Some(c.ip),
        };
        let account = c.account.id.clone();
        let req = self
            .publisher
            .change(|st| async move { st.cancel_request(account.as_str(), &id, &actor).await })
            .await?;
        self.metrics.count(Status::Cancelled, 1);
        tracing::info!(account = %req.account, request = %req.id, "request cancelled");
        Ok(req)
    }

    /// A decision from the link `view` (its token's hash `link_hash`),
    /// taken from `ip` with `user_agent`: on approval the IPs are live in
    /// the proxy table when this returns, and every account email gets a
    /// notice.
    pub async fn decide(
        &self,
        view: &LinkView,
        link_hash: &str,
        verdict: Verdict,
        ip: IpAddr,
        user_agent: &str,
    ) -> Result<IpRequest, StoreError> {
        let (link_hash, ua) = (link_hash.to_string(), user_agent.to_string());
        let (r, _added) = self
            .publisher
            .change(|st| async move { st.decide(&link_hash, verdict, ip, &ua).await })
            .await?;
        self.mail_wake.notify_one();
        if r.status == Status::Pending {
            tracing::info!(account = %r.account, request = %r.id, by = %view.link.email, approvals = r.approvals.len(), needed = r.approvals_required, "approval counted; more are needed");
            return Ok(r);
        }
        self.metrics.count(r.status, 1);
        tracing::info!(account = %r.account, request = %r.id, status = r.status.as_str(), by = %view.link.email, "request decided from a link");
        Ok(r)
    }
}

/// What a key already used answers: the request as first created when
/// the submission is the same, else a refusal naming the header.
fn replay(record: KeyRecord, key: &IdempotencyKey, c: &Requester<'_>) -> ApiResult<IpRequest> {
    if record.fingerprint != key.fingerprint {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            idempotency::HEADER,
            format!(
                "This Idempotency-Key was used in the last 24 hours for request {} with a different body: send a new key for a new request.",
                record.request.id
            ),
        ));
    }
    tracing::info!(account = %c.account.id, request = %record.request.id, "request submission repeated with its Idempotency-Key: answered with the first");
    Ok(record.request)
}

/// A `reference`: absent, or 1 to 64 characters, none of them a control
/// character, not only spaces.
pub fn check_reference(text: Option<&str>) -> ApiResult<Option<String>> {
    let Some(text) = text else {
        return Ok(None);
    };
    let n = text.chars().count();
    if n == 0
        || n > MAX_REFERENCE_LEN
        || text.trim().is_empty()
        || text.chars().any(char::is_control)
    {
        return Err(ApiError::bad(
            "reference",
            "A reference is your own id for the request: 1 to 64 characters on one line (no control characters); leave it out if you have none.",
        ));
    }
    Ok(Some(text.to_string()))
}

/// How long a request's entries stay once approved: a duration such as
/// `"7d"` (1s to 366d), or none (blank, or absent) for until removed.
pub fn parse_valid_for(text: Option<&str>) -> ApiResult<Option<u64>> {
    let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    crate::domain::tokens::parse_lifetime(&serde_json::Value::from(text))
        .map(|d| Some(d.as_secs()))
        .map_err(|_| {
            ApiError::bad(
                "valid_for",
                "How long to whitelist is a duration such as \"7d\", \"12h\" or \"30m\", from 1s to 366d; leave it out to keep the IPs until removed.",
            )
        })
}

/// Marks the pending requests past their expiry as expired, through the
/// publisher, and counts them.
pub async fn expire_due(publisher: &Publisher, metrics: &FlowMetrics) {
    match publisher
        .change(|st| async move { st.expire_due().await })
        .await
    {
        Ok(0) => {}
        Ok(n) => {
            metrics.count(Status::Expired, n as u64);
            tracing::info!(expired = n, "pending requests expired");
        }
        Err(e) => tracing::error!(error = %e, "expiring requests failed"),
    }
}
