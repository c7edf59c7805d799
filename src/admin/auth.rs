//! AWS Signature Version 4, verified: the signing arithmetic is `aws-sigv4`'s, run on the
//! request as received; the signatures are compared in constant time (`subtle`).

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use http::{request::Parts, StatusCode};
use subtle::ConstantTimeEq;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::AdminError;
use super::extract::buffered;
use crate::clock::Clock;

/// The service name in a request's credential scope, as the aws CLI and boto3 sign it.
pub const SERVICE: &str = "apigateway";

/// The algorithm the admin API verifies.
const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// An access key the admin API accepts: its id and secret, as `aws configure` takes them.
///
/// Its `Debug` output shows the id, never the secret. Parse `ACCESS_KEY_ID:SECRET` with
/// [`FromStr`]:
///
/// ```
/// use tower_usage_plans::admin::AccessKey;
///
/// let key: AccessKey = "AKIDEXAMPLE:wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".parse().unwrap();
/// assert_eq!(key.id(), "AKIDEXAMPLE");
/// assert!(!format!("{key:?}").contains("wJalr"));
/// assert!("AKIDEXAMPLE".parse::<AccessKey>().is_err());
/// ```
#[derive(Clone)]
pub struct AccessKey {
    id: String,
    secret: String,
}

impl AccessKey {
    /// An access key with this id and secret.
    pub fn new(id: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            secret: secret.into(),
        }
    }

    /// The access key id.
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessKey")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl FromStr for AccessKey {
    type Err = super::error::AdminConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once(':') {
            Some((id, secret)) if !id.is_empty() && !secret.is_empty() => Ok(Self::new(id, secret)),
            _ => Err(super::error::AdminConfigError::AccessKeyText),
        }
    }
}

/// What the SigV4 layer holds: the verifier, and the body limit (for the message).
#[derive(Debug)]
pub(crate) struct Auth {
    pub(crate) verifier: Verifier,
    pub(crate) body_limit: usize,
}

/// The SigV4 layer's function (`axum::middleware::from_fn_with_state`): reads the body, within
/// the body-limit layer's limit (the signature covers it), verifies the signature, and passes the
/// request on with its body. A refused request reaches no handler: it reads and changes nothing.
pub(crate) async fn require_sigv4(
    State(auth): State<Arc<Auth>>,
    req: Request,
    next: Next,
) -> Response {
    let (parts, body) = match buffered(req, auth.body_limit).await {
        Ok(read) => read,
        Err(e) => return e.into_response(),
    };
    if let Err(e) = auth.verifier.verify(&parts, &body) {
        return e.into_response();
    }
    next.run(Request::from_parts(parts, Body::from(body))).await
}

/// Verifies SigV4 signatures against the configured access keys.
pub(crate) struct Verifier {
    keys: HashMap<String, Identity>,
    max_skew: Duration,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ids: Vec<&String> = self.keys.keys().collect();
        ids.sort();
        f.debug_struct("Verifier")
            .field("access_key_ids", &ids)
            .field("max_skew", &self.max_skew)
            .finish()
    }
}

fn refused(kind: &'static str, message: impl Into<String>) -> AdminError {
    AdminError::new(StatusCode::FORBIDDEN, kind, message)
}

fn incomplete(message: impl Into<String>) -> AdminError {
    AdminError::new(
        StatusCode::BAD_REQUEST,
        "IncompleteSignatureException",
        message,
    )
}

fn bad_signature(message: impl Into<String>) -> AdminError {
    refused("InvalidSignatureException", message)
}

/// The parts of an `Authorization: AWS4-HMAC-SHA256 Credential=.., SignedHeaders=.., Signature=..`.
struct Authorization<'a> {
    access_key_id: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: &'a str,
    signature: &'a str,
}

fn parse_authorization(value: &str) -> Result<Authorization<'_>, AdminError> {
    let rest = value
        .strip_prefix(ALGORITHM)
        .filter(|r| r.starts_with(' '))
        .ok_or_else(|| {
            incomplete(format!(
                "the Authorization header must start with {ALGORITHM} (AWS Signature Version 4)"
            ))
        })?;
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let (name, v) = part.trim().split_once('=').ok_or_else(|| {
            incomplete("the Authorization header's parts must be NAME=VALUE, separated by commas")
        })?;
        let slot = match name {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed_headers,
            "Signature" => &mut signature,
            _ => continue,
        };
        if slot.replace(v).is_some() {
            return Err(incomplete(format!(
                "the Authorization header names {name} twice"
            )));
        }
    }
    let missing = |n: &str| {
        incomplete(format!(
            "the Authorization header lacks {n}= (it needs Credential, SignedHeaders and Signature)"
        ))
    };
    let credential = credential.ok_or_else(|| missing("Credential"))?;
    let signed_headers = signed_headers.ok_or_else(|| missing("SignedHeaders"))?;
    let signature = signature.ok_or_else(|| missing("Signature"))?;
    let scope: Vec<&str> = credential.split('/').collect();
    let [access_key_id, date, region, service, "aws4_request"] = scope[..] else {
        return Err(incomplete(
            "Credential must be ACCESS_KEY_ID/YYYYMMDD/REGION/SERVICE/aws4_request",
        ));
    };
    Ok(Authorization {
        access_key_id,
        date,
        region,
        service,
        signed_headers,
        signature,
    })
}

