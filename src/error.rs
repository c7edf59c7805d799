//! Errors, one type per boundary: configuration ([`ConfigError`]), the key store ([`StoreError`]) and
//! the meter ([`MeterError`]). None of them ever holds a key's secret value.

use std::error::Error as StdError;

/// A boxed error from a store's or meter's backend (a database driver, a Redis client).
#[cfg_attr(not(any(feature = "redis", feature = "sqlite")), allow(dead_code))]
pub(crate) type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// One field of one item is wrong.
///
/// `field` is the field's path in AWS's JSON shape (`throttle.rateLimit`,
/// `apiStages[0].throttle["/items/GET"].burstLimit`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct FieldError {
    /// The field, as AWS's JSON names it.
    pub field: String,
    /// What is wrong with it and what would be right.
    pub reason: String,
}

impl FieldError {
    /// A field error.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The same error, with `prefix.` before the field's path.
    pub(crate) fn within(mut self, prefix: &str) -> Self {
        self.field = if self.field.starts_with('[') {
            format!("{prefix}{}", self.field)
        } else {
            format!("{prefix}.{}", self.field)
        };
        self
    }
}

/// A configuration, or a layer built from one, was refused. Nothing was loaded or changed.
///
/// Every variant's `Display` is a whole sentence that names what is wrong and where (an item
/// such as `usagePlans[1] (id "plan222")` and a field such as `throttle.rateLimit`); an
/// underlying error (the JSON parser's, the file system's) is not repeated in it but returned
/// by [`source`](std::error::Error::source), so print the chain to see it. No message ever holds
/// a key's secret value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// An item of the configuration is invalid: `usagePlans[1] (id "plan222"):
    /// throttle.rateLimit: must be a number of requests per second from ...`.
    #[error("{item}: {error}")]
    Invalid {
        /// Which item: `usagePlans[1] (id "plan222")`, or `configuration` for the whole text.
        item: String,
        /// The field and what is wrong with it. Part of this error's own message, not a cause.
        error: FieldError,
    },
    /// The text is not JSON, or its JSON could not be read at this point (a number beyond
    /// JSON's doubles, such as `1e999`, is refused by the parser too).
    #[cfg(feature = "json")]
    #[error("{item}: {}{reason}", at_field(.field.as_deref()))]
    Json {
        /// Which item was being read: `usagePlans[1] (id "plan222")`, or `configuration`.
        item: String,
        /// The field being read, `throttle.rateLimit`, if the error is inside one.
        field: Option<String>,
        /// Where in the text, and what the field must be.
        reason: String,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// The file could not be read or written.
    #[error("cannot {} the file {path}", if *writing { "write" } else { "read" })]
    Io {
        /// The file's path.
        path: String,
        /// Whether it was being written (else read).
        writing: bool,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is larger than [`Config::from_file`](crate::config::Config::from_file) reads.
    #[error(
        "the file {path} is larger than {} MiB ({limit} bytes), the most a configuration file \
         may be; check that it is the right file, or read it yourself and use Config::from_json",
        limit / (1024 * 1024)
    )]
    TooLarge {
        /// The file's path.
        path: String,
        /// The cap, [`MAX_FILE_SIZE`](crate::config::MAX_FILE_SIZE).
        limit: u64,
    },
    /// A plan's per-method throttle names a method that does not require an API key on this layer,
    /// so it could never apply (the article's Mistake 1).
    #[error(
        "usage plan {plan:?} sets a throttle for {method_path:?}, but {method} {resource} does not \
         require an API key on this layer, so the throttle can never apply; require a key for it \
         (UsagePlanLayerBuilder::require_key) or remove the throttle"
    )]
    UnreachableOverride {
        /// The plan's id.
        plan: String,
        /// The override's key, `"/health/GET"`.
        method_path: String,
        /// The HTTP method.
        method: String,
        /// The resource path.
        resource: String,
    },
    /// The store could not list its plans for
    /// [`build_checked`](crate::UsagePlanLayerBuilder::build_checked).
    #[error("cannot read the store's usage plans to check them against the layer's routes")]
    Store(#[source] StoreError),
    /// A route template on the layer is not valid.
    #[error("route {method} {template:?}: {reason}")]
    Route {
        /// The HTTP method.
        method: String,
        /// The template.
        template: String,
        /// What is wrong with it.
        reason: String,
    },
}

#[cfg(feature = "json")]
fn at_field(field: Option<&str>) -> String {
    field.map(|f| format!("{f}: ")).unwrap_or_default()
}

impl ConfigError {
    pub(crate) fn invalid(item: impl Into<String>, error: FieldError) -> Self {
        Self::Invalid {
            item: item.into(),
            error,
        }
    }

    /// The item the error is about (`usagePlans[1] (id "plan222")`, `configuration`), if it is
    /// about one.
    pub fn item(&self) -> Option<&str> {
        match self {
            Self::Invalid { item, .. } => Some(item),
            #[cfg(feature = "json")]
            Self::Json { item, .. } => Some(item),
            _ => None,
        }
    }

    /// The field of [`item`](Self::item) the error is about (`throttle.rateLimit`), if known.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::Invalid { error, .. } => Some(&error.field),
            #[cfg(feature = "json")]
            Self::Json { field, .. } => field.as_deref(),
            _ => None,
        }
    }
}

/// A [`KeyStore`](crate::store::KeyStore) operation failed. Nothing was changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No item of this kind has this id.
    #[error("no {kind} with id {id:?}")]
    NotFound {
        /// `"API key"`, `"usage plan"`.
        kind: &'static str,
        /// The id asked for.
        id: String,
    },
    /// The change would break a rule of the model (AWS's ConflictException).
    #[error("conflict: {0}")]
    Conflict(String),
    /// A value is invalid (AWS's BadRequestException); the [`FieldError`] names the field.
    #[error(transparent)]
    Invalid(#[from] FieldError),
    /// The backend failed.
    #[error("key store backend failed")]
    Backend(#[source] Box<dyn StdError + Send + Sync + 'static>),
}

/// A [`Meter`](crate::meter::Meter) operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MeterError {
    /// The backend failed.
    #[error("meter backend failed")]
    Backend(#[source] Box<dyn StdError + Send + Sync + 'static>),
    /// A value is invalid; the [`FieldError`] names the field.
    #[error(transparent)]
    Invalid(#[from] FieldError),
}
