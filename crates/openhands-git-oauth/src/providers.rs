//! GitHub, GitLab and Bitbucket as OAuth 2.0 authorization servers: where users authorize,
//! how codes and refresh tokens are exchanged, and whose account a token belongs to.
//!
//! The protocol is the `oauth2` crate's (authorization URL with `state` and PKCE, the code
//! and refresh-token grants, client authentication); this module only knows each
//! provider's addresses and quirks:
//!
//! | | authorize | token | client credentials | PKCE | user |
//! |---|---|---|---|---|---|
//! | GitHub | `<base>/login/oauth/authorize` | `<base>/login/oauth/access_token` | form body | S256 | `<api>/user` → `login` |
//! | GitLab | `<base>/oauth/authorize` | `<base>/oauth/token` | form body | S256 | `<api>/user` → `username` |
//! | Bitbucket | `<base>/site/oauth2/authorize` | `<base>/site/oauth2/access_token` | HTTP Basic | no | `<api>/user` → `username` |
//!
//! GitHub answers a refused grant with `200 OK` and `{"error": "bad_verification_code"}`
//! rather than an OAuth error status; `oauth2` reports that as an unreadable token response
//! and [`grant_error`] reads the error out of it, so it is a refusal like any other.
//!
//! `oauth2` insists on https only for the revocation endpoint, which we do not use (none of
//! the three offers RFC 7009 revocation for these tokens the same way). We add our own rule
//! instead: every configured URL must be https, except on a loopback host (`localhost`,
//! `127.0.0.0/8`, `::1`), which development and the tests use. A token or client secret is
//! never sent in clear over a network.

use chrono::{DateTime, Utc};
use oauth2::basic::{BasicClient, BasicErrorResponse};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet,
    EndpointSet, HttpClientError, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken,
    RequestTokenError, Scope, TokenResponse, TokenUrl,
};
use openhands_core::config::Config;
use openhands_core::git_oauth_config::non_blank;
use openhands_core::secret::Secret;
use openhands_core::secrets::ProviderType;
use serde::Deserialize;
use std::borrow::Cow;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;
use url::Url;

/// Per request to a provider.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(15);
/// The providers that can be linked, in the order they are listed.
pub const LINKABLE: [ProviderType; 3] = [
    ProviderType::Github,
    ProviderType::Gitlab,
    ProviderType::Bitbucket,
];

/// Why talking to a provider failed. Messages carry the provider's error code or the
/// transport failure, never a token or the client secret.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OAuthError {
    /// The provider refused the grant: a used, expired or foreign code; a revoked or
    /// already-used refresh token; wrong client credentials. Carries the OAuth error code.
    #[error("the provider refused the grant ({0})")]
    Refused(String),
    /// The provider could not be reached or answered something unreadable.
    #[error("the provider is unavailable: {0}")]
    Unavailable(String),
}

/// Why a provider's configuration is unusable (at start-up).
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("`git_oauth.{provider}.{key}` = `{value}` is not a URL: {reason}")]
    BadUrl {
        provider: &'static str,
        key: &'static str,
        value: String,
        reason: String,
    },
    #[error(
        "`git_oauth.{provider}.{key}` = `{value}` must be https (plain http only on a loopback host)"
    )]
    InsecureUrl {
        provider: &'static str,
        key: &'static str,
        value: String,
    },
    #[error("building the HTTP client: {0}")]
    Http(String),
}

/// Each provider's fixed facts.
struct Wire {
    default_base: &'static str,
    authorize_path: &'static str,
    token_path: &'static str,
    /// The JSON fields of the user resource that name the account, first present wins.
    login_fields: &'static [&'static str],
    auth_type: AuthType,
    pkce: bool,
    default_scopes: &'static [&'static str],
    /// The access-token lifetime the provider documents, until one is seen.
    default_lifetime_seconds: i64,
}

fn wire(provider: ProviderType) -> Option<Wire> {
    match provider {
        ProviderType::Github => Some(Wire {
            default_base: "https://github.com",
            authorize_path: "/login/oauth/authorize",
            token_path: "/login/oauth/access_token",
            login_fields: &["login"],
            auth_type: AuthType::RequestBody,
            pkce: true,
            default_scopes: &[],
            default_lifetime_seconds: 8 * 3600,
        }),
        ProviderType::Gitlab => Some(Wire {
            default_base: "https://gitlab.com",
            authorize_path: "/oauth/authorize",
            token_path: "/oauth/token",
            login_fields: &["username"],
            auth_type: AuthType::RequestBody,
            pkce: true,
            default_scopes: &["api", "read_user"],
            default_lifetime_seconds: 2 * 3600,
        }),
        ProviderType::Bitbucket => Some(Wire {
            default_base: "https://bitbucket.org",
            authorize_path: "/site/oauth2/authorize",
            token_path: "/site/oauth2/access_token",
            login_fields: &["username", "nickname", "account_id"],
            auth_type: AuthType::BasicAuth,
            pkce: false,
            default_scopes: &[],
            default_lifetime_seconds: 2 * 3600,
        }),
        ProviderType::EnterpriseSso => None,
    }
}

