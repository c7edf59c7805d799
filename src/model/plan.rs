//! Usage plans: their throttle, quota and stages.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use super::text::number;
#[cfg(feature = "json")]
use super::wire;
use super::{check_id, MethodPath, StageRef};
use crate::error::FieldError;

/// A token bucket: `burst_limit` tokens, refilled at `rate_limit` per second.
///
/// Zero is valid for both, as on AWS, and blocks: a throttle with a zero in either field refuses
/// every request with 429 (see [`Throttle::is_blocked`]). That is how AWS's console and CDK switch a method off (0/0), and what
/// Terraform leaves when only a rate is set (burst 0).
///
/// In JSON (feature `json`): `{"burstLimit": 20, "rateLimit": 10.0}`, both required; `rateLimit`
/// may also be a numeric string (`"10"`). Deserializing checks the shape only; the ranges are
/// checked by [`validate`](Self::validate) (and by [`Config`](crate::config::Config)).
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(
    feature = "json",
    derive(serde::Serialize, serde::Deserialize),
    serde(
        rename_all = "camelCase",
        expecting = "an object {\"burstLimit\", \"rateLimit\"}"
    )
)]
pub struct Throttle {
    /// The bucket's size: how many requests may come at once.
    #[cfg_attr(feature = "json", serde(deserialize_with = "wire::whole"))]
    pub burst_limit: u32,
    /// Requests per second, the refill rate; fractions are allowed (0.1 is one every ten seconds).
    #[cfg_attr(feature = "json", serde(deserialize_with = "wire::rate"))]
    pub rate_limit: f64,
}

/// The slowest refill accepted other than 0 (which never refills): one request a year.
pub const MIN_RATE: f64 = 1.0 / (365.0 * 86_400.0);
/// The fastest refill accepted: a billion requests per second.
pub const MAX_RATE: f64 = 1e9;

/// Whether `rate` is a valid `rateLimit`: 0, or from [`MIN_RATE`] to [`MAX_RATE`].
pub(crate) fn valid_rate(rate: f64) -> bool {
    rate == 0.0 || (MIN_RATE..=MAX_RATE).contains(&rate)
}

/// What a rate must be, for messages.
pub(crate) const RATE_RANGE: &str = "0 (never refills) or a number of requests per second from \
     one a year (3.2e-8) to a billion (1e9)";

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

    /// Checks that the rate is 0 or a finite number of requests per second between one a year
    /// and a billion. Every burst is valid, 0 included.
    ///
    /// ```
    /// use tower_usage_plans::model::Throttle;
    ///
    /// assert!(Throttle::new(10.0, 0).unwrap().is_blocked()); // Terraform's rate-only throttle
    /// assert!(Throttle::new(0.0, 0).unwrap().is_blocked()); // a method switched off
    /// assert!(Throttle::new(0.0, 5).unwrap().is_blocked()); // a rate of 0 blocks too
    /// assert!(Throttle::new(-1.0, 5).is_err());
    /// assert!(Throttle::new(1e-12, 5).is_err()); // slower than one a year
    /// ```
    pub fn validate(&self) -> Result<(), FieldError> {
        if !valid_rate(self.rate_limit) {
            return Err(FieldError::new(
                "rateLimit",
                format!("must be {RATE_RANGE}, not {}", number(self.rate_limit)),
            ));
        }
        Ok(())
    }

    /// Whether the throttle admits nothing at all: its burst or its rate is 0. Such a bucket
    /// never fills, so every request it meters is answered 429, with a `Retry-After` of 60
    /// seconds (the time to come back and see whether the throttle was changed).
    pub fn is_blocked(&self) -> bool {
        self.burst_limit == 0 || self.rate_limit == 0.0
    }
}

