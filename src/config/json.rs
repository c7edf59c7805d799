//! Reading and writing a configuration as JSON: serde derives on the model, the path to an error
//! from `serde_path_to_error`, and the item's id for the message.
//!
//! The text is parsed once, straight into the model. Only when it is refused is it read again
//! (as `RawValue`s, skipping what is around the path) for what the message needs: the item's
//! `id`, and the name an object repeats.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_path_to_error::Segment;

use super::validate::{item_name, plan_keys_name};
use super::Config;
use crate::error::{ConfigError, FieldError};
use crate::model::wire;
use crate::model::{ApiKey, UsagePlan};

impl Config {
    /// Parses AWS-shaped JSON (see the [module docs](crate::config)) and [validates](Self::validate) it.
    ///
    /// Returns [`ConfigError::Invalid`] naming the item and field of the first problem, or
    /// [`ConfigError::Json`] where the text is not JSON (naming the item and field being read,
    /// with the parser's error as its source).
    pub fn from_json(text: &str) -> Result<Config, ConfigError> {
        let config = parse(text)?;
        config.validate()?;
        Ok(config)
    }

    /// The configuration as pretty-printed JSON in AWS's shapes, which [`from_json`](Self::from_json)
    /// loads back equal. Dates are written as `"2024-01-15T10:00:00+00:00"` (as epoch seconds
    /// outside the years 0000 to 9999).
    pub fn to_json(&self) -> String {
        let names: BTreeMap<&str, &str> = self
            .api_keys
            .iter()
            .map(|k| (k.id.as_str(), k.name.as_str()))
            .collect();
        let out = Out {
            api_keys: &self.api_keys,
            usage_plans: &self.usage_plans,
            usage_plan_keys: self
                .usage_plan_keys
                .iter()
                .map(|(plan, keys)| {
                    let keys = keys
                        .iter()
                        .map(|id| PlanKeyOut {
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

// ------------------------------------------------------------------------------------- reading

/// The document as the CLI's lists make it.
#[derive(Deserialize)]
#[serde(
    rename_all = "camelCase",
    expecting = "an object {\"apiKeys\": [...], \"usagePlans\": [...], \"usagePlanKeys\": {...}}",
    deny_unknown_fields
)]
/// Its fields are this crate's (the CLI prints the lists, a user's `jq` line makes the document),
/// so an unknown one is a typo that would load nothing: it is refused. Unknown fields of the items
/// are AWS's and are ignored.
struct Document {
    #[serde(default)]
    api_keys: Items<ApiKey>,
    #[serde(default)]
    usage_plans: Items<UsagePlan>,
    #[serde(default, deserialize_with = "wire::Unique::deserialize")]
    usage_plan_keys: BTreeMap<String, Items<PlanKey>>,
}

/// An item of `get-usage-plan-keys`: only its `id` is kept (its `value` is never read).
#[derive(Deserialize)]
#[serde(expecting = "a usage plan key {\"id\": \"<API key id>\", \"type\": \"API_KEY\"}")]
struct PlanKey {
    id: String,
    #[serde(default, rename = "type", deserialize_with = "key_type")]
    _kind: (),
}

/// A usage plan key's `type`: `"API_KEY"`, or `null`.
fn key_type<'de, D: Deserializer<'de>>(d: D) -> Result<(), D::Error> {
    match Option::<String>::deserialize(d)?.as_deref() {
        None | Some("API_KEY") => Ok(()),
        Some(_) => Err(serde::de::Error::custom(
            "must be \"API_KEY\" (the only type of usage plan key)",
        )),
    }
}

/// A list of `T`, or the CLI's whole answer `{"items": [...]}`; `null` for none.
struct Items<T>(Vec<T>);

impl<T> Default for Items<T> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

/// The CLI's answer: its `items`; `position` and the rest are ignored.
#[derive(Deserialize)]
#[serde(
    bound = "T: Deserialize<'de>",
    expecting = "the CLI's answer {\"items\": [...]}"
)]
struct Answer<T> {
    // Required: an object without `items` is not the CLI's answer (a typo would load nothing).
    #[serde(deserialize_with = "wire::OrDefault::deserialize")]
    items: Vec<T>,
}

/// A list or an answer, told apart by the kind of value (an untagged enum would buffer the whole
/// list and lose the path to an error inside it).
impl<'de, T: Deserialize<'de>> Deserialize<'de> for Items<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ListOrAnswer<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for ListOrAnswer<T> {
            type Value = Items<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list, or the CLI's answer {\"items\": [...]}")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Items<T>, A::Error> {
                Vec::deserialize(SeqAccessDeserializer::new(seq)).map(Items)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Items<T>, A::Error> {
                let answer = Answer::deserialize(MapAccessDeserializer::new(map))?;
                Ok(Items(answer.items))
            }
            fn visit_unit<E>(self) -> Result<Items<T>, E> {
                Ok(Items::default())
            }
        }
        d.deserialize_any(ListOrAnswer(PhantomData))
    }
}