/// The default API root for a provider whose web base is `base`.
fn default_api(provider: ProviderType, base: &str, is_default_base: bool) -> String {
    match (provider, is_default_base) {
        (ProviderType::Github, true) => "https://api.github.com".into(),
        (ProviderType::Github, false) => format!("{base}/api/v3"),
        (ProviderType::Bitbucket, true) => "https://api.bitbucket.org/2.0".into(),
        (ProviderType::Bitbucket, false) => format!("{base}/2.0"),
        _ => format!("{base}/api/v4"),
    }
}

/// What the configuration says about one provider.
struct AppSettings<'a> {
    client_id: Option<&'a str>,
    client_secret: Option<&'a Secret>,
    base_url: Option<&'a str>,
    api_url: Option<&'a str>,
    scopes: Option<&'a Vec<String>>,
}

fn settings_of(config: &Config, provider: ProviderType) -> Option<AppSettings<'_>> {
    let git = &config.git_oauth;
    match provider {
        ProviderType::Github => Some(AppSettings {
            client_id: Some(config.github_app_client_id.as_str()),
            client_secret: git.github.client_secret.as_ref(),
            base_url: git.github.base_url.as_deref(),
            api_url: git.github.api_url.as_deref(),
            scopes: git.github.scopes.as_ref(),
        }),
        ProviderType::Gitlab | ProviderType::Bitbucket => {
            let app = if provider == ProviderType::Gitlab {
                &git.gitlab
            } else {
                &git.bitbucket
            };
            Some(AppSettings {
                client_id: app.client_id.as_deref(),
                client_secret: app.client_secret.as_ref(),
                base_url: app.base_url.as_deref(),
                api_url: app.api_url.as_deref(),
                scopes: app.scopes.as_ref(),
            })
        }
        ProviderType::EnterpriseSso => None,
    }
}

type ConfiguredClient =
    BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// Where to send a user, and what to remember until they come back.
#[derive(Debug, Clone)]
pub struct Authorization {
    pub url: String,
    pub state: String,
    pub pkce_verifier: Option<String>,
}

/// Tokens a provider issued.
#[derive(Debug, Clone)]
pub struct Issued {
    pub access_token: Secret,
    pub refresh_token: Option<Secret>,
    /// When the access token expires; `None` when the provider gave no lifetime (a
    /// token that does not expire, e.g. a classic GitHub OAuth App's).
    pub expires_at: Option<DateTime<Utc>>,
}

/// One provider's OAuth app, configured.
pub struct ProviderApp {
    pub provider: ProviderType,
    client: ConfiguredClient,
    api_url: String,
    /// The git host of a self-hosted instance (stored with its tokens, so clones go
    /// there); `None` for the public service.
    host: Option<String>,
    login_fields: &'static [&'static str],
    pkce: bool,
    scopes: Vec<String>,
    /// The access-token lifetime last issued (seconds), the documented one until then.
    lifetime_seconds: AtomicI64,
    http: reqwest::Client,
}

impl std::fmt::Debug for ProviderApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderApp")
            .field("provider", &self.provider.as_str())
            .field("client_id", &self.client.client_id().as_str())
            .field("api_url", &self.api_url)
            .finish_non_exhaustive()
    }
}

/// Whether `url` is on this machine, where plain http is acceptable.
fn loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

fn checked_url(provider: ProviderType, key: &'static str, value: &str) -> Result<Url, SetupError> {
    let url = Url::parse(value).map_err(|e| SetupError::BadUrl {
        provider: provider.as_str(),
        key,
        value: value.to_owned(),
        reason: e.to_string(),
    })?;
    if url.scheme() != "https" && !(url.scheme() == "http" && loopback(&url)) {
        return Err(SetupError::InsecureUrl {
            provider: provider.as_str(),
            key,
            value: value.to_owned(),
        });
    }
    Ok(url)
}