/// The period of a quota: `"DAY"`, `"WEEK"` or `"MONTH"` in JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "json",
    derive(serde::Serialize),
    serde(rename_all = "UPPERCASE")
)]
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

    /// What an offset of this period must be, for messages.
    pub(crate) fn offset_rule(self) -> &'static str {
        match self {
            Self::Day => "a DAY quota takes only offset 0 (its window is the UTC day)",
            Self::Week => {
                "a WEEK quota's offset is 0 to 6: the weekday its window starts on, 0 for Sunday"
            }
            Self::Month => {
                "a MONTH quota's offset is 0 to 27: its window starts on day offset + 1 of the month"
            }
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
            // Not repeated: any string may be a key's secret value pasted in the wrong place.
            _ => Err(FieldError::new(
                "period",
                "must be DAY, WEEK or MONTH (in upper case)",
            )),
        }
    }
}

/// Reads a string and parses it as [`FromStr`] does. (serde's derive would read an enum, which
/// serde_json refuses as text that is not JSON when it is given a number or `null`.)
#[cfg(feature = "json")]
impl<'de> serde::Deserialize<'de> for QuotaPeriod {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <String as serde::Deserialize>::deserialize(d)?;
        text.parse()
            .map_err(|e: FieldError| serde::de::Error::custom(e.reason))
    }
}

impl fmt::Display for QuotaPeriod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How many requests a key may make per calendar window (see [`period`](crate::period)).
///
/// In JSON (feature `json`): `{"limit": 1000, "offset": 0, "period": "DAY"}`; `limit` and
/// `period` are required, `offset` defaults to 0; `limit` and `offset` are whole numbers, written
/// `1000` or `1e3`. Deserializing checks the shape; [`validate`](Self::validate) (and
/// [`Config`](crate::config::Config)) checks the offset against the period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(
    feature = "json",
    derive(serde::Serialize, serde::Deserialize),
    serde(expecting = "an object {\"limit\", \"offset\", \"period\"}")
)]
pub struct Quota {
    /// Requests allowed per window.
    #[cfg_attr(feature = "json", serde(deserialize_with = "wire::whole"))]
    pub limit: u64,
    /// The day the window starts: DAY 0; WEEK 0..=6 (0 = Sunday); MONTH 0..=27 (day offset + 1).
    #[cfg_attr(
        feature = "json",
        serde(default, deserialize_with = "wire::whole_or_zero")
    )]
    pub offset: u32,
    /// The window.
    pub period: QuotaPeriod,
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
            return Err(offset_error(self.period, &self.offset.to_string()));
        }
        Ok(())
    }
}

/// `offset: a MONTH quota's offset is 0 to 27 ..., not 40`.
pub(crate) fn offset_error(period: QuotaPeriod, found: &str) -> FieldError {
    FieldError::new("offset", format!("{}, not {found}", period.offset_rule()))
}

/// A stage a plan applies to, with the plan's per-method throttles there.
///
/// In JSON (feature `json`): `{"apiId": "abc123def4", "stage": "prod", "throttle":
/// {"/items/GET": {"burstLimit": 20, "rateLimit": 10.0}}}`; `apiId` and `stage` are required.
#[derive(Clone, Debug, PartialEq, Default)]
#[cfg_attr(
    feature = "json",
    derive(serde::Serialize, serde::Deserialize),
    serde(
        rename_all = "camelCase",
        expecting = "a stage {\"apiId\", \"stage\", \"throttle\"}"
    )
)]
pub struct ApiStage {
    /// The API's id (`abc123def4`).
    pub api_id: String,
    /// The stage's name (`prod`).
    pub stage: String,
    /// Per-method throttles, keyed `"{resourcePath}/{METHOD}"`; each replaces the plan's
    /// throttle for that method, with its own bucket per key.
    #[cfg_attr(
        feature = "json",
        serde(
            default,
            deserialize_with = "wire::Unique::deserialize",
            skip_serializing_if = "BTreeMap::is_empty"
        )
    )]
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

