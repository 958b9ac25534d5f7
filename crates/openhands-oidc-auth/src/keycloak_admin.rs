//! Keycloak's admin REST API, for the two things a user asks of the e-mail routes that only
//! the identity provider can do: change the account's address, and send the verification
//! e-mail whose link proves it.
//!
//! OpenHands logs in as the `admin` user of the `master` realm through `admin-cli` with
//! `KEYCLOAK_ADMIN_PASSWORD`; that keeps working. Without the password, the app's own
//! client logs in with its client credentials, which needs its service account to hold
//! the realm-management `manage-users` role (the narrower grant: prefer it).
//!
//! Only Keycloak has this API; other OIDC providers manage addresses themselves, and the
//! routes say so. The admin token is cached until shortly before it expires. User ids go
//! into URL paths percent-encoded, so an id can never name another admin resource.

use openhands_core::secret::Secret;
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// How long each admin call may take.
const TIMEOUT: Duration = Duration::from_secs(10);
/// An admin token is renewed this long before it expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(30);
/// The largest admin response read.
const MAX_RESPONSE_BYTES: usize = 256 * 1024;

/// How the server logs in to the admin API.
#[derive(Debug, Clone)]
pub enum AdminLogin {
    /// OpenHands' way: user `admin` of realm `master` through `admin-cli`.
    MasterAdmin { password: Secret },
    /// The app's client, by client credentials (its service account needs `manage-users`).
    ServiceAccount {
        client_id: String,
        client_secret: Secret,
    },
}

/// Why an admin call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AdminError {
    #[error("Keycloak is unreachable: {0}")]
    Unavailable(String),
    #[error("Keycloak refused the server's admin login or permissions (HTTP {0})")]
    Forbidden(u16),
    #[error("Keycloak knows no such user")]
    UnknownUser,
    #[error("another account already uses that e-mail address")]
    EmailTaken,
    #[error("Keycloak answered HTTP {status}: {message}")]
    Unexpected { status: u16, message: String },
}

/// A client of one realm's admin API.
pub struct KeycloakAdmin {
    http: reqwest::Client,
    /// Keycloak's base URL, without a trailing slash.
    server_url: String,
    realm: String,
    login: AdminLogin,
    token: Mutex<Option<(String, Instant)>>,
}

impl std::fmt::Debug for KeycloakAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeycloakAdmin")
            .field("server_url", &self.server_url)
            .field("realm", &self.realm)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

