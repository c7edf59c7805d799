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
//! trailers-only, with `grpc-status`, a `grpc-message` saying which limit, and `retry-after`.
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

use std::cell::RefCell;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};

use crate::body::ResponseBody;
use crate::meter::{LimitState, Verdict};
use crate::model::QuotaPeriod;

/// Why the layer refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rejection {
    /// The request carries no key.
    MissingKey,
    /// The key is malformed or no key has its value.
    InvalidKey,
    /// The key is disabled.
    DisabledKey,
    /// The key is in no plan on the layer's stage.
    NoPlan,
    /// The key's bucket is empty.
    Throttled {
        /// Seconds until the next token.
        retry_after_secs: u64,
    },
    /// The key's quota for the current window is used up.
    QuotaExceeded {
        /// Seconds until the window resets.
        retry_after_secs: u64,
    },
    /// The key store failed, and the layer fails closed.
    StoreUnavailable,
    /// The meter failed, and the layer fails closed.
    MeterUnavailable,
}

/// The kinds of answer that can be customised, after AWS's gateway response types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ResponseType {
    /// 403: missing, unknown or disabled key, or no plan (AWS's `INVALID_API_KEY`).
    Forbidden,
    /// 429: throttled (AWS's `THROTTLED`).
    Throttled,
    /// 429: quota used up (AWS's `QUOTA_EXCEEDED`).
    QuotaExceeded,
    /// 503: the store or meter failed (AWS's `DEFAULT_5XX`).
    Unavailable,
}

impl ResponseType {
    /// AWS's `x-amzn-ErrorType` for this answer.
    fn error_type(self) -> &'static str {
        match self {
            Self::Forbidden => "ForbiddenException",
            Self::Throttled => "TooManyRequestsException",
            Self::QuotaExceeded => "LimitExceededException",
            Self::Unavailable => "ServiceUnavailableException",
        }
    }

    fn index(self) -> usize {
        match self {
            Self::Forbidden => 0,
            Self::Throttled => 1,
            Self::QuotaExceeded => 2,
            Self::Unavailable => 3,
        }
    }
}

impl Rejection {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self.response_type() {
            ResponseType::Forbidden => StatusCode::FORBIDDEN,
            ResponseType::Throttled | ResponseType::QuotaExceeded => StatusCode::TOO_MANY_REQUESTS,
            ResponseType::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Which customisable answer this is.
    pub fn response_type(&self) -> ResponseType {
        match self {
            Self::MissingKey | Self::InvalidKey | Self::DisabledKey | Self::NoPlan => {
                ResponseType::Forbidden
            }
            Self::Throttled { .. } => ResponseType::Throttled,
            Self::QuotaExceeded { .. } => ResponseType::QuotaExceeded,
            Self::StoreUnavailable | Self::MeterUnavailable => ResponseType::Unavailable,
        }
    }

    /// Seconds a client should wait, for the 429s.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Self::Throttled { retry_after_secs } | Self::QuotaExceeded { retry_after_secs } => {
                Some(*retry_after_secs)
            }
            _ => None,
        }
    }

    /// AWS's body.
    pub fn body(&self) -> &'static str {
        match self.response_type() {
            ResponseType::Forbidden => r#"{"message":"Forbidden"}"#,
            ResponseType::Throttled => r#"{"message":"Too Many Requests"}"#,
            ResponseType::QuotaExceeded => r#"{"message":"Limit Exceeded"}"#,
            ResponseType::Unavailable => r#"{"message":"Service Unavailable"}"#,
        }
    }

    /// AWS's `x-amzn-ErrorType`.
    pub fn error_type(&self) -> &'static str {
        self.response_type().error_type()
    }

    /// The gRPC status code for a gRPC request.
    pub fn grpc_status(&self) -> u16 {
        match self {
            Self::MissingKey => 16,
            Self::InvalidKey | Self::DisabledKey | Self::NoPlan => 7,
            Self::Throttled { .. } | Self::QuotaExceeded { .. } => 8,
            Self::StoreUnavailable | Self::MeterUnavailable => 14,
        }
    }

    /// The `grpc-message` for a gRPC request.
    pub fn grpc_message(&self) -> &'static str {
        match self {
            Self::MissingKey => "API key required: send it in the x-api-key metadata",
            Self::InvalidKey | Self::DisabledKey | Self::NoPlan => "Forbidden",
            Self::Throttled { .. } => "Too Many Requests: throttled",
            Self::QuotaExceeded { .. } => "Limit Exceeded: quota used up",
            Self::StoreUnavailable | Self::MeterUnavailable => "Service Unavailable",
        }
    }
}

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

