//! The associated-data contexts under which each secret column is sealed.
//!
//! The context binds a ciphertext to its field: a value copied into another field (or
//! another secret's row) fails to open. Key rotation re-seals rows under the same context,
//! so it is built here, in one place. Settings use `Settings::to_stored`, whose contexts are
//! `settings.<field>`.

use openhands_core::secrets::ProviderType;

/// The fields of the stored settings document that `Settings::to_stored` seals, each under
/// [`settings_field`]. Key rotation re-seals exactly these.
pub const SETTINGS_FIELDS: [&str; 3] = ["llm_api_key", "search_api_key", "sandbox_api_key"];

/// Context of a sealed field of the settings document.
pub fn settings_field(field: &str) -> String {
    format!("settings.{field}")
}

/// Context of a custom secret's value.
pub fn custom_secret(name: &str) -> String {
    format!("custom_secret:{name}")
}

/// Context of a provider token.
pub fn provider_token(provider: ProviderType) -> String {
    format!("provider_token:{}", provider.as_str())
}

/// Context of a provider refresh token.
pub fn provider_refresh_token(provider: ProviderType) -> String {
    format!("provider_refresh_token:{}", provider.as_str())
}