impl KeycloakAdmin {
    pub fn new(server_url: &str, realm: &str, login: AdminLogin) -> Result<Self, AdminError> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(TIMEOUT)
            .build()
            .map_err(|e| AdminError::Unavailable(e.to_string()))?;
        Ok(Self {
            http,
            server_url: server_url.trim().trim_end_matches('/').to_owned(),
            realm: realm.trim().to_owned(),
            login,
            token: Mutex::new(None),
        })
    }

    /// `/admin/realms/<realm>/users/<id>` with both segments percent-encoded.
    fn user_url(&self, user_id: &str) -> Result<reqwest::Url, AdminError> {
        let mut url = reqwest::Url::parse(&self.server_url)
            .map_err(|e| AdminError::Unavailable(format!("bad Keycloak URL: {e}")))?;
        url.path_segments_mut()
            .map_err(|()| AdminError::Unavailable("bad Keycloak URL".into()))?
            .pop_if_empty()
            .extend(["admin", "realms", &self.realm, "users", user_id]);
        Ok(url)
    }

    async fn admin_token(&self) -> Result<String, AdminError> {
        let mut cached = self.token.lock().await;
        if let Some((token, until)) = cached.as_ref()
            && Instant::now() < *until
        {
            return Ok(token.clone());
        }
        let (realm, form) = match &self.login {
            AdminLogin::MasterAdmin { password } => (
                "master",
                vec![
                    ("grant_type", "password"),
                    ("client_id", "admin-cli"),
                    ("username", "admin"),
                    ("password", password.expose()),
                ],
            ),
            AdminLogin::ServiceAccount {
                client_id,
                client_secret,
            } => (
                self.realm.as_str(),
                vec![
                    ("grant_type", "client_credentials"),
                    ("client_id", client_id.as_str()),
                    ("client_secret", client_secret.expose()),
                ],
            ),
        };
        let url = format!(
            "{}/realms/{}/protocol/openid-connect/token",
            self.server_url,
            url::form_urlencoded::byte_serialize(realm.as_bytes()).collect::<String>()
        );
        let response = self
            .http
            .post(url)
            .form(&form)
            .send()
            .await
            .map_err(|e| AdminError::Unavailable(e.without_url().to_string()))?;
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::BAD_REQUEST {
            return Err(AdminError::Forbidden(status.as_u16()));
        }
        let body = read_limited(response).await?;
        if !status.is_success() {
            return Err(unexpected(status, &body));
        }
        let token: TokenResponse =
            serde_json::from_slice(&body).map_err(|e| AdminError::Unexpected {
                status: status.as_u16(),
                message: format!("token response: {e}"),
            })?;
        let lifetime = Duration::from_secs(token.expires_in.unwrap_or(60));
        let until = Instant::now() + lifetime.saturating_sub(TOKEN_MARGIN);
        *cached = Some((token.access_token.clone(), until));
        Ok(token.access_token)
    }

    /// Sends an admin request; a 401 drops the cached token and tries once more.
    async fn send(
        &self,
        build: impl Fn(&str) -> reqwest::RequestBuilder,
    ) -> Result<(StatusCode, Vec<u8>), AdminError> {
        for attempt in 0..2 {
            let token = self.admin_token().await?;
            let response = build(&token)
                .send()
                .await
                .map_err(|e| AdminError::Unavailable(e.without_url().to_string()))?;
            let status = response.status();
            if status == StatusCode::UNAUTHORIZED && attempt == 0 {
                *self.token.lock().await = None;
                continue;
            }
            let body = read_limited(response).await?;
            return match status {
                s if s.is_success() => Ok((s, body)),
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                    Err(AdminError::Forbidden(status.as_u16()))
                }
                StatusCode::NOT_FOUND => Err(AdminError::UnknownUser),
                StatusCode::CONFLICT => Err(AdminError::EmailTaken),
                _ => Err(unexpected(status, &body)),
            };
        }
        Err(AdminError::Forbidden(401))
    }

    /// Sets the user's address and marks it unverified, keeping the account's other fields
    /// (Keycloak's update replaces what it is given).
    pub async fn change_email(&self, user_id: &str, email: &str) -> Result<(), AdminError> {
        let url = self.user_url(user_id)?;
        let (_, body) = self
            .send(|token| self.http.get(url.clone()).bearer_auth(token))
            .await?;
        let current: Value = serde_json::from_slice(&body).map_err(|e| AdminError::Unexpected {
            status: 200,
            message: format!("user representation: {e}"),
        })?;
        let update = json!({
            "email": email,
            "emailVerified": false,
            "enabled": current.get("enabled").cloned().unwrap_or(Value::Bool(true)),
            "username": current.get("username").cloned().unwrap_or(Value::Null),
        });
        self.send(|token| self.http.put(url.clone()).bearer_auth(token).json(&update))
            .await
            .map(|_| ())
    }

    /// Has Keycloak e-mail the user a verification link that lands on `redirect_uri`.
    pub async fn send_verify_email(
        &self,
        user_id: &str,
        redirect_uri: &str,
        client_id: &str,
    ) -> Result<(), AdminError> {
        let mut url = self.user_url(user_id)?;
        url.path_segments_mut()
            .map_err(|()| AdminError::Unavailable("bad Keycloak URL".into()))?
            .push("send-verify-email");
        url.query_pairs_mut()
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("client_id", client_id);
        self.send(|token| self.http.put(url.clone()).bearer_auth(token))
            .await
            .map(|_| ())
    }
}

async fn read_limited(mut response: reqwest::Response) -> Result<Vec<u8>, AdminError> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| AdminError::Unavailable(e.without_url().to_string()))?
    {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(AdminError::Unexpected {
                status: response.status().as_u16(),
                message: "response too large".into(),
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// An unexpected answer, with Keycloak's `errorMessage`/`error` when it gave one (never
/// the whole body, which could echo what we sent).
fn unexpected(status: StatusCode, body: &[u8]) -> AdminError {
    let message = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| {
            v.get("errorMessage")
                .or_else(|| v.get("error"))
                .and_then(Value::as_str)
                .map(|s| s.chars().take(200).collect())
        })
        .unwrap_or_else(|| "no error message".to_owned());
    AdminError::Unexpected {
        status: status.as_u16(),
        message,
    }
}
