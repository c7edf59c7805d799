//! How the model reads and writes AWS's JSON (feature `json`).
//!
//! The model's types derive serde's traits; the derives refuse an object that repeats or lacks a
//! field, and serde_with's `MapPreventDuplicates` refuses a repeated tag or method path. What is
//! here are the few functions the derives name where AWS's tools write a field in more than one
//! way (a rate as a number or a numeric string, a date as epoch seconds or RFC 3339 text, a whole
//! number as `1000` or `1e3`, `null` for a missing field), and [`reason`], which turns serde's
//! message into the crate's wording without the value it was given: any string may be a key's
//! secret value, and serde's `invalid type: string "…"` repeats it.

use serde::de::{Error as _, Unexpected};
use serde::{Deserialize, Deserializer, Serializer};

use super::text::number;

// ------------------------------------------------------------------------------------- fields

/// `null` for the default: `name` (`""`), `apiStages` (none).
pub(crate) type OrDefault = serde_with::As<serde_with::DefaultOnNull>;

/// An object that names each key once, `null` for none: `tags`, per-method throttles.
pub(crate) type Unique = serde_with::As<
    serde_with::DefaultOnNull<serde_with::MapPreventDuplicates<serde_with::Same, serde_with::Same>>,
>;

/// `enabled`: `true`, `false`, or `null` for the default (`true`).
pub(crate) fn enabled<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(Option::<bool>::deserialize(d)?.unwrap_or(true))
}

/// `enabled`'s default.
pub(crate) fn yes() -> bool {
    true
}

/// A whole number (`1000`, `1000.0`, `1e3`) that fits `T`: `burstLimit`, `limit`.
pub(crate) fn whole<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64>,
{
    to_whole(serde_json::Number::deserialize(d)?)
}

/// A quota's `offset`: a whole number, `null` for 0.
pub(crate) fn whole_or_zero<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    Option::<serde_json::Number>::deserialize(d)?.map_or(Ok(0), to_whole)
}

fn to_whole<T: TryFrom<u64>, E: serde::de::Error>(n: serde_json::Number) -> Result<T, E> {
    // Below 2^64 (an exact double), a double without a fraction is an integer.
    let exact = |f: f64| f.fract() == 0.0 && (0.0..18_446_744_073_709_551_616.0).contains(&f);
    let whole = n
        .as_u64()
        .or_else(|| n.as_f64().filter(|f| exact(*f)).map(|f| f as u64));
    whole.and_then(|w| T::try_from(w).ok()).ok_or_else(|| {
        let unexpected = match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => Unexpected::Unsigned(u),
            (_, Some(i), _) => Unexpected::Signed(i),
            (_, _, f) => Unexpected::Float(f.unwrap_or(f64::NAN)),
        };
        E::invalid_value(unexpected, &"a whole number")
    })
}

/// `rateLimit` as AWS's tools write it: a number, or a string that holds one (`"10"`).
#[derive(Deserialize)]
#[serde(
    untagged,
    expecting = "must be 0 (never refills) or a number of requests per second from one a year \
                 (3.2e-8) to a billion (1e9), or a string that holds one"
)]
enum Rate {
    Number(f64),
    Text(String),
}

/// `rateLimit`: a number, or a string holding one (its range is checked by validation).
pub(crate) fn rate<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    match Rate::deserialize(d)? {
        Rate::Number(n) => Ok(n),
        Rate::Text(s) => s.trim().parse().map_err(|_| {
            D::Error::custom(format_args!(
                "must be {}, not a string that holds no number",
                super::RATE_RANGE
            ))
        }),
    }
}

/// What a date must be; [`Date`]'s `expecting` says the same.
const DATE_HINT: &str = "must be seconds since the epoch or a date and time with an offset, such \
                         as \"2024-01-15T10:00:00+00:00\"";

/// A date as AWS writes it: epoch seconds (the raw API) or RFC 3339 text (the CLI).
#[derive(Deserialize)]
#[serde(
    untagged,
    expecting = "must be seconds since the epoch or a date and time with an offset, such as \
                 \"2024-01-15T10:00:00+00:00\""
)]
enum Date {
    Number(serde_json::Number),
    Text(String),
}

/// A date: epoch seconds (a fraction is dropped) or RFC 3339 text; `null` for none.
pub(crate) fn date<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    // ±2^63: the bounds of i64, both exact doubles.
    let from_f64 = |f: f64| {
        let f = f.floor();
        (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0)
            .contains(&f)
            .then_some(f as i64)
    };
    let (secs, given) = match Option::<Date>::deserialize(d)? {
        None => return Ok(None),
        Some(Date::Number(n)) => (
            n.as_i64().or_else(|| n.as_f64().and_then(from_f64)),
            n.as_f64().map_or_else(|| n.to_string(), number),
        ),
        Some(Date::Text(s)) => {
            let s = s.trim();
            let secs = match s.parse::<jiff::Timestamp>() {
                Ok(t) => Some(t.as_second()),
                Err(_) => s
                    .parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite())
                    .and_then(from_f64),
            };
            (secs, "a string".to_owned())
        }
    };
    secs.map(Some)
        .ok_or_else(|| D::Error::custom(format_args!("{DATE_HINT}, not {given}")))
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

