//! [`Rejection`]: why the layer refused a request, and what AWS answers for it (re-exported from
//! [`response`](crate::response), where the answers are built).

use http::StatusCode;

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
    pub(crate) fn error_type(self) -> &'static str {
        match self {
            Self::Forbidden => "ForbiddenException",
            Self::Throttled => "TooManyRequestsException",
            Self::QuotaExceeded => "LimitExceededException",
            Self::Unavailable => "ServiceUnavailableException",
        }
    }

    pub(crate) fn index(self) -> usize {
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
