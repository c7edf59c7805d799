//! How the model reads and writes AWS's JSON (feature `json`).
//!
//! The model's types derive serde's traits; the helpers here read the fields that AWS's tools
//! write in more than one way (a rate as a number or a numeric string, dates as epoch seconds or
//! RFC 3339 text, `null` for a missing field), refuse an object that repeats a key or lacks a
//! required one ([`Checked`]), and never put a string they were given into a message (it may be
//! a key's secret value).
//!
//! When one of these checks refuses something, it also records a [`Problem`] for this thread:
//! the configuration loader reads it back (with the path that `serde_path_to_error` tracked) to
//! name the item and field and say what to fix, so no one ever parses an error's text.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, IntoDeserializer, MapAccess};
use serde::de::{SeqAccess, Visitor};
use serde::{Deserialize, Serializer};

use super::text::number;

// ------------------------------------------------------------------------------------- problems

/// What a check of this module refused: the field below the error's path that is wrong (for a
/// repeated or missing field; `None` when the path already ends at it) and what to fix.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Problem {
    pub(crate) field: Option<String>,
    pub(crate) reason: String,
}

thread_local! {
    static PROBLEM: RefCell<Option<Problem>> = const { RefCell::new(None) };
}

/// Forgets any problem recorded on this thread (call before deserializing).
pub(crate) fn clear_problem() {
    PROBLEM.with(|p| p.borrow_mut().take());
}

/// The problem recorded on this thread since [`clear_problem`], if any.
pub(crate) fn take_problem() -> Option<Problem> {
    PROBLEM.with(|p| p.borrow_mut().take())
}

pub(crate) fn record(field: Option<&str>, reason: String) -> String {
    let text = match field {
        Some(f) => format!("{f}: {reason}"),
        None => reason.clone(),
    };
    PROBLEM.with(|p| {
        *p.borrow_mut() = Some(Problem {
            field: field.map(str::to_owned),
            reason,
        })
    });
    text
}

/// Records a problem and returns it as the deserializer's error.
pub(crate) fn fail<E: de::Error>(field: Option<&str>, reason: String) -> E {
    E::custom(record(field, reason))
}

// ------------------------------------------------------------------------------------- scalars

/// Any JSON value, keeping only what the helpers need; lists and objects are skipped.
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

/// A required string: `id`, `apiId`, `stage`.
pub(crate) fn required<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match Scalar::deserialize(d)? {
        Scalar::Str(s) => Ok(s),
        Scalar::Null => Err(fail(None, "is required".to_owned())),
        other => Err(fail(
            None,
            format!("must be a string, not {}", other.kind()),
        )),
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
        other => Err(fail(
            None,
            format!("must be a string, not {}", other.kind()),
        )),
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
        other => Err(fail(
            None,
            format!("must be true or false, not {}", other.kind()),
        )),
    }
}

/// A whole number from 0 to `max`.
pub(crate) fn whole<'de, D: Deserializer<'de>>(
    d: D,
    max: u64,
    range: &str,
) -> Result<u64, D::Error> {
    let v = Scalar::deserialize(d)?;
    if let Scalar::Null = v {
        return Err(fail(None, format!("is required: a whole number {range}")));
    }
    match v.whole().and_then(|n| u64::try_from(n).ok()) {
        Some(n) if n <= max => Ok(n),
        _ => Err(fail(
            None,
            format!("must be a whole number {range}, not {}", v.shown()),
        )),
    }
}

/// `burstLimit`: a whole number that fits the bucket (its minimum is checked by validation).
pub(crate) fn burst<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let n = whole(d, u64::from(u32::MAX), "from 0 to 4294967295")?;
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
        None => Err(fail(None, format!("{DATE_HINT}, not {}", v.shown()))),
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

/// An object's shape: what it is called in messages, and which fields it must have.
pub(crate) trait Fields {
    /// `an object {"burstLimit", "rateLimit"}`.
    const SHAPE: &'static str;
    /// The fields that must be present (and not `null`).
    const REQUIRED: &'static [&'static str];
}

