//! How the model reads and writes AWS's JSON (feature `json`).
//!
//! The model's types derive serde's traits; serde's derive refuses an object that repeats or
//! lacks a field. What is here are the small pieces the derives name for AWS's shapes:
//!
//! - readers for the fields AWS's tools write in more than one way (a rate as a number or a
//!   numeric string, dates as epoch seconds or RFC 3339 text, `null` for a missing field);
//! - [`Object`], [`List`] and [`Map`], which read an object, a list (`null` for none) or an
//!   object of names, and refuse a value of any other kind; [`Map`] refuses a repeated name.
//!
//! A value of the wrong kind is refused by naming its kind (`not a string`), never by showing
//! it: any string may be a key's secret value. A message holds only the reason; the path to the
//! field comes from `serde_path_to_error`, and the configuration loader makes the two into an
//! item and a field (see `config::json`).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt;
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serializer};

use super::text::number;

// ------------------------------------------------------------------------------------- scalars

/// What a JSON value is, keeping only what the readers need; lists and objects are skipped.
pub(crate) enum Scalar {
    Null,
    Bool(bool),
    U64(u64),
    I64(i64),
    F64(f64),
    Str(String),
    List,
    Object,
}

impl Scalar {
    /// What the value is, for a message; never the value itself.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Self::Null => "null",
            Self::Bool(_) => "true or false",
            Self::U64(_) | Self::I64(_) | Self::F64(_) => "a number",
            Self::Str(_) => "a string",
            Self::List => "a list",
            Self::Object => "an object",
        }
    }

    /// A number as written for a message (numbers are not secret), or the kind.
    pub(crate) fn shown(&self) -> String {
        match self {
            Self::U64(n) => n.to_string(),
            Self::I64(n) => n.to_string(),
            Self::F64(f) => number(*f),
            other => other.kind().to_owned(),
        }
    }

    /// A whole number, if it is one (`1000`, `1000.0`, `1e3`).
    pub(crate) fn whole(&self) -> Option<i128> {
        match *self {
            Self::U64(n) => Some(i128::from(n)),
            Self::I64(n) => Some(i128::from(n)),
            // ±2^64 are exact doubles; within them, a double without a fraction is an integer.
            Self::F64(f) if f.fract() == 0.0 && f.abs() < 18_446_744_073_709_551_616.0 => {
                Some(f as i128)
            }
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_unit<E>(self) -> Result<Scalar, E> {
                Ok(Scalar::Null)
            }
            fn visit_none<E>(self) -> Result<Scalar, E> {
                Ok(Scalar::Null)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Scalar, D::Error> {
                Scalar::deserialize(d)
            }
            fn visit_bool<E>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar::Bool(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar::U64(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar::I64(v))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar::F64(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar::Str(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<Scalar, E> {
                Ok(Scalar::Str(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Scalar::List)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar::Object)
            }
        }
        d.deserialize_any(V)
    }
}

/// `must be a string, not a number`.
fn must_be<E: de::Error>(what: &str, found: &Scalar) -> E {
    E::custom(format_args!("must be {what}, not {}", found.kind()))
}

/// A required string: `id`, `apiId`, `stage`.
pub(crate) fn required<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match Scalar::deserialize(d)? {
        Scalar::Str(s) => Ok(s),
        Scalar::Null => Err(de::Error::custom("is required")),
        other => Err(must_be("a string", &other)),
    }
}

/// A string that `null` or absence leaves empty: `name`.
pub(crate) fn or_default<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(opt_text(d)?.unwrap_or_default())
}

/// An optional string: `description`, `customerId`, `productCode`.
pub(crate) fn opt_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match Scalar::deserialize(d)? {
        Scalar::Str(s) => Ok(Some(s)),
        Scalar::Null => Ok(None),
        other => Err(must_be("a string", &other)),
    }
}

/// `enabled`'s default.
pub(crate) fn yes() -> bool {
    true
}

/// `enabled`: `true`, `false`, or `null` for the default (`true`).
pub(crate) fn enabled<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    match Scalar::deserialize(d)? {
        Scalar::Bool(b) => Ok(b),
        Scalar::Null => Ok(true),
        other => Err(must_be("true or false", &other)),
    }
}

