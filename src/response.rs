//! Rejections and the answers the layer gives: AWS's 403 and 429s, their gRPC forms, the
//! `Retry-After` and IETF rate-limit headers, and custom responses (AWS's gateway responses).
//!
//! | case | status | body | `x-amzn-ErrorType` | gRPC status |
//! |---|---|---|---|---|
//! | no key | 403 | `{"message":"Forbidden"}` | `ForbiddenException` | `UNAUTHENTICATED` (16) |
//! | unknown or disabled key, no plan on the stage | 403 | `{"message":"Forbidden"}` | `ForbiddenException` | `PERMISSION_DENIED` (7) |
//! | throttled | 429 | `{"message":"Too Many Requests"}` | `TooManyRequestsException` | `RESOURCE_EXHAUSTED` (8) |
//! | quota used up | 429 | `{"message":"Limit Exceeded"}` | `LimitExceededException` | `RESOURCE_EXHAUSTED` (8) |
//! | store or meter failed (fail closed) | 503 | `{"message":"Service Unavailable"}` | `ServiceUnavailableException` | `UNAVAILABLE` (14) |
//!
//! Both 429s carry `Retry-After` in whole seconds (at least 1): until the next token, or until the
//! quota window resets. With the rate-limit headers on, admitted and refused answers carry
//! `RateLimit-Policy` and `RateLimit` (draft-ietf-httpapi-ratelimit-headers-10), e.g.
//! `RateLimit-Policy: "burst";q=10;w=2, "day";q=1000;w=86400` and
//! `RateLimit: "burst";r=3;t=1, "day";r=998;t=5000`.
//!
//! A gRPC request (content type `application/grpc…`) is answered as gRPC clients expect: HTTP 200,
//! trailers-only, with `grpc-status`, a `grpc-message` saying which limit (for a missing key, the
//! header the layer reads it from), and `retry-after`. A gRPC-web request
//! (`application/grpc-web`, `…+proto`, `application/grpc-web-text`, `…-text+proto`) gets its own
//! content type back, the same headers, and a body holding the status in a grpc-web trailer frame
//! (flag `0x80`), base64-encoded for the `-text` forms. Custom answers
//! ([`GatewayResponse`]) apply to plain HTTP only: gRPC clients read the status, not a body.
//!
//! # Examples
//!
//! ```
//! use http::StatusCode;
//! use tower_usage_plans::response::{Rejection, ResponseType};
//!
//! let r = Rejection::QuotaExceeded { retry_after_secs: 3600 };
//! assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
//! assert_eq!(r.body(), r#"{"message":"Limit Exceeded"}"#);
//! assert_eq!(r.error_type(), "LimitExceededException");
//! assert_eq!(r.retry_after(), Some(3600));
//! assert_eq!(r.response_type(), ResponseType::QuotaExceeded);
//! assert_eq!(r.grpc_status(), 8);
//! ```

use bytes::Bytes;
use http::header::{CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};

use crate::body::ResponseBody;
use crate::headers::{RateInfo, RATELIMIT, RATELIMIT_POLICY};
use crate::key::KeySource;
pub use crate::rejection::{Rejection, ResponseType};

/// A custom answer for one [`ResponseType`] (AWS's gateway response): the status, headers added
/// to the answer, and the body.
#[derive(Clone, Debug)]
pub struct GatewayResponse {
    /// The status.
    pub status: StatusCode,
    /// Headers to send (they replace the layer's own of the same name).
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl GatewayResponse {
    /// An answer with this status and body, and `content-type: application/json`.
    pub fn json(status: StatusCode, body: impl Into<Bytes>) -> Self {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, JSON.clone());
        Self {
            status,
            headers,
            body: body.into(),
        }
    }
}

/// The answers of a layer: the custom ones, by [`ResponseType`].
#[derive(Clone, Debug)]
pub(crate) struct Responses {
    custom: [Option<GatewayResponse>; 4],
    /// The headers every HTTP refusal of a kind starts with (content type, `x-amzn-ErrorType`,
    /// a custom answer's own headers), built once per layer: a refusal clones them and adds
    /// `Retry-After` and the rate-limit headers, unless the custom answer sets those itself.
    templates: [HeaderMap; 4],
}

impl Default for Responses {
    fn default() -> Self {
        let mut r = Self {
            custom: Default::default(),
            templates: Default::default(),
        };
        for kind in [
            ResponseType::Forbidden,
            ResponseType::Throttled,
            ResponseType::QuotaExceeded,
            ResponseType::Unavailable,
        ] {
            r.prepare(kind);
        }
        r
    }
}

impl Responses {
    pub(crate) fn set(&mut self, kind: ResponseType, response: GatewayResponse) {
        self.custom[kind.index()] = Some(response);
        self.prepare(kind);
    }

    fn prepare(&mut self, kind: ResponseType) {
        let custom = &self.custom[kind.index()];
        let mut headers = HeaderMap::with_capacity(6);
        if custom.is_none() {
            headers.insert(CONTENT_TYPE, JSON.clone());
        }
        headers.insert(
            X_AMZN_ERROR_TYPE.clone(),
            HeaderValue::from_static(kind.error_type()),
        );
        // A custom answer's own headers replace the layer's of the same name.
        for (name, value) in custom.iter().flat_map(|c| &c.headers) {
            headers.insert(name.clone(), value.clone());
        }
        self.templates[kind.index()] = headers;
    }
}

