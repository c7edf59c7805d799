//! tower_governor's key for the comparisons: the `x-api-key` header, as a `String`. Shared by
//! benches/admission.rs and examples/admit_loop.rs, so both measure tower_governor the same way.

use http::Request;
use tower_governor::key_extractor::KeyExtractor;
use tower_governor::GovernorError;

/// tower_governor's key: the `x-api-key` header, as a `String`.
#[derive(Clone, Debug)]
pub struct ApiKeyHeader;

impl KeyExtractor for ApiKeyHeader {
    type Key = String;

    fn extract<T>(&self, req: &Request<T>) -> Result<String, GovernorError> {
        req.headers()
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or(GovernorError::UnableToExtractKey)
    }
}
