//! `saas.oidc`: the SaaS `UserAuth`. A request proves who it is with an API key
//! (`Authorization: Bearer`, or `X-Session-API-Key` for clients that drop `Authorization`)
//! or with the `keycloak_auth` session cookie that the login callback set.
//!
//! For a cookie, in order: open it (a bad one ends the session: 401 and the cookie is
//! cleared), find its live server-side record (missing, revoked or past its absolute
//! lifetime: the session ends the same way, whatever the provider's tokens say), check the
//! origin of state-changing requests (CSRF), refresh at the provider when the access token
//! has expired (the new cookie rides on the response; a refused refresh ends the session;
//! an unreachable provider is a 503 that keeps it), then the gates (verified e-mail,
//! accepted terms). The org is the user's current one.
//!
//! Login redirect URIs are built only from the configured public URL (`auth.public_url`,
//! or `https://<web_host>`): a server that has neither refuses to start, so no request's
//! `Host` or `X-Forwarded-Host` ever chooses where the provider sends a login code.
//!
//! Concurrent requests of one session that all find the access token expired share one
//! refresh: providers that rotate refresh tokens treat a second use of the old one as
//! theft and revoke the whole grant.

use crate::gates::{self, Allowlist, CsrfCheck};
use crate::provider::{OidcProvider, ProviderError, Tokens};
use crate::session::{CookieJar, SESSION_COOKIE, Session};
use crate::session_store::{SessionRecord, SessionStore};
use async_trait::async_trait;
use openhands_core::cache::TtlCache;
use openhands_core::config::Config;
use openhands_core::extension::{AuthError, AuthType, AuthenticatedUser, RequestHeaders, UserAuth};
use openhands_core::oss::SESSION_API_KEY_HEADER;
use openhands_core::scope::UserScope;
use openhands_sql_store::Database;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, OnceCell};

/// How long a finished refresh is reused by the session's other requests (in flight
/// together, or racing just behind). Logout forgets it at once.
const REFRESH_REUSE: Duration = Duration::from_secs(10);

type RefreshResult = Result<Tokens, ProviderError>;
type RefreshSlot = (Instant, Arc<OnceCell<RefreshResult>>);

/// The SaaS login service: the provider, the cookies, the session records, the gates and
/// the database.
pub struct OidcAuth {
    pub provider: OidcProvider,
    pub cookies: CookieJar,
    pub sessions: SessionStore,
    pub db: Database,
    pub allowlist: Allowlist,
    pub require_verified_email: bool,
    pub require_tos: bool,
    /// The public base URL (`auth.public_url`, or `https://<web_host>`), no trailing `/`.
    pub public_url: String,
    /// Origins allowed on cookie requests that change state, besides the request's own.
    pub allowed_origins: Vec<String>,
    refreshes: Mutex<HashMap<String, RefreshSlot>>,
    /// user id -> current org.
    orgs: TtlCache<String, Option<String>>,
    /// key hash -> the key's owner, e-mail and verification (`None`: not a valid key).
    keys: TtlCache<String, Option<KeyCaller>>,
}

/// What an API key resolves to.
#[derive(Debug, Clone)]
struct KeyCaller {
    user_id: String,
    org_id: String,
    email: Option<String>,
    email_verified: bool,
}

/// Entries per lookup cache before it is cleared.
const LOOKUP_CACHE_CAPACITY: usize = 100_000;

impl std::fmt::Debug for OidcAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcAuth")
            .field("provider", &self.provider)
            .finish_non_exhaustive()
    }
}

