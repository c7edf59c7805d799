//! [`UsageError`].

use crate::error::{FieldError, MeterError, StoreError};

/// A usage report, update or import was refused, or its store or meter failed. Nothing was
/// changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UsageError {
    /// A value asked for is invalid; the [`FieldError`] names the field and what would do.
    #[error(transparent)]
    Invalid(#[from] FieldError),
    /// The store refused or failed (an unknown plan or key is [`StoreError::NotFound`]).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The meter refused or failed.
    #[error(transparent)]
    Meter(#[from] MeterError),
}
