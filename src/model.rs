//! The shapes of Amazon API Gateway's usage plans and API keys, and their validation.
//!
//! The types mirror AWS's JSON (see `AWS-SEMANTICS.md`): [`ApiKey`], [`UsagePlan`] with its
//! [`Throttle`], [`Quota`] and [`ApiStage`]s, and the per-method throttle keys
//! (`"/items/GET"`, `"//GET"` for the root) parsed as [`MethodPath`]. Every constructor and
//! [`validate`](UsagePlan::validate) says which field is wrong and why.
//!
//! # Examples
//!
//! ```
//! use tower_usage_plans::model::{ApiKeyValue, MethodPath, Quota, QuotaPeriod, Throttle};
//!
//! let t = Throttle::new(0.1, 1).unwrap(); // one request every ten seconds
//! assert_eq!(t.rate_limit, 0.1);
//! assert!(Throttle::new(f64::NAN, 1).is_err());
//!
//! let q = Quota::new(1000, QuotaPeriod::Week, 1).unwrap(); // weeks start on Monday
//! assert!(Quota::new(1000, QuotaPeriod::Day, 1).is_err());
//!
//! let m: MethodPath = "/items/{id}/GET".parse().unwrap();
//! assert_eq!((m.resource(), m.method().as_str()), ("/items/{id}", "GET"));
//!
//! let v = ApiKeyValue::generate();
//! assert_eq!(v.expose().len(), 40);
//! assert!(!format!("{v:?}").contains(v.expose()));
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use http::Method;

use crate::error::FieldError;

/// Shortest API key value AWS accepts.
pub const MIN_KEY_LEN: usize = 20;
/// Longest API key value AWS accepts.
pub const MAX_KEY_LEN: usize = 128;
/// Length of a generated key value.
pub const GENERATED_KEY_LEN: usize = 40;

/// An API key's secret value: 20 to 128 visible ASCII characters.
///
/// Its `Debug` output is redacted; read it with [`expose`](Self::expose).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ApiKeyValue(Box<str>);

impl ApiKeyValue {
    /// Checks and wraps a value. AWS generates alphanumeric values; any visible ASCII character
    /// (`!` to `~`) is accepted, as they all travel unchanged in an HTTP header.
    pub fn new(value: impl Into<String>) -> Result<Self, FieldError> {
        let value = value.into();
        check_key_value(value.as_bytes()).map_err(|reason| FieldError::new("value", reason))?;
        Ok(Self(value.into_boxed_str()))
    }

    /// A new value of 40 alphanumeric characters from the operating system's CSPRNG.
    ///
    /// # Panics
    ///
    /// Panics if the operating system has no random source, as `getrandom` reports; a server that
    /// cannot get randomness must not hand out keys.
    pub fn generate() -> Self {
        const ALPHABET: &[u8; 62] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        let mut out = String::with_capacity(GENERATED_KEY_LEN);
        let mut buf = [0u8; 64];
        while out.len() < GENERATED_KEY_LEN {
            getrandom::fill(&mut buf).expect("the operating system's random source failed");
            // Rejection sampling: 248 = 4 * 62, so every character is equally likely.
            for b in buf.iter().copied().filter(|b| *b < 248) {
                if out.len() == GENERATED_KEY_LEN {
                    break;
                }
                out.push(char::from(ALPHABET[usize::from(b % 62)]));
            }
        }
        Self(out.into_boxed_str())
    }

    /// The secret value. Keep it out of logs.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKeyValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKeyValue(<redacted>)")
    }
}

/// A new id of 10 lowercase letters and digits from the operating system's CSPRNG, like AWS's.
pub(crate) fn random_id() -> String {
    const ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut buf = [0u8; 32];
    let mut out = String::with_capacity(10);
    while out.len() < 10 {
        getrandom::fill(&mut buf).expect("the operating system's random source failed");
        // 252 = 7 * 36: every character equally likely.
        for b in buf.iter().copied().filter(|b| *b < 252) {
            if out.len() == 10 {
                break;
            }
            out.push(char::from(ALPHABET[usize::from(b % 36)]));
        }
    }
    out
}

