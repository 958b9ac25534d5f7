//! User settings with the JSON shape of OpenHands' `Settings` and `GETSettingsModel`.
//!
//! Secret fields (`llm_api_key`, `search_api_key`, `sandbox_api_key`) are [`Secret`]s: they are
//! accepted on input, never serialized, and reported only as `*_set` flags. Stores persist
//! them sealed with [`Cipher`] through [`Settings::to_stored`] / [`Settings::from_stored`].

use crate::crypto::Cipher;
use crate::error::StoreError;
use crate::secret::Secret;
use crate::secrets::ProviderType;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// The smallest `condenser_max_size` OpenHands accepts.
pub const MIN_CONDENSER_MAX_SIZE: i64 = 20;

/// Names of the secret fields, in storage order.
const SECRET_FIELDS: [&str; 3] = ["llm_api_key", "search_api_key", "sandbox_api_key"];

/// A user's settings. Unknown keys in input are ignored, as in OpenHands.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Settings {
    #[serde(default)]
    pub language: Option<String>,
    #[serde(default)]
    pub agent: Option<String>,
    #[serde(default)]
    pub max_iterations: Option<i64>,
    #[serde(default)]
    pub security_analyzer: Option<String>,
    #[serde(default)]
    pub confirmation_mode: Option<bool>,
    #[serde(default)]
    pub llm_model: Option<String>,
    /// Write-only: never returned; see `llm_api_key_set`.
    #[serde(default, skip_serializing)]
    #[schema(value_type = Option<String>, write_only)]
    pub llm_api_key: Option<Secret>,
    #[serde(default)]
    pub llm_base_url: Option<String>,
    #[serde(default)]
    pub remote_runtime_resource_factor: Option<i64>,
    #[serde(default = "yes")]
    pub enable_default_condenser: bool,
    #[serde(default)]
    pub enable_sound_notifications: bool,
    #[serde(default = "yes")]
    pub enable_proactive_conversation_starters: bool,
    #[serde(default = "yes")]
    pub enable_solvability_analysis: bool,
    #[serde(default)]
    pub user_consents_to_analytics: Option<bool>,
    #[serde(default)]
    pub sandbox_base_container_image: Option<String>,
    #[serde(default)]
    pub sandbox_runtime_container_image: Option<String>,
    /// `{"sse_servers": [...], "stdio_servers": [...], "shttp_servers": [...]}`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub mcp_config: Option<Value>,
    /// Write-only: never returned; see `search_api_key_set`.
    #[serde(default, skip_serializing)]
    #[schema(value_type = Option<String>, write_only)]
    pub search_api_key: Option<Secret>,
    /// Write-only: never returned.
    #[serde(default, skip_serializing)]
    #[schema(value_type = Option<String>, write_only)]
    pub sandbox_api_key: Option<Secret>,
    #[serde(default)]
    pub max_budget_per_task: Option<f64>,
    #[serde(default)]
    pub condenser_max_size: Option<i64>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub email_verified: Option<bool>,
    #[serde(default)]
    pub git_user_name: Option<String>,
    #[serde(default)]
    pub git_user_email: Option<String>,
}

fn yes() -> bool {
    true
}

impl Default for Settings {
    fn default() -> Self {
        serde_json::from_value(Value::Object(Map::new())).unwrap_or_else(|_| unreachable!())
    }
}

/// A field of the input that breaks a rule.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// The field's path, dotted for nested values (`mcp_config.sse_servers.0`).
    pub field: String,
    pub message: String,
}

/// What a string holding U+0000 is told.
pub const NUL_REFUSED: &str = "must not contain NUL characters (U+0000)";

/// The dotted path of the first string in `value` (an object key or a string value) that
/// holds U+0000, if any; `""` when `value` itself is such a string.
///
/// Input is checked with this before it is stored: PostgreSQL text columns refuse NUL
/// (the write, or a later copy into another column, would fail with a 500), environment
/// variables and HTTP headers cannot carry it, and no setting or message needs one. So a
/// NUL is refused up front with a 422 naming the field, on every database alike.
pub fn nul_path(value: &Value) -> Option<String> {
    let join = |head: &str, tail: String| {
        if tail.is_empty() {
            head.to_owned()
        } else {
            format!("{head}.{tail}")
        }
    };
    match value {
        Value::String(text) => text.contains('\0').then(String::new),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| nul_path(item).map(|tail| join(&i.to_string(), tail))),
        Value::Object(map) => map.iter().find_map(|(key, item)| {
            if key.contains('\0') {
                return Some(key.replace('\0', "\\0"));
            }
            nul_path(item).map(|tail| join(key, tail))
        }),
        _ => None,
    }
}

