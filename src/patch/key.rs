//! Patch operations on API keys.

use super::value::{
    field, non_empty, optional_text, required_value, shown, unsupported_op, wrong_op,
};
use super::{PatchOp, PatchOperation};
use crate::error::FieldError;
use crate::model::ApiKey;

const KEY_PATHS: &str = "replace /name, /description, /enabled, /customerId";

pub(super) fn apply_op(key: &mut ApiKey, i: usize, op: &PatchOperation) -> Result<(), FieldError> {
    if matches!(op.op, PatchOp::Move | PatchOp::Copy | PatchOp::Test) {
        return Err(unsupported_op(i, op.op, "API keys"));
    }
    let path = op.path.as_str();
    match path {
        "/value" => {
            return Err(FieldError::new(
                field(i, "path"),
                "an API key's value cannot be changed; create a new key with the new value, \
                 link it to the key's usage plans, and delete the old key",
            ))
        }
        "/name" | "/description" | "/enabled" | "/customerId" => {}
        _ => {
            return Err(FieldError::new(
                field(i, "path"),
                format!("{} is not an API key path; valid: {KEY_PATHS}", shown(path)),
            ))
        }
    }
    if op.op != PatchOp::Replace {
        return Err(wrong_op(i, op.op, path, "replace"));
    }
    let v = required_value(i, op)?;
    match path {
        "/name" => key.name = non_empty(i, v, "an API key's name")?,
        "/description" => key.description = optional_text(v),
        "/customerId" => key.customer_id = optional_text(v),
        _ => {
            key.enabled = match v {
                "true" => true,
                "false" => false,
                _ => {
                    return Err(FieldError::new(
                        field(i, "value"),
                        "enabled must be \"true\" or \"false\" (in lower case)",
                    ))
                }
            }
        }
    }
    Ok(())
}