/// Checks a key value's bytes: length 20..=128 and visible ASCII only.
pub(crate) fn check_key_value(value: &[u8]) -> Result<(), String> {
    if value.len() < MIN_KEY_LEN || value.len() > MAX_KEY_LEN {
        return Err(format!(
            "an API key value must be {MIN_KEY_LEN} to {MAX_KEY_LEN} characters long, this one has {}",
            value.len()
        ));
    }
    if let Some(pos) = value.iter().position(|b| !b.is_ascii_graphic()) {
        return Err(format!(
            "an API key value may hold only visible ASCII characters; character {} is not one",
            pos + 1
        ));
    }
    Ok(())
}

/// An API key, as AWS's `get-api-keys --include-values` prints one.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiKey {
    /// The key's id, used everywhere but in requests.
    pub id: String,
    /// The secret value clients send.
    pub value: ApiKeyValue,
    /// A name.
    pub name: String,
    /// A description.
    pub description: Option<String>,
    /// A disabled key is answered 403.
    pub enabled: bool,
    /// When the key was created, in seconds since the Unix epoch.
    pub created_date: Option<i64>,
    /// When the key was last changed, in seconds since the Unix epoch.
    pub last_updated_date: Option<i64>,
    /// An AWS Marketplace customer id.
    pub customer_id: Option<String>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
}

impl ApiKey {
    /// An enabled key with this id, name and value, and nothing else set.
    pub fn new(id: impl Into<String>, name: impl Into<String>, value: ApiKeyValue) -> Self {
        Self {
            id: id.into(),
            value,
            name: name.into(),
            description: None,
            enabled: true,
            created_date: None,
            last_updated_date: None,
            customer_id: None,
            tags: BTreeMap::new(),
        }
    }

    /// Checks the fields that [`ApiKeyValue`] does not: a non-empty id.
    pub fn validate(&self) -> Result<(), FieldError> {
        check_id("id", &self.id)
    }
}

pub(crate) fn check_id(field: &str, id: &str) -> Result<(), FieldError> {
    if id.is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    if id.len() > 128 || id.chars().any(|c| c.is_control()) {
        return Err(FieldError::new(
            field,
            "must be at most 128 characters, without control characters",
        ));
    }
    Ok(())
}

/// A token bucket: `burst_limit` tokens, refilled at `rate_limit` per second.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Throttle {
    /// Requests per second, the refill rate; fractions are allowed (0.1 is one every ten seconds).
    pub rate_limit: f64,
    /// The bucket's size: how many requests may come at once.
    pub burst_limit: u32,
}

/// The slowest refill accepted: one request a year.
pub const MIN_RATE: f64 = 1.0 / (365.0 * 86_400.0);
/// The fastest refill accepted: a billion requests per second.
pub const MAX_RATE: f64 = 1e9;

impl Throttle {
    /// A checked throttle.
    pub fn new(rate_limit: f64, burst_limit: u32) -> Result<Self, FieldError> {
        let t = Self {
            rate_limit,
            burst_limit,
        };
        t.validate()?;
        Ok(t)
    }

    /// Checks that the rate is a finite number of requests per second between one a year and a
    /// billion, and the burst at least 1.
    pub fn validate(&self) -> Result<(), FieldError> {
        if !self.rate_limit.is_finite() || !(MIN_RATE..=MAX_RATE).contains(&self.rate_limit) {
            return Err(FieldError::new(
                "rateLimit",
                format!(
                    "must be a number of requests per second from {MIN_RATE:e} (one a year) to \
                     {MAX_RATE:e}, not {}",
                    self.rate_limit
                ),
            ));
        }
        if self.burst_limit == 0 {
            return Err(FieldError::new(
                "burstLimit",
                "must be at least 1 (a bucket of size 0 would refuse every request)",
            ));
        }
        Ok(())
    }
}

/// The period of a quota.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QuotaPeriod {
    /// A UTC day.
    Day,
    /// Seven UTC days from a chosen weekday.
    Week,
    /// A calendar month from a chosen day of the month.
    Month,
}

impl QuotaPeriod {
    /// `"DAY"`, `"WEEK"` or `"MONTH"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Day => "DAY",
            Self::Week => "WEEK",
            Self::Month => "MONTH",
        }
    }

    /// The largest valid offset: 0, 6 or 27.
    pub fn max_offset(self) -> u32 {
        match self {
            Self::Day => 0,
            Self::Week => 6,
            Self::Month => 27,
        }
    }
}

