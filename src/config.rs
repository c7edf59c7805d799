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
//! also be given as the CLI's whole answer, `{"items": [...]}`.
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
//! problem, as [`ConfigError::Invalid`] naming the item (`usagePlans[1] (id "plan222")`) and the field
//! (`throttle.rateLimit`). No error ever holds a key's value.
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
//! let err = Config::from_json(r#"{"usagePlans": [{"id": "p", "quota": {"limit": "abc", "period": "DAY"}}]}"#)
//!     .unwrap_err();
//! assert_eq!(err.to_string(), r#"usagePlans[0] (id "p"): quota.limit: must be a whole number ≥ 0, not a string"#);
//! # }
//! ```

use std::collections::{BTreeMap, HashMap};
#[cfg(feature = "json")]
use std::path::Path;

use crate::error::{ConfigError, FieldError};
use crate::model::{ApiKey, UsagePlan};

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

/// `apiKeys[0] (id "key111aaa")`, or `apiKeys[0]` when the id is unknown.
fn item_name(list: &str, index: usize, id: Option<&str>) -> String {
    match id {
        Some(id) => format!("{list}[{index}] (id {id:?})"),
        None => format!("{list}[{index}]"),
    }
}

/// `usagePlanKeys["plan111"]`.
fn plan_keys_name(plan: &str) -> String {
    format!("usagePlanKeys[{plan:?}]")
}

impl Config {
    /// Checks every item and every cross-reference; the first problem is returned as
    /// [`ConfigError::Invalid`] naming the item and the field. No message holds a key's value.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let key_item = |i: usize| item_name("apiKeys", i, Some(&self.api_keys[i].id));
        let plan_item = |i: usize| item_name("usagePlans", i, Some(&self.usage_plans[i].id));

        let mut key_ids: HashMap<&str, usize> = HashMap::with_capacity(self.api_keys.len());
        let mut key_values: HashMap<&str, usize> = HashMap::with_capacity(self.api_keys.len());
        for (i, key) in self.api_keys.iter().enumerate() {
            key.validate()
                .map_err(|e| ConfigError::invalid(key_item(i), e))?;
            if let Some(&first) = key_ids.get(key.id.as_str()) {
                return Err(ConfigError::invalid(
                    key_item(i),
                    FieldError::new(
                        "id",
                        format!("{} has the same id; ids must be unique", key_item(first)),
                    ),
                ));
            }
            key_ids.insert(&key.id, i);
            if let Some(&first) = key_values.get(key.value.expose()) {
                return Err(ConfigError::invalid(
                    key_item(i),
                    FieldError::new(
                        "value",
                        format!(
                            "{} has the same value; API key values must be unique",
                            key_item(first)
                        ),
                    ),
                ));
            }
            key_values.insert(key.value.expose(), i);
        }

        let mut plans: HashMap<&str, usize> = HashMap::with_capacity(self.usage_plans.len());
        for (i, plan) in self.usage_plans.iter().enumerate() {
            plan.validate()
                .map_err(|e| ConfigError::invalid(plan_item(i), e))?;
            if let Some(&first) = plans.get(plan.id.as_str()) {
                return Err(ConfigError::invalid(
                    plan_item(i),
                    FieldError::new(
                        "id",
                        format!("{} has the same id; ids must be unique", plan_item(first)),
                    ),
                ));
            }
            plans.insert(&plan.id, i);
        }

        // A string from usagePlanKeys is shown in a message unless it is a key's secret value
        // (someone pasted the value where the id belongs).
        let shown = |s: &str| -> String {
            match key_values.get(s) {
                Some(&i) => format!(
                    "<the value of {}, not an id; link keys by their id>",
                    key_item(i)
                ),
                None => format!("{s:?}"),
            }
        };

