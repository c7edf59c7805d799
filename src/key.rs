//! Where a request's API key comes from: a header (`x-api-key` by default), or a value an earlier
//! layer put in the request's extensions (AWS's `AUTHORIZER` key source).
//!
//! The layer checks what it reads before any lookup: a missing or empty key is
//! [`Rejection::MissingKey`]; one that is not 20 to 128
//! visible ASCII characters is [`Rejection::InvalidKey`].
//! Both are answered 403 without asking the store.
//!
//! # Examples
//!
//! An authorizer layer that maps a bearer token to the client's usage key:
//!
//! ```
//! use http::Request;
//! use tower_usage_plans::key::{KeySource, UsageIdentifierKey};
//!
//! let mut req = Request::new(());
//! req.extensions_mut().insert(UsageIdentifierKey::new("aBcDeFgHiJkLmNoPqRsTuVwXyZ123456789"));
//! assert_eq!(
//!     KeySource::Authorizer.read(&req).unwrap(),
//!     "aBcDeFgHiJkLmNoPqRsTuVwXyZ123456789"
//! );
//! assert!(KeySource::default().read(&req).is_err()); // no x-api-key header
//! ```

use std::fmt;

use http::{HeaderName, Request};

use crate::model::{MAX_KEY_LEN, MIN_KEY_LEN};
use crate::rejection::Rejection;

/// Where the layer reads a request's API key.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeySource {
    /// A request header; `x-api-key` by default (AWS's `HEADER`).
    Header(HeaderName),
    /// A [`UsageIdentifierKey`] an earlier layer put in the request's extensions (AWS's
    /// `AUTHORIZER`, its `usageIdentifierKey`).
    Authorizer,
}

impl Default for KeySource {
    fn default() -> Self {
        Self::Header(HeaderName::from_static("x-api-key"))
    }
}

/// The API key value an authorizer chose for a request, for [`KeySource::Authorizer`].
///
/// Its `Debug` output is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct UsageIdentifierKey(Box<str>);

impl UsageIdentifierKey {
    /// Wraps the key value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into().into_boxed_str())
    }
}

impl fmt::Debug for UsageIdentifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UsageIdentifierKey(<redacted>)")
    }
}

impl KeySource {
    /// The key value the request carries, checked: 20 to 128 visible ASCII characters.
    #[inline]
    pub fn read<'a, B>(&self, req: &'a Request<B>) -> Result<&'a str, Rejection> {
        let bytes = match self {
            Self::Header(name) => {
                let mut values = req.headers().get_all(name).iter();
                let first = values.next();
                // Two values make an ambiguous credential: a proxy that reads the last would see
                // another key than this layer does.
                if values.next().is_some() {
                    return Err(Rejection::InvalidKey);
                }
                first.map(|v| v.as_bytes())
            }
            Self::Authorizer => req
                .extensions()
                .get::<UsageIdentifierKey>()
                .map(|k| k.0.as_bytes()),
        };
        let bytes = match bytes {
            None | Some([]) => return Err(Rejection::MissingKey),
            Some(b) => b,
        };
        // No early exit, so that the check runs on whole vectors at once.
        let graphic = bytes.iter().fold(true, |ok, b| ok & b.is_ascii_graphic());
        if !(MIN_KEY_LEN..=MAX_KEY_LEN).contains(&bytes.len()) || !graphic {
            return Err(Rejection::InvalidKey);
        }
        // Visible ASCII is UTF-8.
        std::str::from_utf8(bytes).map_err(|_| Rejection::InvalidKey)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_value_of_the_header_on_small_and_large_maps_and_two_are_refused() {
        let key = "k".repeat(30);
        for others in [0, 3, 20] {
            let mut req = Request::new(());
            for i in 0..others {
                req.headers_mut().insert(
                    HeaderName::try_from(format!("x-other-{i}")).unwrap(),
                    "v".parse().unwrap(),
                );
            }
            req.headers_mut().append("x-api-key", key.parse().unwrap());
            assert_eq!(KeySource::default().read(&req), Ok(key.as_str()));
            let custom = KeySource::Header(HeaderName::from_static("x-client-key"));
            assert_eq!(custom.read(&req), Err(Rejection::MissingKey));
            req.headers_mut().append("x-api-key", key.parse().unwrap());
            assert_eq!(KeySource::default().read(&req), Err(Rejection::InvalidKey));
        }
    }
}