impl Settings {
    /// Checks the rules OpenHands enforces on input, and that no string holds a NUL
    /// ([`nul_path`]).
    pub fn validate(&self) -> Result<(), FieldError> {
        if let Some(size) = self
            .condenser_max_size
            .filter(|s| *s < MIN_CONDENSER_MAX_SIZE)
        {
            return Err(FieldError {
                field: "condenser_max_size".into(),
                message: format!("must be at least {MIN_CONDENSER_MAX_SIZE}, got {size}"),
            });
        }
        let nul = |field: String| FieldError {
            field,
            message: NUL_REFUSED.into(),
        };
        // The plain fields as they are stored; the secret ones are not serialized.
        if let Some(path) = serde_json::to_value(self).ok().as_ref().and_then(nul_path) {
            return Err(nul(path));
        }
        for (field, secret) in SECRET_FIELDS.iter().zip(self.secrets()) {
            if secret.is_some_and(|s| s.expose().contains('\0')) {
                return Err(nul((*field).to_owned()));
            }
        }
        Ok(())
    }

    /// True when a non-blank LLM API key is stored.
    pub fn llm_api_key_set(&self) -> bool {
        self.llm_api_key.as_ref().is_some_and(|k| !k.is_blank())
    }

    /// True when a non-blank search API key is stored.
    pub fn search_api_key_set(&self) -> bool {
        self.search_api_key.as_ref().is_some_and(|k| !k.is_blank())
    }

    /// OpenHands' POST rule: the request replaces the stored settings, except that
    /// `llm_api_key`, `llm_model`, `llm_base_url`, `search_api_key` and
    /// `user_consents_to_analytics` keep their stored value when the request leaves them
    /// out or sends `null`. A blank API key in the request clears the stored one.
    pub fn merged_over(mut self, stored: Option<&Settings>) -> Settings {
        if let Some(stored) = stored {
            if self.llm_api_key.is_none() {
                self.llm_api_key = stored.llm_api_key.clone();
            }
            if self.llm_model.is_none() {
                self.llm_model = stored.llm_model.clone();
            }
            if self.llm_base_url.is_none() {
                self.llm_base_url = stored.llm_base_url.clone();
            }
            if self.search_api_key.is_none() {
                self.search_api_key = stored.search_api_key.clone();
            }
            if self.user_consents_to_analytics.is_none() {
                self.user_consents_to_analytics = stored.user_consents_to_analytics;
            }
        }
        self.llm_api_key = self.llm_api_key.filter(|k| !k.is_blank());
        self.search_api_key = self.search_api_key.filter(|k| !k.is_blank());
        self.sandbox_api_key = self.sandbox_api_key.filter(|k| !k.is_blank());
        self
    }

    /// The storage form: plain fields as JSON, secret fields sealed with `cipher`.
    pub fn to_stored(&self, cipher: &Cipher) -> Result<Value, StoreError> {
        let mut value = serde_json::to_value(self)
            .map_err(|e| StoreError::Backend(format!("settings serialization: {e}")))?;
        let Value::Object(map) = &mut value else {
            return Err(StoreError::Backend(
                "settings did not serialize to an object".into(),
            ));
        };
        for (field, secret) in SECRET_FIELDS.iter().zip(self.secrets()) {
            let sealed = match secret {
                Some(s) => Value::String(cipher.seal(&secret_context(field), s.expose())?),
                None => Value::Null,
            };
            map.insert((*field).to_owned(), sealed);
        }
        Ok(value)
    }

    /// Reads the storage form written by [`Settings::to_stored`].
    pub fn from_stored(mut value: Value, cipher: &Cipher, path: &str) -> Result<Self, StoreError> {
        let corrupt = |reason: String| StoreError::Corrupt {
            path: path.to_owned(),
            reason,
        };
        let Value::Object(map) = &mut value else {
            return Err(corrupt("not a JSON object".into()));
        };
        let mut opened = Vec::with_capacity(SECRET_FIELDS.len());
        for field in SECRET_FIELDS {
            opened.push(match map.remove(field) {
                Some(Value::String(sealed)) => {
                    Some(Secret::new(cipher.open(&secret_context(field), &sealed)?))
                }
                _ => None,
            });
        }
        let mut settings: Settings =
            serde_json::from_value(value).map_err(|e| corrupt(e.to_string()))?;
        let mut opened = opened.into_iter();
        settings.llm_api_key = opened.next().flatten();
        settings.search_api_key = opened.next().flatten();
        settings.sandbox_api_key = opened.next().flatten();
        Ok(settings)
    }

    fn secrets(&self) -> [Option<&Secret>; 3] {
        [
            self.llm_api_key.as_ref(),
            self.search_api_key.as_ref(),
            self.sandbox_api_key.as_ref(),
        ]
    }
}

fn secret_context(field: &str) -> String {
    format!("settings.{field}")
}

/// The legacy `secrets_store` field, always empty in responses.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct LegacySecretsStore {
    #[schema(value_type = Object)]
    pub provider_tokens: BTreeMap<String, Value>,
}

/// `GET /api/settings` body: the settings without secret values plus `*_set` flags.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GetSettingsModel {
    #[serde(flatten)]
    pub settings: Settings,
    /// Always `null`: secret values are never returned.
    #[schema(value_type = Option<String>)]
    pub llm_api_key: Option<()>,
    #[schema(value_type = Option<String>)]
    pub search_api_key: Option<()>,
    #[schema(value_type = Option<String>)]
    pub sandbox_api_key: Option<()>,
    pub llm_api_key_set: bool,
    pub search_api_key_set: bool,
    /// Provider -> host (or null) for every stored provider token.
    pub provider_tokens_set: Option<BTreeMap<ProviderType, Option<String>>>,
    pub secrets_store: LegacySecretsStore,
}