        // (key id, apiId, stage) -> the plan that already gives the key that stage.
        let mut stage_owner: HashMap<(&str, &str, &str), &str> = HashMap::new();
        for (plan_id, keys) in &self.usage_plan_keys {
            let Some(&plan_index) = plans.get(plan_id.as_str()) else {
                let name = if key_values.contains_key(plan_id.as_str()) {
                    "usagePlanKeys[<an API key's value>]".to_owned()
                } else {
                    plan_keys_name(plan_id)
                };
                return Err(ConfigError::invalid(
                    name,
                    FieldError::new(
                        "usagePlanId",
                        format!("no usage plan with id {} in usagePlans", shown(plan_id)),
                    ),
                ));
            };
            let plan = &self.usage_plans[plan_index];
            let mut linked: HashMap<&str, usize> = HashMap::with_capacity(keys.len());
            for (j, key_id) in keys.iter().enumerate() {
                let here = || format!("{}[{j}]", plan_keys_name(plan_id));
                if !key_ids.contains_key(key_id.as_str()) {
                    return Err(ConfigError::invalid(
                        here(),
                        FieldError::new(
                            "id",
                            format!("no API key with id {} in apiKeys", shown(key_id)),
                        ),
                    ));
                }
                if let Some(&first) = linked.get(key_id.as_str()) {
                    return Err(ConfigError::invalid(
                        here(),
                        FieldError::new(
                            "id",
                            format!(
                                "API key {key_id:?} is already linked to this plan at {}[{first}]",
                                plan_keys_name(plan_id)
                            ),
                        ),
                    ));
                }
                linked.insert(key_id, j);
                for st in &plan.api_stages {
                    let slot = (key_id.as_str(), st.api_id.as_str(), st.stage.as_str());
                    if let Some(other) = stage_owner.insert(slot, plan_id) {
                        return Err(ConfigError::invalid(
                            here(),
                            FieldError::new(
                                "id",
                                format!(
                                    "API key {key_id:?} is in usage plans {other:?} and {plan_id:?}, \
                                     which both list stage {}:{}; a key may be in only one plan per \
                                     stage (AWS's ConflictException)",
                                    st.api_id, st.stage
                                ),
                            ),
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(feature = "json")]
impl Config {
    /// Parses AWS-shaped JSON (see the [module docs](self)) and [validates](Self::validate) it.
    ///
    /// Returns [`ConfigError::Json`] if the text is not JSON or not an object, and
    /// [`ConfigError::Invalid`] naming the item and field for anything else.
    pub fn from_json(text: &str) -> Result<Config, ConfigError> {
        let value = json::parse(text)?;
        let config = json::config_from_value(&value)?;
        config.validate()?;
        Ok(config)
    }

    /// The configuration as pretty-printed JSON in AWS's shapes, which [`from_json`](Self::from_json)
    /// loads back equal. Dates are written as `"2024-01-15T10:00:00+00:00"` (as epoch seconds if
    /// before 1970 or after 9999).
    pub fn to_json(&self) -> String {
        json::to_json(self)
    }

    /// Reads and loads a JSON file; an [`Io`](ConfigError::Io) error names the path.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_json(&text)
    }

    /// Writes [`to_json`](Self::to_json) to a file, replacing it. The text is written to a
    /// temporary file beside it (on Unix readable by its owner only, as it holds key values) and
    /// renamed over it, so the file is never half-written.
    pub fn to_file(&self, path: impl AsRef<Path>) -> Result<(), ConfigError> {
        use std::io::Write;

        let path = path.as_ref();
        let io = |source| ConfigError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut tmp_name = path.as_os_str().to_owned();
        tmp_name.push(".tmp");
        let tmp = std::path::PathBuf::from(tmp_name);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let write = || -> std::io::Result<()> {
            let mut file = options.open(&tmp)?;
            file.write_all(self.to_json().as_bytes())?;
            file.write_all(b"\n")?;
            file.sync_all()?;
            std::fs::rename(&tmp, path)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io(e)
        })
    }
}

#[cfg(feature = "json")]
mod json {
    //! Parsing (through `serde_json::Value`, by hand, to name fields) and writing.

    use std::cell::RefCell;
    use std::collections::BTreeMap;
    use std::fmt;

    use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
    use serde::Serialize;
    use serde_json::{Map, Value};

    use super::{item_name, plan_keys_name, Config};
    use crate::error::{ConfigError, FieldError};
    use crate::model::{ApiKey, ApiKeyValue, ApiStage, Quota, QuotaPeriod, Throttle, UsagePlan};
    use crate::period::Date;

    // ---------------------------------------------------------------- parsing the text

    /// One step of a path into the document.
    #[derive(Clone, Debug)]
    enum Seg {
        Key(String),
        Index(usize),
    }

    /// The path to the value being parsed, as a stack of borrowed frames.
    struct PathNode<'a> {
        parent: Option<&'a PathNode<'a>>,
        seg: Option<Seg>,
    }

    impl PathNode<'_> {
        fn to_vec(&self) -> Vec<Seg> {
            let mut out = Vec::new();
            let mut node = Some(self);
            while let Some(n) = node {
                if let Some(s) = &n.seg {
                    out.push(s.clone());
                }
                node = n.parent;
            }
            out.reverse();
            out
        }
    }

    /// Builds a `Value`, remembering where the first error happened (serde_json refuses numbers
    /// such as `1e400` while parsing, and its message does not say which field held one).
    struct Seed<'a> {
        path: &'a PathNode<'a>,
        failed: &'a RefCell<Option<Vec<Seg>>>,
    }

    impl<'de> DeserializeSeed<'de> for Seed<'_> {
        type Value = Value;

        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
            let result = d.deserialize_any(ValueVisitor {
                path: self.path,
                failed: self.failed,
            });
            if result.is_err() {
                let mut failed = self.failed.borrow_mut();
                if failed.is_none() {
                    *failed = Some(self.path.to_vec());
                }
            }
            result
        }
    }

    struct ValueVisitor<'a> {
        path: &'a PathNode<'a>,
        failed: &'a RefCell<Option<Vec<Seg>>>,
    }

    impl<'de> Visitor<'de> for ValueVisitor<'_> {
        type Value = Value;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
            Ok(Value::Bool(v))
        }
        fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
            Ok(Value::from(v))
        }
        fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
            Ok(Value::from(v))
        }
        fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
            Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
        }
        fn visit_str<E>(self, v: &str) -> Result<Value, E> {
            Ok(Value::String(v.to_owned()))
        }
        fn visit_string<E>(self, v: String) -> Result<Value, E> {
            Ok(Value::String(v))
        }
        fn visit_unit<E>(self) -> Result<Value, E> {
            Ok(Value::Null)
        }
        fn visit_none<E>(self) -> Result<Value, E> {
            Ok(Value::Null)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
            Seed {
                path: self.path,
                failed: self.failed,
            }
            .deserialize(d)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
            let mut out = Vec::new();
            loop {
                let node = PathNode {
                    parent: Some(self.path),
                    seg: Some(Seg::Index(out.len())),
                };
                let seed = Seed {
                    path: &node,
                    failed: self.failed,
                };
                match seq.next_element_seed(seed)? {
                    Some(v) => out.push(v),
                    None => return Ok(Value::Array(out)),
                }
            }
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
            let mut out = Map::new();
            while let Some(key) = map.next_key::<String>()? {
                let node = PathNode {
                    parent: Some(self.path),
                    seg: Some(Seg::Key(key)),
                };
                let value = map.next_value_seed(Seed {
                    path: &node,
                    failed: self.failed,
                })?;
                let Some(Seg::Key(key)) = node.seg else {
                    unreachable!("the node was built with a key")
                };
                out.insert(key, value);
            }
            Ok(Value::Object(out))
        }
    }

    /// Parses the text into a `Value`; a number too large for JSON's doubles is an error naming
    /// its field.
    pub(super) fn parse(text: &str) -> Result<Value, ConfigError> {
        let failed = RefCell::new(None);
        let root = PathNode {
            parent: None,
            seg: None,
        };
        let mut d = serde_json::Deserializer::from_str(text);
        let result = Seed {
            path: &root,
            failed: &failed,
        }
        .deserialize(&mut d)
        .and_then(|v| d.end().map(|()| v));
        match result {
            Ok(v) => Ok(v),
            Err(e) if e.to_string().starts_with("number out of range") => {
                let path = failed.into_inner().unwrap_or_default();
                let (item, field) = locate(&path);
                Err(ConfigError::invalid(
                    item,
                    FieldError::new(
                        field,
                        format!(
                            "the number is out of range (line {}, column {})",
                            e.line(),
                            e.column()
                        ),
                    ),
                ))
            }
            Err(e) => Err(ConfigError::Json(e)),
        }
    }

    /// The item and field a path points at: `usagePlans[0]` and `quota.limit`.
    fn locate(path: &[Seg]) -> (String, String) {
        let key = |i: usize| match path.get(i) {
            Some(Seg::Key(k)) => Some(k.as_str()),
            _ => None,
        };
        let index = |i: usize| match path.get(i) {
            Some(Seg::Index(n)) => Some(*n),
            _ => None,
        };
        // Skip the CLI's `{"items": [...]}` wrapper if there is one.
        let at = |i: usize| if key(i) == Some("items") { i + 1 } else { i };
        let (item, rest) = match key(0) {
            Some(list @ ("apiKeys" | "usagePlans")) => match index(at(1)) {
                Some(n) => (item_name(list, n, None), &path[at(1) + 1..]),
                None => ("configuration".to_owned(), path),
            },
            Some("usagePlanKeys") => match (key(1), index(at(2))) {
                (Some(plan), Some(n)) => {
                    (format!("{}[{n}]", plan_keys_name(plan)), &path[at(2) + 1..])
                }
                _ => ("configuration".to_owned(), path),
            },
            _ => ("configuration".to_owned(), path),
        };
        let mut field = String::new();
        for seg in rest {
            match seg {
                Seg::Index(n) => field.push_str(&format!("[{n}]")),
                Seg::Key(k) if !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric()) => {
                    if !field.is_empty() {
                        field.push('.');
                    }
                    field.push_str(k);
                }
                Seg::Key(k) => field.push_str(&format!("[{k:?}]")),
            }
        }
        if field.is_empty() {
            field.push_str("(the item)");
        }
        (item, field)
    }

    // ---------------------------------------------------------------- reading values

    /// What a value is, for messages (never the value itself: it may be a secret).
    fn kind(v: &Value) -> &'static str {
        match v {
            Value::Null => "null",
            Value::Bool(_) => "true or false",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Array(_) => "a list",
            Value::Object(_) => "an object",
        }
    }

    fn wrong(field: &str, expected: &str, v: &Value) -> FieldError {
        FieldError::new(field, format!("must be {expected}, not {}", kind(v)))
    }

    /// A field's value; `null` counts as missing.
    fn get<'v>(o: &'v Map<String, Value>, field: &str) -> Option<&'v Value> {
        o.get(field).filter(|v| !v.is_null())
    }

    fn required<'v>(o: &'v Map<String, Value>, field: &str) -> Result<&'v Value, FieldError> {
        get(o, field).ok_or_else(|| FieldError::new(field, "is required"))
    }

    fn as_object<'v>(v: &'v Value, field: &str) -> Result<&'v Map<String, Value>, FieldError> {
        v.as_object().ok_or_else(|| wrong(field, "an object", v))
    }

    fn string(v: &Value, field: &str) -> Result<String, FieldError> {
        v.as_str()
            .map(str::to_owned)
            .ok_or_else(|| wrong(field, "a string", v))
    }

    fn opt_string(o: &Map<String, Value>, field: &str) -> Result<Option<String>, FieldError> {
        get(o, field).map(|v| string(v, field)).transpose()
    }

    fn tags(o: &Map<String, Value>) -> Result<BTreeMap<String, String>, FieldError> {
        let Some(v) = get(o, "tags") else {
            return Ok(BTreeMap::new());
        };
        as_object(v, "tags")?
            .iter()
            .map(|(k, v)| Ok((k.clone(), string(v, &format!("tags[{k:?}]"))?)))
            .collect()
    }

    /// A whole number from 0 to `max`; `1000.0` and `1e3` count.
    fn whole(v: &Value, field: &str, max: u64) -> Result<u64, FieldError> {
        let bad = || {
            let range = if max == u64::MAX {
                "≥ 0".to_owned()
            } else {
                format!("from 0 to {max}")
            };
            FieldError::new(
                field,
                format!("must be a whole number {range}, not {}", describe(v)),
            )
        };
        let Value::Number(n) = v else {
            return Err(bad());
        };
        let n = match (n.as_u64(), n.as_f64()) {
            (Some(n), _) => n,
            // 2^64 is exactly representable; anything below it with no fraction fits.
            (None, Some(f))
                if f.fract() == 0.0 && (0.0..18_446_744_073_709_551_616.0).contains(&f) =>
            {
                f as u64
            }
            _ => return Err(bad()),
        };
        if n > max {
            return Err(bad());
        }
        Ok(n)
    }

    /// A number's description for a message: numbers are not secret, so show them.
    fn describe(v: &Value) -> String {
        match v {
            Value::Number(n) => n.to_string(),
            other => kind(other).to_owned(),
        }
    }

    fn throttle(v: &Value) -> Result<Throttle, FieldError> {
        let Value::Object(o) = v else {
            return Err(wrong("", "an object {\"burstLimit\", \"rateLimit\"}", v));
        };
        let burst = whole(
            required(o, "burstLimit")?,
            "burstLimit",
            u64::from(u32::MAX),
        )?;
        let rate_value = required(o, "rateLimit")?;
        let rate = match rate_value {
            Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
            Value::String(s) => s.trim().parse::<f64>().map_err(|_| {
                FieldError::new(
                    "rateLimit",
                    format!("must be a number of requests per second, not the text {s:?}"),
                )
            })?,
            other => return Err(wrong("rateLimit", "a number", other)),
        };
        Ok(Throttle {
            rate_limit: rate,
            burst_limit: u32::try_from(burst).unwrap_or(u32::MAX),
        })
    }

    /// Prefixes a field path: `throttle` + `rateLimit`, or `throttle` alone for the whole value.
    fn within(e: FieldError, prefix: &str) -> FieldError {
        if e.field.is_empty() {
            FieldError::new(prefix, e.reason)
        } else {
            e.within(prefix)
        }
    }

    fn quota(v: &Value) -> Result<Quota, FieldError> {
        let o = as_object(v, "")?;
        let limit = whole(required(o, "limit")?, "limit", u64::MAX)?;
        let period = match required(o, "period")? {
            Value::String(s) => s.parse::<QuotaPeriod>()?,
            other => return Err(wrong("period", "\"DAY\", \"WEEK\" or \"MONTH\"", other)),
        };
        let offset = match get(o, "offset") {
            Some(v) => whole(v, "offset", u64::from(u32::MAX))?,
            None => 0,
        };
        Ok(Quota {
            limit,
            period,
            offset: u32::try_from(offset).unwrap_or(u32::MAX),
        })
    }

    /// Epoch seconds from a number or RFC 3339 text.
    fn date(v: &Value, field: &str) -> Result<i64, FieldError> {
        const HINT: &str = "must be seconds since the epoch or a date and time such as \
                            \"2024-01-15T10:00:00+00:00\"";
        let from_f64 = |f: f64| {
            let f = f.floor();
            // ±2^63: the bounds of i64, both exactly representable.
            if (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&f) {
                Some(f as i64)
            } else {
                None
            }
        };
        let secs = match v {
            Value::Number(n) => n.as_i64().or_else(|| n.as_f64().and_then(from_f64)),
            Value::String(s) => parse_rfc3339(s.trim()).or_else(|| {
                s.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite())
                    .and_then(from_f64)
            }),
            _ => None,
        };
        let found = match v {
            Value::String(s) => format!("{s:?}"),
            other => describe(other),
        };
        secs.ok_or_else(|| FieldError::new(field, format!("{HINT}, not {found}")))
    }

    /// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` as epoch seconds (the fraction dropped).
    pub(super) fn parse_rfc3339(s: &str) -> Option<i64> {
        let b = s.as_bytes();
        if b.len() < 20 || !matches!(b[10], b'T' | b't' | b' ') || b[13] != b':' || b[16] != b':' {
            return None;
        }
        let two = |i: usize| -> Option<i64> {
            let (x, y) = (*b.get(i)?, *b.get(i + 1)?);
            if x.is_ascii_digit() && y.is_ascii_digit() {
                Some(i64::from(x - b'0') * 10 + i64::from(y - b'0'))
            } else {
                None
            }
        };
        let day = Date::parse(s.get(..10)?)?;
        let (h, m, sec) = (two(11)?, two(14)?, two(17)?);
        if h > 23 || m > 59 || sec > 60 {
            return None;
        }
        let mut rest = s.get(19..)?;
        if let Some(frac) = rest.strip_prefix('.') {
            let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return None;
            }
            rest = &frac[digits..];
        }
        let offset = match rest.as_bytes() {
            [b'Z' | b'z'] => 0,
            [sign @ (b'+' | b'-'), ..] => {
                let t = &rest.as_bytes()[1..];
                let (oh, om) = match t {
                    [a, b2, b':', c, d] | [a, b2, c, d] => {
                        let digits = [*a, *b2, *c, *d];
                        if !digits.iter().all(u8::is_ascii_digit) {
                            return None;
                        }
                        let n = |x: u8, y: u8| i64::from(x - b'0') * 10 + i64::from(y - b'0');
                        (n(digits[0], digits[1]), n(digits[2], digits[3]))
                    }
                    _ => return None,
                };
                if oh > 23 || om > 59 {
                    return None;
                }
                let o = oh * 3600 + om * 60;
                if *sign == b'-' {
                    -o
                } else {
                    o
                }
            }
            _ => return None,
        };
        let midnight = i64::try_from(day.unix_secs()).ok()?;
        Some(midnight + h * 3600 + m * 60 + sec - offset)
    }

    /// A list, or the CLI's whole answer `{"items": [...]}`.
    fn list<'v>(v: &'v Value, field: &str) -> Result<&'v [Value], FieldError> {
        match v {
            Value::Array(a) => Ok(a),
            Value::Object(o) => match get(o, "items") {
                Some(Value::Array(a)) => Ok(a),
                None => Ok(&[]),
                Some(other) => Err(wrong(&format!("{field}.items"), "a list", other)),
            },
            other => Err(wrong(field, "a list", other)),
        }
    }

    // ---------------------------------------------------------------- converting items

    fn id_of(v: &Value) -> Option<&str> {
        v.get("id").and_then(Value::as_str)
    }

    fn api_key(v: &Value) -> Result<ApiKey, FieldError> {
        let o = as_object(v, "")?;
        let id = string(required(o, "id")?, "id")?;
        let value = match required(o, "value")? {
            Value::String(s) => ApiKeyValue::new(s.as_str())?,
            other => return Err(wrong("value", "a string", other)),
        };
        let enabled = match get(o, "enabled") {
            None => true,
            Some(Value::Bool(b)) => *b,
            Some(other) => return Err(wrong("enabled", "true or false", other)),
        };
        Ok(ApiKey {
            id,
            value,
            name: opt_string(o, "name")?.unwrap_or_default(),
            description: opt_string(o, "description")?,
            enabled,
            created_date: get(o, "createdDate")
                .map(|v| date(v, "createdDate"))
                .transpose()?,
            last_updated_date: get(o, "lastUpdatedDate")
                .map(|v| date(v, "lastUpdatedDate"))
                .transpose()?,
            customer_id: opt_string(o, "customerId")?,
            tags: tags(o)?,
        })
    }

    fn api_stage(v: &Value) -> Result<ApiStage, FieldError> {
        let o = as_object(v, "")?;
        let mut stage = ApiStage::new(
            string(required(o, "apiId")?, "apiId")?,
            string(required(o, "stage")?, "stage")?,
        );
        if let Some(t) = get(o, "throttle") {
            for (path, t) in as_object(t, "throttle")? {
                let here = format!("throttle[{path:?}]");
                let t = throttle(t).map_err(|e| within(e, &here))?;
                stage.throttle.insert(path.clone(), t);
            }
        }
        Ok(stage)
    }

    fn usage_plan(v: &Value) -> Result<UsagePlan, FieldError> {
        let o = as_object(v, "")?;
        let mut plan = UsagePlan::new(
            string(required(o, "id")?, "id")?,
            opt_string(o, "name")?.unwrap_or_default(),
        );
        plan.description = opt_string(o, "description")?;
        plan.product_code = opt_string(o, "productCode")?;
        plan.tags = tags(o)?;
        if let Some(stages) = get(o, "apiStages") {
            let Value::Array(stages) = stages else {
                return Err(wrong("apiStages", "a list", stages));
            };
            for (i, st) in stages.iter().enumerate() {
                plan.api_stages
                    .push(api_stage(st).map_err(|e| within(e, &format!("apiStages[{i}]")))?);
            }
        }
        plan.throttle = get(o, "throttle")
            .map(|t| throttle(t).map_err(|e| within(e, "throttle")))
            .transpose()?;
        plan.quota = get(o, "quota")
            .map(|q| quota(q).map_err(|e| within(e, "quota")))
            .transpose()?;
        Ok(plan)
    }

    fn plan_key(v: &Value) -> Result<String, FieldError> {
        let o = match v {
            Value::Object(o) => o,
            other => {
                return Err(FieldError::new(
                    "",
                    format!(
                        "must be an object {{\"id\": \"<API key id>\", \"type\": \"API_KEY\"}}, \
                         not {}",
                        kind(other)
                    ),
                ))
            }
        };
        let id = string(required(o, "id")?, "id")?;
        match get(o, "type") {
            None => {}
            Some(Value::String(t)) if t == "API_KEY" => {}
            Some(Value::String(t)) => {
                return Err(FieldError::new(
                    "type",
                    format!("must be \"API_KEY\", not {t:?}"),
                ))
            }
            Some(other) => return Err(wrong("type", "\"API_KEY\"", other)),
        }
        Ok(id)
    }

    /// An item error: a field-less error names the whole item.
    fn at(item: String, e: FieldError) -> ConfigError {
        if e.field.is_empty() {
            ConfigError::invalid(item, FieldError::new("(the item)", e.reason))
        } else {
            ConfigError::invalid(item, e)
        }
    }

    pub(super) fn config_from_value(v: &Value) -> Result<Config, ConfigError> {
        let Value::Object(root) = v else {
            return Err(ConfigError::Json(de::Error::custom(format!(
                "expected an object {{\"apiKeys\": [...], \"usagePlans\": [...], \
                 \"usagePlanKeys\": {{...}}}}, found {}",
                kind(v)
            ))));
        };
        let top = |e: FieldError| ConfigError::invalid("configuration", e);
        let mut config = Config::default();
        if let Some(keys) = get(root, "apiKeys") {
            for (i, k) in list(keys, "apiKeys").map_err(top)?.iter().enumerate() {
                let key = api_key(k).map_err(|e| at(item_name("apiKeys", i, id_of(k)), e))?;
                config.api_keys.push(key);
            }
        }
        if let Some(plans) = get(root, "usagePlans") {
            for (i, p) in list(plans, "usagePlans").map_err(top)?.iter().enumerate() {
                let plan =
                    usage_plan(p).map_err(|e| at(item_name("usagePlans", i, id_of(p)), e))?;
                config.usage_plans.push(plan);
            }
        }
        if let Some(links) = get(root, "usagePlanKeys") {
            for (plan_id, keys) in as_object(links, "usagePlanKeys").map_err(top)? {
                let field = format!("usagePlanKeys[{plan_id:?}]");
                let keys = list(keys, &field).map_err(top)?;
                let mut ids = Vec::with_capacity(keys.len());
                for (j, k) in keys.iter().enumerate() {
                    let id = plan_key(k)
                        .map_err(|e| at(format!("{}[{j}]", plan_keys_name(plan_id)), e))?;
                    ids.push(id);
                }
                config.usage_plan_keys.insert(plan_id.clone(), ids);
            }
        }
        Ok(config)
    }

    // ---------------------------------------------------------------- writing

    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct OutConfig<'a> {
        api_keys: Vec<OutKey<'a>>,
        usage_plans: Vec<OutPlan<'a>>,
        usage_plan_keys: BTreeMap<&'a str, Vec<OutPlanKey<'a>>>,
    }

    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct OutKey<'a> {
        id: &'a str,
        value: &'a str,
        name: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        description: Option<&'a str>,
        enabled: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        created_date: Option<Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        last_updated_date: Option<Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        customer_id: Option<&'a str>,
        #[serde(skip_serializing_if = "BTreeMap::is_empty")]
        tags: &'a BTreeMap<String, String>,
    }

    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct OutPlan<'a> {
        id: &'a str,
        name: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        description: Option<&'a str>,
        api_stages: Vec<OutStage<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        throttle: Option<OutThrottle>,
        #[serde(skip_serializing_if = "Option::is_none")]
        quota: Option<OutQuota>,
        #[serde(skip_serializing_if = "Option::is_none")]
        product_code: Option<&'a str>,
        #[serde(skip_serializing_if = "BTreeMap::is_empty")]
        tags: &'a BTreeMap<String, String>,
    }

    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct OutStage<'a> {
        api_id: &'a str,
        stage: &'a str,
        #[serde(skip_serializing_if = "BTreeMap::is_empty")]
        throttle: BTreeMap<&'a str, OutThrottle>,
    }

    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct OutThrottle {
        burst_limit: u32,
        rate_limit: f64,
    }

    impl From<&Throttle> for OutThrottle {
        fn from(t: &Throttle) -> Self {
            Self {
                burst_limit: t.burst_limit,
                rate_limit: t.rate_limit,
            }
        }
    }

    #[derive(Serialize)]
    struct OutQuota {
        limit: u64,
        offset: u32,
        period: &'static str,
    }

    #[derive(Serialize)]
    struct OutPlanKey<'a> {
        id: &'a str,
        #[serde(rename = "type")]
        kind: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        name: Option<&'a str>,
    }

    /// `"2024-01-15T10:00:00+00:00"`, or the number of seconds outside the years 1970 to 9999.
    pub(super) fn format_date(secs: i64) -> Value {
        let Ok(unsigned) = u64::try_from(secs) else {
            return Value::from(secs);
        };
        let day = Date::from_unix_secs(unsigned);
        let (y, mo, d) = day.ymd();
        if y > 9999 || Date::new(y, mo, d) != Some(day) {
            return Value::from(secs);
        }
        let s = unsigned - day.unix_secs();
        Value::String(format!(
            "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}+00:00",
            s / 3600,
            s / 60 % 60,
            s % 60
        ))
    }

    pub(super) fn to_json(config: &Config) -> String {
        let names: std::collections::HashMap<&str, &str> = config
            .api_keys
            .iter()
            .map(|k| (k.id.as_str(), k.name.as_str()))
            .collect();
        let out = OutConfig {
            api_keys: config
                .api_keys
                .iter()
                .map(|k| OutKey {
                    id: &k.id,
                    value: k.value.expose(),
                    name: &k.name,
                    description: k.description.as_deref(),
                    enabled: k.enabled,
                    created_date: k.created_date.map(format_date),
                    last_updated_date: k.last_updated_date.map(format_date),
                    customer_id: k.customer_id.as_deref(),
                    tags: &k.tags,
                })
                .collect(),
            usage_plans: config
                .usage_plans
                .iter()
                .map(|p| OutPlan {
                    id: &p.id,
                    name: &p.name,
                    description: p.description.as_deref(),
                    api_stages: p
                        .api_stages
                        .iter()
                        .map(|st| OutStage {
                            api_id: &st.api_id,
                            stage: &st.stage,
                            throttle: st
                                .throttle
                                .iter()
                                .map(|(k, t)| (k.as_str(), t.into()))
                                .collect(),
                        })
                        .collect(),
                    throttle: p.throttle.as_ref().map(OutThrottle::from),
                    quota: p.quota.map(|q| OutQuota {
                        limit: q.limit,
                        offset: q.offset,
                        period: q.period.as_str(),
                    }),
                    product_code: p.product_code.as_deref(),
                    tags: &p.tags,
                })
                .collect(),
            usage_plan_keys: config
                .usage_plan_keys
                .iter()
                .map(|(plan, keys)| {
                    let keys = keys
                        .iter()
                        .map(|id| OutPlanKey {
                            id,
                            kind: "API_KEY",
                            name: names.get(id.as_str()).copied(),
                        })
                        .collect();
                    (plan.as_str(), keys)
                })
                .collect(),
        };
        serde_json::to_string_pretty(&out).expect("a configuration always serializes")
    }
}