impl ProviderApp {
    /// The app for `provider` when the config names both its client id and secret;
    /// `Ok(None)` when it does not (the provider is not offered).
    pub fn from_config(
        config: &Config,
        provider: ProviderType,
    ) -> Result<Option<Self>, SetupError> {
        let (Some(wire), Some(settings)) = (wire(provider), settings_of(config, provider)) else {
            return Ok(None);
        };
        let (Some(client_id), Some(secret)) = (
            non_blank(settings.client_id),
            settings.client_secret.filter(|s| !s.is_blank()),
        ) else {
            return Ok(None);
        };
        let configured_base = non_blank(settings.base_url).map(|b| b.trim_end_matches('/'));
        let base = configured_base.unwrap_or(wire.default_base);
        let base_url = checked_url(provider, "base_url", base)?;
        let api_url = match non_blank(settings.api_url) {
            Some(api) => api.trim_end_matches('/').to_owned(),
            None => default_api(provider, base, configured_base.is_none()),
        };
        checked_url(provider, "api_url", &api_url)?;
        let endpoint = |path: &str| format!("{base}{path}");
        let auth_url =
            AuthUrl::new(endpoint(wire.authorize_path)).map_err(|e| SetupError::BadUrl {
                provider: provider.as_str(),
                key: "base_url",
                value: base.to_owned(),
                reason: e.to_string(),
            })?;
        let token_url =
            TokenUrl::new(endpoint(wire.token_path)).map_err(|e| SetupError::BadUrl {
                provider: provider.as_str(),
                key: "base_url",
                value: base.to_owned(),
                reason: e.to_string(),
            })?;
        let client = BasicClient::new(ClientId::new(client_id.to_owned()))
            .set_client_secret(ClientSecret::new(secret.expose().trim().to_owned()))
            .set_auth_uri(auth_url)
            .set_token_uri(token_url)
            .set_auth_type(wire.auth_type);
        let http = reqwest::Client::builder()
            // A token endpoint that redirects is refused, not followed (oauth2's advice
            // against SSRF).
            .redirect(reqwest::redirect::Policy::none())
            .timeout(PROVIDER_TIMEOUT)
            // GitHub's API refuses requests without one.
            .user_agent("openhands-git-oauth")
            .build()
            .map_err(|e| SetupError::Http(e.to_string()))?;
        let host = configured_base.and_then(|_| {
            base_url.host_str().map(|h| match base_url.port() {
                Some(port) => format!("{h}:{port}"),
                None => h.to_owned(),
            })
        });
        Ok(Some(Self {
            provider,
            client,
            api_url,
            host,
            login_fields: wire.login_fields,
            pkce: wire.pkce,
            scopes: settings.scopes.cloned().unwrap_or_else(|| {
                wire.default_scopes
                    .iter()
                    .map(|s| (*s).to_owned())
                    .collect()
            }),
            lifetime_seconds: AtomicI64::new(wire.default_lifetime_seconds),
            http,
        }))
    }

    /// The git host to store with this app's tokens (`None`: the provider's public one).
    pub fn host(&self) -> Option<&str> {
        self.host.as_deref()
    }

    /// The access-token lifetime this provider last issued, or the documented one.
    pub fn token_lifetime(&self) -> chrono::Duration {
        chrono::Duration::seconds(self.lifetime_seconds.load(Ordering::Relaxed))
    }

