//! API keys and their secret values.

use std::collections::BTreeMap;
use std::fmt;

#[cfg(feature = "json")]
use super::wire;
use crate::error::FieldError;

/// Shortest API key value AWS accepts.
pub const MIN_KEY_LEN: usize = 20;
/// Longest API key value AWS accepts.
pub const MAX_KEY_LEN: usize = 128;
/// Length of a generated key value.
pub const GENERATED_KEY_LEN: usize = 40;

/// An API key's secret value: 20 to 128 visible ASCII characters.
///
/// Its `Debug` output is redacted; read it with [`expose`](Self::expose). With the `json`
/// feature it serializes as the value itself (as `get-api-keys --include-values` prints it) and
/// deserializes from a string checked as [`new`](Self::new) checks it; an error never repeats it.
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

#[cfg(feature = "json")]
impl serde::Serialize for ApiKeyValue {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.expose())
    }
}

/// Reads a string and checks it as [`ApiKeyValue::new`] does; the message never repeats it.
#[cfg(feature = "json")]
impl<'de> serde::Deserialize<'de> for ApiKeyValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = <String as serde::Deserialize>::deserialize(d)?;
        Self::new(value).map_err(|e| serde::de::Error::custom(e.reason))
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
///
/// In JSON (feature `json`), `id` and `value` are required, `name` defaults to `""` and
/// `enabled` to `true`, `null` counts as missing, and unknown fields (`stageKeys`) are ignored.
/// The dates are read from epoch seconds (a fraction is dropped) or RFC 3339 text
/// (`"2019-08-13T10:52:42-07:00"`), and written as `"2024-01-15T10:00:00+00:00"`.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(
    feature = "json",
    derive(serde::Serialize, serde::Deserialize),
    serde(
        rename_all = "camelCase",
        expecting = "an API key {\"id\", \"value\", \"name\", ...}"
    )
)]
pub struct ApiKey {
    /// The key's id, used everywhere but in requests.
    pub id: String,
    /// The secret value clients send.
    pub value: ApiKeyValue,
    /// A name.
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
    /// A disabled key is answered 403.
    #[cfg_attr(
        feature = "json",
        serde(default = "wire::yes", deserialize_with = "wire::enabled")
    )]
    pub enabled: bool,
    /// When the key was created, in seconds since the Unix epoch.
    #[cfg_attr(
        feature = "json",
        serde(
            default,
            deserialize_with = "wire::date",
            serialize_with = "wire::write_date",
            skip_serializing_if = "Option::is_none"
        )
    )]
    pub created_date: Option<i64>,
    /// When the key was last changed, in seconds since the Unix epoch.
    #[cfg_attr(
        feature = "json",
        serde(
            default,
            deserialize_with = "wire::date",
            serialize_with = "wire::write_date",
            skip_serializing_if = "Option::is_none"
        )
    )]
    pub last_updated_date: Option<i64>,
    /// An AWS Marketplace customer id.
    #[cfg_attr(
        feature = "json",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub customer_id: Option<String>,
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

    /// Checks the fields that [`ApiKeyValue`] does not: a non-empty id, and this crate's own
    /// tags ([`tags::check_own`](crate::tags::check_own)).
    pub fn validate(&self) -> Result<(), FieldError> {
        check_id("id", &self.id)?;
        crate::tags::check_own(&self.tags)
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
}