impl FromStr for QuotaPeriod {
    type Err = FieldError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "DAY" => Ok(Self::Day),
            "WEEK" => Ok(Self::Week),
            "MONTH" => Ok(Self::Month),
            other => Err(FieldError::new(
                "period",
                format!("must be DAY, WEEK or MONTH, not {other:?}"),
            )),
        }
    }
}

impl fmt::Display for QuotaPeriod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How many requests a key may make per calendar window (see [`period`](crate::period)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    /// Requests allowed per window.
    pub limit: u64,
    /// The window.
    pub period: QuotaPeriod,
    /// The day the window starts: DAY 0; WEEK 0..=6 (0 = Sunday); MONTH 0..=27 (day offset + 1).
    pub offset: u32,
}

impl Quota {
    /// A checked quota.
    pub fn new(limit: u64, period: QuotaPeriod, offset: u32) -> Result<Self, FieldError> {
        let q = Self {
            limit,
            period,
            offset,
        };
        q.validate()?;
        Ok(q)
    }

    /// Checks the offset against the period.
    pub fn validate(&self) -> Result<(), FieldError> {
        if self.offset > self.period.max_offset() {
            return Err(FieldError::new(
                "offset",
                format!(
                    "must be 0 to {} for a {} quota (the day index the window starts on), not {}",
                    self.period.max_offset(),
                    self.period,
                    self.offset
                ),
            ));
        }
        Ok(())
    }
}

/// A method's key in a plan's per-method throttles: `"{resourcePath}/{METHOD}"`.
///
/// `"/items/GET"`, `"/items/{id}/GET"`, `"//GET"` (the root), `"/pkg.Service/Method/POST"` (gRPC).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MethodPath {
    resource: Box<str>,
    method: Method,
}

impl MethodPath {
    /// A method path from its parts; the resource must start with `/`.
    pub fn new(resource: &str, method: Method) -> Result<Self, FieldError> {
        if !resource.starts_with('/') {
            return Err(FieldError::new(
                "resourcePath",
                format!("must start with '/', not {resource:?}"),
            ));
        }
        if resource.len() > 1 && resource.ends_with('/') {
            return Err(FieldError::new(
                "resourcePath",
                format!("must not end with '/' (only the root is \"/\"): {resource:?}"),
            ));
        }
        Ok(Self {
            resource: resource.into(),
            method,
        })
    }

    /// The resource path or template, `/items/{id}`.
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// The HTTP method.
    pub fn method(&self) -> &Method {
        &self.method
    }
}

impl FromStr for MethodPath {
    type Err = FieldError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            FieldError::new(
                "throttle",
                format!(
                    "{s:?} is not a method path \"{{resourcePath}}/{{METHOD}}\" such as \
                     \"/items/GET\" or \"//GET\" for the root"
                ),
            )
        };
        let (resource, method) = s.rsplit_once('/').ok_or_else(bad)?;
        if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(bad());
        }
        let method = Method::from_bytes(method.as_bytes()).map_err(|_| bad())?;
        let resource = if resource == "/" || resource.is_empty() {
            "/"
        } else {
            resource
        };
        if resource == "/" && !s.starts_with("//") {
            return Err(bad());
        }
        MethodPath::new(resource, method).map_err(|e| FieldError::new("throttle", e.reason))
    }
}

impl fmt::Display for MethodPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if &*self.resource == "/" {
            write!(f, "//{}", self.method)
        } else {
            write!(f, "{}/{}", self.resource, self.method)
        }
    }
}

/// A stage a plan applies to, with the plan's per-method throttles there.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ApiStage {
    /// The API's id (`abc123def4`).
    pub api_id: String,
    /// The stage's name (`prod`).
    pub stage: String,
    /// Per-method throttles, keyed `"{resourcePath}/{METHOD}"`; each replaces the plan's
    /// throttle for that method, with its own bucket per key.
    pub throttle: BTreeMap<String, Throttle>,
}

impl ApiStage {
    /// A stage with no per-method throttles.
    pub fn new(api_id: impl Into<String>, stage: impl Into<String>) -> Self {
        Self {
            api_id: api_id.into(),
            stage: stage.into(),
            throttle: BTreeMap::new(),
        }
    }

