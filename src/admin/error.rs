//! The admin API's answers to a refused request, as AWS sends them: a status, the
//! `x-amzn-ErrorType` header and a body `{"message": "..."}`.

use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, StatusCode};

use crate::error::{FieldError, MeterError, StoreError};
use crate::usage::UsageError;

/// A refused admin request: AWS's error type, its status and a message saying what to fix.
///
/// The message never holds a key's value. Its `Display` is `"{kind}: {message}"`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {message}")]
pub(crate) struct AdminError {
    /// The status: 400, 403, 404, 409, 413, 429, 503.
    pub(crate) status: StatusCode,
    /// AWS's error type, sent as `x-amzn-ErrorType`: `BadRequestException`, `NotFoundException`,
    /// `ConflictException`, `MissingAuthenticationTokenException`, ...
    pub(crate) kind: &'static str,
    /// What went wrong and what would be right.
    pub(crate) message: String,
}

impl AdminError {
    /// An error of this status and type.
    pub(crate) fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            message: message.into(),
        }
    }

    /// 400 `BadRequestException`.
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequestException", message)
    }

    /// 404 `NotFoundException`.
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NotFoundException", message)
    }

    /// 409 `ConflictException`.
    pub(crate) fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "ConflictException", message)
    }

    /// 503 `ServiceUnavailableException`, for a store or meter that failed. The cause is logged,
    /// not sent.
    pub(crate) fn unavailable(what: &str, cause: &dyn std::error::Error) -> Self {
        tracing::error!(error = %cause, "admin API: the {what} failed");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailableException",
            format!("the {what} failed; try again later (the server's log has the cause)"),
        )
    }
}

impl From<FieldError> for AdminError {
    fn from(e: FieldError) -> Self {
        Self::bad_request(e.to_string())
    }
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { .. } => Self::not_found(e.to_string()),
            StoreError::Conflict(_) => Self::conflict(e.to_string()),
            StoreError::Invalid(f) => f.into(),
            other => Self::unavailable("key store", &other),
        }
    }
}

impl From<MeterError> for AdminError {
    fn from(e: MeterError) -> Self {
        match e {
            MeterError::Invalid(f) => f.into(),
            other => Self::unavailable("meter", &other),
        }
    }
}

impl From<UsageError> for AdminError {
    fn from(e: UsageError) -> Self {
        match e {
            UsageError::Invalid(f) => f.into(),
            UsageError::Store(s) => s.into(),
            UsageError::Meter(m) => m.into(),
        }
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "message": self.message }).to_string();
        let mut res = (self.status, body).into_response();
        let h = res.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        h.insert("x-amzn-errortype", HeaderValue::from_static(self.kind));
        res
    }
}

/// Why [`AdminApi::router`](super::AdminApi::router) refused to build.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AdminConfigError {
    /// Neither an access key nor [`AdminApi::no_auth`](super::AdminApi::no_auth).
    #[error(
        "the admin API has no access keys: add one with AdminApi::access_key (the aws CLI signs \
         with the credentials of `aws configure`), or call AdminApi::no_auth for local use"
    )]
    NoAccessKeys,
    /// Access keys and [`AdminApi::no_auth`](super::AdminApi::no_auth) both.
    #[error("the admin API was given access keys and no_auth: keep one")]
    Contradictory,
    /// Two access keys with the same id.
    #[error("the access key id {0:?} is given twice: give each id once")]
    DuplicateAccessKey(String),
    /// An access key's text is not `ACCESS_KEY_ID:SECRET` ([`AccessKey`](super::AccessKey)'s
    /// `FromStr`; the message never repeats the text, which may hold a secret).
    #[error("an access key must be written ACCESS_KEY_ID:SECRET, both parts non-empty")]
    AccessKeyText,
}