impl GetSettingsModel {
    /// Builds the response from stored settings and the set of linked providers.
    pub fn new(
        settings: Settings,
        provider_tokens_set: Option<BTreeMap<ProviderType, Option<String>>>,
    ) -> Self {
        Self {
            llm_api_key_set: settings.llm_api_key_set(),
            search_api_key_set: settings.search_api_key_set(),
            settings,
            llm_api_key: None,
            search_api_key: None,
            sandbox_api_key: None,
            provider_tokens_set,
            secrets_store: LegacySecretsStore::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::KEY_LEN;

    fn parse(json: &str) -> Settings {
        serde_json::from_str(json).expect("valid settings json")
    }

    #[test]
    fn defaults_match_openhands() {
        let s = Settings::default();
        assert!(s.enable_default_condenser);
        assert!(!s.enable_sound_notifications);
        assert!(s.enable_proactive_conversation_starters);
        assert!(s.llm_api_key.is_none());
    }

    #[test]
    fn post_keeps_api_key_model_and_base_url_when_omitted() {
        let stored = parse(
            r#"{"llm_api_key":"sk-1","llm_model":"m","llm_base_url":"u","language":"fr","user_consents_to_analytics":true}"#,
        );
        let merged = parse(r#"{"agent":"CodeActAgent"}"#).merged_over(Some(&stored));
        assert_eq!(
            merged.llm_api_key.as_ref().map(Secret::expose),
            Some("sk-1")
        );
        assert_eq!(merged.llm_model.as_deref(), Some("m"));
        assert_eq!(merged.llm_base_url.as_deref(), Some("u"));
        assert_eq!(merged.user_consents_to_analytics, Some(true));
        assert_eq!(merged.language, None, "other fields revert to defaults");
    }

    #[test]
    fn blank_api_key_clears_the_stored_one() {
        let stored = parse(r#"{"llm_api_key":"sk-1"}"#);
        let merged = parse(r#"{"llm_api_key":"  "}"#).merged_over(Some(&stored));
        assert!(!merged.llm_api_key_set());
    }

    #[test]
    fn condenser_size_below_twenty_is_refused() {
        let err = parse(r#"{"condenser_max_size":19}"#)
            .validate()
            .expect_err("invalid");
        assert_eq!(err.field, "condenser_max_size");
        assert!(parse(r#"{"condenser_max_size":20}"#).validate().is_ok());
    }

    #[test]
    fn a_nul_anywhere_is_refused_naming_the_field() {
        for (input, field) in [
            (r#"{"llm_model":"gpt\u0000"}"#, "llm_model"),
            (r#"{"llm_api_key":"sk\u0000"}"#, "llm_api_key"),
            (
                r#"{"mcp_config":{"stdio_servers":[{"args":["ok","a\u0000"]}]}}"#,
                "mcp_config.stdio_servers.0.args.1",
            ),
        ] {
            let err = parse(input).validate().expect_err(input);
            assert_eq!(err.field, field, "{input}");
            assert!(err.to_string().contains("NUL"), "{err}");
        }
        assert!(
            parse(r#"{"llm_model":"gpt","language":"fr"}"#)
                .validate()
                .is_ok()
        );
        assert_eq!(
            nul_path(&serde_json::json!({"k\u{0}": 1})).as_deref(),
            Some("k\\0")
        );
    }

    #[test]
    fn stored_form_seals_secrets_and_round_trips() {
        let cipher = Cipher::new(vec![("k1".into(), [3; KEY_LEN])]).expect("cipher");
        let s = parse(r#"{"llm_api_key":"sk-plain","llm_model":"gpt","search_api_key":"tvly"}"#);
        let stored = s.to_stored(&cipher).expect("seal");
        let text = stored.to_string();
        assert!(!text.contains("sk-plain") && !text.contains("tvly"));
        let back = Settings::from_stored(stored, &cipher, "settings.json").expect("open");
        assert_eq!(
            back.llm_api_key.as_ref().map(Secret::expose),
            Some("sk-plain")
        );
        assert_eq!(
            back.search_api_key.as_ref().map(Secret::expose),
            Some("tvly")
        );
        assert_eq!(back.llm_model.as_deref(), Some("gpt"));
    }

    #[test]
    fn get_model_never_contains_secret_values() {
        let s = parse(r#"{"llm_api_key":"sk-plain","search_api_key":"tvly-x"}"#);
        let body = serde_json::to_value(GetSettingsModel::new(s, None)).expect("json");
        let text = body.to_string();
        assert!(!text.contains("sk-plain") && !text.contains("tvly-x"));
        assert_eq!(body["llm_api_key"], Value::Null);
        assert_eq!(body["llm_api_key_set"], Value::Bool(true));
        assert_eq!(body["search_api_key_set"], Value::Bool(true));
        assert_eq!(
            body["secrets_store"]["provider_tokens"],
            serde_json::json!({})
        );
    }
}
