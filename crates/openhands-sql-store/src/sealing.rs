//! The associated-data contexts under which each secret column is sealed.
//!
//! The context binds a ciphertext to its field: a value copied into another field (or
//! another secret's row) fails to open. Key rotation re-seals rows under the same context,
//! so it is built here, in one place. Settings use `Settings::to_stored`, whose contexts are
//! `settings.<field>`.

use openhands_core::secrets::ProviderType;

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