/// Parses the text into a configuration, without validating it.
fn parse(text: &str) -> Result<Config, ConfigError> {
    // serde's derive reads a struct from a list of its fields too (in order): inside the
    // document that is let be, but the document itself is an object, as the CLI prints it.
    if text
        .trim_start_matches([' ', '\t', '\n', '\r'])
        .starts_with('[')
    {
        return Err(ConfigError::invalid(
            "configuration",
            FieldError::new(
                "(the item)",
                "must be an object {\"apiKeys\": [...], \"usagePlans\": [...], \"usagePlanKeys\": \
                 {...}}, not a list",
            ),
        ));
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let doc = serde_path_to_error::deserialize::<_, Document>(&mut de).map_err(|e| {
        let path: Vec<Segment> = e.path().iter().cloned().collect();
        error_at(text, &path, e.into_inner())
    })?;
    de.end().map_err(|e| error_at(text, &[], e))?;
    Ok(Config {
        api_keys: doc.api_keys.0,
        usage_plans: doc.usage_plans.0,
        usage_plan_keys: doc
            .usage_plan_keys
            .into_iter()
            .map(|(plan, keys)| (plan, keys.0.into_iter().map(|k| k.id).collect()))
            .collect(),
    })
}

// ------------------------------------------------------------------------------------- errors

/// The reason for a repeated field or name.
const REPEATED: &str =
    "appears twice in this object; keep one (JSON readers disagree on which copy counts)";

/// serde_with's message for a repeated name (`MapPreventDuplicates`); a test holds it to the
/// version in use.
const REPEATED_KEY: &str = "invalid entry: found duplicate key";

/// Where in the document a path points: the item, and the path inside it.
struct Place<'p> {
    /// `apiKeys` or `usagePlans`, the index, and the path to the item, to read its id.
    list_item: Option<(&'static str, usize, &'p [Segment])>,
    /// The item's name when it has no id: `usagePlanKeys["plan111"][0]`, `configuration`.
    item: String,
    /// The path inside the item: `throttle`, `rateLimit`.
    inner: &'p [Segment],
}

/// `usagePlans`, `[1]`, `throttle`, `rateLimit` -> `usagePlans[1]` and `throttle`, `rateLimit`.
fn locate(path: &[Segment]) -> Place<'_> {
    let key = |i: usize| match path.get(i) {
        Some(Segment::Map { key }) => Some(key.as_str()),
        _ => None,
    };
    let index = |i: usize| match path.get(i) {
        Some(Segment::Seq { index }) => Some(*index),
        _ => None,
    };
    // Skip the CLI's `{"items": [...]}` wrapper if there is one.
    let at = |i: usize| if key(i) == Some("items") { i + 1 } else { i };
    let whole = Place {
        list_item: None,
        item: "configuration".to_owned(),
        inner: path,
    };
    match key(0) {
        Some(list @ ("apiKeys" | "usagePlans")) => match index(at(1)) {
            Some(n) => {
                let list = if list == "apiKeys" {
                    "apiKeys"
                } else {
                    "usagePlans"
                };
                Place {
                    list_item: Some((list, n, &path[..=at(1)])),
                    item: item_name(list, n, None),
                    inner: &path[at(1) + 1..],
                }
            }
            None => whole,
        },
        Some("usagePlanKeys") => match (key(1), index(at(2))) {
            (Some(plan), Some(n)) => Place {
                list_item: None,
                item: format!("{}[{n}]", plan_keys_name(plan)),
                inner: &path[at(2) + 1..],
            },
            _ => whole,
        },
        _ => whole,
    }
}

/// `throttle.rateLimit`, `apiStages[0].throttle["/items/GET"].burstLimit`.
fn field_path(segments: &[Segment]) -> String {
    let mut field = String::new();
    for seg in segments {
        match seg {
            Segment::Seq { index } => field.push_str(&format!("[{index}]")),
            Segment::Map { key } => push_key(&mut field, key),
            Segment::Enum { variant } => push_key(&mut field, variant),
            // A key the parser could not read: the position in the reason says where.
            Segment::Unknown => {}
        }
    }
    field
}

fn push_key(field: &mut String, key: &str) {
    if !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric()) {
        if !field.is_empty() {
            field.push('.');
        }
        field.push_str(key);
    } else {
        field.push_str(&format!("[{}]", crate::model::shown(key)));
    }
}

