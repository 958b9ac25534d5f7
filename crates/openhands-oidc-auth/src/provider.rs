//! The OIDC provider as a relying party sees it: discovery, the authorization URL, the code
//! exchange, ID token verification, refresh and revocation, all through `openidconnect`.
//!
//! Discovery (the provider metadata and its signing keys) is fetched on first use, not at
//! start-up, so a server starts while its provider is briefly down; it is cached for
//! `auth.discovery_ttl_seconds` and fetched again early when an ID token names a key we do
//! not have (the provider rotated its keys), at most once a minute.
//!
//! The HTTP client follows no redirects: a token endpoint that redirects is refused rather
//! than followed (the `openidconnect` authors' advice against SSRF).

use openidconnect::core::{
    CoreAuthDisplay, CoreAuthenticationFlow, CoreClaimName, CoreClaimType, CoreClient,
    CoreClientAuthMethod, CoreGrantType, CoreIdToken, CoreIdTokenClaims, CoreJsonWebKey,
    CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm, CoreResponseMode,
    CoreResponseType, CoreSubjectIdentifierType, CoreTokenResponse,
};
use openidconnect::{
    AdditionalProviderMetadata, AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret,
    CsrfToken, EndpointMaybeSet, EndpointNotSet, EndpointSet, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, ProviderMetadata, RedirectUrl,
    RefreshToken, RequestTokenError, RevocationUrl, Scope, TokenResponse,
};
use serde::{Deserialize, Serialize};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::RwLock;

/// How soon after a fetch an unknown signing key may trigger another discovery.
const REDISCOVERY_COOLDOWN: Duration = Duration::from_secs(60);
/// Per request to the provider.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);

/// The discovery fields `openidconnect`'s core metadata leaves out and we use.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct ExtraMetadata {
    /// RFC 7009 token revocation (Keycloak and `oidc-provider` publish it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_endpoint: Option<String>,
}
impl AdditionalProviderMetadata for ExtraMetadata {}

type Metadata = ProviderMetadata<
    ExtraMetadata,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

/// A client built from discovery: authorization endpoint set, token and userinfo maybe.
type DiscoveredClient = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// Why a provider operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProviderError {
    /// The provider could not be reached or answered garbage: retry later (503).
    #[error("identity provider unavailable: {0}")]
    Unavailable(String),
    /// The provider refused the grant (a used or unknown code, a revoked refresh token).
    #[error("identity provider refused the grant: {0}")]
    Refused(String),
    /// The ID token failed verification (signature, issuer, audience, nonce, expiry).
    #[error("ID token rejected: {0}")]
    InvalidIdToken(String),
    /// Our own configuration is unusable (bad issuer or redirect URL).
    #[error("OIDC configuration: {0}")]
    Config(String),
}

/// What to send the browser to, and what to remember until it comes back.
#[derive(Debug, Clone)]
pub struct AuthorizationRequest {
    pub url: String,
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
}

/// The verified identity and tokens of a login or refresh.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub identity: Option<Identity>,
    /// The raw ID token (for `id_token_hint` at RP-initiated logout).
    pub id_token: Option<String>,
    pub refresh_token: Option<String>,
    /// When the access token expires (unix seconds); the session refreshes after it.
    pub access_expires_at: i64,
}

/// Who the ID token says logged in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub username: Option<String>,
}

impl Identity {
    fn from_claims(claims: &CoreIdTokenClaims) -> Self {
        Self {
            subject: claims.subject().as_str().to_owned(),
            email: claims.email().map(|e| e.as_str().to_owned()),
            email_verified: claims.email_verified().unwrap_or(false),
            username: claims.preferred_username().map(|u| u.as_str().to_owned()),
        }
    }
}

struct Discovered {
    client: Arc<DiscoveredClient>,
    revocation: Option<RevocationUrl>,
    fetched: Instant,
}

/// One configured provider (issuer, client id and secret).
pub struct OidcProvider {
    http: reqwest::Client,
    issuer: IssuerUrl,
    client_id: ClientId,
    client_secret: Option<ClientSecret>,
    scopes: Vec<String>,
    ttl: Duration,
    discovered: RwLock<Option<Discovered>>,
}

impl std::fmt::Debug for OidcProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcProvider")
            .field("issuer", &self.issuer.as_str())
            .field("client_id", &self.client_id.as_str())
            .finish_non_exhaustive()
    }
}

impl OidcProvider {
    pub fn new(
        issuer: &str,
        client_id: &str,
        client_secret: Option<&str>,
        scopes: Vec<String>,
        ttl: Duration,
    ) -> Result<Self, ProviderError> {
        let issuer = IssuerUrl::new(issuer.to_owned())
            .map_err(|e| ProviderError::Config(format!("issuer URL `{issuer}`: {e}")))?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(PROVIDER_TIMEOUT)
            .build()
            .map_err(|e| ProviderError::Config(format!("HTTP client: {e}")))?;
        Ok(Self {
            http,
            issuer,
            client_id: ClientId::new(client_id.to_owned()),
            client_secret: client_secret.map(|s| ClientSecret::new(s.to_owned())),
            scopes,
            ttl,
            discovered: RwLock::new(None),
        })
    }

