//! The App JWT: what authenticates the GitHub App itself (not an installation).
//!
//! RS256 over `{iat, exp, iss}` with `iat = now - 60 s` (clock drift, as GitHub recommends),
//! `exp = now + 9 min` (GitHub allows at most 10) and `iss = client id` — OpenHands' values.

use crate::config::{ConfigError, GithubAppConfig};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

/// Seconds the `iat` is back-dated.
pub const IAT_BACKDATE_SECS: i64 = 60;
/// Seconds the JWT is valid after `now`.
pub const LIFETIME_SECS: i64 = 9 * 60;

/// The App JWT's claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppClaims {
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
}

/// Signing failed (the message never holds the key).
#[derive(Debug, thiserror::Error)]
#[error("could not sign the GitHub App JWT: {0}")]
pub struct JwtError(String);

/// Signs App JWTs with the App's private key (parsed once).
pub struct AppJwtSigner {
    client_id: String,
    key: EncodingKey,
}

impl std::fmt::Debug for AppJwtSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppJwtSigner")
            .field("client_id", &self.client_id)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl AppJwtSigner {
    /// Parses the private key (PKCS#1 or PKCS#8 PEM).
    pub fn new(config: &GithubAppConfig) -> Result<Self, ConfigError> {
        let key = EncodingKey::from_rsa_pem(config.private_key.expose_secret().as_bytes())
            .map_err(|_| ConfigError::InvalidPrivateKey)?;
        Ok(Self {
            client_id: config.client_id.clone(),
            key,
        })
    }

    /// The claims of a JWT minted at `now` (Unix seconds).
    pub fn claims_at(&self, now: i64) -> AppClaims {
        AppClaims {
            iat: now - IAT_BACKDATE_SECS,
            exp: now + LIFETIME_SECS,
            iss: self.client_id.clone(),
        }
    }

    /// A JWT minted at `now` (Unix seconds).
    pub fn sign_at(&self, now: i64) -> Result<String, JwtError> {
        jsonwebtoken::encode(
            &Header::new(Algorithm::RS256),
            &self.claims_at(now),
            &self.key,
        )
        // The error kind only: never anything derived from the key.
        .map_err(|e| JwtError(format!("{:?}", e.kind())))
    }

    /// A JWT minted now.
    pub fn sign(&self) -> Result<String, JwtError> {
        self.sign_at(chrono::Utc::now().timestamp())
    }
}
