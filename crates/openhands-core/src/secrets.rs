//! Custom secrets and git-provider tokens (OpenHands' `Secrets`).
//!
//! Values are [`Secret`]s: never serialized in responses. Stores persist them sealed through
//! [`UserSecrets::to_stored`] / [`UserSecrets::from_stored`].
//!
//! A provider token linked by OAuth also carries its refresh token and expiry. Neither is
//! ever read from a request body (a token set through the settings routes is a plain token
//! without them) nor written into a response.

use crate::crypto::Cipher;
use crate::error::StoreError;
use crate::secret::Secret;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// A git hosting provider.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ProviderType {
    Github,
    Gitlab,
    Bitbucket,
    EnterpriseSso,
}

impl ProviderType {
    /// Every provider, in declaration order.
    pub const ALL: [ProviderType; 4] = [
        ProviderType::Github,
        ProviderType::Gitlab,
        ProviderType::Bitbucket,
        ProviderType::EnterpriseSso,
    ];

    /// The wire name (`github`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderType::Github => "github",
            ProviderType::Gitlab => "gitlab",
            ProviderType::Bitbucket => "bitbucket",
            ProviderType::EnterpriseSso => "enterprise_sso",
        }
    }
}

/// A token for one git provider.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct ProviderToken {
    #[serde(
        default,
        deserialize_with = "crate::secret::deserialize_optional_secret"
    )]
    #[schema(value_type = Option<String>, write_only)]
    pub token: Option<Secret>,
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub host: Option<String>,
    /// The refresh token of a token linked by OAuth. Never taken from a request.
    #[serde(skip)]
    pub refresh_token: Option<Secret>,
    /// When the access token expires (`None`: it does not, or nobody told us). Never taken
    /// from a request.
    #[serde(skip)]
    pub expires_at: Option<DateTime<Utc>>,
}

impl ProviderToken {
    /// A token without refresh token or expiry (a personal access token).
    pub fn plain(token: impl Into<String>) -> Self {
        Self {
            token: Some(Secret::new(token)),
            ..Self::default()
        }
    }
}

/// A user-defined secret, exported to the sandbox as an environment variable.
#[derive(Debug, Clone)]
pub struct CustomSecret {
    pub secret: Secret,
    pub description: String,
}

/// All secrets of one user.
#[derive(Debug, Clone, Default)]
pub struct UserSecrets {
    pub provider_tokens: BTreeMap<ProviderType, ProviderToken>,
    pub custom_secrets: BTreeMap<String, CustomSecret>,
}

impl UserSecrets {
    /// `provider -> host` for the providers that have a token or a user id.
    pub fn provider_tokens_set(&self) -> BTreeMap<ProviderType, Option<String>> {
        self.provider_tokens
            .iter()
            .filter(|(_, t)| t.token.is_some() || t.user_id.is_some())
            .map(|(p, t)| (*p, t.host.clone()))
            .collect()
    }

    /// Applies OpenHands' `add-git-providers` rule: the incoming map replaces the stored one;
    /// an incoming entry without a token keeps the stored token (taking the new host), and is
    /// dropped when there is no stored token either.
    ///
    /// A kept token keeps its refresh token and expiry (it is the same token). An incoming
    /// token is a plain one: it replaces the stored token together with any refresh token
    /// and expiry, which belonged to the old one.
    pub fn replace_provider_tokens(&mut self, incoming: BTreeMap<ProviderType, ProviderToken>) {
        let mut merged = BTreeMap::new();
        for (provider, mut entry) in incoming {
            if entry.token.is_none() {
                let Some(stored) = self.provider_tokens.get(&provider) else {
                    continue;
                };
                entry.token = stored.token.clone();
                entry.refresh_token = stored.refresh_token.clone();
                entry.expires_at = stored.expires_at;
                if entry.user_id.is_none() {
                    entry.user_id = stored.user_id.clone();
                }
            } else {
                entry.refresh_token = None;
                entry.expires_at = None;
            }
            if entry.token.is_some() {
                merged.insert(provider, entry);
            }
        }
        self.provider_tokens = merged;
    }

