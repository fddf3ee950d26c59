//! The API error shape, `{"errors":[{"field","message"}]}`, and a JSON
//! extractor that answers bad bodies in that shape.

use crate::store::StoreError;
use axum::body::{Body, Bytes};
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, OptionalFromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::value::MapAccessDeserializer;
use serde::de::{DeserializeOwned, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use std::marker::PhantomData;
use utoipa::ToSchema;

/// What is wrong with one field (or `body`, `authorization`, `store`, ...).
#[derive(Debug, Serialize, ToSchema)]
pub struct FieldError {
    /// The field the message is about: a body field (`ips[0]` for an
    /// element), or `body`, `authorization`, `path`, `store`.
    pub field: String,
    /// What is wrong and what to do, for a person to read.
    pub message: String,
}

/// Every refusal of both APIs: one or more field errors.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub errors: Vec<FieldError>,
}

/// An error answer: a status and one or more field errors.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub errors: Vec<FieldError>,
}

impl ApiError {
    pub fn new(status: StatusCode, field: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            errors: vec![FieldError {
                field: field.into(),
                message: message.into(),
            }],
        }
    }
    pub fn bad(field: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, field, message)
    }
    pub fn not_found(what: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, what, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(ErrorBody {
                errors: self.errors,
            }),
        )
            .into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::NoAccount(_) => ApiError::not_found("account", e.to_string()),
            StoreError::NoEntry(_) => ApiError::not_found("id", e.to_string()),
            StoreError::AccountExists(_) => {
                ApiError::new(StatusCode::CONFLICT, "id", e.to_string())
            }
            StoreError::IdTaken { .. } => ApiError::new(StatusCode::CONFLICT, "id", e.to_string()),
            StoreError::NameTaken { .. } => {
                ApiError::new(StatusCode::CONFLICT, "value", e.to_string())
            }
            StoreError::KeyTaken { .. } => {
                ApiError::new(StatusCode::CONFLICT, "key", e.to_string())
            }
            StoreError::NoIdentity(_) | StoreError::NoKey(_) => {
                ApiError::not_found("id", e.to_string())
            }
            StoreError::Duplicate(_) => ApiError::new(StatusCode::CONFLICT, "cidr", e.to_string()),
            StoreError::UserExists(_) => {
                ApiError::new(StatusCode::CONFLICT, "username", e.to_string())
            }
            StoreError::NoUser(_) => ApiError::not_found("username", e.to_string()),
            StoreError::NoToken(_) => ApiError::not_found("id", e.to_string()),
            StoreError::PendingExists => ApiError::new(
                StatusCode::CONFLICT,
                "ips",
                "This account already has a pending request: approve, reject or cancel it first.",
            ),
            StoreError::KeyUsed => ApiError::new(
                StatusCode::CONFLICT,
                crate::store::idempotency::HEADER,
                e.to_string(),
            ),
            StoreError::NoRequest(_) => ApiError::not_found("id", e.to_string()),
            StoreError::NoLink => ApiError::not_found("token", e.to_string()),
            StoreError::LinkAddressRemoved => {
                ApiError::new(StatusCode::GONE, "token", e.to_string())
            }
            StoreError::CodeUsed => ApiError::new(StatusCode::UNAUTHORIZED, "code", e.to_string()),
            StoreError::NotPending { .. }
            | StoreError::AlreadyApproved { .. }
            | StoreError::AlreadyDisowned(_) => {
                ApiError::new(StatusCode::CONFLICT, "status", e.to_string())
            }
            StoreError::Frozen => ApiError::new(StatusCode::FORBIDDEN, "account", e.to_string()),
            StoreError::Open { .. }
            | StoreError::Locked { .. }
            | StoreError::Sled(_)
            | StoreError::Unavailable(_)
            | StoreError::Postgres(_)
            | StoreError::Conflict(_)
            | StoreError::PgConfig(_)
            | StoreError::SchemaTooNew { .. }
            | StoreError::NotEmpty
            | StoreError::Corrupt(_)
            | StoreError::LogHead(_)
            | StoreError::LogKeyMismatch { .. } => {
                tracing::error!(error = %e, "store failure");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store",
                    "the store cannot take changes right now; nothing was saved \
                     (if its disk is full or failing: fix that, then restart ipgate)",
                )
            }
        }
    }
}

/// `Json<T>` whose refusals use the API error shape. Only a JSON object is
/// a body: serde alone would read a struct from an array of its fields in
/// order (`["acme","Acme"]`).
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match <Json<Object<T>> as FromRequest<S>>::from_request(req, state).await {
            Ok(Json(Object(v))) => Ok(ApiJson(v)),
            Err(rejection) => Err(rejection_error(rejection)),
        }
    }
}

/// An optional body: none when the request has no body bytes at all;
/// otherwise read exactly as [`ApiJson`] reads it (JSON content type, an
/// object), so a body that is there is never ignored.
impl<S, T> OptionalFromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Option<Self>, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let bytes = Bytes::from_request(Request::from_parts(parts.clone(), body), state)
            .await
            .map_err(|r| ApiError::new(r.status(), "body", r.body_text()))?;
        if bytes.is_empty() {
            return Ok(None);
        }
        let req = Request::from_parts(parts, Body::from(bytes));
        <ApiJson<T> as FromRequest<S>>::from_request(req, state)
            .await
            .map(Some)
    }
}

/// `T`, read only from a JSON object (duplicate and unknown fields still
/// checked by `T`).
struct Object<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Fields<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for Fields<T> {
            type Value = T;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object {\"field\": value, ...}")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map))
            }
        }
        d.deserialize_map(Fields(PhantomData)).map(Object)
    }
}

fn rejection_error(r: JsonRejection) -> ApiError {
    let status = match r {
        JsonRejection::MissingJsonContentType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        _ => StatusCode::BAD_REQUEST,
    };
    ApiError::new(status, "body", r.body_text())
}