/// A whole number from 0 to `max`; `null` reads as `if_null`, or is refused where that is `None`.
pub(crate) fn whole<'de, D: Deserializer<'de>>(
    d: D,
    max: u64,
    range: &str,
    if_null: Option<u64>,
) -> Result<u64, D::Error> {
    let v = Scalar::deserialize(d)?;
    if let Scalar::Null = v {
        return if_null
            .ok_or_else(|| de::Error::custom(format_args!("is required: a whole number {range}")));
    }
    match v.whole().and_then(|n| u64::try_from(n).ok()) {
        Some(n) if n <= max => Ok(n),
        _ => Err(de::Error::custom(format_args!(
            "must be a whole number {range}, not {}",
            v.shown()
        ))),
    }
}

/// `burstLimit`: a whole number that fits the bucket (0 is valid, as on AWS).
pub(crate) fn burst<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let n = whole(d, u64::from(u32::MAX), "from 0 to 4294967295", None)?;
    Ok(u32::try_from(n).unwrap_or(u32::MAX))
}

// ------------------------------------------------------------------------------------- dates

const DATE_HINT: &str = "must be seconds since the epoch or a date and time with an offset, such \
                         as \"2024-01-15T10:00:00+00:00\"";

/// A date: epoch seconds (a fraction is dropped), or RFC 3339 text; `null` for none.
pub(crate) fn date<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    // ±2^63: the bounds of i64, both exact doubles.
    let from_f64 = |f: f64| {
        let f = f.floor();
        (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0)
            .contains(&f)
            .then_some(f as i64)
    };
    let v = Scalar::deserialize(d)?;
    let secs = match &v {
        Scalar::Null => return Ok(None),
        Scalar::I64(n) => Some(*n),
        Scalar::U64(n) => i64::try_from(*n).ok(),
        Scalar::F64(f) => from_f64(*f),
        Scalar::Str(s) => {
            let s = s.trim();
            match s.parse::<jiff::Timestamp>() {
                Ok(t) => Some(t.as_second()),
                Err(_) => s
                    .parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite())
                    .and_then(from_f64),
            }
        }
        _ => None,
    };
    match secs {
        Some(s) => Ok(Some(s)),
        None => Err(de::Error::custom(format_args!(
            "{DATE_HINT}, not {}",
            v.shown()
        ))),
    }
}

/// `"2024-01-15T10:00:00+00:00"`, or `None` outside the years 0000 to 9999.
pub(crate) fn format_date(secs: i64) -> Option<String> {
    /// 0000-01-01T00:00:00Z.
    const YEAR_ZERO: i64 = -62_167_219_200;
    let t = jiff::Timestamp::from_second(secs).ok()?;
    (secs >= YEAR_ZERO).then(|| t.display_with_offset(jiff::tz::Offset::UTC).to_string())
}

/// Writes a date as [`format_date`] does, or as epoch seconds where it cannot.
pub(crate) fn write_date<S: Serializer>(v: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(secs) => match format_date(*secs) {
            Some(text) => s.serialize_str(&text),
            None => s.serialize_i64(*secs),
        },
        None => s.serialize_none(),
    }
}

// ------------------------------------------------------------------------------------- objects

/// An object's shape, for messages: what it is called, and its fields.
///
/// serde's derive refuses an object that repeats one of `FIELDS` or lacks one of `REQUIRED`; the
/// configuration loader reads the object again to say which (only when it was refused).
pub(crate) trait Shape {
    /// `an object {"burstLimit", "rateLimit"}`.
    const SHAPE: &'static str;
    /// Every field the derive reads (a unit test holds it to what the type serializes).
    const FIELDS: &'static [&'static str];
    /// The fields the derive requires.
    const REQUIRED: &'static [&'static str];
}

/// A value read from a JSON object, a list or `null`; any other kind of value is refused with
/// `must be {expected}, not {kind}`. [`Object`], [`List`] and [`Map`] are its cases.
pub(crate) trait Container<'de>: Sized {
    /// What the value must be: `a list of stages {"apiId", "stage", "throttle"}`.
    fn expected() -> Cow<'static, str>;

    /// Reads an object.
    fn object<A: MapAccess<'de>>(_map: A) -> Result<Self, A::Error> {
        Err(wrong::<Self, _>("an object"))
    }

    /// Reads a list.
    fn list<A: SeqAccess<'de>>(_seq: A) -> Result<Self, A::Error> {
        Err(wrong::<Self, _>("a list"))
    }

    /// Reads `null`.
    fn null<E: de::Error>() -> Result<Self, E> {
        Err(wrong::<Self, _>("null"))
    }
}

