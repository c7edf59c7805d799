//! The whole configuration — API keys, usage plans and which keys are in which plan — in AWS's shapes.
//!
//! A [`Config`] holds the three lists Amazon API Gateway's CLI prints, so a team leaving AWS can paste
//! them in unchanged:
//!
//! ```json
//! {
//!   "apiKeys":       [ /* the items of `aws apigateway get-api-keys --include-values` */ ],
//!   "usagePlans":    [ /* the items of `aws apigateway get-usage-plans` */ ],
//!   "usagePlanKeys": { "<usagePlanId>": [ /* the items of `aws apigateway get-usage-plan-keys` */ ] }
//! }
//! ```
//!
//! The three members are optional (empty when missing), and so is any field AWS may leave out. Fields we
//! do not know (`stageKeys`, `position`, …) are ignored, and `null` counts as missing. Each list may
//! also be given as the CLI's whole answer, `{"items": [...]}`. An object that holds the same field
//! (or the same tag, method path or usage plan id) twice is refused, as JSON readers disagree on
//! which copy counts; a field we do not know is ignored however often it appears.
//!
//! - **API key** `{"id", "value", "name", "description", "enabled", "createdDate", "lastUpdatedDate",
//!   "customerId", "tags"}`: `id` and `value` are required (the value is 20 to 128 visible ASCII
//!   characters), `name` defaults to `""` and `enabled` to `true`. The dates are epoch seconds (a
//!   number, as the raw API sends; a fraction is dropped) or RFC 3339 text, as the CLI prints them
//!   (`"2019-08-13T10:52:42-07:00"`, `"2024-01-15T10:00:00Z"`, with or without fractional seconds);
//!   they are written back as `"2024-01-15T10:00:00+00:00"`.
//! - **Usage plan** `{"id", "name", "description", "apiStages": [{"apiId", "stage", "throttle":
//!   {"/items/GET": {"burstLimit", "rateLimit"}}}], "throttle": {"burstLimit", "rateLimit"}, "quota":
//!   {"limit", "offset", "period"}, "productCode", "tags"}`: a throttle needs both fields; `rateLimit`
//!   is a number or a numeric string; `burstLimit`, `limit` and `offset` are whole numbers; `offset`
//!   defaults to 0.
//! - **Usage plan key** `{"id", "type", "value", "name"}`: `id` is the linked API key's id; `type`, if
//!   given, must be `"API_KEY"`; `value` and `name` are ignored (the value is not written back: it is in
//!   `apiKeys` already).
//!
//! [`Config::validate`] checks each item (as [`ApiKey::validate`] and [`UsagePlan::validate`] do) and
//! every cross-reference: ids are unique among keys and among plans, key values are unique, every plan
//! of `usagePlanKeys` and every key linked exists, a key is linked to a plan at most once, and a key is in
//! at most one plan per stage (`apiId` and `stage`), as AWS's ConflictException enforces.
//!
//! Loading is all or nothing: [`Config::from_json`] returns a whole, valid configuration or the first
//! problem, naming the item (`usagePlans[1] (id "plan222")`) and the field (`throttle.rateLimit`) and
//! saying what the field must be. No error ever holds a key's value. [`Config::from_file`] reads at
//! most [`MAX_FILE_SIZE`] bytes.
//!
//! # Examples
//!
//! ```
//! # #[cfg(feature = "json")] {
//! use tower_usage_plans::config::Config;
//! use tower_usage_plans::model::QuotaPeriod;
//!
//! let config = Config::from_json(r#"{
//!     "apiKeys": [{"id": "key111aaa", "value": "aBcDeFgHiJkLmNoPqRsTuVwXyZ123456789",
//!                  "name": "ClientA-Free", "createdDate": "2024-01-15T10:00:00+00:00"}],
//!     "usagePlans": [{"id": "plan111", "name": "FreePlan",
//!                     "apiStages": [{"apiId": "abc123def4", "stage": "prod"}],
//!                     "throttle": {"burstLimit": 10, "rateLimit": 5.0},
//!                     "quota": {"limit": 1000, "period": "DAY"}}],
//!     "usagePlanKeys": {"plan111": [{"id": "key111aaa", "type": "API_KEY"}]}
//! }"#).unwrap();
//!
//! assert!(config.api_keys[0].enabled);
//! assert_eq!(config.api_keys[0].created_date, Some(1_705_312_800));
//! assert_eq!(config.usage_plans[0].quota.unwrap().period, QuotaPeriod::Day);
//! assert_eq!(config.usage_plan_keys["plan111"], ["key111aaa"]);
//! assert_eq!(Config::from_json(&config.to_json()).unwrap(), config);
//!
//! let err = Config::from_json(
//!     r#"{"usagePlans": [{"id": "p", "quota": {"limit": "abc", "period": "DAY"}}]}"#,
//! )
//! .unwrap_err();
//! assert_eq!(err.item(), Some(r#"usagePlans[0] (id "p")"#));
//! assert_eq!(err.field(), Some("quota.limit"));
//! assert_eq!(
//!     err.to_string(),
//!     r#"usagePlans[0] (id "p"): quota.limit: must be a whole number ≥ 0, not a string"#
//! );
//! # }
//! ```

use std::collections::BTreeMap;

use crate::model::{ApiKey, UsagePlan};

#[cfg(feature = "json")]
mod file;
#[cfg(feature = "json")]
mod json;
mod validate;

#[cfg(feature = "json")]
pub use file::MAX_FILE_SIZE;

/// The whole configuration, in AWS's own shapes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Config {
    /// The API keys, as `get-api-keys --include-values` lists them.
    pub api_keys: Vec<ApiKey>,
    /// The usage plans, as `get-usage-plans` lists them.
    pub usage_plans: Vec<UsagePlan>,
    /// usage plan id -> the ids of the keys linked to it
    pub usage_plan_keys: BTreeMap<String, Vec<String>>,
}
