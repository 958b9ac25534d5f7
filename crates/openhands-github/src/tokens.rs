//! Installation access tokens: what the App uses to act in one installation (comment,
//! react, clone).
//!
//! `POST {api}/app/installations/{id}/access_tokens` with the App JWT answers
//! `{token, expires_at}` (about an hour). Tokens are cached per installation id and reused
//! until 5 minutes before `expires_at`. Each installation has its own async lock, so
//! concurrent callers for one installation cause a single exchange while other installations
//! proceed. Errors name the installation, never the token, the JWT or the key.

use crate::config::{ConfigError, GithubAppConfig};
use crate::jwt::{AppJwtSigner, JwtError};
use chrono::{DateTime, TimeDelta, Utc};
use openhands_core::provider_http::read_json;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A cached token is exchanged again once it is this close to `expires_at`.
pub const REFRESH_MARGIN: TimeDelta = TimeDelta::minutes(5);
/// Timeout of one exchange request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const USER_AGENT: &str = concat!("openhands-rust/", env!("CARGO_PKG_VERSION"));

/// An installation access token. `Debug` does not show it.
#[derive(Clone)]
pub struct InstallationToken {
    token: Arc<str>,
    /// When GitHub stops accepting it.
    pub expires_at: DateTime<Utc>,
}

impl InstallationToken {
    /// The token, for an `Authorization: Bearer` header.
    pub fn secret(&self) -> &str {
        &self.token
    }

    fn fresh_at(&self, now: DateTime<Utc>) -> bool {
        now + REFRESH_MARGIN < self.expires_at
    }
}

impl std::fmt::Debug for InstallationToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstallationToken")
            .field("token", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Why no token could be had.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(transparent)]
    Jwt(#[from] JwtError),
    #[error(
        "GitHub refused the App JWT (401) for installation {installation_id}: check GITHUB_APP_CLIENT_ID and GITHUB_APP_PRIVATE_KEY"
    )]
    Unauthorized { installation_id: u64 },
    #[error(
        "GitHub App installation {installation_id} was not found (404): the App is not installed there"
    )]
    NotFound { installation_id: u64 },
    #[error("GitHub answered {status} to the token request for installation {installation_id}")]
    Status { installation_id: u64, status: u16 },
    #[error("GitHub is unavailable (token request for installation {installation_id}): {reason}")]
    Unavailable {
        installation_id: u64,
        reason: String,
    },
    #[error("GitHub's token response for installation {installation_id} could not be read")]
    InvalidResponse { installation_id: u64 },
}

#[derive(Deserialize)]
struct AccessTokenResponse {
    token: String,
    expires_at: DateTime<Utc>,
}

type Slot = Arc<tokio::sync::Mutex<Option<InstallationToken>>>;

/// Mints and caches installation tokens for one GitHub App.
pub struct InstallationTokens {
    api_url: String,
    signer: AppJwtSigner,
    http: reqwest::Client,
    slots: Mutex<HashMap<u64, Slot>>,
}

impl std::fmt::Debug for InstallationTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstallationTokens")
            .field("api_url", &self.api_url)
            .field("signer", &self.signer)
            .finish_non_exhaustive()
    }
}

/// Building the client failed (TLS back-end initialisation).
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("could not build the GitHub HTTP client: {0}")]
    Client(String),
}

impl InstallationTokens {
    /// A token source for the App in `config` (parses the private key once).
    pub fn new(config: &GithubAppConfig) -> Result<Self, BuildError> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(REQUEST_TIMEOUT)
            .user_agent(USER_AGENT)
            .build()
            .map_err(|e| BuildError::Client(e.to_string()))?;
        Ok(Self {
            api_url: config.api_url.clone(),
            signer: AppJwtSigner::new(config)?,
            http,
            slots: Mutex::default(),
        })
    }

    /// A token for `installation_id` that is valid for at least 5 more minutes: the cached one,
    /// or a new one from GitHub.
    pub async fn token(&self, installation_id: u64) -> Result<InstallationToken, TokenError> {
        let slot = self
            .slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(installation_id)
            .or_default()
            .clone();
        let mut cached = slot.lock().await;
        if let Some(token) = cached.as_ref().filter(|t| t.fresh_at(Utc::now())) {
            return Ok(token.clone());
        }
        let token = self.exchange(installation_id).await?;
        *cached = Some(token.clone());
        Ok(token)
    }

    /// Forgets the cached token of `installation_id` (e.g. after GitHub refused it).
    pub fn invalidate(&self, installation_id: u64) {
        self.slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&installation_id);
    }

    async fn exchange(&self, installation_id: u64) -> Result<InstallationToken, TokenError> {
        let jwt = self.signer.sign()?;
        let url = format!(
            "{}/app/installations/{installation_id}/access_tokens",
            self.api_url
        );
        let response = self
            .http
            .post(url)
            .bearer_auth(jwt)
            .header(reqwest::header::ACCEPT, "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28")
            .send()
            .await
            .map_err(|e| TokenError::Unavailable {
                installation_id,
                reason: e.without_url().to_string(),
            })?;
        match response.status().as_u16() {
            200 | 201 => {}
            401 => return Err(TokenError::Unauthorized { installation_id }),
            404 => return Err(TokenError::NotFound { installation_id }),
            status if status >= 500 => {
                return Err(TokenError::Unavailable {
                    installation_id,
                    reason: format!("status {status}"),
                });
            }
            status => {
                return Err(TokenError::Status {
                    installation_id,
                    status,
                });
            }
        }
        let body: AccessTokenResponse = read_json(response)
            .await
            .map_err(|_| TokenError::InvalidResponse { installation_id })?;
        tracing::debug!(installation_id, expires_at = %body.expires_at, "GitHub installation token minted");
        Ok(InstallationToken {
            token: body.token.into(),
            expires_at: body.expires_at,
        })
    }
}