    pub fn issuer(&self) -> &str {
        self.issuer.as_str()
    }

    /// The client from cached discovery, fetching it when missing or stale.
    async fn client(
        &self,
    ) -> Result<(Arc<DiscoveredClient>, Option<RevocationUrl>), ProviderError> {
        if let Some(found) = self.discovered.read().await.as_ref()
            && found.fetched.elapsed() < self.ttl
        {
            return Ok((found.client.clone(), found.revocation.clone()));
        }
        self.rediscover(None).await
    }

    /// Fetches discovery again, unless `only_if_older_than` says the cached one is recent.
    async fn rediscover(
        &self,
        only_if_older_than: Option<Duration>,
    ) -> Result<(Arc<DiscoveredClient>, Option<RevocationUrl>), ProviderError> {
        let mut slot = self.discovered.write().await;
        if let Some(found) = slot.as_ref() {
            let fresh = match only_if_older_than {
                Some(age) => found.fetched.elapsed() < age,
                None => found.fetched.elapsed() < self.ttl,
            };
            if fresh {
                return Ok((found.client.clone(), found.revocation.clone()));
            }
        }
        let metadata = Metadata::discover_async(self.issuer.clone(), &self.http)
            .await
            .map_err(|e| ProviderError::Unavailable(format!("discovery failed: {e}")))?;
        let revocation = metadata
            .additional_metadata()
            .revocation_endpoint
            .as_deref()
            .and_then(|url| RevocationUrl::new(url.to_owned()).ok());
        let client = Arc::new(DiscoveredClient::from_provider_metadata(
            metadata,
            self.client_id.clone(),
            self.client_secret.clone(),
        ));
        *slot = Some(Discovered {
            client: client.clone(),
            revocation: revocation.clone(),
            fetched: Instant::now(),
        });
        tracing::info!(issuer = %self.issuer.as_str(), "OIDC discovery fetched");
        Ok((client, revocation))
    }

    /// The URL that starts a login (authorization code flow with PKCE, state and nonce).
    pub async fn authorization_request(
        &self,
        redirect_uri: &str,
    ) -> Result<AuthorizationRequest, ProviderError> {
        let (client, _) = self.client().await?;
        let redirect = redirect_url(redirect_uri)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .set_pkce_challenge(challenge)
            .set_redirect_uri(std::borrow::Cow::Owned(redirect));
        for scope in &self.scopes {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, state, nonce) = request.url();
        Ok(AuthorizationRequest {
            url: url.to_string(),
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
        })
    }