/// Why the service could not be built from the config.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(
        "SaaS login needs an OIDC provider: set `auth.issuer_url` (OIDC_ISSUER_URL) or \
         KEYCLOAK_SERVER_URL with KEYCLOAK_REALM_NAME"
    )]
    NoIssuer,
    #[error("SaaS login needs `auth.client_id` (OIDC_CLIENT_ID or KEYCLOAK_CLIENT_ID)")]
    NoClientId,
    #[error(
        "SaaS login needs the server's public URL, from which login redirect URIs are built: \
         set `auth.public_url` (OPENHANDS_AUTH__PUBLIC_URL), e.g. https://app.example.com, \
         or `web_host` (WEB_HOST)"
    )]
    NoPublicUrl,
    #[error(transparent)]
    CookieKey(#[from] crate::cookie_key::CookieKeyError),
    #[error("reading the allowlist {path}: {source}")]
    Allowlist {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Provider(#[from] ProviderError),
}

impl OidcAuth {
    /// `cookie_cipher` seals the cookies ([`crate::cookie_key::cookie_cipher`]): never the
    /// cipher of data at rest.
    pub fn from_config(
        config: &Config,
        cookie_cipher: Arc<openhands_core::crypto::Cipher>,
        db: Database,
    ) -> Result<Self, SetupError> {
        let auth = &config.auth;
        let issuer = auth.issuer().ok_or(SetupError::NoIssuer)?;
        let client_id = auth
            .client_id
            .as_deref()
            .filter(|c| !c.trim().is_empty())
            .ok_or(SetupError::NoClientId)?;
        let provider = OidcProvider::new(
            &issuer,
            client_id.trim(),
            auth.client_secret.as_ref().map(|s| s.expose()),
            auth.scopes.clone(),
            Duration::from_secs(auth.discovery_ttl_seconds.max(1)),
        )?;
        let public_url = auth
            .public_url
            .as_deref()
            .filter(|u| !u.trim().is_empty())
            .map(|u| u.trim().trim_end_matches('/').to_owned())
            .or_else(|| {
                config
                    .web_host
                    .as_deref()
                    .filter(|h| !h.trim().is_empty())
                    .map(|h| format!("https://{}", h.trim()))
            })
            .ok_or(SetupError::NoPublicUrl)?;
        let secure = auth
            .cookie_secure
            .unwrap_or_else(|| !public_url.starts_with("http://"));
        let allowlist = match auth.allowlist_file.as_deref().filter(|p| !p.is_empty()) {
            Some(path) if !auth.disable_waitlist => {
                Allowlist::from_file(std::path::Path::new(path)).map_err(|source| {
                    SetupError::Allowlist {
                        path: path.to_owned(),
                        source,
                    }
                })?
            }
            _ => Allowlist::open(),
        };
        let lookup_ttl = Duration::from_millis(auth.lookup_cache_ms);
        let allowed_origins = gates::origin_of(&public_url)
            .into_iter()
            .chain(
                config
                    .permitted_cors_origins
                    .iter()
                    .map(|o| o.trim_end_matches('/').to_owned()),
            )
            .collect();
        let sessions = SessionStore::new(
            db.clone(),
            Duration::from_secs(auth.session_max_age_seconds),
            lookup_ttl,
        );
        Ok(Self {
            provider,
            cookies: CookieJar::new(cookie_cipher, secure),
            sessions,
            db,
            allowlist,
            require_verified_email: auth.require_verified_email,
            require_tos: auth.require_tos,
            public_url,
            allowed_origins,
            refreshes: Mutex::new(HashMap::new()),
            orgs: TtlCache::new(lookup_ttl, LOOKUP_CACHE_CAPACITY),
            keys: TtlCache::new(lookup_ttl, LOOKUP_CACHE_CAPACITY),
        })
    }

    /// The session in a request's cookie, if it has one that opens (alive or not).
    pub fn session_of(&self, request: &dyn RequestHeaders) -> Option<Session> {
        let value = request.cookie(SESSION_COOKIE)?;
        self.cookies.open_session(value).ok()
    }

    /// The redirect URI registered at the provider: always from the public URL.
    pub fn callback_url(&self) -> String {
        format!("{}{}", self.public_url, crate::routes::CALLBACK_PATH)
    }

    /// The live record of a session, or the "session ended" refusal (also for a record of
    /// another user than the cookie names, which only a forged cookie could hold).
    pub async fn live_record(&self, session: &Session) -> Result<SessionRecord, AuthError> {
        let record = self
            .sessions
            .live(&session.token)
            .await
            .map_err(|e| AuthError::Unavailable(e.to_string()))?;
        match record {
            Some(record) if record.user_id == session.sub => Ok(record),
            _ => Err(self.ended("Session ended; log in again")),
        }
    }

    /// `Set-Cookie` for `session`, living as long as its record has left.
    pub fn session_cookie(
        &self,
        session: &Session,
        record: &SessionRecord,
    ) -> Result<String, crate::session::CookieError> {
        let left = crate::session_store::remaining_seconds(record, chrono::Utc::now());
        self.cookies.session_header(session, left)
    }

    fn ended(&self, message: &str) -> AuthError {
        AuthError::SessionEnded {
            message: message.to_owned(),
            clear_cookie: self.cookies.clear_session_header(),
        }
    }

    /// Refreshes a session's tokens, sharing one provider call among concurrent requests
    /// of the same session.
    async fn refresh_shared(&self, session: &Session, refresh_token: &str) -> RefreshResult {
        let key = token_fingerprint(refresh_token);
        let slot = {
            let mut slots = self.refreshes.lock().await;
            slots.retain(|_, (started, _)| started.elapsed() < REFRESH_REUSE);
            slots
                .entry(key)
                .or_insert_with(|| (Instant::now(), Arc::new(OnceCell::new())))
                .1
                .clone()
        };
        slot.get_or_init(|| self.provider.refresh(refresh_token, &session.sub))
            .await
            .clone()
    }

    /// Drops a shared refresh result of this refresh token (at logout, so a copy of the
    /// ended session cannot ride on it).
    pub async fn forget_refresh(&self, refresh_token: &str) {
        self.refreshes
            .lock()
            .await
            .remove(&token_fingerprint(refresh_token));
    }

    /// Brings a session up to date: refreshed when its access token expired. Returns the
    /// session and whether it changed (so the cookie must be re-issued).
    pub async fn current_session(
        &self,
        mut session: Session,
    ) -> Result<(Session, bool), AuthError> {
        let now = chrono::Utc::now().timestamp();
        if now < session.access_exp {
            return Ok((session, false));
        }
        let Some(refresh_token) = session.refresh.clone() else {
            return Err(self.ended("Session expired; log in again"));
        };
        match self.refresh_shared(&session, &refresh_token).await {
            Ok(tokens) => {
                if let Some(identity) = tokens.identity {
                    session.email = identity.email.map(|e| e.trim().to_lowercase());
                    session.email_verified = identity.email_verified;
                }
                session.access_exp = tokens.access_expires_at;
                session.refresh = tokens.refresh_token;
                Ok((session, true))
            }
            Err(ProviderError::Unavailable(cause)) => Err(AuthError::Unavailable(cause)),
            Err(err) => {
                tracing::info!(user = %session.sub, error = %err, "session refresh refused");
                Err(self.ended("Session expired; log in again"))
            }
        }
    }

    async fn authenticate_cookie(
        &self,
        request: &dyn RequestHeaders,
        value: &str,
    ) -> Result<AuthenticatedUser, AuthError> {
        let session = self
            .cookies
            .open_session(value)
            .map_err(|_| self.ended("Invalid session; log in again"))?;
        // Before any refresh: a revoked or expired record ends the session even when the
        // provider would still refresh it.
        let record = self.live_record(&session).await?;
        gates::check_csrf(&csrf_check(request), &self.allowed_origins)?;
        let (session, changed) = self.current_session(session).await?;
        let set_cookies = if changed {
            vec![
                self.session_cookie(&session, &record)
                    .map_err(|e| AuthError::Unavailable(e.to_string()))?,
            ]
        } else {
            Vec::new()
        };
        let path = request.path();
        gates::check_email(self.require_verified_email, session.email_verified, path)?;
        gates::check_tos(self.require_tos, session.tos, path)?;
        let org_id = self.current_org(&session.sub).await?;
        Ok(AuthenticatedUser {
            scope: UserScope {
                user_id: Some(session.sub),
                org_id,
            },
            email: session.email,
            auth_type: Some(AuthType::Cookie),
            set_cookies,
        })
    }

    /// The user's current org, through the lookup cache.
    async fn current_org(&self, user_id: &str) -> Result<Option<String>, AuthError> {
        if let Some(found) = self.orgs.get(&user_id.to_owned()) {
            return Ok(found);
        }
        let org = openhands_saas_api::current_org(&self.db, user_id)
            .await
            .map_err(|e| AuthError::Unavailable(e.to_string()))?;
        self.orgs.insert(user_id.to_owned(), org.clone());
        Ok(org)
    }

    /// Who an API key belongs to, through the lookup cache (keyed by the key's hash, so the
    /// cache never holds a key).
    async fn key_caller(&self, key: &str) -> Result<Option<KeyCaller>, AuthError> {
        let hash = openhands_saas_api::api_keys::hash_key(key);
        if let Some(found) = self.keys.get(&hash) {
            return Ok(found);
        }
        let unavailable = |e: &dyn std::fmt::Display| AuthError::Unavailable(e.to_string());
        let caller = match openhands_saas_api::verify_api_key(&self.db, key)
            .await
            .map_err(|e| unavailable(&e))?
        {
            Some(owner) => crate::users::email_of(&self.db, &owner.user_id)
                .await
                .map_err(|e| unavailable(&e))?
                .map(|(email, email_verified)| KeyCaller {
                    user_id: owner.user_id,
                    org_id: owner.org_id,
                    email,
                    email_verified,
                }),
            None => None,
        };
        self.keys.insert(hash, caller.clone());
        Ok(caller)
    }

    async fn authenticate_key(
        &self,
        request: &dyn RequestHeaders,
        key: &str,
    ) -> Result<AuthenticatedUser, AuthError> {
        let caller = self
            .key_caller(key)
            .await?
            .ok_or_else(|| AuthError::Unauthorized("Invalid or expired API key".into()))?;
        // Keys are made by signed-in users who passed the terms gate; the e-mail gate
        // still holds (a user whose address became unverified).
        gates::check_email(
            self.require_verified_email,
            caller.email_verified,
            request.path(),
        )?;
        Ok(AuthenticatedUser {
            scope: UserScope {
                user_id: Some(caller.user_id),
                org_id: Some(caller.org_id),
            },
            email: caller.email,
            auth_type: Some(AuthType::Bearer),
            set_cookies: Vec::new(),
        })
    }
}

#[async_trait]
impl UserAuth for OidcAuth {
    async fn authenticate(
        &self,
        request: &dyn RequestHeaders,
    ) -> Result<AuthenticatedUser, AuthError> {
        if let Some(key) = bearer_key(request) {
            return self.authenticate_key(request, key).await;
        }
        match request.cookie(SESSION_COOKIE).filter(|v| !v.is_empty()) {
            Some(value) => self.authenticate_cookie(request, value).await,
            None => Err(AuthError::Unauthorized("Not logged in".into())),
        }
    }
}

/// The API key of a request: `Authorization: Bearer <key>`, or `X-Session-API-Key` when
/// it holds one of our keys (MCP clients drop `Authorization` on redirects).
fn bearer_key(request: &dyn RequestHeaders) -> Option<&str> {
    if let Some(value) = request.header("authorization") {
        let (scheme, key) = value.split_once(' ')?;
        if scheme.eq_ignore_ascii_case("bearer") && !key.trim().is_empty() {
            return Some(key.trim());
        }
    }
    request
        .header(SESSION_API_KEY_HEADER)
        .map(str::trim)
        .filter(|k| openhands_saas_api::api_keys::looks_like_api_key(k))
}

fn csrf_check(request: &dyn RequestHeaders) -> CsrfCheck<'_> {
    let origin = request
        .header("origin")
        .filter(|o| *o != "null")
        .map(|o| o.trim_end_matches('/').to_owned())
        .or_else(|| request.header("referer").and_then(gates::origin_of));
    CsrfCheck {
        method: request.method(),
        origin,
        host: request.header("host"),
        websocket: request
            .header("upgrade")
            .is_some_and(|u| u.eq_ignore_ascii_case("websocket")),
    }
}

/// A short fingerprint of a refresh token, so the shared-refresh map never holds tokens
/// as keys in logs or dumps.
fn token_fingerprint(token: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    digest.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