    /// The storage form, OpenHands' `secrets.json` layout with every value sealed.
    pub fn to_stored(&self, cipher: &Cipher) -> Result<Value, StoreError> {
        let mut providers = Map::new();
        for (provider, token) in &self.provider_tokens {
            let Some(secret) = &token.token else { continue };
            let sealed = cipher.seal(&provider_context(*provider), secret.expose())?;
            let mut entry = json!({"token": sealed, "host": token.host, "user_id": token.user_id});
            if let Some(refresh) = token.refresh_token.as_ref().filter(|r| !r.is_blank()) {
                entry["refresh_token"] =
                    Value::String(cipher.seal(&refresh_context(*provider), refresh.expose())?);
            }
            if let Some(expires_at) = token.expires_at {
                entry["expires_at"] = Value::String(expires_at.to_rfc3339());
            }
            providers.insert(provider.as_str().to_owned(), entry);
        }
        let mut custom = Map::new();
        for (name, secret) in &self.custom_secrets {
            let sealed = cipher.seal(&custom_context(name), secret.secret.expose())?;
            custom.insert(
                name.clone(),
                json!({"secret": sealed, "description": secret.description}),
            );
        }
        Ok(json!({"provider_tokens": providers, "custom_secrets": custom}))
    }

    /// Reads the storage form written by [`UserSecrets::to_stored`].
    pub fn from_stored(value: &Value, cipher: &Cipher, path: &str) -> Result<Self, StoreError> {
        let corrupt = |reason: String| StoreError::Corrupt {
            path: path.to_owned(),
            reason,
        };
        let mut secrets = UserSecrets::default();
        if let Some(providers) = value.get("provider_tokens").and_then(Value::as_object) {
            for (name, entry) in providers {
                let provider: ProviderType = serde_json::from_value(Value::String(name.clone()))
                    .map_err(|_| corrupt(format!("unknown provider `{name}`")))?;
                let Some(sealed) = entry.get("token").and_then(Value::as_str) else {
                    continue;
                };
                let token = cipher.open(&provider_context(provider), sealed)?;
                if token.trim().is_empty() {
                    continue;
                }
                let refresh_token = match entry.get("refresh_token").and_then(Value::as_str) {
                    Some(sealed) => Some(Secret::new(
                        cipher.open(&refresh_context(provider), sealed)?,
                    )),
                    None => None,
                };
                let expires_at = match entry.get("expires_at").and_then(Value::as_str) {
                    Some(text) => Some(
                        DateTime::parse_from_rfc3339(text)
                            .map_err(|_| corrupt(format!("`{name}` has a bad expires_at")))?
                            .with_timezone(&Utc),
                    ),
                    None => None,
                };
                secrets.provider_tokens.insert(
                    provider,
                    ProviderToken {
                        token: Some(Secret::new(token)),
                        host: string_field(entry, "host"),
                        user_id: string_field(entry, "user_id"),
                        refresh_token,
                        expires_at,
                    },
                );
            }
        }
        if let Some(custom) = value.get("custom_secrets").and_then(Value::as_object) {
            for (name, entry) in custom {
                let sealed = entry
                    .get("secret")
                    .and_then(Value::as_str)
                    .ok_or_else(|| corrupt(format!("custom secret `{name}` has no value")))?;
                secrets.custom_secrets.insert(
                    name.clone(),
                    CustomSecret {
                        secret: Secret::new(cipher.open(&custom_context(name), sealed)?),
                        description: string_field(entry, "description").unwrap_or_default(),
                    },
                );
            }
        }
        Ok(secrets)
    }
}

fn string_field(entry: &Value, key: &str) -> Option<String> {
    entry.get(key).and_then(Value::as_str).map(str::to_owned)
}

fn provider_context(provider: ProviderType) -> String {
    format!("secrets.provider_tokens.{}", provider.as_str())
}

fn refresh_context(provider: ProviderType) -> String {
    format!("secrets.provider_refresh_tokens.{}", provider.as_str())
}

fn custom_context(name: &str) -> String {
    format!("secrets.custom_secrets.{name}")
}

