//! The ARNs AWS gives the resources that carry tags: `arn:aws:apigateway:{region}::/apikeys/{id}`
//! and `arn:aws:apigateway:{region}::/usageplans/{id}`.

use super::error::AdminError;
use crate::model::shown;
use crate::store::Resource;

/// What a well-formed ARN must look like, for the messages.
const FORM: &str = "arn:aws:apigateway:{region}::/apikeys/{id} or \
                    arn:aws:apigateway:{region}::/usageplans/{id}";

/// The key or plan `arn` names. A malformed ARN is a `BadRequestException`; one of API
/// Gateway's other resources (`/restapis/..`), which this server does not have, a
/// `NotFoundException`. The partition (`aws`, `aws-cn`, ...) and region are read, not checked.
pub(crate) fn resource(arn: &str) -> Result<Resource, AdminError> {
    let malformed = || {
        AdminError::bad_request(format!(
            "resource_arn: must be an ARN {FORM}, not {}",
            shown(arn)
        ))
    };
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(partition), Some("apigateway"), Some(region), Some(""), Some(path)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(malformed());
    };
    let word = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    if !word(partition) || !word(region) {
        return Err(malformed());
    }
    let rest = path.strip_prefix('/').ok_or_else(malformed)?;
    match rest.split_once('/') {
        Some(("apikeys", id)) if !id.is_empty() && !id.contains('/') => {
            Ok(Resource::ApiKey(id.to_owned()))
        }
        Some(("usageplans", id)) if !id.is_empty() && !id.contains('/') => {
            Ok(Resource::UsagePlan(id.to_owned()))
        }
        _ if rest.is_empty() => Err(malformed()),
        _ => Err(AdminError::not_found(format!(
            "no resource {}: this server tags API keys and usage plans ({FORM})",
            shown(path)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_plans_are_named_as_aws_names_them() {
        assert_eq!(
            resource("arn:aws:apigateway:us-east-1::/apikeys/abc123").unwrap(),
            Resource::ApiKey("abc123".into())
        );
        assert_eq!(
            resource("arn:aws-cn:apigateway:cn-north-1::/usageplans/p1").unwrap(),
            Resource::UsagePlan("p1".into())
        );
        for bad in [
            "",
            "abc123",
            "arn:aws:apigateway:us-east-1::apikeys/abc",
            "arn:aws:s3:us-east-1::/apikeys/abc",
            "arn:aws:apigateway:us-east-1:123456789012:/apikeys/abc",
            "arn:aws:apigateway:::/apikeys/abc",
            "arn:aws:apigateway:us-east-1::/",
        ] {
            let err = resource(bad).unwrap_err();
            assert_eq!(err.kind, "BadRequestException", "{bad}");
            assert!(err.message.contains("resource_arn"), "{bad}: {err}");
        }
        for other in [
            "arn:aws:apigateway:us-east-1::/restapis/a1b2",
            "arn:aws:apigateway:us-east-1::/apikeys/",
            "arn:aws:apigateway:us-east-1::/apikeys/a/b",
        ] {
            assert_eq!(
                resource(other).unwrap_err().kind,
                "NotFoundException",
                "{other}"
            );
        }
    }
}
