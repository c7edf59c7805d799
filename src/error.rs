//! Errors, one type per boundary: configuration ([`ConfigError`]), the key store ([`StoreError`]) and
//! the meter ([`MeterError`]). None of them ever holds a key's secret value.

use std::error::Error as StdError;

/// A boxed error from a store's or meter's backend (a database driver, a Redis client).
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

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
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// An item of the configuration is invalid.
    #[error("{item}: {source}")]
    Invalid {
        /// Which item: `usagePlans[1] (id "plan222")`.
        item: String,
        /// The field and what is wrong with it.
        #[source]
        source: FieldError,
    },
    /// The text is not JSON of the expected shape.
    #[cfg(feature = "json")]
    #[error("not a usage-plan configuration: {0}")]
    Json(#[source] serde_json::Error),
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file's path.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
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

impl ConfigError {
    pub(crate) fn invalid(item: impl Into<String>, source: FieldError) -> Self {
        Self::Invalid {
            item: item.into(),
            source,
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
    /// A value is invalid (AWS's BadRequestException).
    #[error("invalid {0}")]
    Invalid(#[from] FieldError),
    /// The backend failed.
    #[error("key store backend failed")]
    Backend(#[source] BoxError),
}

/// A [`Meter`](crate::meter::Meter) operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MeterError {
    /// The backend failed.
    #[error("meter backend failed")]
    Backend(#[source] BoxError),
    /// A value is invalid.
    #[error("invalid {0}")]
    Invalid(#[from] FieldError),
}