    /// Exchanges an authorization code and verifies the ID token against `nonce`.
    pub async fn exchange_code(
        &self,
        code: &str,
        pkce_verifier: &str,
        redirect_uri: &str,
        nonce: &str,
    ) -> Result<Tokens, ProviderError> {
        let (client, _) = self.client().await?;
        let response = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| ProviderError::Config(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_owned()))
            .set_redirect_uri(std::borrow::Cow::Owned(redirect_url(redirect_uri)?))
            .request_async(&self.http)
            .await
            .map_err(grant_error)?;
        let raw = response
            .id_token()
            .ok_or_else(|| {
                ProviderError::InvalidIdToken("the token response has no ID token".into())
            })?
            .to_string();
        let identity = self.verify_id_token(&raw, Some(nonce)).await?;
        Ok(tokens_from(&response, Some(identity)))
    }

    /// Uses a refresh token. The new ID token, when the provider sends one, is verified
    /// (no nonce: refreshes carry none) and must name `subject`.
    pub async fn refresh(
        &self,
        refresh_token: &str,
        subject: &str,
    ) -> Result<Tokens, ProviderError> {
        let (client, _) = self.client().await?;
        let token = RefreshToken::new(refresh_token.to_owned());
        let response = client
            .exchange_refresh_token(&token)
            .map_err(|e| ProviderError::Config(e.to_string()))?
            .request_async(&self.http)
            .await
            .map_err(grant_error)?;
        let identity = match response.id_token() {
            Some(id_token) => {
                let identity = self.verify_id_token(&id_token.to_string(), None).await?;
                if identity.subject != subject {
                    return Err(ProviderError::InvalidIdToken(
                        "the refreshed ID token names another subject".into(),
                    ));
                }
                Some(identity)
            }
            None => None,
        };
        let mut tokens = tokens_from(&response, identity);
        if tokens.refresh_token.is_none() {
            // Providers that do not rotate refresh tokens send none back: keep the old one.
            tokens.refresh_token = Some(refresh_token.to_owned());
        }
        Ok(tokens)
    }

    /// Revokes a refresh token at the provider (RFC 7009), when it offers revocation.
    /// Returns whether the provider was asked.
    ///
    /// Written out rather than through `openidconnect`, whose revocation insists on https
    /// even for a provider on the loopback interface (development and tests). Any other
    /// plain-http endpoint is still refused.
    pub async fn revoke(&self, refresh_token: &str) -> Result<bool, ProviderError> {
        let (_, revocation) = self.client().await?;
        let Some(url) = revocation else {
            return Ok(false);
        };
        let url = url.url();
        let loopback = matches!(
            url.host(),
            Some(url::Host::Ipv4(ip)) if ip.is_loopback()
        ) || matches!(url.host(), Some(url::Host::Ipv6(ip)) if ip.is_loopback())
            || url.host_str() == Some("localhost");
        if url.scheme() != "https" && !loopback {
            return Err(ProviderError::Config(format!(
                "revocation endpoint {url} is not https"
            )));
        }
        let encode =
            |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let mut request = self.http.post(url.clone()).form(&[
            ("token", refresh_token),
            ("token_type_hint", "refresh_token"),
        ]);
        request = match &self.client_secret {
            // RFC 6749 2.3.1: both parts form-encoded before Basic.
            Some(secret) => request.basic_auth(
                encode(self.client_id.as_str()),
                Some(encode(secret.secret())),
            ),
            None => request.form(&[
                ("token", refresh_token),
                ("token_type_hint", "refresh_token"),
                ("client_id", self.client_id.as_str()),
            ]),
        };
        let response = request
            .send()
            .await
            .map_err(|e| ProviderError::Unavailable(format!("revocation failed: {e}")))?;
        if !response.status().is_success() {
            return Err(ProviderError::Unavailable(format!(
                "revocation answered {}",
                response.status()
            )));
        }
        Ok(true)
    }

    /// Verifies a raw ID token: signature by a key of the provider (never `alg: none`),
    /// issuer, audience, expiry and, when given, the nonce. A token signed by a key we do
    /// not know triggers one early rediscovery (key rotation).
    pub async fn verify_id_token(
        &self,
        raw: &str,
        nonce: Option<&str>,
    ) -> Result<Identity, ProviderError> {
        let token = CoreIdToken::from_str(raw)
            .map_err(|e| ProviderError::InvalidIdToken(format!("malformed: {e}")))?;
        let (client, _) = self.client().await?;
        match verify_with(&client, &token, nonce) {
            Err(ClaimsVerificationError::SignatureVerification(_)) => {
                let (client, _) = self.rediscover(Some(REDISCOVERY_COOLDOWN)).await?;
                verify_with(&client, &token, nonce)
            }
            other => other,
        }
        .map_err(|e| ProviderError::InvalidIdToken(e.to_string()))
    }
}

fn verify_with(
    client: &DiscoveredClient,
    token: &CoreIdToken,
    nonce: Option<&str>,
) -> Result<Identity, ClaimsVerificationError> {
    let verifier = client.id_token_verifier();
    let claims = match nonce {
        Some(expected) => token.claims(&verifier, &Nonce::new(expected.to_owned()))?,
        None => token.claims(&verifier, |_: Option<&Nonce>| Ok(()))?,
    };
    Ok(Identity::from_claims(claims))
}

fn redirect_url(uri: &str) -> Result<RedirectUrl, ProviderError> {
    RedirectUrl::new(uri.to_owned())
        .map_err(|e| ProviderError::Config(format!("redirect URL `{uri}`: {e}")))
}

fn tokens_from(response: &CoreTokenResponse, identity: Option<Identity>) -> Tokens {
    let lifetime = response
        .expires_in()
        .unwrap_or(Duration::from_secs(300))
        .as_secs() as i64;
    // Treat the token as expired a little early (a fifth of its life, at most 10 s), so a
    // request never reaches us with a token the provider already considers dead.
    let margin = (lifetime / 5).min(10);
    Tokens {
        identity,
        id_token: response.id_token().map(|t| t.to_string()),
        refresh_token: response.refresh_token().map(|t| t.secret().clone()),
        access_expires_at: chrono::Utc::now().timestamp() + lifetime - margin,
    }
}

/// A refused grant (the provider's OAuth error) is `Refused`; anything else is the
/// provider being unreachable or broken.
fn grant_error<E: std::error::Error + 'static>(
    err: RequestTokenError<
        E,
        openidconnect::StandardErrorResponse<openidconnect::core::CoreErrorResponseType>,
    >,
) -> ProviderError {
    match err {
        RequestTokenError::ServerResponse(response) => {
            ProviderError::Refused(response.error().to_string())
        }
        other => ProviderError::Unavailable(other.to_string()),
    }
}