fn wrong<'de, T: Container<'de>, E: de::Error>(kind: &str) -> E {
    E::custom(format_args!("must be {}, not {kind}", T::expected()))
}

/// Reads a [`Container`].
pub(crate) fn container<'de, D: Deserializer<'de>, T: Container<'de>>(d: D) -> Result<T, D::Error> {
    struct V<T>(PhantomData<T>);
    impl<'de, T: Container<'de>> Visitor<'de> for V<T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(&T::expected())
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
            T::object(map)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<T, A::Error> {
            T::list(seq)
        }
        fn visit_unit<E: de::Error>(self) -> Result<T, E> {
            T::null()
        }
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<T, E> {
            Err(wrong::<T, _>("true or false"))
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<T, E> {
            Err(wrong::<T, _>("a number"))
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<T, E> {
            Err(wrong::<T, _>("a number"))
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<T, E> {
            Err(wrong::<T, _>("a number"))
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<T, E> {
            Err(wrong::<T, _>("a string"))
        }
    }
    d.deserialize_any(V(PhantomData))
}

/// A `T` read by its derive from a JSON object; any other kind of value is refused as not
/// [`Shape::SHAPE`] (serde's own message would show a string it was given).
#[derive(Debug)]
pub(crate) struct Object<T>(pub(crate) T);

impl<'de, T: Deserialize<'de> + Shape> Container<'de> for Object<T> {
    fn expected() -> Cow<'static, str> {
        Cow::Borrowed(T::SHAPE)
    }
    fn object<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        T::deserialize(MapAccessDeserializer::new(map)).map(Object)
    }
}

impl<'de, T: Deserialize<'de> + Shape> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        container(d)
    }
}

/// A list of objects `T`, `null` for none.
pub(crate) struct List<T>(pub(crate) Vec<T>);

impl<T> Default for List<T> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<'de, T: Deserialize<'de> + Shape> Container<'de> for List<T> {
    fn expected() -> Cow<'static, str> {
        Cow::Owned(format!("a list of {}", T::SHAPE))
    }
    fn list<A: SeqAccess<'de>>(mut seq: A) -> Result<Self, A::Error> {
        // A hint from the input: capped, so a short text cannot reserve much.
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(Object(item)) = seq.next_element()? {
            out.push(item);
        }
        Ok(List(out))
    }
    fn null<E: de::Error>() -> Result<Self, E> {
        Ok(List(Vec::new()))
    }
}

impl<'de, T: Deserialize<'de> + Shape> Deserialize<'de> for List<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        container(d)
    }
}

/// What an object whose values are `Self` is, for messages: `an object of tag names to strings`.
pub(crate) trait InObject {
    /// The object's description.
    const OBJECT: &'static str;
}

/// An object of names to values `V`, `null` for none, refusing a repeated name.
pub(crate) struct Map<V>(pub(crate) BTreeMap<String, V>);

impl<V> Default for Map<V> {
    fn default() -> Self {
        Self(BTreeMap::new())
    }
}

/// The reason for a repeated name.
pub(crate) const REPEATED: &str =
    "appears twice in this object; keep one (JSON readers disagree on which copy counts)";

/// Refuses the value of a repeated name, so that the error's path ends at the name.
struct Repeated;

impl<'de> DeserializeSeed<'de> for Repeated {
    type Value = Infallible;
    fn deserialize<D: Deserializer<'de>>(self, _: D) -> Result<Infallible, D::Error> {
        Err(de::Error::custom(REPEATED))
    }
}

impl<'de, V: Deserialize<'de> + InObject> Container<'de> for Map<V> {
    fn expected() -> Cow<'static, str> {
        Cow::Borrowed(V::OBJECT)
    }
    fn object<A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        let mut out = BTreeMap::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                match map.next_value_seed(Repeated)? {}
            }
            let value = map.next_value()?;
            out.insert(key, value);
        }
        Ok(Map(out))
    }
    fn null<E: de::Error>() -> Result<Self, E> {
        Ok(Map(BTreeMap::new()))
    }
}