/// What a field of the model holds, for a message about a value it could not read there
/// (`inner` is the path inside the item, or in the document for an error outside the items).
fn expected(inner: &[Segment]) -> Option<&'static str> {
    fn name(inner: &[Segment], i: Option<usize>) -> Option<&str> {
        match inner.get(i?) {
            Some(Segment::Map { key }) => Some(key),
            _ => None,
        }
    }
    let n = inner.len();
    let last = name(inner, n.checked_sub(1))?;
    if matches!(
        name(inner, n.checked_sub(2)),
        Some("tags" | "usagePlanKeys")
    ) {
        // A tag's name, a plan's id: anyone's.
        return None;
    }
    Some(match (n, last) {
        (1, "apiKeys") => {
            "a list of API keys {\"id\", \"value\", ...}, or the CLI's answer {\"items\": [...]}"
        }
        (1, "usagePlans") => {
            "a list of usage plans {\"id\", \"name\", ...}, or the CLI's answer {\"items\": [...]}"
        }
        (1, "usagePlanKeys") => {
            "an object {\"<usagePlanId>\": [{\"id\": \"<API key id>\", \"type\": \"API_KEY\"}]}"
        }
        // A plan's own throttle: its derive names it.
        (1, "throttle") => return None,
        (_, "throttle") => {
            "an object of per-method throttles {\"/items/GET\": {\"burstLimit\", \"rateLimit\"}}"
        }
        (_, "apiStages") => "a list of stages {\"apiId\", \"stage\", \"throttle\"}",
        (_, "tags") => "an object of tag names to strings",
        (_, "rateLimit") => crate::model::RATE_RANGE,
        (_, "burstLimit") => "a whole number from 0 to 4294967295",
        (_, "limit") => "a whole number ≥ 0",
        (_, "offset") => {
            "a whole number from 0 to 27, the day the window starts on (a DAY quota takes only 0, \
             a WEEK quota 0 to 6 from Sunday, a MONTH quota 0 to 27 for day offset + 1 of the \
             month)"
        }
        (_, "period") => "DAY, WEEK or MONTH (in upper case)",
        (_, "createdDate" | "lastUpdatedDate") => {
            "seconds since the epoch or a date such as \"2024-01-15T10:00:00+00:00\""
        }
        (_, "value") => "a string of 20 to 128 visible ASCII characters",
        (_, "type") => "\"API_KEY\" (the only type of usage plan key)",
        _ => return None,
    })
}

/// The field named in serde's ``missing field `id` `` (`prefix` is ``missing field ` ``).
fn named<'m>(message: &'m str, prefix: &str) -> Option<&'m str> {
    message.strip_prefix(prefix)?.strip_suffix('`')
}

/// Turns the parser's error at `path` into an error naming the item and field.
fn error_at(text: &str, path: &[Segment], e: serde_json::Error) -> ConfigError {
    let place = locate(path);
    let item = match place.list_item {
        Some((list, n, at)) => item_name(list, n, id_at(text, at).as_deref()),
        None => place.item,
    };
    let mut field = field_path(place.inner);
    if e.is_data() {
        let message = wire::without_position(&e);
        // serde's derive refuses an object that repeats or lacks a field, and serde_with's map a
        // repeated name, at the object's path: the field or name goes on the path.
        let reason = if let Some(name) = named(&message, "duplicate field `") {
            push_key(&mut field, name);
            REPEATED.to_owned()
        } else if let Some(name) = named(&message, "missing field `") {
            push_key(&mut field, name);
            "is required".to_owned()
        } else if message == REPEATED_KEY {
            if let Some(name) = repeated_at(text, path) {
                push_key(&mut field, &name);
            }
            REPEATED.to_owned()
        } else {
            wire::reason(&message, expected(place.inner))
        };
        if field.is_empty() {
            field.push_str("(the item)");
        }
        return ConfigError::invalid(item, FieldError::new(field, reason));
    }
    let (line, column) = (e.line(), e.column());
    let reason = if e.is_eof() {
        format!(
            "the text ends at line {line}, column {column} before the JSON does: close every \
             bracket, brace and quote"
        )
    } else {
        match expected(place.inner) {
            Some(what) => format!(
                "the JSON at line {line}, column {column} cannot be read (a malformed value, or \
                 a number beyond what JSON's doubles hold, such as 1e999); it must be {what}"
            ),
            None => format!(
                "the text is not valid JSON at line {line}, column {column}; fix the JSON there"
            ),
        }
    };
    ConfigError::Json {
        item,
        field: (!field.is_empty()).then_some(field),
        reason,
        source: e,
    }
}

/// The JSON at `path` in `text`, read again for a message (only on an error).
///
/// The values around it are skipped, not parsed, so a number the parser refused elsewhere
/// (`1e999`) does not hide it; text that is not JSON around the path hides it.
fn raw_at<'t>(text: &'t str, path: &[Segment]) -> Option<&'t RawValue> {
    let mut raw = <&RawValue>::deserialize(&mut serde_json::Deserializer::from_str(text)).ok()?;
    for seg in path {
        raw = match seg {
            Segment::Seq { index } => *serde_json::from_str::<Vec<&RawValue>>(raw.get())
                .ok()?
                .get(*index)?,
            Segment::Map { key } => entries(raw)?.into_iter().find(|(k, _)| k == key)?.1,
            _ => return None,
        };
    }
    Some(raw)
}

