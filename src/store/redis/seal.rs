//! Key values kept sealed (opt-in, [`RedisStoreBuilder::keep_values`](super::RedisStoreBuilder::keep_values)):
//! ChaCha20-Poly1305 under a secret the instances share, with a random nonce per value and the
//! key's id as associated data, so a sealed value moved to another key's id does not open.

use std::fmt;

use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};

use crate::error::StoreError;
use crate::model::ApiKeyValue;

const NONCE: usize = 12;

/// Seals and opens key values.
#[derive(Clone)]
pub(super) struct Sealer(ChaCha20Poly1305);

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sealer(<secret>)")
    }
}

fn sealing(what: &str) -> StoreError {
    StoreError::Backend(what.to_owned().into())
}

impl Sealer {
    pub(super) fn new(secret: &[u8; 32]) -> Self {
        Self(ChaCha20Poly1305::new(Key::from_slice(secret)))
    }

    /// `value`, sealed for the key `id`: base64 of the nonce and the ciphertext.
    pub(super) fn seal(&self, id: &str, value: &ApiKeyValue) -> Result<String, StoreError> {
        let mut nonce = [0u8; NONCE];
        getrandom::fill(&mut nonce).map_err(|_| sealing("the random source failed"))?;
        let sealed = self
            .0
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: value.expose().as_bytes(),
                    aad: id.as_bytes(),
                },
            )
            .map_err(|_| sealing("sealing a key value failed"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(base64::engine::general_purpose::STANDARD.encode(out))
    }

    /// The value sealed for the key `id`, or an error that says it does not open (another
    /// secret, or a record changed by hand). Never shows the value.
    pub(super) fn open(&self, id: &str, sealed: &str) -> Result<ApiKeyValue, StoreError> {
        let bad = || {
            sealing(&format!(
                "the sealed value of API key {id:?} does not open: was it sealed with another \
                 secret (RedisStoreBuilder::keep_values)?"
            ))
        };
        let raw = base64::engine::general_purpose::STANDARD
            .decode(sealed)
            .map_err(|_| bad())?;
        if raw.len() <= NONCE {
            return Err(bad());
        }
        let (nonce, ct) = raw.split_at(NONCE);
        let plain = self
            .0
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: id.as_bytes(),
                },
            )
            .map_err(|_| bad())?;
        let text = String::from_utf8(plain).map_err(|_| bad())?;
        ApiKeyValue::new(text).map_err(|_| bad())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_opens_only_for_its_key_and_secret() {
        let s = Sealer::new(&[7; 32]);
        let v = ApiKeyValue::new("a-secret-value-of-30-characters").unwrap();
        let sealed = s.seal("k1", &v).unwrap();
        assert!(!sealed.contains(v.expose()));
        assert_ne!(sealed, s.seal("k1", &v).unwrap(), "a nonce per value");
        assert_eq!(s.open("k1", &sealed).unwrap(), v);
        let err = s.open("k2", &sealed).unwrap_err().to_string();
        assert!(!err.contains(v.expose()));
        assert!(Sealer::new(&[8; 32]).open("k1", &sealed).is_err());
        assert!(s.open("k1", "not base64!").is_err());
        assert!(s.open("k1", "").is_err());
    }
}