static JSON: HeaderValue = HeaderValue::from_static("application/json");
static GRPC: HeaderValue = HeaderValue::from_static("application/grpc");
static X_AMZN_ERROR_TYPE: HeaderName = HeaderName::from_static("x-amzn-errortype");
static GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
static GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");

/// The gRPC protocol a request speaks, for its refusal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Grpc {
    /// `application/grpc…`: a trailers-only answer.
    Plain,
    /// `application/grpc-web…` (this content type): the status in the headers and in a trailer
    /// frame in the body.
    Web(HeaderValue),
    /// `application/grpc-web-text…` (this content type): as `Web`, the body in base64.
    WebText(HeaderValue),
}

/// The `grpc-message` of a refusal: a missing key names where the layer reads it.
fn grpc_message(rejection: Rejection, key_source: &KeySource) -> HeaderValue {
    match (rejection, key_source) {
        (Rejection::MissingKey, KeySource::Header(name)) if name != "x-api-key" => {
            HeaderValue::try_from(format!("API key required: send it in the {name} metadata"))
                .unwrap_or_else(|_| HeaderValue::from_static("API key required"))
        }
        (Rejection::MissingKey, KeySource::Authorizer) => {
            HeaderValue::from_static("API key required")
        }
        _ => HeaderValue::from_static(rejection.grpc_message()),
    }
}

/// A grpc-web trailer frame (flag 0x80, a 4-byte big-endian length, then the trailers as
/// `name:value\r\n` lines) carrying these headers.
fn grpc_web_trailers(headers: &HeaderMap) -> Vec<u8> {
    let mut block = Vec::with_capacity(64);
    for name in [&GRPC_STATUS, &GRPC_MESSAGE] {
        if let Some(value) = headers.get(name) {
            block.extend_from_slice(name.as_str().as_bytes());
            block.push(b':');
            block.extend_from_slice(value.as_bytes());
            block.extend_from_slice(b"\r\n");
        }
    }
    let mut frame = Vec::with_capacity(5 + block.len());
    frame.push(0x80);
    // The block is two short lines: its length always fits.
    frame.extend_from_slice(&u32::try_from(block.len()).unwrap_or(u32::MAX).to_be_bytes());
    frame.extend_from_slice(&block);
    frame
}

/// Builds the answer to a refused request: `grpc` says which gRPC protocol the request speaks,
/// if any, and `key_source` where a missing key should have been.
pub(crate) fn reject<B>(
    rejection: Rejection,
    rate: Option<&RateInfo>,
    grpc: Option<Grpc>,
    responses: &Responses,
    key_source: &KeySource,
) -> Response<ResponseBody<B>> {
    let kind = rejection.response_type();
    let retry_after = rejection.retry_after().map(|s| HeaderValue::from(s.max(1)));
    let mut headers;
    let (status, body) = if let Some(grpc) = grpc {
        headers = HeaderMap::with_capacity(6);
        let content_type = match &grpc {
            Grpc::Plain => GRPC.clone(),
            Grpc::Web(ct) | Grpc::WebText(ct) => ct.clone(),
        };
        headers.insert(CONTENT_TYPE, content_type);
        headers.insert(
            GRPC_STATUS.clone(),
            HeaderValue::from(rejection.grpc_status()),
        );
        headers.insert(GRPC_MESSAGE.clone(), grpc_message(rejection, key_source));
        let body = match grpc {
            Grpc::Plain => Bytes::new(),
            Grpc::Web(_) => Bytes::from(grpc_web_trailers(&headers)),
            Grpc::WebText(_) => {
                use base64::Engine as _;
                let frame = grpc_web_trailers(&headers);
                Bytes::from(base64::engine::general_purpose::STANDARD.encode(frame))
            }
        };
        if let Some(retry) = retry_after {
            headers.insert(RETRY_AFTER, retry);
        }
        if let Some(rate) = rate {
            rate.write(&mut headers);
        }
        (StatusCode::OK, body)
    } else {
        let custom = &responses.custom[kind.index()];
        let sets = |name: &HeaderName| {
            custom
                .as_ref()
                .is_some_and(|c| c.headers.contains_key(name))
        };
        let template = &responses.templates[kind.index()];
        headers = if retry_after.is_none() && rate.is_none() {
            // Nothing to add (a 403, a 503): the template as it is.
            template.clone()
        } else {
            // A clone has no room to grow: room for three more from the start.
            let mut h = HeaderMap::with_capacity(template.len() + 3);
            h.extend(template.iter().map(|(n, v)| (n.clone(), v.clone())));
            h
        };
        if let Some(retry) = retry_after {
            if !sets(&RETRY_AFTER) {
                headers.insert(RETRY_AFTER, retry);
            }
        }
        if let Some(rate) = rate {
            rate.write(&mut headers);
            // A custom answer's own rate-limit headers win over the layer's.
            for name in [&RATELIMIT, &RATELIMIT_POLICY] {
                if let Some(value) = custom.as_ref().and_then(|c| c.headers.get(name)) {
                    headers.insert(name.clone(), value.clone());
                }
            }
        }
        match custom {
            Some(custom) => (custom.status, custom.body.clone()),
            None => (
                rejection.status(),
                Bytes::from_static(rejection.body().as_bytes()),
            ),
        }
    };
    let mut response = Response::new(ResponseBody::full(body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}