// ------------------------------------------------------------------------------------- messages

/// serde's message (without serde_json's position) in the crate's wording, never holding a
/// string it was given.
///
/// `invalid type: string "…", expected u32` becomes `must be a whole number from 0 to
/// 4294967295, not a string` (`expected`, if given, replaces serde's expectation); numbers,
/// `true`, `false`, `null`, lists and objects are named, strings only by their kind; an unknown
/// variant loses its text. Any other message is kept as it is: serde's `missing field` and
/// `duplicate field` name only fields, and the crate's own messages never hold a string given.
pub(crate) fn reason(message: &str, expected: Option<&str>) -> String {
    let (found, serde_expected) = if let Some(rest) = message
        .strip_prefix("invalid type: ")
        .or_else(|| message.strip_prefix("invalid value: "))
    {
        // The expectation is ours or serde's and never holds ", expected "; what comes before it
        // may (a string given), so split at the last one.
        let Some((found, exp)) = rest.rsplit_once(", expected ") else {
            return "has a value of the wrong type".to_owned();
        };
        (Some(found), exp)
    } else if let Some(rest) = message.strip_prefix("unknown variant `") {
        match rest.rsplit_once("`, expected ") {
            Some((_, exp)) => (None, exp),
            None => return "is not one of the names this field takes".to_owned(),
        }
    } else if let Some(rest) = message.strip_prefix("invalid length ") {
        // `invalid length 0, expected a stage {...}`: a list where an object belongs (serde's
        // derive reads a struct from its fields in order).
        match rest.split_once(", expected ") {
            Some((_, exp)) => (Some("sequence"), exp),
            None => return message.to_owned(),
        }
    } else {
        return message.to_owned();
    };
    let what = expected.unwrap_or_else(|| plain(serde_expected));
    match found.and_then(shown) {
        Some(found) => format!("must be {what}, not {found}"),
        None => format!("must be {what}"),
    }
}

/// The message of a serde_json error without the position it appends (` at line 3 column 7`),
/// for where a path says where.
pub(crate) fn without_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let position = format!(" at line {} column {}", e.line(), e.column());
    match text.strip_suffix(&position) {
        Some(reason) => reason.to_owned(),
        None => text,
    }
}

/// [`reason`] for a serde_json error, without its position (the admin API's bodies).
#[cfg(any(feature = "admin", test))]
pub(crate) fn json_reason(e: &serde_json::Error) -> String {
    reason(&without_position(e), None)
}

/// serde's names for what it expected, in the crate's words.
fn plain(expected: &str) -> &str {
    match expected {
        "a boolean" => "true or false",
        "a sequence" => "a list",
        "a map" => "an object",
        "u32" => "a whole number from 0 to 4294967295",
        "u8" | "u16" | "u64" | "usize" => "a whole number ≥ 0",
        "i8" | "i16" | "i32" | "i64" | "isize" => "a whole number",
        "f32" | "f64" | "a JSON number" => "a number",
        other => other,
    }
}