/// A change to one user's custom secrets, applied atomically by a [`crate::extension::SecretsStore`].
#[derive(Debug, Clone)]
pub enum CustomSecretChange {
    /// Add a new secret; fails with `AlreadyExists` when the name is taken.
    Create {
        name: String,
        value: Secret,
        description: String,
    },
    /// Rename and/or re-describe; the value is unchanged.
    Update {
        name: String,
        new_name: String,
        description: Option<String>,
    },
    /// Remove; fails with `NotFound` when absent.
    Delete { name: String },
}

impl CustomSecretChange {
    /// Applies the change to `secrets`, leaving them untouched on error.
    pub fn apply(self, secrets: &mut UserSecrets) -> Result<(), StoreError> {
        match self {
            CustomSecretChange::Create {
                name,
                value,
                description,
            } => {
                if secrets.custom_secrets.contains_key(&name) {
                    return Err(StoreError::AlreadyExists(format!("Secret {name}")));
                }
                secrets.custom_secrets.insert(
                    name,
                    CustomSecret {
                        secret: value,
                        description,
                    },
                );
            }
            CustomSecretChange::Update {
                name,
                new_name,
                description,
            } => {
                if new_name != name && secrets.custom_secrets.contains_key(&new_name) {
                    return Err(StoreError::AlreadyExists(format!("Secret {new_name}")));
                }
                let mut existing = secrets
                    .custom_secrets
                    .remove(&name)
                    .ok_or_else(|| StoreError::NotFound(format!("Secret with ID {name}")))?;
                if let Some(description) = description {
                    existing.description = description;
                }
                secrets.custom_secrets.insert(new_name, existing);
            }
            CustomSecretChange::Delete { name } => {
                secrets
                    .custom_secrets
                    .remove(&name)
                    .ok_or_else(|| StoreError::NotFound(format!("Secret with ID {name}")))?;
            }
        }
        Ok(())
    }
}

/// A change to one provider's token, applied atomically by a
/// [`crate::extension::SecretsStore`]; the other providers and the custom secrets are kept.
#[derive(Debug, Clone)]
pub enum ProviderTokenChange {
    /// Link (or link again): the entry replaces whatever was stored for the provider.
    Set(ProviderToken),
    /// Store a refreshed token, but only while the stored access token is still `previous`,
    /// the one that was refreshed. A refresh that lost a race (the user unlinked or set
    /// another token meanwhile, or another server stored its own refresh first) changes
    /// nothing.
    Refreshed {
        previous: Secret,
        token: ProviderToken,
    },
    /// Unlink.
    Remove,
}