/// `20240115T100000Z` as a time.
fn parse_amz_date(s: &str) -> Option<SystemTime> {
    let tm = jiff::fmt::strtime::parse("%Y%m%dT%H%M%SZ", s).ok()?;
    let dt = tm.to_datetime().ok()?;
    let ts = jiff::tz::TimeZone::UTC.to_timestamp(dt).ok()?;
    Some(SystemTime::from(ts))
}

impl Verifier {
    pub(crate) fn new(keys: &[AccessKey], max_skew: Duration, clock: Arc<dyn Clock>) -> Self {
        let keys = keys
            .iter()
            .map(|k| {
                let creds = Credentials::new(&k.id, &k.secret, None, None, "tower-usage-plans");
                (k.id.clone(), Identity::from(creds))
            })
            .collect();
        Self {
            keys,
            max_skew,
            clock,
        }
    }

    /// Checks the request's signature; `Ok` only for a request signed now by a configured key.
    pub(crate) fn verify(&self, parts: &Parts, body: &[u8]) -> Result<(), AdminError> {
        let Some(auth) = parts.headers.get(http::header::AUTHORIZATION) else {
            return Err(refused(
                "MissingAuthenticationTokenException",
                "Missing Authentication Token: sign the request with AWS Signature Version 4 \
                 (the aws CLI and boto3 do, with the credentials of `aws configure`)",
            ));
        };
        let auth = auth
            .to_str()
            .map_err(|_| incomplete("the Authorization header must be visible ASCII"))?;
        let auth = parse_authorization(auth)?;
        let Some(identity) = self.keys.get(auth.access_key_id) else {
            return Err(refused(
                "UnrecognizedClientException",
                "The security token included in the request is invalid: the access key id is \
                 not one this server accepts",
            ));
        };
        let amz_date = parts
            .headers
            .get("x-amz-date")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                incomplete("the request must carry an X-Amz-Date header (YYYYMMDDTHHMMSSZ), signed")
            })?;
        let time = parse_amz_date(amz_date)
            .ok_or_else(|| incomplete("X-Amz-Date must be YYYYMMDDTHHMMSSZ, in UTC"))?;
        if !amz_date.starts_with(auth.date) || auth.date.len() != 8 {
            return Err(bad_signature(
                "Credential should be scoped to a valid date: the date of X-Amz-Date",
            ));
        }
        if auth.service != SERVICE {
            return Err(bad_signature(format!(
                "Credential should be scoped to correct service: '{SERVICE}'"
            )));
        }
        let now = SystemTime::UNIX_EPOCH + Duration::from_nanos(self.clock.unix_nanos());
        let skew = now
            .duration_since(time)
            .or_else(|e| Ok::<_, ()>(e.duration()))
            .unwrap_or_default();
        if skew > self.max_skew {
            return Err(bad_signature(format!(
                "Signature expired or not yet current: X-Amz-Date {amz_date} is more than {} s \
                 from the server's time; check the client's clock",
                self.max_skew.as_secs()
            )));
        }
        let names: Vec<&str> = auth.signed_headers.split(';').collect();
        if !names.contains(&"host") || !names.contains(&"x-amz-date") {
            return Err(bad_signature(
                "SignedHeaders must include host and x-amz-date",
            ));
        }
        let mut headers = Vec::with_capacity(names.len());
        for name in &names {
            let mut any = false;
            for value in parts.headers.get_all(*name) {
                let value = value.to_str().map_err(|_| {
                    bad_signature(format!("the signed header {name} is not visible ASCII"))
                })?;
                headers.push((*name, value));
                any = true;
            }
            if !any {
                return Err(bad_signature(format!(
                    "the signed header {name} is not in the request"
                )));
            }
        }
        let uri = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        let mut settings = SigningSettings::default();
        settings.excluded_headers = None;
        let params = v4::SigningParams::builder()
            .identity(identity)
            .region(auth.region)
            .name(SERVICE)
            .time(time)
            .settings(settings)
            .build()
            .map_err(|_| bad_signature("the signature could not be checked"))?
            .into();
        let request = SignableRequest::new(
            parts.method.as_str(),
            uri,
            headers.into_iter(),
            SignableBody::Bytes(body),
        )
        .map_err(|_| bad_signature("the request could not be put in canonical form"))?;
        let expected = sign(request, &params)
            .map_err(|_| bad_signature("the request could not be put in canonical form"))?;
        let (instructions, signature) = expected.into_parts();
        let ours = instructions
            .headers()
            .find(|(n, _)| n.eq_ignore_ascii_case("authorization"))
            .map(|(_, v)| v.to_owned())
            .unwrap_or_default();
        let same_headers = ours.contains(&format!("SignedHeaders={},", auth.signed_headers));
        let same_signature: bool = signature.as_bytes().ct_eq(auth.signature.as_bytes()).into();
        if same_headers && same_signature {
            Ok(())
        } else {
            Err(bad_signature(
                "The request signature we calculated does not match the signature you provided. \
                 Check your AWS Secret Access Key and signing method.",
            ))
        }
    }
}