    /// Whether this is the stage `api_id`/`stage`.
    pub fn is(&self, stage: &StageRef) -> bool {
        stage.matches(&self.api_id, &self.stage)
    }
}

/// The stage a layer serves: an API's id and a stage name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StageRef {
    api_id: Box<str>,
    stage: Box<str>,
    any: bool,
}

impl StageRef {
    /// The stage `stage` of API `api_id`.
    pub fn new(api_id: impl Into<String>, stage: impl Into<String>) -> Self {
        Self {
            api_id: api_id.into().into_boxed_str(),
            stage: stage.into().into_boxed_str(),
            any: false,
        }
    }

    /// Any stage: a key's plan is the first plan it is linked to, whatever stages the plan
    /// lists. This is what [`UsagePlanLayer::new`](crate::UsagePlanLayer::new) serves; name a
    /// stage with the builder when keys have plans on several stages.
    pub fn any() -> Self {
        Self {
            api_id: "*".into(),
            stage: "*".into(),
            any: true,
        }
    }

    /// The API's id (`*` for any).
    pub fn api_id(&self) -> &str {
        &self.api_id
    }

    /// The stage's name (`*` for any).
    pub fn stage(&self) -> &str {
        &self.stage
    }

    /// Whether this is [`StageRef::any`].
    pub fn is_any(&self) -> bool {
        self.any
    }

    /// Whether a plan's stage `api_id`/`stage` is this one.
    pub fn matches(&self, api_id: &str, stage: &str) -> bool {
        self.any || (*self.api_id == *api_id && *self.stage == *stage)
    }
}

impl fmt::Display for StageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.any {
            f.write_str("any stage")
        } else {
            write!(f, "{}:{}", self.api_id, self.stage)
        }
    }
}

/// A usage plan, as AWS's `get-usage-plans` prints one.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct UsagePlan {
    /// The plan's id.
    pub id: String,
    /// A name (`FreePlan`).
    pub name: String,
    /// A description.
    pub description: Option<String>,
    /// The stages the plan applies to, each with its per-method throttles.
    pub api_stages: Vec<ApiStage>,
    /// The throttle per key; `None` for no throttle.
    pub throttle: Option<Throttle>,
    /// The quota per key; `None` for no quota.
    pub quota: Option<Quota>,
    /// An AWS Marketplace product code.
    pub product_code: Option<String>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
}