/// A `T` read from a JSON object that repeats no key and has every required field.
///
/// serde's derive would report a repeated field in words of its own and no field name, and a
/// plain map would keep the last copy silently; this names the field.
#[derive(Debug)]
pub(crate) struct Checked<T>(pub(crate) T);

impl<'de, T: Deserialize<'de> + Fields> Deserialize<'de> for Checked<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(CheckedVisitor(PhantomData)).map(Checked)
    }
}

struct CheckedVisitor<T>(PhantomData<T>);

impl<T> CheckedVisitor<T>
where
    T: Fields,
{
    fn wrong<E: de::Error>(kind: &str) -> E {
        fail(None, format!("must be {}, not {kind}", T::SHAPE))
    }
}

impl<'de, T: Deserialize<'de> + Fields> Visitor<'de> for CheckedVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(T::SHAPE)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::deserialize(MapAccessDeserializer::new(Unique {
            inner: map,
            seen: Vec::new(),
            required: T::REQUIRED,
        }))
    }
    fn visit_unit<E: de::Error>(self) -> Result<T, E> {
        Err(Self::wrong("null"))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<T, E> {
        Err(Self::wrong("true or false"))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<T, E> {
        Err(Self::wrong("a number"))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<T, E> {
        Err(Self::wrong("a number"))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<T, E> {
        Err(Self::wrong("a number"))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<T, E> {
        Err(Self::wrong("a string"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<T, A::Error> {
        Err(Self::wrong("a list"))
    }
}

/// The reason for a repeated key.
pub(crate) const REPEATED: &str =
    "appears twice in this object; keep one (JSON readers disagree on which copy counts)";

/// A map that refuses a repeated key and, at its end, a missing required one.
struct Unique<A> {
    inner: A,
    seen: Vec<String>,
    required: &'static [&'static str],
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Unique<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        let key = self.inner.next_key_seed(KeySeed {
            seed,
            seen: &mut self.seen,
        })?;
        if key.is_none() {
            if let Some(missing) = self
                .required
                .iter()
                .find(|r| !self.seen.iter().any(|s| s == *r))
            {
                return Err(fail(Some(missing), "is required".to_owned()));
            }
        }
        Ok(key)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.inner.next_value_seed(seed)
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

/// Reads a key as a string, refuses it if seen, and hands it to the derived code's seed.
struct KeySeed<'s, K> {
    seed: K,
    seen: &'s mut Vec<String>,
}

impl<'de, K: DeserializeSeed<'de>> DeserializeSeed<'de> for KeySeed<'_, K> {
    type Value = K::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<K::Value, D::Error> {
        let key = String::deserialize(d)?;
        if self.seen.contains(&key) {
            // The path tracked up to here already ends at this key.
            return Err(fail(None, REPEATED.to_owned()));
        }
        self.seen.push(key.clone());
        self.seed.deserialize(key.into_deserializer())
    }
}

/// An optional object: `throttle`, `quota`.
pub(crate) fn checked_opt<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Fields,
{
    Ok(Option::<Checked<T>>::deserialize(d)?.map(|c| c.0))
}

/// A list of objects, `null` for none: `apiStages`.
pub(crate) fn checked_list<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Fields,
{
    struct V<T>(PhantomData<T>);
    impl<'de, T: Deserialize<'de> + Fields> Visitor<'de> for V<T> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "a list of {}", T::SHAPE)
        }
        fn visit_unit<E>(self) -> Result<Vec<T>, E> {
            Ok(Vec::new())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut out = Vec::new();
            while let Some(Checked(item)) = seq.next_element::<Checked<T>>()? {
                out.push(item);
            }
            Ok(out)
        }
        fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Vec<T>, A::Error> {
            Err(fail(
                None,
                format!("must be a list of {}, not an object", T::SHAPE),
            ))
        }
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Vec<T>, E> {
            Err(fail(None, format!("must be a list of {}", T::SHAPE)))
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Vec<T>, E> {
            Err(fail(None, format!("must be a list of {}", T::SHAPE)))
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Vec<T>, E> {
            Err(fail(None, format!("must be a list of {}", T::SHAPE)))
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Vec<T>, E> {
            Err(fail(None, format!("must be a list of {}", T::SHAPE)))
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Vec<T>, E> {
            Err(fail(None, format!("must be a list of {}", T::SHAPE)))
        }
    }
    d.deserialize_any(V(PhantomData))
}

/// A list of objects, `null` for none, as a type (for the configuration's `items`).
pub(crate) struct ListOf<T>(pub(crate) Vec<T>);

impl<'de, T: Deserialize<'de> + Fields> Deserialize<'de> for ListOf<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        checked_list(d).map(ListOf)
    }
}

/// An object of string keys whose values are read by `V`, refusing a repeated key.
pub(crate) fn unique_map<'de, D, V, T>(
    d: D,
    shape: &'static str,
    each: fn(V) -> T,
) -> Result<BTreeMap<String, T>, D::Error>
where
    D: Deserializer<'de>,
    V: Deserialize<'de>,
{
    struct Vis<V, T> {
        shape: &'static str,
        each: fn(V) -> T,
    }
    impl<'de, V: Deserialize<'de>, T> Visitor<'de> for Vis<V, T> {
        type Value = BTreeMap<String, T>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.shape)
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(BTreeMap::new())
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some(key) = map.next_key::<String>()? {
                if out.contains_key(&key) {
                    return Err(fail(Some(&key), REPEATED.to_owned()));
                }
                let value = map.next_value::<V>()?;
                out.insert(key, (self.each)(value));
            }
            Ok(out)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
            Err(fail(None, format!("must be {}, not a list", self.shape)))
        }
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Err(fail(
                None,
                format!("must be {}, not true or false", self.shape),
            ))
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Err(fail(None, format!("must be {}, not a number", self.shape)))
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Err(fail(None, format!("must be {}, not a number", self.shape)))
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Err(fail(None, format!("must be {}, not a number", self.shape)))
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Err(fail(None, format!("must be {}, not a string", self.shape)))
        }
    }
    d.deserialize_any(Vis { shape, each })
}

/// A string value in a map (`tags`).
struct Text(String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Scalar::deserialize(d)? {
            Scalar::Str(s) => Ok(Text(s)),
            other => Err(fail(
                None,
                format!("must be a string, not {}", other.kind()),
            )),
        }
    }
}

/// `tags`: an object of strings.
pub(crate) fn tags<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    unique_map(d, "an object of tag names to strings", |t: Text| t.0)
}

/// An object of string keys, refusing a repeated key (for the configuration's `usagePlanKeys`).
pub(crate) fn map_of<'de, D, V>(d: D, shape: &'static str) -> Result<BTreeMap<String, V>, D::Error>
where
    D: Deserializer<'de>,
    V: Deserialize<'de>,
{
    unique_map(d, shape, |v: V| v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ApiKey, ApiKeyValue, Quota, QuotaPeriod, Throttle, UsagePlan};

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

    #[test]
    fn problems_are_recorded_and_taken_once() {
        clear_problem();
        let e = serde_json::from_str::<Checked<Throttle>>(r#"{"burstLimit": 1, "burstLimit": 2}"#)
            .err()
            .unwrap();
        assert!(e.is_data());
        let p = take_problem().unwrap();
        assert_eq!(p.field, None);
        assert_eq!(p.reason, REPEATED);
        assert_eq!(take_problem(), None);
        serde_json::from_str::<Checked<Throttle>>(r#"{"burstLimit": 1}"#).unwrap_err();
        assert_eq!(take_problem().unwrap().field.as_deref(), Some("rateLimit"));
    }
}