impl<'de, V: Deserialize<'de> + InObject> Deserialize<'de> for Map<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        container(d)
    }
}

/// A tag's value: a string.
struct Tag(String);

impl<'de> Deserialize<'de> for Tag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Scalar::deserialize(d)? {
            Scalar::Str(s) => Ok(Tag(s)),
            other => Err(must_be("a string", &other)),
        }
    }
}

impl InObject for Tag {
    const OBJECT: &'static str = "an object of tag names to strings";
}

/// `tags`: an object of strings.
pub(crate) fn tags<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    let Map(tags) = Map::<Tag>::deserialize(d)?;
    Ok(tags.into_iter().map(|(k, Tag(v))| (k, v)).collect())
}

/// An optional object: `throttle`, `quota`.
pub(crate) fn object_opt<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Shape,
{
    Ok(Option::<Object<T>>::deserialize(d)?.map(|o| o.0))
}

/// A list of objects, `null` for none: `apiStages`.
pub(crate) fn list<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Shape,
{
    Ok(List::<T>::deserialize(d)?.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ApiKey, ApiKeyValue, ApiStage, Quota, QuotaPeriod, Throttle, UsagePlan};

    /// The path to the error and its message, without serde_json's position.
    fn refused<T: for<'de> Deserialize<'de>>(text: &str) -> (String, String) {
        let mut de = serde_json::Deserializer::from_str(text);
        let e = serde_path_to_error::deserialize::<_, T>(&mut de)
            .err()
            .expect("refused");
        let path = e.path().to_string();
        let e = e.into_inner();
        let at = format!(" at line {} column {}", e.line(), e.column());
        (path, e.to_string().trim_end_matches(&at).to_owned())
    }

    #[test]
    fn dates_are_written_in_rfc3339_within_years_0_to_9999() {
        assert_eq!(format_date(0).unwrap(), "1970-01-01T00:00:00+00:00");
        assert_eq!(
            format_date(1_705_312_800).unwrap(),
            "2024-01-15T10:00:00+00:00"
        );
        assert_eq!(format_date(-5).unwrap(), "1969-12-31T23:59:55+00:00");
        assert_eq!(
            format_date(-62_167_219_200).unwrap(),
            "0000-01-01T00:00:00+00:00"
        );
        assert_eq!(format_date(-62_167_219_201), None);
        assert_eq!(format_date(i64::MAX), None);
        assert_eq!(format_date(i64::MIN), None);
    }

    #[test]
    fn models_round_trip_through_serde() {
        let mut plan = UsagePlan::new("p1", "Plan");
        plan.throttle = Some(Throttle::new(2.5, 7).unwrap());
        plan.quota = Some(Quota::new(10, QuotaPeriod::Month, 3).unwrap());
        let text = serde_json::to_string(&plan).unwrap();
        assert_eq!(
            text,
            r#"{"id":"p1","name":"Plan","apiStages":[],"throttle":{"burstLimit":7,"rateLimit":2.5},"quota":{"limit":10,"offset":3,"period":"MONTH"}}"#
        );
        assert_eq!(serde_json::from_str::<UsagePlan>(&text).unwrap(), plan);
        let key = ApiKey::new("k", "n", ApiKeyValue::new("a".repeat(20)).unwrap());
        let text = serde_json::to_string(&key).unwrap();
        assert_eq!(serde_json::from_str::<ApiKey>(&text).unwrap(), key);
    }

    /// The keys of `value`'s JSON object.
    fn keys(value: &impl serde::Serialize) -> Vec<String> {
        match serde_json::to_value(value).unwrap() {
            serde_json::Value::Object(map) => map.keys().cloned().collect(),
            other => panic!("{other}"),
        }
    }

    fn sorted(fields: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = fields.iter().map(|f| (*f).to_owned()).collect();
        v.sort();
        v
    }

    /// `Shape::FIELDS` is every field the type writes (and so reads), and an object with only
    /// `Shape::REQUIRED` is read while one without any of them is not.
    #[test]
    fn shapes_list_the_fields_the_derives_read() {
        let mut key = ApiKey::new("k", "n", ApiKeyValue::new("a".repeat(20)).unwrap());
        key.description = Some("d".into());
        key.created_date = Some(1);
        key.last_updated_date = Some(1);
        key.customer_id = Some("c".into());
        key.tags.insert("t".into(), "v".into());
        let mut stage = ApiStage::new("a", "s");
        stage
            .throttle
            .insert("/items/GET".into(), Throttle::new(1.0, 1).unwrap());
        let mut plan = UsagePlan::new("p", "n");
        plan.description = Some("d".into());
        plan.product_code = Some("c".into());
        plan.tags.insert("t".into(), "v".into());
        plan.throttle = Some(Throttle::new(1.0, 1).unwrap());
        plan.quota = Some(Quota::new(1, QuotaPeriod::Day, 0).unwrap());
        plan.api_stages.push(stage.clone());
        assert_eq!(sorted(ApiKey::FIELDS), keys(&key));
        assert_eq!(sorted(UsagePlan::FIELDS), keys(&plan));
        assert_eq!(sorted(ApiStage::FIELDS), keys(&stage));
        assert_eq!(sorted(Throttle::FIELDS), keys(&plan.throttle));
        assert_eq!(sorted(Quota::FIELDS), keys(&plan.quota));

        fn only_required<T: Shape + for<'de> Deserialize<'de>>(values: &[&str]) {
            let object = |skip: Option<usize>| {
                let fields: Vec<String> = T::REQUIRED
                    .iter()
                    .zip(values)
                    .enumerate()
                    .filter(|(i, _)| Some(*i) != skip)
                    .map(|(_, (f, v))| format!("{f:?}: {v}"))
                    .collect();
                format!("{{{}}}", fields.join(", "))
            };
            serde_json::from_str::<Object<T>>(&object(None)).unwrap();
            for i in 0..T::REQUIRED.len() {
                let (path, msg) = refused::<Object<T>>(&object(Some(i)));
                assert_eq!(path, ".", "{msg}");
                assert!(msg.contains(T::REQUIRED[i]), "{msg}");
            }
        }
        only_required::<ApiKey>(&["\"k\"", "\"aaaaaaaaaaaaaaaaaaaa\""]);
        only_required::<UsagePlan>(&["\"p\""]);
        only_required::<ApiStage>(&["\"a\"", "\"s\""]);
        only_required::<Throttle>(&["1", "1"]);
        only_required::<Quota>(&["1", "\"DAY\""]);
    }

    #[test]
    fn containers_name_the_kind_they_were_given_never_the_value() {
        let secret = "\"aBcDeFgHiJkLmNoPqRsTuVwXyZ\"";
        let (path, msg) = refused::<List<ApiStage>>(secret);
        assert_eq!(path, ".");
        assert_eq!(
            msg,
            "must be a list of a stage {\"apiId\", \"stage\", \"throttle\"}, not a string"
        );
        let (_, msg) = refused::<Object<Throttle>>("[1]");
        assert_eq!(
            msg,
            "must be an object {\"burstLimit\", \"rateLimit\"}, not a list"
        );
        let (path, msg) = refused::<Map<Tag>>(&format!("{{\"a\": {secret}, \"b\": 1}}"));
        assert_eq!(
            (path.as_str(), msg.as_str()),
            ("b", "must be a string, not a number")
        );
        let (_, msg) = refused::<ApiKey>(&format!("{{\"id\": {secret}, \"value\": 5}}"));
        assert!(
            !msg.contains("aBcDe") && msg.ends_with("not a number"),
            "{msg}"
        );
        assert!(serde_json::from_str::<List<ApiStage>>("null")
            .unwrap()
            .0
            .is_empty());
    }

    #[test]
    fn a_repeated_name_is_refused_at_its_path() {
        let (path, msg) = refused::<Map<Tag>>(r#"{"a": "x", "b": "y", "a": "z"}"#);
        assert_eq!((path.as_str(), msg.as_str()), ("a", REPEATED));
        let (path, msg) =
            refused::<ApiStage>(r#"{"apiId": "a", "stage": "s", "throttle": {"/a/GET": 1}}"#);
        assert_eq!(path, "throttle./a/GET");
        assert!(msg.ends_with("not a number"), "{msg}");
    }
}