/// The answers of a layer: the custom ones, and the headers of each HTTP refusal built once, so
/// that a refusal clones a small map instead of building it (no header name hashed per request).
#[derive(Clone, Debug)]
pub(crate) struct Responses {
    custom: [Option<GatewayResponse>; 4],
    /// By [`ResponseType::index`]: the headers of the HTTP answer, with `Retry-After` (for the
    /// 429s) at position `retry_at` as a placeholder to overwrite, unless a custom answer sets it.
    templates: [Template; 4],
}

#[derive(Clone, Debug)]
struct Template {
    headers: HeaderMap,
    retry_at: Option<usize>,
}

const KINDS: [ResponseType; 4] = [
    ResponseType::Forbidden,
    ResponseType::Throttled,
    ResponseType::QuotaExceeded,
    ResponseType::Unavailable,
];

impl Default for Responses {
    fn default() -> Self {
        let mut r = Self {
            custom: Default::default(),
            templates: KINDS.map(|_| Template {
                headers: HeaderMap::new(),
                retry_at: None,
            }),
        };
        for kind in KINDS {
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

    /// Builds the headers of `kind`'s HTTP answer.
    fn prepare(&mut self, kind: ResponseType) {
        let custom = &self.custom[kind.index()];
        let retry = matches!(kind, ResponseType::Throttled | ResponseType::QuotaExceeded);
        let mut headers =
            HeaderMap::with_capacity(3 + custom.as_ref().map_or(0, |c| c.headers.len()));
        if custom.is_none() {
            headers.insert(CONTENT_TYPE, JSON.clone());
        }
        headers.insert(
            X_AMZN_ERROR_TYPE.clone(),
            HeaderValue::from_static(kind.error_type()),
        );
        if retry {
            headers.insert(RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if let Some(custom) = custom {
            for (name, value) in &custom.headers {
                headers.insert(name.clone(), value.clone());
            }
        }
        // Every name here holds one value (inserted, never appended), so a name's place among
        // the keys is its place in `iter_mut`, where `reject` overwrites it.
        let retry_at = if retry
            && custom
                .as_ref()
                .is_none_or(|c| !c.headers.contains_key(RETRY_AFTER))
        {
            headers.keys().position(|n| n == RETRY_AFTER)
        } else {
            None
        };
        self.templates[kind.index()] = Template { headers, retry_at };
    }
}

static JSON: HeaderValue = HeaderValue::from_static("application/json");
static GRPC: HeaderValue = HeaderValue::from_static("application/grpc");
static X_AMZN_ERROR_TYPE: HeaderName = HeaderName::from_static("x-amzn-errortype");
static RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
static RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
static GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
static GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");

/// What the rate-limit headers report, copied out of a [`Verdict`].
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct RateInfo {
    burst: Option<LimitState>,
    quota: Option<(LimitState, QuotaPeriod)>,
}

impl RateInfo {
    pub(crate) fn new(verdict: &Verdict, period: Option<QuotaPeriod>) -> Option<Self> {
        let quota = verdict.quota.zip(period);
        (verdict.burst.is_some() || quota.is_some()).then_some(Self {
            burst: verdict.burst,
            quota,
        })
    }

    /// Adds `RateLimit-Policy` and `RateLimit`.
    pub(crate) fn write(&self, headers: &mut HeaderMap) {
        let mut state = Line::new();
        for (i, (name, s)) in self.items().enumerate() {
            if i > 0 {
                state.put(b", ");
            }
            state.item(name, (b";r=", s.remaining), (b";t=", s.reset_secs));
        }
        if let (Some(p), Ok(s)) = (self.policy(), HeaderValue::from_bytes(state.as_bytes())) {
            headers.insert(RATELIMIT_POLICY.clone(), p);
            headers.insert(RATELIMIT.clone(), s);
        }
    }

    /// The limits reported, by name: the bucket's, then the quota's.
    fn items(&self) -> impl Iterator<Item = (&'static [u8], LimitState)> {
        let quota = self.quota.map(|(q, p)| {
            let name: &'static [u8] = match p {
                QuotaPeriod::Day => b"day",
                QuotaPeriod::Week => b"week",
                QuotaPeriod::Month => b"month",
            };
            (name, q)
        });
        self.burst
            .map(|b| (&b"burst"[..], b))
            .into_iter()
            .chain(quota)
    }

    /// The `RateLimit-Policy` value. It is the same for every request on the same limits, so
    /// each thread keeps the last few it wrote and shares them (a clone counts a reference, on a
    /// line only this thread writes, instead of allocating and checking a new value).
    fn policy(&self) -> Option<HeaderValue> {
        type Key = [u64; 5];
        thread_local! {
            static POLICIES: RefCell<[Option<(Key, HeaderValue)>; 4]> =
                const { RefCell::new([const { None }; 4]) };
        }
        let period = self.quota.map_or(0, |(_, p)| p as u64 + 1);
        let key: Key = [
            self.burst.map_or(u64::MAX, |b| b.limit),
            self.burst.map_or(0, |b| b.window_secs),
            self.quota.map_or(u64::MAX, |(q, _)| q.limit),
            self.quota.map_or(0, |(q, _)| q.window_secs),
            period,
        ];
        let at = (key[0] ^ key[1].rotate_left(16) ^ key[2].rotate_left(32) ^ key[3] ^ period)
            as usize
            % 4;
        POLICIES.with(|policies| {
            let mut policies = policies.borrow_mut();
            if let Some((k, value)) = &policies[at] {
                if *k == key {
                    return Some(value.clone());
                }
            }
            let mut line = Line::new();
            for (i, (name, s)) in self.items().enumerate() {
                if i > 0 {
                    line.put(b", ");
                }
                line.item(name, (b";q=", s.limit), (b";w=", s.window_secs));
            }
            let value = HeaderValue::from_bytes(line.as_bytes()).ok()?;
            policies[at] = Some((key, value.clone()));
            Some(value)
        })
    }
}

/// A header value written on the stack, without the formatting machinery (this runs on every
/// request). Two items of at most 53 bytes each, and their separator, always fit.
struct Line {
    bytes: [u8; 128],
    len: usize,
}

impl Line {
    fn new() -> Self {
        Self {
            bytes: [0; 128],
            len: 0,
        }
    }

    #[inline]
    fn put(&mut self, s: &[u8]) {
        let end = (self.len + s.len()).min(self.bytes.len());
        let out = &mut self.bytes[self.len..end];
        if out.len() <= 8 {
            // The usual pieces are a few bytes: cheaper by hand than through `memcpy`.
            for (o, b) in out.iter_mut().zip(s) {
                *o = *b;
            }
        } else {
            out.copy_from_slice(&s[..out.len()]);
        }
        self.len = end;
    }

    /// Writes `n` in decimal, two digits at a time, in place.
    #[inline]
    fn num(&mut self, mut n: u64) {
        const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
            2021222324252627282930313233343536373839\
            4041424344454647484950515253545556575859\
            6061626364656667686970717273747576777879\
            8081828384858687888990919293949596979899";
        let end = self.len + n.checked_ilog10().map_or(1, |d| d as usize + 1);
        if end > self.bytes.len() {
            return;
        }
        let mut at = end;
        while n >= 100 {
            let pair = (n % 100) as usize * 2;
            n /= 100;
            at -= 2;
            self.bytes[at..at + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
        }
        if n >= 10 {
            let pair = n as usize * 2;
            self.bytes[at - 2..at].copy_from_slice(&PAIRS[pair..pair + 2]);
        } else {
            self.bytes[at - 1] = b'0' + n as u8;
        }
        self.len = end;
    }

    /// `"name";a=1;b=2`
    fn item(&mut self, name: &[u8], a: (&[u8], u64), b: (&[u8], u64)) {
        self.put(b"\"");
        self.put(name);
        self.put(b"\"");
        for (param, n) in [a, b] {
            self.put(param);
            self.num(n);
        }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// `Retry-After` values up to a minute, made without allocating.
const SECS: [&str; 61] = [
    "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16",
    "17", "18", "19", "20", "21", "22", "23", "24", "25", "26", "27", "28", "29", "30", "31", "32",
    "33", "34", "35", "36", "37", "38", "39", "40", "41", "42", "43", "44", "45", "46", "47", "48",
    "49", "50", "51", "52", "53", "54", "55", "56", "57", "58", "59", "60",
];

/// A number of seconds as a header value.
fn secs_value(secs: u64) -> HeaderValue {
    if let Some(s) = usize::try_from(secs).ok().and_then(|i| SECS.get(i)) {
        return HeaderValue::from_static(s);
    }
    thread_local! {
        /// The last longer value this thread wrote: the refusals of one second mostly share it
        /// (a quota's window ends at the same instant for every key), so they share one buffer.
        static LAST: RefCell<Option<(u64, HeaderValue)>> = const { RefCell::new(None) };
    }
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        match &*last {
            Some((s, value)) if *s == secs => value.clone(),
            _ => {
                let value = HeaderValue::from(secs);
                *last = Some((secs, value.clone()));
                value
            }
        }
    })
}

/// Builds the answer to a refused request.
pub(crate) fn reject<B>(
    rejection: Rejection,
    rate: Option<&RateInfo>,
    grpc: bool,
    responses: &Responses,
) -> Response<ResponseBody<B>> {
    let kind = rejection.response_type();
    let (status, body, headers) = if grpc {
        let mut headers = HeaderMap::with_capacity(3 + if rate.is_some() { 2 } else { 0 });
        headers.insert(CONTENT_TYPE, GRPC.clone());
        headers.insert(
            GRPC_STATUS.clone(),
            HeaderValue::from(rejection.grpc_status()),
        );
        headers.insert(
            GRPC_MESSAGE.clone(),
            HeaderValue::from_static(rejection.grpc_message()),
        );
        if let Some(secs) = rejection.retry_after() {
            headers.insert(RETRY_AFTER, secs_value(secs.max(1)));
        }
        if let Some(rate) = rate {
            rate.write(&mut headers);
        }
        (StatusCode::OK, Bytes::new(), headers)
    } else {
        let template = &responses.templates[kind.index()];
        let mut headers = template.headers.clone();
        if let (Some(at), Some(secs)) = (template.retry_at, rejection.retry_after()) {
            if let Some((_, value)) = headers.iter_mut().nth(at) {
                *value = secs_value(secs.max(1));
            }
        }
        let custom = &responses.custom[kind.index()];
        if let Some(rate) = rate {
            headers.reserve(2);
            rate.write(&mut headers);
            // A custom answer's own headers replace the layer's of the same name.
            for (name, value) in custom.iter().flat_map(|c| &c.headers) {
                if name == RATELIMIT || name == RATELIMIT_POLICY {
                    headers.insert(name.clone(), value.clone());
                }
            }
        }
        match custom {
            Some(custom) => (custom.status, custom.body.clone(), headers),
            None => (
                rejection.status(),
                Bytes::from_static(rejection.body().as_bytes()),
                headers,
            ),
        }
    };
    let mut response = Response::new(ResponseBody::full(body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_written_in_decimal() {
        for n in [
            0,
            7,
            9,
            10,
            42,
            99,
            100,
            101,
            999,
            1_000,
            86_400,
            1_000_000_000_000,
            u64::MAX / 10,
            u64::MAX,
        ] {
            let mut line = Line::new();
            line.put(b"x=");
            line.num(n);
            assert_eq!(line.as_bytes(), format!("x={n}").as_bytes());
        }
        // A line never overflows: a number that does not fit is left out.
        let mut line = Line::new();
        line.put(&[b'a'; 120]);
        line.num(u64::MAX);
        assert_eq!(line.as_bytes(), &[b'a'; 120][..]);
    }
}