#[cfg(all(test, feature = "json"))]
mod tests {
    use super::*;
    use crate::model::{ApiKeyValue, ApiStage, Quota, QuotaPeriod, Throttle};

    const VALUE_A: &str = "aBcDeFgHiJkLmNoPqRsTuVwXyZ123456789";
    const VALUE_B: &str = "zYxWvUtSrQpOnMlKjIhGfEdCbA987654321";

    /// The article's configuration.
    fn article() -> String {
        format!(
            r#"{{
  "apiKeys": [
    {{"id": "key111aaa", "value": "{VALUE_A}", "name": "ClientA-Free", "enabled": true}},
    {{"id": "key222bbb", "value": "{VALUE_B}", "name": "ClientB-Premium", "enabled": true}}
  ],
  "usagePlans": [
    {{"id": "plan111", "name": "FreePlan",
      "apiStages": [{{"apiId": "abc123def4", "stage": "prod", "throttle": {{
        "/items/GET": {{"burstLimit": 20, "rateLimit": 10.0}},
        "/orders/POST": {{"burstLimit": 5, "rateLimit": 2.0}}}}}}],
      "throttle": {{"burstLimit": 10, "rateLimit": 5.0}},
      "quota": {{"limit": 1000, "offset": 0, "period": "DAY"}}}},
    {{"id": "plan222", "name": "PremiumPlan",
      "apiStages": [{{"apiId": "abc123def4", "stage": "prod"}}],
      "throttle": {{"burstLimit": 100, "rateLimit": 50.0}},
      "quota": {{"limit": 100000, "offset": 0, "period": "MONTH"}}}}
  ],
  "usagePlanKeys": {{
    "plan111": [{{"id": "key111aaa", "type": "API_KEY", "value": "{VALUE_A}", "name": "ClientA-Free"}}],
    "plan222": [{{"id": "key222bbb", "type": "API_KEY", "value": "{VALUE_B}", "name": "ClientB-Premium"}}]
  }}
}}"#
        )
    }

    /// Loads `text`, expects an error, checks it names `item` and `field`, and holds no key value.
    fn refused(text: &str, item: &str, field: &str) -> String {
        let err = Config::from_json(text).expect_err(text);
        let msg = err.to_string();
        assert!(!msg.contains(VALUE_A) && !msg.contains(VALUE_B), "{msg}");
        match &err {
            ConfigError::Invalid { item: i, source } => {
                assert_eq!(i, item, "{msg}");
                assert_eq!(source.field, field, "{msg}");
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
        msg
    }

    /// The article's text with one replacement.
    fn article_with(from: &str, to: &str) -> String {
        let text = article();
        assert!(text.contains(from), "{from}");
        text.replacen(from, to, 1)
    }

    #[test]
    fn the_article_loads() {
        let c = Config::from_json(&article()).unwrap();
        assert_eq!(c.api_keys.len(), 2);
        assert_eq!(c.api_keys[0].value.expose(), VALUE_A);
        assert_eq!(c.api_keys[1].name, "ClientB-Premium");
        let free = &c.usage_plans[0];
        assert_eq!(free.throttle, Some(Throttle::new(5.0, 10).unwrap()));
        assert_eq!(
            free.quota,
            Some(Quota::new(1000, QuotaPeriod::Day, 0).unwrap())
        );
        let st = &free.api_stages[0];
        assert_eq!(
            (st.api_id.as_str(), st.stage.as_str()),
            ("abc123def4", "prod")
        );
        assert_eq!(st.throttle["/items/GET"], Throttle::new(10.0, 20).unwrap());
        assert_eq!(st.throttle["/orders/POST"], Throttle::new(2.0, 5).unwrap());
        let premium = &c.usage_plans[1];
        assert_eq!(premium.throttle, Some(Throttle::new(50.0, 100).unwrap()));
        assert_eq!(
            premium.quota,
            Some(Quota::new(100_000, QuotaPeriod::Month, 0).unwrap())
        );
        assert_eq!(c.usage_plan_keys["plan111"], ["key111aaa"]);
        assert_eq!(c.usage_plan_keys["plan222"], ["key222bbb"]);
        assert_eq!(Config::from_json(&c.to_json()).unwrap(), c);
    }

    #[test]
    fn the_quickstart_example_loads() {
        let c = Config::from_json(include_str!("../examples/quickstart.json")).unwrap();
        assert_eq!(c.api_keys.len(), 2);
        assert_eq!(c.usage_plans.len(), 2);
        let overrides: usize = c
            .usage_plans
            .iter()
            .flat_map(|p| &p.api_stages)
            .map(|s| s.throttle.len())
            .sum();
        assert_eq!(overrides, 4);
        assert!(c.api_keys.iter().all(|k| k.enabled));
        assert_eq!(c.usage_plan_keys.values().map(Vec::len).sum::<usize>(), 2);
    }

    #[test]
    fn a_config_with_every_field_set_round_trips() {
        let mut key = ApiKey::new("k1", "Client", ApiKeyValue::new(VALUE_A).unwrap());
        key.description = Some("a \"quoted\" description".into());
        key.enabled = false;
        key.created_date = Some(1_705_312_800);
        key.last_updated_date = Some(-5); // before 1970: written as a number
        key.customer_id = Some("cust-1".into());
        key.tags.insert("team".into(), "billing".into());
        let key2 = ApiKey::new("k2", "", ApiKeyValue::new(VALUE_B).unwrap());
        let mut plan = UsagePlan::new("p1", "Plan");
        plan.description = Some("desc".into());
        plan.product_code = Some("prod-code".into());
        plan.tags.insert("env".into(), "prod".into());
        plan.throttle = Some(Throttle::new(0.1, 3).unwrap());
        plan.quota = Some(Quota::new(5000, QuotaPeriod::Week, 1).unwrap());
        let mut st = ApiStage::new("abc123def4", "prod");
        st.throttle
            .insert("//GET".into(), Throttle::new(2.5, 7).unwrap());
        st.throttle
            .insert("/items/{id}/GET".into(), Throttle::new(100.0, 200).unwrap());
        plan.api_stages.push(st);
        plan.api_stages.push(ApiStage::new("abc123def4", "beta"));
        let config = Config {
            api_keys: vec![key, key2],
            usage_plans: vec![plan, UsagePlan::new("p2", "Empty")],
            usage_plan_keys: [
                ("p1".to_owned(), vec!["k1".to_owned(), "k2".to_owned()]),
                ("p2".to_owned(), vec![]),
            ]
            .into(),
        };
        config.validate().unwrap();
        let text = config.to_json();
        assert!(
            text.contains("\"createdDate\": \"2024-01-15T10:00:00+00:00\""),
            "{text}"
        );
        assert!(text.contains("\"lastUpdatedDate\": -5"), "{text}");
        assert!(text.contains("\"type\": \"API_KEY\""), "{text}");
        assert_eq!(Config::from_json(&text).unwrap(), config);

        let dir = std::env::temp_dir().join(format!("tup-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("config.json");
        config.to_file(&file).unwrap();
        assert_eq!(Config::from_file(&file).unwrap(), config);
        std::fs::remove_dir_all(&dir).unwrap();
        match Config::from_file(dir.join("missing.json")) {
            Err(ConfigError::Io { path, .. }) => assert!(path.ends_with("missing.json")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_and_missing_fields() {
        let text = format!(
            r#"{{"position": "x", "apiKeys": {{"items": [{{"id": "k", "value": "{VALUE_A}",
                "stageKeys": ["abc/prod"], "somethingNew": {{"deep": [1, 2]}}, "name": null}}]}},
                "usagePlans": [{{"id": "p", "apiStages": [{{"apiId": "a", "stage": "s", "extra": 1}}],
                "quota": {{"limit": 10, "period": "DAY", "x": true}}}}],
                "usagePlanKeys": {{"p": [{{"id": "k"}}]}}}}"#
        );
        let c = Config::from_json(&text).unwrap();
        assert_eq!(c.api_keys[0].name, "");
        assert!(c.api_keys[0].enabled);
        assert_eq!(c.usage_plans[0].name, "");
        assert_eq!(c.usage_plans[0].quota.unwrap().offset, 0);
        assert_eq!(Config::from_json("{}").unwrap(), Config::default());
        assert!(matches!(Config::from_json("[]"), Err(ConfigError::Json(_))));
        assert!(matches!(Config::from_json("{"), Err(ConfigError::Json(_))));
    }

    #[test]
    fn dates_in_every_accepted_form() {
        let base = 1_705_312_800; // 2024-01-15T10:00:00Z
        let cases = [
            ("1705312800", base),
            ("1705312800.75", base),
            ("1.7053128E9", base),
            ("\"2024-01-15T10:00:00+00:00\"", base),
            ("\"2024-01-15T10:00:00Z\"", base),
            ("\"2024-01-15T10:00:00.123456Z\"", base),
            ("\"2024-01-15T10:00:00.5+00:00\"", base),
            ("\"2024-01-15T12:00:00+02:00\"", base),
            ("\"2019-08-13T10:52:42-07:00\"", 1_565_718_762),
            ("\"2024-01-15t10:00:00z\"", base),
        ];
        for (json, want) in cases {
            let text = format!(
                r#"{{"apiKeys": [{{"id": "k", "value": "{VALUE_A}", "createdDate": {json},
                    "lastUpdatedDate": {json}}}]}}"#
            );
            let c = Config::from_json(&text).unwrap_or_else(|e| panic!("{json}: {e}"));
            assert_eq!(c.api_keys[0].created_date, Some(want), "{json}");
            assert_eq!(c.api_keys[0].last_updated_date, Some(want), "{json}");
            assert_eq!(Config::from_json(&c.to_json()).unwrap(), c);
        }
        for bad in [
            "\"2024-01-15T10:00:00\"",
            "\"2024-02-30T10:00:00Z\"",
            "\"2024-01-15T25:00:00Z\"",
            "\"2024-01-15T10:00:00+0x:00\"",
            "\"2024-01-15T10:00:00.Z\"",
            "\"yesterday\"",
            "1e300",
            "true",
        ] {
            let text = format!(
                r#"{{"apiKeys": [{{"id": "k", "value": "{VALUE_A}", "createdDate": {bad}}}]}}"#
            );
            refused(&text, "apiKeys[0] (id \"k\")", "createdDate");
        }
        assert_eq!(json::format_date(0), "1970-01-01T00:00:00+00:00");
        assert_eq!(
            json::parse_rfc3339("1970-01-01T00:00:00+01:00"),
            Some(-3600)
        );
    }

    #[test]
    fn bad_inputs_name_the_item_and_field() {
        let p2 = "usagePlans[1] (id \"plan222\")";
        let p1 = "usagePlans[0] (id \"plan111\")";
        let k1 = "apiKeys[0] (id \"key111aaa\")";
        let rate = "\"burstLimit\": 100, \"rateLimit\": 50.0";
        let msg = refused(
            &article_with(rate, "\"burstLimit\": 100, \"rateLimit\": \"NaN\""),
            p2,
            "throttle.rateLimit",
        );
        assert!(
            msg.starts_with("usagePlans[1] (id \"plan222\"): throttle.rateLimit: must be"),
            "{msg}"
        );
        for bad in ["-1", "0", "\"inf\"", "\"ten\"", "true", "1e400"] {
            let text = article_with(rate, &format!("\"burstLimit\": 100, \"rateLimit\": {bad}"));
            let item = if bad == "1e400" { "usagePlans[1]" } else { p2 };
            refused(&text, item, "throttle.rateLimit");
        }
        for bad in ["-1", "1.5", "4294967296", "\"10\"", "1e400", "0"] {
            let text = article_with(rate, &format!("\"burstLimit\": {bad}, \"rateLimit\": 50.0"));
            let item = if bad == "1e400" { "usagePlans[1]" } else { p2 };
            refused(&text, item, "throttle.burstLimit");
        }
        refused(
            &article_with(rate, "\"rateLimit\": 50.0"),
            p2,
            "throttle.burstLimit",
        );
        refused(
            &article_with(rate, "\"burstLimit\": 100"),
            p2,
            "throttle.rateLimit",
        );
        let msg = refused(
            &article_with("\"limit\": 1000", "\"limit\": \"abc\""),
            p1,
            "quota.limit",
        );
        assert!(
            msg.contains("quota.limit: must be a whole number ≥ 0"),
            "{msg}"
        );
        refused(
            &article_with("\"limit\": 1000", "\"limit\": -3"),
            p1,
            "quota.limit",
        );
        refused(
            &article_with("\"limit\": 1000", "\"limit\": 1e400"),
            "usagePlans[0]",
            "quota.limit",
        );
        refused(
            &article_with("\"period\": \"DAY\"", "\"period\": \"YEAR\""),
            p1,
            "quota.period",
        );
        refused(
            &article_with(
                "\"offset\": 0, \"period\": \"DAY\"",
                "\"offset\": 3, \"period\": \"DAY\"",
            ),
            p1,
            "quota.offset",
        );
        refused(
            &article_with(
                "\"/items/GET\": {\"burstLimit\": 20",
                "\"/items/GET\": {\"burstLimit\": 0",
            ),
            p1,
            "apiStages[0].throttle[\"/items/GET\"].burstLimit",
        );
        refused(
            &article_with(
                "\"/items/GET\": {\"burstLimit\": 20",
                "\"/items/GET\": {\"burstLimit\": 1e400",
            ),
            "usagePlans[0]",
            "apiStages[0].throttle[\"/items/GET\"].burstLimit",
        );
        refused(
            &article_with("\"/items/GET\"", "\"/items/get\""),
            p1,
            "apiStages[0].throttle[\"/items/get\"]",
        );
        refused(
            &article_with(
                "\"apiId\": \"abc123def4\", \"stage\": \"prod\"}]",
                "\"stage\": \"prod\"}]",
            ),
            p2,
            "apiStages[0].apiId",
        );

        // Key values: never echoed, whatever is wrong.
        let msg = refused(&article_with(VALUE_A, "short"), k1, "value");
        assert!(msg.contains("an API key value must be 20 to 128"), "{msg}");
        let long_bad = format!("{VALUE_A} with spaces");
        let msg = refused(&article_with(VALUE_A, &long_bad), k1, "value");
        assert!(!msg.contains("with spaces"), "{msg}");
        refused(
            &article_with(&format!("\"{VALUE_A}\""), "12345"),
            k1,
            "value",
        );
        refused(
            &article_with(&format!("\"value\": \"{VALUE_A}\", "), ""),
            k1,
            "value",
        );
        refused(
            &article_with("\"id\": \"key111aaa\", ", ""),
            "apiKeys[0]",
            "id",
        );
        refused(
            &article_with("\"enabled\": true", "\"enabled\": \"yes\""),
            k1,
            "enabled",
        );
        let msg = refused(
            &article_with(
                &format!("\"value\": \"{VALUE_B}\""),
                &format!("\"value\": \"{VALUE_A}\""),
            ),
            "apiKeys[1] (id \"key222bbb\")",
            "value",
        );
        assert!(msg.contains("key111aaa"), "{msg}");
        refused(
            &article_with(
                "\"id\": \"key222bbb\", \"value\"",
                "\"id\": \"key111aaa\", \"value\"",
            ),
            "apiKeys[1] (id \"key111aaa\")",
            "id",
        );
        refused(
            &article_with("\"id\": \"plan222\"", "\"id\": \"plan111\""),
            "usagePlans[1] (id \"plan111\")",
            "id",
        );

        // Links.
        let msg = refused(
            &article_with(
                "[{\"id\": \"key111aaa\", \"type\"",
                "[{\"id\": \"nope\", \"type\"",
            ),
            "usagePlanKeys[\"plan111\"][0]",
            "id",
        );
        assert_eq!(
            msg,
            "usagePlanKeys[\"plan111\"][0]: id: no API key with id \"nope\" in apiKeys"
        );
        // The value pasted where the id belongs: refused without showing it.
        let msg = refused(
            &article_with(
                "[{\"id\": \"key111aaa\", \"type\"",
                &format!("[{{\"id\": \"{VALUE_A}\", \"type\""),
            ),
            "usagePlanKeys[\"plan111\"][0]",
            "id",
        );
        assert!(msg.contains("not an id"), "{msg}");
        refused(
            &article_with("\"type\": \"API_KEY\"", "\"type\": \"IAM\""),
            "usagePlanKeys[\"plan111\"][0]",
            "type",
        );
        refused(
            &article_with("\"plan222\": [", "\"plan999\": ["),
            "usagePlanKeys[\"plan999\"]",
            "usagePlanId",
        );
        let msg = refused(
            &article_with("\"plan222\": [", &format!("\"{VALUE_B}\": [")),
            "usagePlanKeys[<an API key's value>]",
            "usagePlanId",
        );
        assert!(msg.contains("not an id"), "{msg}");
        refused(
            &article_with(
                "\"plan111\": [{\"id\": \"key111aaa\"",
                "\"plan111\": [{\"id\": \"key111aaa\"}, {\"id\": \"key111aaa\"",
            ),
            "usagePlanKeys[\"plan111\"][1]",
            "id",
        );
        // key111aaa in both plans, which both list abc123def4:prod.
        let msg = refused(
            &article_with(
                "[{\"id\": \"key222bbb\"",
                "[{\"id\": \"key111aaa\"}, {\"id\": \"key222bbb\"",
            ),
            "usagePlanKeys[\"plan222\"][0]",
            "id",
        );
        assert!(
            msg.contains("plan111") && msg.contains("plan222") && msg.contains("abc123def4:prod"),
            "{msg}"
        );
        // In two plans on different stages: fine.
        let two_stages = article_with(
            "[{\"apiId\": \"abc123def4\", \"stage\": \"prod\"}]",
            "[{\"apiId\": \"abc123def4\", \"stage\": \"beta\"}]",
        )
        .replacen(
            "[{\"id\": \"key222bbb\"",
            "[{\"id\": \"key111aaa\"}, {\"id\": \"key222bbb\"",
            1,
        );
        Config::from_json(&two_stages).unwrap();

        // Wrong shapes.
        refused("{\"apiKeys\": 3}", "configuration", "apiKeys");
        refused("{\"usagePlans\": [3]}", "usagePlans[0]", "(the item)");
        refused(
            "{\"usagePlanKeys\": {\"p\": [\"k\"]}}",
            "usagePlanKeys[\"p\"][0]",
            "(the item)",
        );
        refused(
            "{\"usagePlans\": [{\"id\": \"p\", \"throttle\": 5}]}",
            "usagePlans[0] (id \"p\")",
            "throttle",
        );
    }

    #[test]
    fn garbled_input_never_panics_or_leaks() {
        let text = article();
        let bytes = text.as_bytes();
        let check = |candidate: &str| {
            if let Err(e) = Config::from_json(candidate) {
                let msg = format!("{e} {e:?}");
                assert!(!msg.contains(VALUE_A) && !msg.contains(VALUE_B), "{msg}");
            }
        };
        for cut in 0..bytes.len() {
            if let Ok(prefix) = std::str::from_utf8(&bytes[..cut]) {
                check(prefix);
            }
        }
        // Deterministic garbling: replace, delete or duplicate characters.
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let junk = [
            "", "\"", "{", "}", "[", "]", ",", ":", "0", "-1", "1e400", "null", "\"x\"", "NaN",
            "é", "\\u0000",
        ];
        for _ in 0..3000 {
            let mut s = text.clone();
            for _ in 0..(next() % 4 + 1) {
                let mut at = (next() as usize) % (s.len() + 1);
                while !s.is_char_boundary(at) {
                    at -= 1;
                }
                let mut end = (at + (next() as usize) % 4).min(s.len());
                while !s.is_char_boundary(end) {
                    end -= 1;
                }
                let end = end.max(at);
                s.replace_range(at..end, junk[(next() as usize) % junk.len()]);
            }
            check(&s);
        }
        check(&"[".repeat(10_000));
        check(&format!("{{\"apiKeys\": {}", "{\"a\":".repeat(10_000)));
    }
}