/// A usage plan, as AWS's `get-usage-plans` prints one.
///
/// In JSON (feature `json`) only `id` is required; `name` defaults to `""`, `null` counts as
/// missing and unknown fields are ignored. Deserializing checks the shape;
/// [`validate`](Self::validate) checks the values.
#[derive(Clone, Debug, PartialEq, Default)]
#[cfg_attr(
    feature = "json",
    derive(serde::Serialize, serde::Deserialize),
    serde(
        rename_all = "camelCase",
        expecting = "a usage plan {\"id\", \"name\", \"apiStages\", ...}"
    )
)]
pub struct UsagePlan {
    /// The plan's id.
    pub id: String,
    /// A name (`FreePlan`).
    #[cfg_attr(
        feature = "json",
        serde(default, deserialize_with = "wire::OrDefault::deserialize")
    )]
    pub name: String,
    /// A description.
    #[cfg_attr(
        feature = "json",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub description: Option<String>,
    /// The stages the plan applies to, each with its per-method throttles.
    #[cfg_attr(
        feature = "json",
        serde(default, deserialize_with = "wire::OrDefault::deserialize")
    )]
    pub api_stages: Vec<ApiStage>,
    /// The throttle per key; `None` for no throttle.
    #[cfg_attr(
        feature = "json",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub throttle: Option<Throttle>,
    /// The quota per key; `None` for no quota.
    #[cfg_attr(
        feature = "json",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub quota: Option<Quota>,
    /// An AWS Marketplace product code.
    #[cfg_attr(
        feature = "json",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub product_code: Option<String>,
    /// Tags.
    #[cfg_attr(
        feature = "json",
        serde(
            default,
            deserialize_with = "wire::Unique::deserialize",
            skip_serializing_if = "BTreeMap::is_empty"
        )
    )]
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

    /// Checks every field, naming the first wrong one by its JSON path; of the tags, this crate's
    /// own ([`tags::check_own`](crate::tags::check_own)).
    pub fn validate(&self) -> Result<(), FieldError> {
        check_id("id", &self.id)?;
        crate::tags::check_own(&self.tags)?;
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
                    format!(
                        "lists stage {}:{} a second time; list each stage once",
                        st.api_id, st.stage
                    ),
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
    fn throttles_are_checked() {
        assert!(Throttle::new(0.1, 1).is_ok());
        for bad in [f64::NAN, f64::INFINITY, -1.0, -0.0 - 1e-9, 1e-9, 2e9] {
            let e = Throttle::new(bad, 5).unwrap_err();
            assert_eq!(e.field, "rateLimit");
        }
        // Zero is valid for both, as on AWS.
        for (rate, burst) in [(0.0, 0), (0.0, 5), (10.0, 0), (-0.0, 1)] {
            Throttle::new(rate, burst).unwrap();
        }
        // A huge rate is printed short, not as 309 digits.
        let e = Throttle::new(1e308, 5).unwrap_err();
        assert!(e.reason.ends_with("not 1e308"), "{e}");
    }

    #[test]
    fn quota_offsets_follow_the_period() {
        assert!(Quota::new(1, QuotaPeriod::Day, 0).is_ok());
        let e = Quota::new(1, QuotaPeriod::Day, 1).unwrap_err();
        assert_eq!(e.field, "offset");
        assert!(e.reason.contains("DAY quota takes only offset 0"), "{e}");
        assert!(!e.reason.contains("0 to 0"), "{e}");
        assert!(Quota::new(1, QuotaPeriod::Week, 6).is_ok());
        assert!(Quota::new(1, QuotaPeriod::Week, 7).is_err());
        assert!(Quota::new(1, QuotaPeriod::Month, 27).is_ok());
        let e = Quota::new(1, QuotaPeriod::Month, 28).unwrap_err();
        assert!(e.reason.contains("0 to 27"), "{e}");
        assert!("YEAR".parse::<QuotaPeriod>().is_err());
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
