//! What plans and keys share: naming an operation's parts, and reading its value.

use std::fmt;
use std::str::FromStr;

use super::{PatchOp, PatchOperation};
use crate::error::FieldError;
pub(super) use crate::model::shown;
use crate::model::{valid_rate, RATE_RANGE};

pub(super) fn field(i: usize, part: &str) -> String {
    format!("patchOperations[{i}].{part}")
}

pub(super) fn unsupported_op(i: usize, op: PatchOp, what: &str) -> FieldError {
    FieldError::new(
        field(i, "op"),
        format!(
            "AWS does not support {op} on {what}; use add, remove or replace (and get the item, \
             change it and put it back to copy or move values)"
        ),
    )
}

pub(super) fn wrong_op(i: usize, op: PatchOp, path: &str, allowed: &str) -> FieldError {
    FieldError::new(
        field(i, "op"),
        format!("{} supports only {allowed}, not {op}", shown(path)),
    )
}

pub(super) fn required_value(i: usize, op: &PatchOperation) -> Result<&str, FieldError> {
    op.value.as_deref().ok_or_else(|| {
        FieldError::new(
            field(i, "value"),
            format!("{} {} needs a value", op.op, shown(&op.path)),
        )
    })
}

pub(super) fn non_empty(i: usize, v: &str, what: &str) -> Result<String, FieldError> {
    if v.is_empty() {
        return Err(FieldError::new(
            field(i, "value"),
            format!("{what} must not be empty"),
        ));
    }
    Ok(v.to_owned())
}

pub(super) fn optional_text(v: &str) -> Option<String> {
    (!v.is_empty()).then(|| v.to_owned())
}

pub(super) fn parse_rate(i: usize, v: &str) -> Result<f64, FieldError> {
    let bad = || {
        FieldError::new(
            field(i, "value"),
            format!(
                "rateLimit must be {RATE_RANGE}, written as a decimal such as \"10\" or \"0.5\", \
                 not {}",
                shown(v)
            ),
        )
    };
    // Rust's parser also accepts "inf", "NaN" and "1e400" (infinity); the range check refuses them.
    // A sign is refused: "-0" is not a rate anyone means.
    let r: f64 = v.parse().map_err(|_| bad())?;
    if v.starts_with(['-', '+']) || !valid_rate(r) {
        return Err(bad());
    }
    Ok(r)
}

pub(super) fn parse_burst(i: usize, v: &str) -> Result<u32, FieldError> {
    match v.parse::<u32>() {
        Ok(b) if v.bytes().all(|c| c.is_ascii_digit()) => Ok(b),
        _ => Err(FieldError::new(
            field(i, "value"),
            format!(
                "burstLimit must be a whole number from 0 (blocks every request) to {}, such as \
                 \"20\", not {}",
                u32::MAX,
                shown(v)
            ),
        )),
    }
}

pub(super) fn parse_digits<T: FromStr + fmt::Display>(
    i: usize,
    v: &str,
    what: &str,
    max: T,
) -> Result<T, FieldError> {
    match v.parse::<T>() {
        Ok(n) if v.bytes().all(|c| c.is_ascii_digit()) => Ok(n),
        _ => Err(FieldError::new(
            field(i, "value"),
            format!(
                "{what} must be a whole number from 0 to {max}, not {}",
                shown(v)
            ),
        )),
    }
}