    /// The URL that asks the user to authorize us, with a fresh `state` and, where the
    /// provider supports it, a PKCE challenge.
    pub fn authorization(&self, redirect_uri: &str) -> Result<Authorization, OAuthError> {
        let redirect = RedirectUrl::new(redirect_uri.to_owned())
            .map_err(|e| OAuthError::Unavailable(format!("callback URL: {e}")))?;
        let mut request = self
            .client
            .authorize_url(CsrfToken::new_random)
            .set_redirect_uri(Cow::Owned(redirect));
        for scope in &self.scopes {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let pkce_verifier = if self.pkce {
            let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
            request = request.set_pkce_challenge(challenge);
            Some(verifier.secret().clone())
        } else {
            None
        };
        let (url, state) = request.url();
        Ok(Authorization {
            url: url.to_string(),
            state: state.secret().clone(),
            pkce_verifier,
        })
    }

    /// Exchanges an authorization code (with the PKCE verifier it was started with).
    pub async fn exchange_code(
        &self,
        code: &str,
        redirect_uri: &str,
        pkce_verifier: Option<&str>,
    ) -> Result<Issued, OAuthError> {
        let redirect = RedirectUrl::new(redirect_uri.to_owned())
            .map_err(|e| OAuthError::Unavailable(format!("callback URL: {e}")))?;
        let mut request = self
            .client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_redirect_uri(Cow::Owned(redirect));
        if let Some(verifier) = pkce_verifier {
            request = request.set_pkce_verifier(PkceCodeVerifier::new(verifier.to_owned()));
        }
        let response = request
            .request_async(&self.http)
            .await
            .map_err(grant_error)?;
        Ok(self.issued(&response))
    }

    /// Uses a refresh token. Providers that do not send a new refresh token back keep the
    /// old one valid (RFC 6749 section 6), so it is kept.
    pub async fn refresh(&self, refresh_token: &Secret) -> Result<Issued, OAuthError> {
        let token = RefreshToken::new(refresh_token.expose().to_owned());
        let response = self
            .client
            .exchange_refresh_token(&token)
            .request_async(&self.http)
            .await
            .map_err(grant_error)?;
        let mut issued = self.issued(&response);
        if issued.refresh_token.is_none() {
            issued.refresh_token = Some(refresh_token.clone());
        }
        Ok(issued)
    }

    fn issued(&self, response: &oauth2::basic::BasicTokenResponse) -> Issued {
        let lifetime = response
            .expires_in()
            .and_then(|d| i64::try_from(d.as_secs()).ok());
        if let Some(seconds) = lifetime.filter(|s| *s > 0) {
            self.lifetime_seconds.store(seconds, Ordering::Relaxed);
        }
        Issued {
            access_token: Secret::new(response.access_token().secret().clone()),
            refresh_token: response
                .refresh_token()
                .map(|t| Secret::new(t.secret().clone()))
                .filter(|t| !t.is_blank()),
            expires_at: lifetime.map(|s| Utc::now() + chrono::Duration::seconds(s)),
        }
    }

    /// The account name (GitHub `login`, GitLab and Bitbucket `username`) of the user who
    /// owns `access_token`.
    pub async fn login_of(&self, access_token: &Secret) -> Result<String, OAuthError> {
        let url = format!("{}/user", self.api_url);
        let response = self
            .http
            .get(&url)
            .bearer_auth(access_token.expose())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| {
                OAuthError::Unavailable(format!("reading the user: {}", e.without_url()))
            })?;
        let status = response.status();
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            return Err(OAuthError::Refused(format!(
                "the API refused the new token ({status})"
            )));
        }
        if !status.is_success() {
            return Err(OAuthError::Unavailable(format!(
                "reading the user answered {status}"
            )));
        }
        let user: serde_json::Value = openhands_core::provider_http::read_json(response)
            .await
            .map_err(|e| OAuthError::Unavailable(format!("reading the user resource: {e}")))?;
        self.login_fields
            .iter()
            .find_map(|field| {
                user.get(*field)
                    .and_then(serde_json::Value::as_str)
                    .filter(|v| !v.is_empty())
            })
            .map(str::to_owned)
            .ok_or_else(|| OAuthError::Unavailable("the user resource names no account".into()))
    }
}

/// An OAuth error body, as GitHub sends it with `200 OK`.
#[derive(Deserialize)]
struct ErrorBody {
    error: String,
}

