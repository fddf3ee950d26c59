//! Which account a call is judged as. Every source of the route that is
//! present in the call must resolve, and all to the same account: the
//! account ids and aliases in the table for identifiers, the registered key
//! hashes (else introspection) for secret keys. A source that does not
//! resolve beside one that does, or two that name different accounts, is
//! ambiguous; a malformed source is never skipped. So a caller can never
//! name an account other than the one its credentials authenticate.

mod auth;
mod json;
mod params;

use crate::table::{AccountView, Table};
use ipgate_config::{AccountSource, KeySource};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// Longest account id accepted anywhere.
pub const MAX_ACCOUNT_ID: usize = 128;

/// Longest secret key looked up.
pub const MAX_KEY: usize = 4096;

/// Whether `id` is a well-formed account id or identity: 1 to 128 of
/// `A-Z a-z 0-9 . _ - @ +`.
pub fn valid_account_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ACCOUNT_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@' | b'+'))
}

/// Whether `key` can be a secret key: 1 to [`MAX_KEY`] bytes of visible
/// ASCII without spaces. The admin API registers only such keys.
pub fn valid_key(key: &[u8]) -> bool {
    !key.is_empty() && key.len() <= MAX_KEY && key.iter().all(|&b| (0x21..0x7f).contains(&b))
}

/// Why the sources of a call could not be read. Each is a 401
/// `unidentified`: a malformed source is never passed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.message())]
pub enum AccountError {
    BadBasicAuth,
    BadAccountId,
    Repeated,
    DisguisedName,
    BadEncoding,
    BadKey,
    BadBody,
    BodyType,
}

impl AccountError {
    /// The sentence a denial answers with.
    pub fn message(self) -> &'static str {
        match self {
            AccountError::BadBasicAuth => {
                "The Authorization header is not valid Basic credentials (padded base64 of user:password)."
            }
            AccountError::BadAccountId => {
                "An account identifier in the request is malformed (1-128 of A-Z a-z 0-9 . _ - @ +)."
            }
            AccountError::Repeated => {
                "A header, parameter or field that names the account is given more than once."
            }
            AccountError::DisguisedName => {
                "A parameter or member name only matches after percent-decoding or in another letter case; send it as the API documents it."
            }
            AccountError::BadEncoding => {
                "A value that names the account is not valid percent-encoded UTF-8."
            }
            AccountError::BadKey => "An API key in the request is malformed.",
            AccountError::BadBody => "The request body does not parse as its Content-Type says.",
            AccountError::BodyType => {
                "This API reads the account from the body: send it as application/x-www-form-urlencoded or application/json."
            }
        }
    }
}

/// An account id copied out of the table, without allocating.
#[derive(Clone, Copy)]
pub struct AccountName {
    len: u8,
    bytes: [u8; MAX_ACCOUNT_ID],
}

impl AccountName {
    /// `id`, cut to [`MAX_ACCOUNT_ID`] bytes (no table id is longer).
    pub fn new(id: &str) -> AccountName {
        let mut bytes = [0u8; MAX_ACCOUNT_ID];
        let n = id.len().min(MAX_ACCOUNT_ID);
        bytes[..n].copy_from_slice(&id.as_bytes()[..n]);
        AccountName {
            len: n as u8,
            bytes,
        }
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl std::fmt::Debug for AccountName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The request body as the sources see it.
#[derive(Debug, Clone, Copy)]
pub enum Body<'r> {
    /// The request has no body.
    None,
    /// The request has a body that has not been read.
    Unread,
    /// The whole body.
    Read(&'r [u8]),
}

/// A secret key that must be introspected before the call is judged. Its
/// text never reaches a log: `Debug` prints only that it is redacted.
pub struct PendingKey {
    pub key: Vec<u8>,
    pub sha256: [u8; 32],
}

impl std::fmt::Debug for PendingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PendingKey([redacted])")
    }
}

/// Answers of the introspection endpoint already known, by key hash:
/// `Some(Some(name))` an identity, `Some(None)` a key it does not know.
pub trait KeyAnswers {
    fn cached(&self, sha256: &[u8; 32]) -> Option<Option<Arc<str>>>;
}