/// An object's names and values in order, a repeated name included.
fn entries(raw: &RawValue) -> Option<Vec<(String, &RawValue)>> {
    let mut de = serde_json::Deserializer::from_str(raw.get());
    serde_with::As::<serde_with::Map<serde_with::Same, serde_with::Same>>::deserialize(&mut de).ok()
}

/// The `id` of the item at `path`, if it is a string.
fn id_at(text: &str, path: &[Segment]) -> Option<String> {
    let entries = entries(raw_at(text, path)?)?;
    let field = |name: &str| -> Option<String> {
        let (_, raw) = entries.iter().find(|(k, _)| k == name)?;
        serde_json::from_str(raw.get()).ok()
    };
    let id = field("id")?;
    // A key's value pasted as its id is not shown: the item is then named by its place.
    (field("value").as_deref() != Some(id.as_str())).then_some(id)
}

/// The first name that the object at `path` repeats.
fn repeated_at(text: &str, path: &[Segment]) -> Option<String> {
    let names = entries(raw_at(text, path)?)?;
    names
        .iter()
        .enumerate()
        .find(|(i, (k, _))| names[..*i].iter().any(|(seen, _)| seen == k))
        .map(|(_, (k, _))| k.clone())
}

// ------------------------------------------------------------------------------------- writing

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Out<'a> {
    api_keys: &'a [ApiKey],
    usage_plans: &'a [UsagePlan],
    usage_plan_keys: BTreeMap<&'a str, Vec<PlanKeyOut<'a>>>,
}

#[derive(Serialize)]
struct PlanKeyOut<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
}

