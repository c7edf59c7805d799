//! The admin API's extractors: a request's path parameters, query and body, each refused with
//! AWS's error (an [`AdminError`]) instead of axum's plain-text rejections.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::AdminError;
use super::wire::Query;

/// The 404 for a request no operation serves, naming what the server serves.
pub(crate) fn unknown(method: &http::Method, path: &str) -> AdminError {
    AdminError::not_found(format!(
        "no operation {method} {path}: this server serves /apikeys[/{{api_Key}}], \
         /usageplans[/{{usageplanId}}], /usageplans/{{usageplanId}}/keys[/{{keyId}}], \
         /usageplans/{{usageplanId}}/usage, /usageplans/{{usageplanId}}/keys/{{keyId}}/usage \
         and /tags/{{resource_arn}}"
    ))
}

/// The body's message when it is over the limit of the body-limit layer.
fn too_large(limit: usize) -> AdminError {
    AdminError::bad_request(format!(
        "the request body is larger than {limit} bytes, the most this server reads; send less \
         (import keys in several files)"
    ))
}

/// The request's body, read within the limit the body-limit layer (axum's
/// [`DefaultBodyLimit`](axum::extract::DefaultBodyLimit)) set; `limit` is only for the message.
pub(crate) async fn buffered(req: Request, limit: usize) -> Result<(Parts, Bytes), AdminError> {
    let (parts, body) = req.into_parts();
    let req = Request::from_parts(parts.clone(), body);
    let bytes = Bytes::from_request(req, &()).await.map_err(|e| {
        if e.status() == http::StatusCode::PAYLOAD_TOO_LARGE {
            too_large(limit)
        } else {
            AdminError::bad_request(format!(
                "the request body could not be read: {}",
                e.body_text()
            ))
        }
    })?;
    Ok((parts, bytes))
}

/// What the extractors need of the router's state: the body limit, for the message.
pub(crate) trait Limits {
    /// The largest body read, in bytes.
    fn body_limit(&self) -> usize;
}

/// The request body, whole (at most the body limit).
pub(crate) struct Body(pub(crate) Bytes);

impl<St: Limits + Send + Sync> FromRequest<St> for Body {
    type Rejection = AdminError;

    async fn from_request(req: Request, state: &St) -> Result<Self, AdminError> {
        buffered(req, state.body_limit())
            .await
            .map(|(_, bytes)| Self(bytes))
    }
}

/// The path's parameters (`{api_Key}`, `{usageplanId}`, ...), percent-decoded; a parameter that
/// is not UTF-8 is an unknown operation, as before routing.
pub(crate) struct Ids<T>(pub(crate) T);

impl<St: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<St> for Ids<T> {
    type Rejection = AdminError;

    async fn from_request_parts(parts: &mut Parts, state: &St) -> Result<Self, AdminError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(t)) => Ok(Self(t)),
            Err(_) => Err(unknown(&parts.method, parts.uri.path())),
        }
    }
}

impl<St: Send + Sync> FromRequestParts<St> for Query {
    type Rejection = AdminError;

    async fn from_request_parts(parts: &mut Parts, _: &St) -> Result<Self, AdminError> {
        Query::parse(parts.uri.query())
    }
}