/// Who the sources name.
#[derive(Debug, Clone, Copy)]
pub enum Caller<'t> {
    /// No source is present in the call.
    Nobody,
    Account(AccountView<'t>),
    /// Sources are present and none resolves.
    Unknown,
    /// Present sources disagree, or one resolves and another does not.
    Ambiguous,
    Malformed(AccountError),
}

/// The outcome of reading a call's sources.
#[derive(Debug)]
pub enum Identified<'t> {
    Done(Caller<'t>),
    /// A body source needs the body, which has not been read.
    NeedBody,
    /// A key must be introspected first.
    Introspect(PendingKey),
}

/// What sources resolve through: the table, and introspection answers when
/// `proxy.introspect_url` is set.
#[derive(Clone, Copy)]
pub struct Lookup<'t> {
    pub table: &'t Table,
    pub answers: Option<&'t dyn KeyAnswers>,
}

/// What one source gave.
enum Found<'t> {
    Absent,
    Resolved(Option<AccountView<'t>>),
    NeedBody,
    Introspect(PendingKey),
}

/// Reads every source of a route from a call and says who they name.
/// `rest` is the normalised path after the route prefix.
pub fn identify<'t, H: crate::head::Head>(
    sources: &[AccountSource],
    req: &H,
    rest: &str,
    body: Body<'_>,
    lookup: Lookup<'t>,
) -> Identified<'t> {
    let mut seen: Option<Option<AccountView<'t>>> = None;
    let mut ambiguous = false;
    let mut need_body = false;
    let mut pending = None;
    let mut parsed_json = None;
    for source in sources {
        let found = match read(source, req, rest, body, &mut parsed_json, lookup) {
            Ok(f) => f,
            Err(e) => return Identified::Done(Caller::Malformed(e)),
        };
        let this = match found {
            Found::Absent => continue,
            Found::NeedBody => {
                need_body = true;
                continue;
            }
            Found::Introspect(k) => {
                pending = pending.or(Some(k));
                continue;
            }
            Found::Resolved(r) => r,
        };
        match (&seen, this) {
            (None, _) => seen = Some(this),
            (Some(Some(a)), Some(b)) if a.same(&b) => {}
            (Some(None), None) => {}
            _ => ambiguous = true,
        }
    }
    if need_body {
        return Identified::NeedBody;
    }
    if let Some(k) = pending {
        return Identified::Introspect(k);
    }
    Identified::Done(match seen {
        _ if ambiguous => Caller::Ambiguous,
        None => Caller::Nobody,
        Some(None) => Caller::Unknown,
        Some(Some(a)) => Caller::Account(a),
    })
}

/// What kind of body a Content-Type announces.
#[derive(Clone, Copy, PartialEq, Eq)]
enum BodyKind {
    Form,
    Json,
    Other,
}

/// The one Content-Type of the call.
fn content_type<H: crate::head::Head>(req: &H) -> Result<Option<&[u8]>, AccountError> {
    let mut values = req.values("content-type");
    let first = values.next();
    if values.next().is_some() {
        return Err(AccountError::Repeated);
    }
    Ok(first)
}

fn body_kind(content_type: Option<&[u8]>) -> BodyKind {
    let Some(ct) = content_type else {
        return BodyKind::Other;
    };
    let essence = ct
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    if essence.eq_ignore_ascii_case(b"application/x-www-form-urlencoded") {
        BodyKind::Form
    } else if essence.eq_ignore_ascii_case(b"application/json")
        || (essence.len() > 5
            && essence[essence.len() - 5..].eq_ignore_ascii_case(b"+json")
            && essence.starts_with(b"application/"))
    {
        BodyKind::Json
    } else {
        BodyKind::Other
    }
}