/// What serde says it was given, for a message: a number as written, a string by its kind only.
fn shown(found: &str) -> Option<String> {
    let quoted = |prefix: &str| {
        found
            .strip_prefix(prefix)
            .and_then(|r| r.strip_prefix('`'))
            .and_then(|r| r.strip_suffix('`'))
    };
    if let Some(n) = quoted("integer ") {
        return Some(n.to_owned());
    }
    if let Some(f) = quoted("floating point ") {
        return Some(f.parse::<f64>().map_or_else(|_| f.to_owned(), number));
    }
    Some(
        match found {
            "null" | "unit value" => "null",
            "boolean `true`" => "true",
            "boolean `false`" => "false",
            "sequence" => "a list",
            "map" => "an object",
            s if s.starts_with("string ") => "a string",
            // Anything else may hold what was given: leave it out.
            _ => return None,
        }
        .to_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ApiKey, ApiKeyValue, Quota, QuotaPeriod, Throttle, UsagePlan};

    const SECRET: &str = "aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789";

    /// serde's message for `text` read as a `T`, through [`json_reason`].
    fn refused<T: for<'de> Deserialize<'de>>(text: &str) -> String {
        let e = serde_json::from_str::<T>(text).err().expect("refused");
        json_reason(&e)
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

    /// serde's wording, which [`reason`] rewrites, as the serde and serde_json in use write it:
    /// a new release that words it otherwise fails here, not in a user's log.
    #[test]
    fn serde_messages_are_rewritten_without_the_string_given() {
        let s = format!("\"{SECRET}\"");
        let cases: [(String, String); 10] = [
            (
                refused::<u32>(&s),
                "must be a whole number from 0 to 4294967295, not a string".into(),
            ),
            (
                refused::<u64>("-1"),
                "must be a whole number ≥ 0, not -1".into(),
            ),
            (
                refused::<u32>("1.5"),
                "must be a whole number from 0 to 4294967295, not 1.5".into(),
            ),
            (
                refused::<bool>(&s),
                "must be true or false, not a string".into(),
            ),
            (
                refused::<String>("true"),
                "must be a string, not true".into(),
            ),
            (
                refused::<String>("null"),
                "must be a string, not null".into(),
            ),
            (
                refused::<Vec<u8>>("{}"),
                "must be a list, not an object".into(),
            ),
            (
                refused::<std::collections::BTreeMap<String, String>>("[]"),
                "must be an object, not a list".into(),
            ),
            (
                refused::<Throttle>(&s),
                "must be an object {\"burstLimit\", \"rateLimit\"}, not a string".into(),
            ),
            (
                refused::<Throttle>("[1]"),
                "must be an object {\"burstLimit\", \"rateLimit\"}, not a list".into(),
            ),
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
        }
        // A string with quotes and `, expected ` in it.
        let tricky = r#""a \", expected x\" b, expected y""#;
        assert_eq!(refused::<f64>(tricky), "must be a number, not a string");
        // An unknown variant loses its text.
        #[derive(Debug, Deserialize)]
        #[serde(rename_all = "lowercase")]
        enum Op {
            Add,
        }
        assert_eq!(
            refused::<Op>(&format!("\"{SECRET}, expected \"")),
            "must be `add`"
        );
        // Messages of any other form are kept; an expectation given replaces serde's.
        assert_eq!(reason("missing field `id`", None), "missing field `id`");
        assert_eq!(
            reason("invalid type: string \"x\", expected u32", Some("a burst")),
            "must be a burst, not a string"
        );
        assert_eq!(
            reason("invalid type: something new, expected u32", None),
            "must be a whole number from 0 to 4294967295"
        );
    }

    /// The messages of the untagged readers, for a value of no kind they read, are their
    /// `expecting` text: the same as the crate's constants.
    #[test]
    fn rates_and_dates_of_the_wrong_kind_say_what_they_must_be() {
        #[derive(Debug, Deserialize)]
        struct R(#[serde(deserialize_with = "rate")] f64);
        #[derive(Debug, Deserialize)]
        struct D(#[serde(deserialize_with = "date")] Option<i64>);
        let want = format!(
            "must be {}, or a string that holds one",
            super::super::RATE_RANGE
        );
        for bad in ["true", "[]", "{}", "null"] {
            assert_eq!(refused::<R>(bad), want);
        }
        assert_eq!(serde_json::from_str::<R>("\" 2.5 \"").unwrap().0, 2.5);
        assert_eq!(refused::<D>("true"), DATE_HINT);
        assert_eq!(refused::<D>("\"x\""), format!("{DATE_HINT}, not a string"));
        assert_eq!(serde_json::from_str::<D>("null").unwrap().0, None);
    }

    #[test]
    fn whole_numbers_may_be_written_as_doubles() {
        #[derive(Debug, Deserialize)]
        struct W(#[serde(deserialize_with = "whole")] u32);
        assert_eq!(serde_json::from_str::<W>("1e3").unwrap().0, 1000);
        assert_eq!(serde_json::from_str::<W>("27.0").unwrap().0, 27);
        assert_eq!(serde_json::from_str::<W>("4294967295").unwrap().0, u32::MAX);
        for (bad, found) in [
            ("4294967296", "4294967296"),
            ("-1", "-1"),
            ("0.5", "0.5"),
            ("1e308", "1e308"),
        ] {
            let msg = refused::<W>(bad);
            assert_eq!(msg, format!("must be a whole number, not {found}"));
        }
    }

    #[test]
    fn a_key_value_is_never_repeated() {
        let key = |value: &str| format!(r#"{{"id": "k", "value": {value}}}"#);
        let msg = refused::<ApiKey>(&key(&format!("\"{SECRET} \"")));
        assert!(
            msg.contains("visible ASCII") && !msg.contains(SECRET),
            "{msg}"
        );
        assert_eq!(refused::<ApiKey>(&key("5")), "must be a string, not 5");
        let msg = refused::<ApiKey>(&key("null"));
        assert_eq!(msg, "must be a string, not null");
    }
}