impl UsagePlan {
    /// A plan with this id and name and nothing else set.
    pub fn new(id: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            name: name.into(),
            ..Self::default()
        }
    }

    /// Checks every field, naming the first wrong one by its JSON path.
    pub fn validate(&self) -> Result<(), FieldError> {
        check_id("id", &self.id)?;
        if let Some(t) = &self.throttle {
            t.validate().map_err(|e| e.within("throttle"))?;
        }
        if let Some(q) = &self.quota {
            q.validate().map_err(|e| e.within("quota"))?;
        }
        let mut seen: Vec<(&str, &str)> = Vec::new();
        for (i, st) in self.api_stages.iter().enumerate() {
            let at = format!("apiStages[{i}]");
            check_id("apiId", &st.api_id).map_err(|e| e.within(&at))?;
            check_id("stage", &st.stage).map_err(|e| e.within(&at))?;
            if seen.contains(&(st.api_id.as_str(), st.stage.as_str())) {
                return Err(FieldError::new(
                    at,
                    format!("lists stage {}:{} a second time", st.api_id, st.stage),
                ));
            }
            seen.push((&st.api_id, &st.stage));
            if !st.throttle.is_empty() && self.throttle.is_none() {
                return Err(FieldError::new(
                    format!("{at}.throttle"),
                    "per-method throttles need a plan-level throttle (AWS: \"Can not define fine \
                     grain throttling if usage plan throttle is not defined\")",
                ));
            }
            for (path, t) in &st.throttle {
                let here = format!("{at}.throttle[{path:?}]");
                path.parse::<MethodPath>()
                    .map_err(|e| FieldError::new(here.clone(), e.reason))?;
                t.validate().map_err(|e| e.within(&here))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_values_are_checked() {
        assert!(ApiKeyValue::new("a".repeat(19)).is_err());
        assert!(ApiKeyValue::new("a".repeat(20)).is_ok());
        assert!(ApiKeyValue::new("a".repeat(128)).is_ok());
        assert!(ApiKeyValue::new("a".repeat(129)).is_err());
        let err = ApiKeyValue::new("aaaaaaaaaa aaaaaaaaaaa").unwrap_err();
        assert!(err.reason.contains("character 11"), "{err}");
        assert!(!err.to_string().contains("aaaaaaaaaa"));
        assert!(ApiKeyValue::new("é".repeat(20)).is_err());
    }

    #[test]
    fn generated_values_differ_and_are_alphanumeric() {
        let a = ApiKeyValue::generate();
        let b = ApiKeyValue::generate();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), GENERATED_KEY_LEN);
        assert!(a.expose().bytes().all(|c| c.is_ascii_alphanumeric()));
        assert_eq!(format!("{a:?}"), "ApiKeyValue(<redacted>)");
        let key = ApiKey::new("k1", "n", a.clone());
        assert!(!format!("{key:?}").contains(a.expose()));
    }

    #[test]
    fn throttles_are_checked() {
        assert!(Throttle::new(0.1, 1).is_ok());
        for bad in [f64::NAN, f64::INFINITY, -1.0, 0.0, 2e9] {
            let e = Throttle::new(bad, 5).unwrap_err();
            assert_eq!(e.field, "rateLimit");
        }
        assert_eq!(Throttle::new(1.0, 0).unwrap_err().field, "burstLimit");
    }

    #[test]
    fn quota_offsets_follow_the_period() {
        assert!(Quota::new(1, QuotaPeriod::Day, 0).is_ok());
        assert!(Quota::new(1, QuotaPeriod::Day, 1).is_err());
        assert!(Quota::new(1, QuotaPeriod::Week, 6).is_ok());
        assert!(Quota::new(1, QuotaPeriod::Week, 7).is_err());
        assert!(Quota::new(1, QuotaPeriod::Month, 27).is_ok());
        let e = Quota::new(1, QuotaPeriod::Month, 28).unwrap_err();
        assert!(e.reason.contains("0 to 27"), "{e}");
        assert!("YEAR".parse::<QuotaPeriod>().is_err());
    }

    #[test]
    fn method_paths_parse_as_aws_writes_them() {
        let cases = [
            ("/items/GET", "/items", "GET"),
            ("/v1/items/POST", "/v1/items", "POST"),
            ("/items/{id}/GET", "/items/{id}", "GET"),
            ("//GET", "/", "GET"),
            ("/pkg.Service/Method/POST", "/pkg.Service/Method", "POST"),
        ];
        for (s, r, m) in cases {
            let p: MethodPath = s.parse().unwrap();
            assert_eq!((p.resource(), p.method().as_str()), (r, m));
            assert_eq!(p.to_string(), s);
        }
        for bad in [
            "GET",
            "/items/get",
            "/items/",
            "items/GET",
            "/GET",
            "/items//GET",
            "",
        ] {
            assert!(bad.parse::<MethodPath>().is_err(), "{bad}");
        }
    }

    #[test]
    fn plans_name_the_wrong_field() {
        let mut p = UsagePlan::new("p1", "Free");
        p.throttle = Some(Throttle {
            rate_limit: 5.0,
            burst_limit: 10,
        });
        let mut st = ApiStage::new("abc", "prod");
        st.throttle.insert(
            "/items/GET".into(),
            Throttle {
                rate_limit: f64::NAN,
                burst_limit: 1,
            },
        );
        p.api_stages.push(st);
        let e = p.validate().unwrap_err();
        assert_eq!(e.field, "apiStages[0].throttle[\"/items/GET\"].rateLimit");
        p.api_stages[0].throttle.clear();
        p.quota = Some(Quota {
            limit: 5,
            period: QuotaPeriod::Month,
            offset: 40,
        });
        assert_eq!(p.validate().unwrap_err().field, "quota.offset");
        p.quota = None;
        p.throttle = None;
        p.api_stages[0]
            .throttle
            .insert("/items/GET".into(), Throttle::new(1.0, 1).unwrap());
        assert!(p
            .validate()
            .unwrap_err()
            .reason
            .contains("plan-level throttle"));
    }
}