fn read<'t, H: crate::head::Head>(
    source: &AccountSource,
    req: &H,
    rest: &str,
    body: Body<'_>,
    parsed_json: &mut Option<json::Strict>,
    lookup: Lookup<'t>,
) -> Result<Found<'t>, AccountError> {
    let name = |v: Option<&str>| match v {
        None => Ok(Found::Absent),
        Some(v) => resolve_name(lookup.table, v),
    };
    let key = |v: Option<&[u8]>| match v {
        None => Ok(Found::Absent),
        Some(v) => resolve_key(lookup, v),
    };
    match source {
        AccountSource::BasicUser => {
            auth::with_basic(req, |user, _| name(Some(user).filter(|u| !u.is_empty())))
                .unwrap_or(Ok(Found::Absent))
        }
        AccountSource::Key(KeySource::BasicPassword) => auth::with_basic(req, |_, password| {
            key(Some(password.as_bytes()).filter(|p| !p.is_empty()))
        })
        .unwrap_or(Ok(Found::Absent)),
        AccountSource::Key(KeySource::Bearer) => key(auth::bearer(req)?),
        AccountSource::Header(h) => name(auth::single_header(req, h)?),
        AccountSource::Key(KeySource::Header(h)) => {
            key(auth::single_header(req, h)?.map(str::as_bytes))
        }
        AccountSource::Query(q) => {
            let v = params::find(req.query().unwrap_or_default().as_bytes(), q)?;
            name(v.as_deref())
        }
        AccountSource::Key(KeySource::Query(q)) => {
            let v = params::find(req.query().unwrap_or_default().as_bytes(), q)?;
            key(v.as_deref().map(str::as_bytes))
        }
        AccountSource::PathSegment(n) => name(rest.split('/').filter(|s| !s.is_empty()).nth(*n)),
        AccountSource::Form(f) | AccountSource::Key(KeySource::Form(f)) => {
            let bytes = match body_for(req, body, BodyKind::Form)? {
                Some(Ok(b)) => b,
                Some(Err(f)) => return Ok(f),
                None => return Ok(Found::Absent),
            };
            let v = params::find(bytes, f)?;
            if matches!(source, AccountSource::Form(_)) {
                name(v.as_deref())
            } else {
                key(v.as_deref().map(str::as_bytes))
            }
        }
        AccountSource::Json(pointer) => {
            let bytes = match body_for(req, body, BodyKind::Json)? {
                Some(Ok(b)) => b,
                Some(Err(f)) => return Ok(f),
                None => return Ok(Found::Absent),
            };
            if parsed_json.is_none() {
                *parsed_json = Some(json::Strict::parse(bytes)?);
            }
            let v = match parsed_json {
                Some(doc) => doc.text(pointer)?,
                None => None,
            };
            name(v.as_deref())
        }
    }
}

/// The body for a source that reads `kind`: `None` when it is absent for
/// this call, `Some(Err(NeedBody))` when it has not been read yet.
#[allow(clippy::type_complexity)]
fn body_for<'b, 't, H: crate::head::Head>(
    req: &H,
    body: Body<'b>,
    kind: BodyKind,
) -> Result<Option<Result<&'b [u8], Found<'t>>>, AccountError> {
    match body {
        Body::None => Ok(None),
        Body::Unread => Ok(Some(Err(Found::NeedBody))),
        Body::Read([]) => Ok(None),
        Body::Read(b) => match body_kind(content_type(req)?) {
            k if k == kind => Ok(Some(Ok(b))),
            BodyKind::Other => Err(AccountError::BodyType),
            // A body of the route's other kind: this source is absent.
            _ => Ok(None),
        },
    }
}

fn resolve_name<'t>(table: &'t Table, v: &str) -> Result<Found<'t>, AccountError> {
    if !valid_account_id(v) {
        return Err(AccountError::BadAccountId);
    }
    Ok(Found::Resolved(table.resolve_name(v)))
}

fn resolve_key<'t>(lookup: Lookup<'t>, key: &[u8]) -> Result<Found<'t>, AccountError> {
    if !valid_key(key) {
        return Err(AccountError::BadKey);
    }
    let sha256: [u8; 32] = Sha256::digest(key).into();
    if let Some(a) = lookup.table.resolve_key(&sha256) {
        return Ok(Found::Resolved(Some(a)));
    }
    let Some(answers) = lookup.answers else {
        return Ok(Found::Resolved(None));
    };
    Ok(match answers.cached(&sha256) {
        Some(Some(name)) => Found::Resolved(lookup.table.resolve_name(&name)),
        Some(None) => Found::Resolved(None),
        None => Found::Introspect(PendingKey {
            key: key.to_vec(),
            sha256,
        }),
    })
}

#[cfg(test)]
mod tests;