/// A refusal (the provider's OAuth error, in an error status or in GitHub's `200` body)
/// is `Refused`; anything else is the provider being unreachable or broken.
fn grant_error(
    err: RequestTokenError<HttpClientError<reqwest::Error>, BasicErrorResponse>,
) -> OAuthError {
    match err {
        RequestTokenError::ServerResponse(response) => {
            OAuthError::Refused(response.error().as_ref().to_owned())
        }
        RequestTokenError::Parse(_, body) => match serde_json::from_slice::<ErrorBody>(&body) {
            Ok(body) if !body.error.is_empty() => OAuthError::Refused(body.error),
            _ => OAuthError::Unavailable("the token response is unreadable".into()),
        },
        RequestTokenError::Request(err) => OAuthError::Unavailable(match err {
            HttpClientError::Reqwest(e) => e.without_url().to_string(),
            other => other.to_string(),
        }),
        RequestTokenError::Other(message) => OAuthError::Unavailable(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(adjust: impl FnOnce(&mut Config)) -> Config {
        let mut config = Config {
            github_app_client_id: "Iv1.app".into(),
            ..Config::default()
        };
        config.git_oauth.github.client_secret = Some(Secret::new("gh-secret"));
        config.git_oauth.gitlab.client_id = Some("gl-app".into());
        config.git_oauth.gitlab.client_secret = Some(Secret::new("gl-secret"));
        adjust(&mut config);
        config
    }

    #[test]
    fn a_provider_needs_both_client_id_and_secret() {
        let config = config(|c| c.git_oauth.bitbucket.client_id = Some("only-the-key".into()));
        assert!(
            ProviderApp::from_config(&config, ProviderType::Github)
                .expect("github")
                .is_some()
        );
        assert!(
            ProviderApp::from_config(&config, ProviderType::Gitlab)
                .expect("gitlab")
                .is_some()
        );
        assert!(
            ProviderApp::from_config(&config, ProviderType::Bitbucket)
                .expect("bitbucket")
                .is_none()
        );
        assert!(
            ProviderApp::from_config(&config, ProviderType::EnterpriseSso)
                .expect("sso")
                .is_none()
        );
    }

    #[test]
    fn authorization_urls_carry_state_scopes_and_pkce_where_supported() {
        let config = config(|c| {
            c.git_oauth.bitbucket.client_id = Some("bb".into());
            c.git_oauth.bitbucket.client_secret = Some(Secret::new("bb-secret"));
        });
        let callback = "https://app.example/api/git-oauth/gitlab/callback";
        let gitlab = ProviderApp::from_config(&config, ProviderType::Gitlab)
            .expect("config")
            .expect("configured");
        let auth = gitlab.authorization(callback).expect("url");
        let url = Url::parse(&auth.url).expect("url");
        assert_eq!(url.origin().ascii_serialization(), "https://gitlab.com");
        assert_eq!(url.path(), "/oauth/authorize");
        let query: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(query["client_id"], "gl-app");
        assert_eq!(query["state"], auth.state);
        assert_eq!(query["scope"], "api read_user");
        assert_eq!(query["redirect_uri"], callback);
        assert_eq!(query["code_challenge_method"], "S256");
        assert!(auth.pkce_verifier.is_some());
        assert!(!auth.url.contains("gl-secret"));

        let bitbucket = ProviderApp::from_config(&config, ProviderType::Bitbucket)
            .expect("config")
            .expect("configured");
        let auth = bitbucket.authorization(callback).expect("url");
        assert!(
            auth.url
                .starts_with("https://bitbucket.org/site/oauth2/authorize?")
        );
        assert!(auth.pkce_verifier.is_none() && !auth.url.contains("code_challenge"));

        let github = ProviderApp::from_config(&config, ProviderType::Github)
            .expect("config")
            .expect("configured");
        let auth = github.authorization(callback).expect("url");
        assert!(
            auth.url
                .starts_with("https://github.com/login/oauth/authorize?")
        );
        assert!(!auth.url.contains("scope="), "GitHub Apps need no scopes");
        assert_eq!(github.host(), None, "github.com is the default host");
    }

    #[test]
    fn self_hosted_instances_get_their_api_and_host() {
        let config = config(|c| {
            c.git_oauth.github.base_url = Some("https://ghe.example.com/".into());
            c.git_oauth.gitlab.base_url = Some("https://git.example.org".into());
        });
        let github = ProviderApp::from_config(&config, ProviderType::Github)
            .expect("config")
            .expect("configured");
        assert_eq!(github.api_url, "https://ghe.example.com/api/v3");
        assert_eq!(github.host(), Some("ghe.example.com"));
        let gitlab = ProviderApp::from_config(&config, ProviderType::Gitlab)
            .expect("config")
            .expect("configured");
        assert_eq!(gitlab.api_url, "https://git.example.org/api/v4");
        assert_eq!(gitlab.host(), Some("git.example.org"));
    }

    #[test]
    fn plain_http_is_refused_except_on_loopback() {
        let remote =
            config(|c| c.git_oauth.gitlab.base_url = Some("http://git.example.org".into()));
        let err = ProviderApp::from_config(&remote, ProviderType::Gitlab).expect_err("http");
        assert!(err.to_string().contains("must be https"), "{err}");
        assert!(!err.to_string().contains("gl-secret"));
        let local = config(|c| c.git_oauth.gitlab.base_url = Some("http://127.0.0.1:8080".into()));
        assert!(
            ProviderApp::from_config(&local, ProviderType::Gitlab)
                .expect("loopback")
                .is_some()
        );
        let api = config(|c| c.git_oauth.github.api_url = Some("http://api.example".into()));
        assert!(ProviderApp::from_config(&api, ProviderType::Github).is_err());
    }
}
