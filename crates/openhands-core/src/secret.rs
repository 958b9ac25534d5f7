//! A secret string that cannot leak by accident.
//!
//! [`Secret`] wraps [`secrecy::SecretString`]: its `Debug` prints `[REDACTED]`, it has no
//! `Serialize` impl (so it cannot end up in a response body by mistake) and the value is only
//! reachable through [`Secret::expose`]. Stores encrypt it with [`crate::crypto::Cipher`].

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};

/// A secret value (API key, token, password).
#[derive(Clone)]
pub struct Secret(SecretString);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(SecretString::from(value.into()))
    }

    /// The plain value. Call only where the value is really needed (encryption, outbound calls).
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// True when the value is empty or only whitespace; OpenHands treats those as "unset".
    pub fn is_blank(&self) -> bool {
        self.expose().trim().is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[REDACTED]")
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        constant_time_eq(self.expose(), other.expose())
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret::new)
    }
}

/// Compares two secrets without leaking, through timing, where they first differ.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// Serde helper: an optional secret where `null`, `""` and whitespace all mean "not given".
pub fn deserialize_optional_secret<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Secret>, D::Error> {
    let value = Option::<String>::deserialize(deserializer)?;
    Ok(value.filter(|v| !v.trim().is_empty()).map(Secret::new))
}

/// Serializer for config dumps: a set secret prints as `**********`, an unset one as `null`.
pub fn serialize_redacted<S: serde::Serializer>(
    value: &Option<Secret>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(_) => serializer.serialize_str("**********"),
        None => serializer.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let secret = Secret::new("sk-very-secret");
        assert_eq!(format!("{secret:?}"), "[REDACTED]");
        assert!(!format!("{:?}", Some(secret)).contains("sk-very"));
    }

    #[test]
    fn blank_optional_secret_deserializes_to_none() {
        #[derive(Deserialize)]
        struct Holder {
            #[serde(default, deserialize_with = "deserialize_optional_secret")]
            key: Option<Secret>,
        }
        let blank: Holder = serde_json::from_str(r#"{"key":"  "}"#).expect("valid json");
        assert!(blank.key.is_none());
        let set: Holder = serde_json::from_str(r#"{"key":"abc"}"#).expect("valid json");
        assert_eq!(
            set.key.map(|k| k.expose().to_owned()).as_deref(),
            Some("abc")
        );
    }
}