#[cfg(test)]
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
        assert!(
            matches!(err, ConfigError::Invalid { .. } | ConfigError::Json { .. }),
            "{err:?}"
        );
        assert_eq!(err.item(), Some(item), "{msg}");
        assert_eq!(err.field(), Some(field), "{msg}");
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
        let c = Config::from_json(include_str!("../../examples/quickstart.json")).unwrap();
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
        assert!(
            text.contains("\"lastUpdatedDate\": \"1969-12-31T23:59:55+00:00\""),
            "{text}"
        );
        assert!(text.contains("\"type\": \"API_KEY\""), "{text}");
        assert_eq!(Config::from_json(&text).unwrap(), config);

        let dir = std::env::temp_dir().join(format!("tup-config-json-{}", std::process::id()));
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
            r#"{{"apiKeys": {{"items": [{{"id": "k", "value": "{VALUE_A}",
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
        refused("[]", "configuration", "(the item)");
        // The document's own fields are this crate's: an unknown one is refused, naming it.
        let msg = refused(r#"{"position": "x"}"#, "configuration", "position");
        assert!(msg.contains("apiKeys"), "{msg}");
        assert!(matches!(
            Config::from_json("{"),
            Err(ConfigError::Json { .. })
        ));
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
        let text = format!(
            r#"{{"apiKeys": [{{"id": "k", "value": "{VALUE_A}",
                "createdDate": "1970-01-01T00:00:00+01:00"}}]}}"#
        );
        assert_eq!(
            Config::from_json(&text).unwrap().api_keys[0].created_date,
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
        for bad in ["-1", "1e-12", "\"inf\"", "\"ten\"", "true", "1e400"] {
            let text = article_with(rate, &format!("\"burstLimit\": 100, \"rateLimit\": {bad}"));
            refused(&text, p2, "throttle.rateLimit");
        }
        for bad in ["-1", "1.5", "4294967296", "\"10\"", "1e400"] {
            let text = article_with(rate, &format!("\"burstLimit\": {bad}, \"rateLimit\": 50.0"));
            refused(&text, p2, "throttle.burstLimit");
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
            p1,
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
        // Zero is valid, as on AWS (it blocks).
        Config::from_json(&article_with(
            "\"/items/GET\": {\"burstLimit\": 20, \"rateLimit\": 10.0",
            "\"/items/GET\": {\"burstLimit\": 0, \"rateLimit\": 0",
        ))
        .unwrap();
        refused(
            &article_with(
                "\"/items/GET\": {\"burstLimit\": 20",
                "\"/items/GET\": {\"burstLimit\": 1e400",
            ),
            p1,
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

    /// Issue 15, point 6: each message names the item and the field and says what to fix.
    #[test]
    fn messages_name_item_and_field_and_say_what_to_fix() {
        let p1 = "usagePlans[0] (id \"plan111\")";
        let p2 = "usagePlans[1] (id \"plan222\")";
        let rate = "\"burstLimit\": 100, \"rateLimit\": 50.0";

        // A huge number is printed short.
        let msg = refused(
            &article_with(rate, "\"burstLimit\": 100, \"rateLimit\": 1e308"),
            p2,
            "throttle.rateLimit",
        );
        assert!(msg.ends_with("not 1e308"), "{msg}");
        assert!(msg.contains("requests per second"), "{msg}");
        assert!(!msg.contains("00000000"), "{msg}");
        let msg = refused(
            &article_with(rate, "\"burstLimit\": 1e308, \"rateLimit\": 50.0"),
            p2,
            "throttle.burstLimit",
        );
        assert!(
            msg.ends_with("not 1e308") && msg.contains("whole number"),
            "{msg}"
        );

        // A DAY quota's offset: only 0, never "0 to 0".
        let msg = refused(
            &article_with(
                "\"offset\": 0, \"period\": \"DAY\"",
                "\"offset\": 3, \"period\": \"DAY\"",
            ),
            p1,
            "quota.offset",
        );
        assert!(msg.contains("a DAY quota takes only offset 0"), "{msg}");
        assert!(!msg.contains("0 to 0"), "{msg}");

        // A negative MONTH offset: 0 to 27, whichever comes first in the object.
        for quota in [
            "\"offset\": -1, \"period\": \"MONTH\"",
            "\"period\": \"MONTH\", \"offset\": -1",
        ] {
            let text = article_with("\"offset\": 0, \"period\": \"MONTH\"", quota);
            let msg = refused(&text, p2, "quota.offset");
            assert!(msg.contains("0 to 27") && msg.ends_with("not -1"), "{msg}");
            assert!(!msg.contains("4294967295"), "{msg}");
        }
        let msg = refused(
            &article_with(
                "\"offset\": 0, \"period\": \"MONTH\"",
                "\"offset\": 1.5, \"period\": \"MONTH\"",
            ),
            p2,
            "quota.offset",
        );
        assert!(msg.contains("0 to 27") && msg.ends_with("not 1.5"), "{msg}");

        // A number JSON cannot hold still names the plan's id, and the parser's error is the
        // source, not part of the message.
        let text = article_with(rate, "\"burstLimit\": 100, \"rateLimit\": 1e999");
        let err = Config::from_json(&text).unwrap_err();
        assert!(matches!(err, ConfigError::Json { .. }), "{err:?}");
        assert_eq!(err.item(), Some(p2));
        assert_eq!(err.field(), Some("throttle.rateLimit"));
        let msg = err.to_string();
        assert!(
            msg.contains("requests per second") && msg.contains("line "),
            "{msg}"
        );
        let source = std::error::Error::source(&err).expect("the parser's error");
        assert!(!msg.contains(&source.to_string()), "{msg}");
        // Even when the id comes after the number.
        let text = r#"{"usagePlans": [{"throttle": {"burstLimit": 1, "rateLimit": 1e999},
            "id": "late"}]}"#;
        let err = Config::from_json(text).unwrap_err();
        assert_eq!(err.item(), Some("usagePlans[0] (id \"late\")"), "{err}");

        // A repeated field is refused, naming it, instead of keeping the last copy.
        let msg = refused(
            &article_with(
                "\"id\": \"key222bbb\", \"value\"",
                "\"id\": \"key222bbb\", \"id\": \"key111aaa\", \"value\"",
            ),
            "apiKeys[1] (id \"key222bbb\")",
            "id",
        );
        assert!(
            msg.contains("appears twice") && msg.contains("keep one"),
            "{msg}"
        );
        refused(
            &article_with(
                "\"stage\": \"prod\"}]",
                "\"stage\": \"prod\", \"stage\": \"beta\"}]",
            ),
            p2,
            "apiStages[0].stage",
        );
        refused(
            &article_with(
                rate,
                "\"burstLimit\": 100, \"rateLimit\": 50.0, \"rateLimit\": 5",
            ),
            p2,
            "throttle.rateLimit",
        );
        refused(
            &article_with(
                "\"/orders/POST\": {",
                "\"/items/GET\": {\"burstLimit\": 1, \"rateLimit\": 1}, \"/orders/POST\": {",
            ),
            p1,
            "apiStages[0].throttle[\"/items/GET\"]",
        );
        refused(
            &article_with("\"plan222\": [", "\"plan111\": [], \"plan222\": ["),
            "configuration",
            "usagePlanKeys.plan111",
        );
        refused(
            "{\"usagePlanKeys\": {\"p\": [], \"p\": []}}",
            "configuration",
            "usagePlanKeys.p",
        );
        refused(
            "{\"apiKeys\": {\"items\": [], \"items\": []}}",
            "configuration",
            "apiKeys.items",
        );

        // Missing required fields are named.
        refused(
            &article_with(rate, "\"rateLimit\": 50.0"),
            p2,
            "throttle.burstLimit",
        );
        let msg = refused(
            &article_with("\"id\": \"plan111\", ", ""),
            "usagePlans[0]",
            "id",
        );
        assert!(msg.ends_with("id: is required"), "{msg}");
    }

    /// An object that serde's derive refused is read again to name the field it repeats or
    /// lacks, whatever comes around it.
    #[test]
    fn refused_objects_name_the_repeated_or_missing_field() {
        let key = |fields: &str| format!(r#"{{"apiKeys": [{{{fields}}}]}}"#);
        let value = format!("\"value\": \"{VALUE_A}\"");
        let cases = [
            (
                key(&format!("\"id\": \"k\", {value}, \"id\": \"k\"")),
                "id",
                REPEATED,
            ),
            (key(&format!("\"x\": 1, {value}")), "id", "is required"),
            (key("\"id\": \"k\""), "value", "is required"),
            (
                r#"{"usagePlans": [{"id": "p", "quota": {"period": "DAY"}}]}"#.to_owned(),
                "quota.limit",
                "is required",
            ),
            (
                r#"{"usagePlanKeys": {"p": {"items": [], "items": null}}}"#.to_owned(),
                "usagePlanKeys.p.items",
                REPEATED,
            ),
            (
                r#"{"usagePlanKeys": {"p": [{"type": "API_KEY"}]}}"#.to_owned(),
                "id",
                "is required",
            ),
        ];
        for (text, field, reason) in cases {
            let err = Config::from_json(&text).unwrap_err();
            assert_eq!(err.field(), Some(field), "{text}: {err}");
            assert!(
                err.to_string().ends_with(&format!("{field}: {reason}")),
                "{err}"
            );
        }
        // The id after the repeated field still names the key.
        let text = key(&format!(
            "{value}, \"name\": \"a\", \"name\": \"b\", \"id\": \"late\""
        ));
        let err = Config::from_json(&text).unwrap_err();
        assert_eq!(err.item(), Some("apiKeys[0] (id \"late\")"), "{err}");
        assert_eq!(err.field(), Some("name"), "{err}");
    }

    /// An offset is read as 0 to 27 whatever the period (which may come after it), then
    /// checked against the period by validation.
    #[test]
    fn a_quota_offset_is_checked_against_its_period() {
        let plan = |quota: &str| format!(r#"{{"usagePlans": [{{"id": "p", "quota": {quota}}}]}}"#);
        let p = "usagePlans[0] (id \"p\")";
        let msg = refused(
            &plan(r#"{"offset": 10, "limit": 1, "period": "WEEK"}"#),
            p,
            "quota.offset",
        );
        assert!(msg.ends_with("a WEEK quota's offset is 0 to 6: the weekday its window starts on, 0 for Sunday, not 10"), "{msg}");
        let msg = refused(
            &plan(r#"{"offset": 28, "limit": 1, "period": "MONTH"}"#),
            p,
            "quota.offset",
        );
        assert!(
            msg.ends_with("a MONTH quota's offset is 0 to 27: its window starts on day offset + 1 of the month, not 28"),
            "{msg}"
        );
        let c = Config::from_json(&plan(
            r#"{"offset": 27.0, "limit": 1e3, "period": "MONTH"}"#,
        ))
        .unwrap();
        assert_eq!(
            c.usage_plans[0].quota,
            Some(Quota::new(1000, QuotaPeriod::Month, 27).unwrap())
        );
    }

    /// A field nobody reads may repeat: it is ignored, as any unknown field is.
    #[test]
    fn unknown_fields_may_repeat() {
        let text = format!(
            r#"{{"apiKeys": {{"position": "a", "position": "b", "items": [
                {{"id": "k", "value": "{VALUE_A}", "stageKeys": [], "stageKeys": []}}]}}}}"#
        );
        let c = Config::from_json(&text).unwrap();
        assert_eq!(c.api_keys[0].id, "k");
    }

    /// This crate's own tags are checked when a configuration loads; AWS's own (`aws:`) and any
    /// other tag load as they are, as AWS exported them.
    #[test]
    fn own_tags_are_checked_on_load_and_aws_tags_load_as_they_are() {
        let tagged = |tags: &str| {
            article_with(
                r#""name": "FreePlan","#,
                &format!(r#""name": "FreePlan", "tags": {tags},"#),
            )
        };
        let c = Config::from_json(&tagged(
            r#"{"aws:cloudformation:stack-name": "api", "team": "a b", "usageplans:soft-quota": "110"}"#,
        ))
        .unwrap();
        assert_eq!(c.usage_plans[0].tags.len(), 3);
        let msg = refused(
            &tagged(r#"{"usageplans:Soft Quota": "110"}"#),
            "usagePlans[0] (id \"plan111\")",
            "tags[\"usageplans:Soft Quota\"]",
        );
        assert!(msg.contains("kebab-case"), "{msg}");
        // AWS's count holds on load too: 51 tags would be refused by every later tag change.
        let many: Vec<String> = (0..51).map(|i| format!(r#""t{i}": "v""#)).collect();
        let msg = refused(
            &tagged(&format!("{{{}}}", many.join(", "))),
            "usagePlans[0] (id \"plan111\")",
            "tags",
        );
        assert!(msg.contains("50"), "{msg}");
    }

    /// A typo in the document's own names, or an object that is not the CLI's answer where a
    /// list belongs, is refused: it would load an empty configuration and answer 403 to all.
    #[test]
    fn a_typo_in_the_documents_shape_is_refused_not_loaded_empty() {
        for (text, said) in [
            (r#"{"apikeys": []}"#, "apikeys"),
            (r#"{"usagePlan": []}"#, "usagePlan"),
            (r#"{"items": []}"#, "items"),
            (r#"{"apiKeys": {}}"#, "items"),
            (r#"{"usagePlans": {"item": []}}"#, "items"),
            (r#"{"usagePlanKeys": {"plan1": {"Items": []}}}"#, "items"),
        ] {
            let err = Config::from_json(text).expect_err(text);
            let msg = err.to_string();
            assert!(msg.contains(said), "{text}: {msg}");
        }
        // The CLI's answers, with their other fields, still load.
        let c = Config::from_json(
            r#"{"apiKeys": {"items": [], "position": "x"}, "usagePlans": {"items": null}}"#,
        )
        .unwrap();
        assert!(c.api_keys.is_empty() && c.usage_plans.is_empty());
    }

    /// A key's value pasted where an id belongs never shows in the item's name: the item is
    /// named by its place, whether the problem is found reading or validating.
    #[test]
    fn a_key_value_pasted_as_an_id_is_not_shown_in_the_items_name() {
        // Found while reading: the key's own id is its value.
        let text = format!(
            r#"{{"apiKeys": [{{"id": "{VALUE_A}", "value": "{VALUE_A}", "enabled": 1}}]}}"#
        );
        let msg = refused(&text, "apiKeys[0]", "enabled");
        assert!(!msg.contains(VALUE_A), "{msg}");
        // Found while validating: a plan's id is a key's value.
        let text = format!(
            r#"{{"apiKeys": [{{"id": "k", "value": "{VALUE_A}"}}],
                "usagePlans": [{{"id": "{VALUE_A}", "quota": {{"limit": 1, "period": "DAY", "offset": 3}}}}]}}"#
        );
        let msg = refused(&text, "usagePlans[0]", "quota.offset");
        assert!(!msg.contains(VALUE_A), "{msg}");
    }

    /// A usage plan key's `type` that is not JSON is reported as JSON that cannot be read, at
    /// its place, not as a wrong type.
    #[test]
    fn a_malformed_type_is_a_json_error() {
        let err = Config::from_json(r#"{"usagePlanKeys": {"p": [{"id": "k", "type": "API_KEY}]}}"#)
            .unwrap_err();
        assert!(matches!(err, ConfigError::Json { .. }), "{err:?}");
        assert_eq!(err.item(), Some("usagePlanKeys[\"p\"][0]"));
        assert_eq!(err.field(), Some("type"));
        let msg = refused(
            r#"{"usagePlanKeys": {"p": [{"id": "k", "type": 1}]}}"#,
            "usagePlanKeys[\"p\"][0]",
            "type",
        );
        assert!(
            msg.ends_with("type: must be \"API_KEY\" (the only type of usage plan key), not 1"),
            "{msg}"
        );
    }

    /// A key's value pasted into a field of another type is refused, naming the field and
    /// what it must be, never repeating the value (serde's own message would: `invalid type:
    /// string "…"`).
    #[test]
    fn a_key_value_in_a_wrong_typed_field_is_never_repeated() {
        let v = format!("\"{VALUE_B}\"");
        let key = |field: &str| {
            format!(r#"{{"apiKeys": [{{"id": "k", "value": "{VALUE_A}", {field}: {v}}}]}}"#)
        };
        let plan = |field: &str, around: &str| {
            let inner = around.replace('@', &v);
            format!(r#"{{"usagePlans": [{{"id": "p", "{field}": {inner}}}]}}"#)
        };
        let cases = [
            (
                key("\"enabled\""),
                "enabled",
                "must be true or false, not a string",
            ),
            (
                key("\"createdDate\""),
                "createdDate",
                "must be seconds since the epoch",
            ),
            (key("\"tags\""), "tags", "must be an object of tag names to strings, not a string"),
            (
                plan("throttle", r#"{"burstLimit": @, "rateLimit": 1}"#),
                "throttle.burstLimit",
                "must be a whole number from 0 to 4294967295, not a string",
            ),
            (
                plan("throttle", r#"{"burstLimit": 1, "rateLimit": @}"#),
                "throttle.rateLimit",
                "not a string that holds no number",
            ),
            (
                plan("quota", r#"{"limit": @, "period": "DAY"}"#),
                "quota.limit",
                "must be a whole number ≥ 0, not a string",
            ),
            (
                plan("quota", r#"{"limit": 1, "offset": @, "period": "DAY"}"#),
                "quota.offset",
                "not a string",
            ),
            (
                plan("quota", r#"{"limit": 1, "period": @}"#),
                "quota.period",
                "must be DAY, WEEK or MONTH (in upper case)",
            ),
            (
                plan("throttle", "@"),
                "throttle",
                "must be an object {\"burstLimit\", \"rateLimit\"}, not a string",
            ),
            (
                plan("apiStages", "@"),
                "apiStages",
                "must be a list of stages {\"apiId\", \"stage\", \"throttle\"}, not a string",
            ),
            (plan("apiStages", "[@]"), "apiStages[0]", "must be a stage"),
            (
                plan(
                    "apiStages",
                    r#"[{"apiId": "a", "stage": "s", "throttle": {"/a/GET": @}}]"#,
                ),
                "apiStages[0].throttle[\"/a/GET\"]",
                "must be an object {\"burstLimit\", \"rateLimit\"}, not a string",
            ),
            (
                format!(r#"{{"apiKeys": {v}}}"#),
                "apiKeys",
                "must be a list of API keys {\"id\", \"value\", ...}, or the CLI's answer {\"items\": [...]}, not a string",
            ),
            (
                format!(r#"{{"usagePlanKeys": {v}}}"#),
                "usagePlanKeys",
                "must be an object {\"<usagePlanId>\": [{\"id\": \"<API key id>\", \"type\": \"API_KEY\"}]}, not a string",
            ),
            (
                format!(r#"{{"usagePlanKeys": {{"p": [{{"id": "k", "type": {v}}}]}}}}"#),
                "type",
                "must be \"API_KEY\"",
            ),
        ];
        for (text, field, reason) in cases {
            let err = Config::from_json(&text).expect_err(&text);
            let msg = format!("{err} {err:?}");
            assert!(!msg.contains(VALUE_B), "{msg}");
            assert_eq!(err.field(), Some(field), "{msg}");
            assert!(err.to_string().contains(reason), "{text}: {err}");
        }
    }

    /// No input panics: malformed documents of every kind are refused with an error.
    #[test]
    fn malformed_documents_are_errors_not_panics() {
        for text in [
            "",
            " ",
            "null",
            "0",
            "\"apiKeys\"",
            "[]",
            "{\"apiKeys\": [null]}",
            "{\"apiKeys\": [{}]}",
            "{\"apiKeys\": [{\"id\": 1, \"value\": 2}]}",
            "{\"usagePlans\": [{\"id\": \"p\", \"apiStages\": {}}]}",
            "{\"usagePlans\": [{\"id\": \"p\", \"apiStages\": [[]]}]}",
            "{\"usagePlans\": [{\"id\": \"p\", \"throttle\": {\"burstLimit\": -0.5, \"rateLimit\": []}}]}",
            "{\"usagePlans\": [{\"id\": \"p\", \"quota\": {\"limit\": 1, \"period\": 3}}]}",
            "{\"usagePlans\": [{\"id\": \"p\", \"quota\": {\"limit\": 1, \"period\": \"DAY\", \"offset\": \"x\"}}]}",
            "{\"usagePlans\": [{\"id\": \"p\", \"tags\": {\"a\": 1}}]}",
            "{\"usagePlans\": {\"items\": 5}}",
            "{\"usagePlanKeys\": []}",
            "{\"usagePlanKeys\": {\"p\": [{\"id\": \"k\", \"type\": 1}]}}",
            "{\"apiKeys\": [], \"apiKeys\": []}",
            "{\"apiKeys\": []} trailing",
            "{\"apiKeys\": [{\"id\": \"k\", \"value\": \"aaaaaaaaaaaaaaaaaaaaaa\", \"createdDate\": 1e999}]}",
            "{\"apiKeys\": [{\"id\": \"k\", \"value\": \"aaaaaaaaaaaaaaaaaaaaaa\", \"createdDate\": -1e300}]}",
            "{\"apiKeys\": [{\"id\": \"k\", \"value\": \"aaaaaaaaaaaaaaaaaaaaaa\", \"enabled\": \"yes\"}]}",
            "{\"apiKeys\": [{\"id\": \"k\", \"value\": \"aaaaaaaaaaaaaaaaaaaaaa\", \"tags\": []}]}",
            "\u{feff}{}",
        ] {
            let err = Config::from_json(text).expect_err(text);
            let msg = err.to_string();
            assert!(!msg.is_empty() && msg.len() < 1_000, "{text}: {msg}");
            assert!(err.item().is_some(), "{text}: {err:?}");
        }
    }
}