impl ProviderTokenChange {
    /// Applies the change to `provider`'s entry in `secrets`. Returns whether anything
    /// changed: `false` for `Remove` when nothing was stored and for a `Refreshed` whose
    /// `previous` is no longer the stored token. A token without value is refused.
    pub fn apply(
        self,
        provider: ProviderType,
        secrets: &mut UserSecrets,
    ) -> Result<bool, StoreError> {
        let usable = |token: &ProviderToken| token.token.as_ref().is_some_and(|t| !t.is_blank());
        match self {
            ProviderTokenChange::Set(token) => {
                if !usable(&token) {
                    return Err(StoreError::Invalid(format!(
                        "the {} token is empty",
                        provider.as_str()
                    )));
                }
                secrets.provider_tokens.insert(provider, token);
                Ok(true)
            }
            ProviderTokenChange::Refreshed { previous, token } => {
                if !usable(&token) {
                    return Err(StoreError::Invalid(format!(
                        "the refreshed {} token is empty",
                        provider.as_str()
                    )));
                }
                let current = secrets
                    .provider_tokens
                    .get(&provider)
                    .and_then(|t| t.token.as_ref());
                let still_previous = current.is_some_and(|stored| {
                    crate::secret::constant_time_eq(stored.expose(), previous.expose())
                });
                if still_previous {
                    secrets.provider_tokens.insert(provider, token);
                }
                Ok(still_previous)
            }
            ProviderTokenChange::Remove => Ok(secrets.provider_tokens.remove(&provider).is_some()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::KEY_LEN;

    fn token(value: &str, host: Option<&str>) -> ProviderToken {
        ProviderToken {
            token: (!value.is_empty()).then(|| Secret::new(value)),
            host: host.map(str::to_owned),
            ..ProviderToken::default()
        }
    }

    #[test]
    fn incoming_provider_map_replaces_and_empty_token_keeps_stored_value() {
        let mut secrets = UserSecrets::default();
        secrets
            .provider_tokens
            .insert(ProviderType::Github, token("ghp", Some("github.com")));
        secrets
            .provider_tokens
            .insert(ProviderType::Gitlab, token("glp", None));
        let incoming = BTreeMap::from([(ProviderType::Github, token("", Some("ghe.example")))]);
        secrets.replace_provider_tokens(incoming);
        assert_eq!(
            secrets.provider_tokens.len(),
            1,
            "gitlab was not sent, so it is dropped"
        );
        let github = &secrets.provider_tokens[&ProviderType::Github];
        assert_eq!(github.token.as_ref().map(Secret::expose), Some("ghp"));
        assert_eq!(github.host.as_deref(), Some("ghe.example"));
    }

    #[test]
    fn stored_form_round_trips_and_hides_values() {
        let cipher = Cipher::new(vec![("k1".into(), [9; KEY_LEN])]).expect("cipher");
        let mut secrets = UserSecrets::default();
        secrets
            .provider_tokens
            .insert(ProviderType::Github, token("ghp_abc", None));
        CustomSecretChange::Create {
            name: "DB_PASS".into(),
            value: Secret::new("hunter2"),
            description: "db".into(),
        }
        .apply(&mut secrets)
        .expect("create");
        let stored = secrets.to_stored(&cipher).expect("seal");
        let text = stored.to_string();
        assert!(!text.contains("ghp_abc") && !text.contains("hunter2"));
        let back = UserSecrets::from_stored(&stored, &cipher, "secrets.json").expect("open");
        assert_eq!(back.custom_secrets["DB_PASS"].secret.expose(), "hunter2");
        assert_eq!(back.custom_secrets["DB_PASS"].description, "db");
        assert_eq!(
            back.provider_tokens[&ProviderType::Github]
                .token
                .as_ref()
                .map(Secret::expose),
            Some("ghp_abc")
        );
    }

    #[test]
    fn rename_onto_existing_name_fails_and_changes_nothing() {
        let mut secrets = UserSecrets::default();
        for name in ["A", "B"] {
            CustomSecretChange::Create {
                name: name.into(),
                value: Secret::new("v"),
                description: String::new(),
            }
            .apply(&mut secrets)
            .expect("create");
        }
        let err = CustomSecretChange::Update {
            name: "A".into(),
            new_name: "B".into(),
            description: None,
        }
        .apply(&mut secrets)
        .expect_err("collision");
        assert!(matches!(err, StoreError::AlreadyExists(_)));
        assert!(secrets.custom_secrets.contains_key("A"));
    }
    fn linked(value: &str, refresh: &str) -> ProviderToken {
        ProviderToken {
            token: Some(Secret::new(value)),
            user_id: Some("octocat".into()),
            host: None,
            refresh_token: Some(Secret::new(refresh)),
            expires_at: Some(
                DateTime::parse_from_rfc3339("2030-01-02T03:04:05Z")
                    .expect("date")
                    .with_timezone(&Utc),
            ),
        }
    }

    #[test]
    fn a_linked_token_round_trips_with_its_refresh_token_sealed() {
        let cipher = Cipher::new(vec![("k1".into(), [9; KEY_LEN])]).expect("cipher");
        let mut secrets = UserSecrets::default();
        secrets
            .provider_tokens
            .insert(ProviderType::Gitlab, linked("glat", "glrt-refresh"));
        let stored = secrets.to_stored(&cipher).expect("seal");
        let text = stored.to_string();
        assert!(
            !text.contains("glat") && !text.contains("glrt-refresh"),
            "{text}"
        );
        let back = UserSecrets::from_stored(&stored, &cipher, "secrets.json").expect("open");
        let token = &back.provider_tokens[&ProviderType::Gitlab];
        assert_eq!(token.token.as_ref().map(Secret::expose), Some("glat"));
        assert_eq!(
            token.refresh_token.as_ref().map(Secret::expose),
            Some("glrt-refresh")
        );
        assert_eq!(token.expires_at, linked("", "").expires_at);
        assert_eq!(token.user_id.as_deref(), Some("octocat"));
    }

    #[test]
    fn a_request_body_never_sets_refresh_token_or_expiry() {
        let token: ProviderToken = serde_json::from_value(json!({
            "token": "ghp", "refresh_token": "sneaky", "expires_at": "2030-01-01T00:00:00Z"
        }))
        .expect("body");
        assert!(token.refresh_token.is_none() && token.expires_at.is_none());
    }

    #[test]
    fn a_plain_token_replaces_a_linked_one_with_its_refresh_token_and_expiry() {
        let mut secrets = UserSecrets::default();
        secrets
            .provider_tokens
            .insert(ProviderType::Github, linked("ghu_old", "ghr_old"));
        secrets.replace_provider_tokens(BTreeMap::from([(
            ProviderType::Github,
            token("ghp_plain", None),
        )]));
        let github = &secrets.provider_tokens[&ProviderType::Github];
        assert_eq!(github.token.as_ref().map(Secret::expose), Some("ghp_plain"));
        assert!(
            github.refresh_token.is_none(),
            "stale refresh token cleared"
        );
        assert!(github.expires_at.is_none(), "stale expiry cleared");
    }

    #[test]
    fn an_entry_without_token_keeps_the_linked_token_whole() {
        let mut secrets = UserSecrets::default();
        secrets
            .provider_tokens
            .insert(ProviderType::Github, linked("ghu", "ghr"));
        secrets.replace_provider_tokens(BTreeMap::from([(
            ProviderType::Github,
            token("", Some("ghe.example")),
        )]));
        let github = &secrets.provider_tokens[&ProviderType::Github];
        assert_eq!(github.token.as_ref().map(Secret::expose), Some("ghu"));
        assert_eq!(
            github.refresh_token.as_ref().map(Secret::expose),
            Some("ghr")
        );
        assert!(github.expires_at.is_some());
        assert_eq!(github.host.as_deref(), Some("ghe.example"));
    }

    #[test]
    fn a_refresh_is_stored_only_over_the_token_it_refreshed() {
        let mut secrets = UserSecrets::default();
        secrets
            .provider_tokens
            .insert(ProviderType::Github, linked("ghu_1", "ghr_1"));
        secrets
            .provider_tokens
            .insert(ProviderType::Gitlab, token("glpat", None));
        let refreshed = ProviderTokenChange::Refreshed {
            previous: Secret::new("ghu_1"),
            token: linked("ghu_2", "ghr_2"),
        };
        assert!(
            refreshed
                .clone()
                .apply(ProviderType::Github, &mut secrets)
                .expect("apply")
        );
        let github = &secrets.provider_tokens[&ProviderType::Github];
        assert_eq!(github.token.as_ref().map(Secret::expose), Some("ghu_2"));
        // The same refresh again (a second server, a retry) no longer matches.
        let again = ProviderTokenChange::Refreshed {
            previous: Secret::new("ghu_1"),
            token: linked("ghu_3", "ghr_3"),
        };
        assert!(
            !again
                .apply(ProviderType::Github, &mut secrets)
                .expect("apply")
        );
        assert_eq!(
            secrets.provider_tokens[&ProviderType::Github]
                .token
                .as_ref()
                .map(Secret::expose),
            Some("ghu_2")
        );
        // Nor does a refresh of a token that was unlinked meanwhile.
        assert!(
            ProviderTokenChange::Remove
                .apply(ProviderType::Github, &mut secrets)
                .expect("remove")
        );
        assert!(
            !refreshed
                .apply(ProviderType::Github, &mut secrets)
                .expect("apply")
        );
        assert!(!secrets.provider_tokens.contains_key(&ProviderType::Github));
        assert!(
            !ProviderTokenChange::Remove
                .apply(ProviderType::Github, &mut secrets)
                .expect("remove")
        );
        assert!(
            secrets.provider_tokens.contains_key(&ProviderType::Gitlab),
            "other providers kept"
        );
        let empty = ProviderTokenChange::Set(ProviderToken::default());
        assert!(matches!(
            empty.apply(ProviderType::Github, &mut secrets),
            Err(StoreError::Invalid(_))
        ));
    }
}
