//! GitHub, GitLab and Bitbucket as seen by an OAuth client, on one loopback port.
//!
//! The real providers cannot be reached from tests, so this server speaks their wire
//! formats and our real client code runs against it end to end. There is no authorization
//! page: a test reads the authorization URL our server redirected to and asks
//! [`FakeGit::issue_code`] for the code the provider would have sent back (bound to the
//! PKCE challenge of that URL). The token endpoints check the client credentials (form
//! body, or HTTP Basic for Bitbucket), the grant type, the code and its PKCE verifier, and
//! the refresh token; refresh tokens rotate (a used one is refused, as the providers do).
//!
//! | provider | token endpoint | refusal | user |
//! |---|---|---|---|
//! | GitHub | `POST /login/oauth/access_token` | `200` with `{"error": "bad_verification_code"}` | `GET /user` → `login` (needs a `User-Agent`) |
//! | GitLab | `POST /oauth/token` | `400 {"error": "invalid_grant"}` | `GET /api/v4/user` → `username` |
//! | Bitbucket | `POST /site/oauth2/access_token` (Basic) | `400 {"error": "invalid_grant"}` | `GET /2.0/user` → `username` |

use base64::Engine;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use openhands_core::secrets::ProviderType;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

/// `(client id, client secret)` the fake accepts per provider.
pub fn client_of(provider: ProviderType) -> (&'static str, &'static str) {
    match provider {
        ProviderType::Github => ("gh-client", "gh-secret"),
        ProviderType::Gitlab => ("gl-client", "gl-secret"),
        _ => ("bb-client", "bb-secret"),
    }
}

/// One request to a token endpoint, as received.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub provider: ProviderType,
    pub form: BTreeMap<String, String>,
    /// HTTP Basic `(user, password)`, when sent.
    pub basic: Option<(String, String)>,
}

/// Tokens the fake issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedPair {
    pub access_token: String,
    pub refresh_token: String,
}

#[derive(Debug, Clone)]
struct Grant {
    provider: ProviderType,
    login: String,
    challenge: Option<String>,
}

#[derive(Default)]
struct State {
    codes: HashMap<String, Grant>,
    refresh_tokens: HashMap<String, Grant>,
    access_tokens: HashMap<String, Grant>,
    issued: u64,
    expires_in: HashMap<ProviderType, u64>,
    token_requests: Vec<TokenRequest>,
    last_issued: HashMap<ProviderType, IssuedPair>,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

/// The fake providers; stops when dropped.
pub struct FakeGit {
    base_url: String,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeGit {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeGit {
    /// Serves on a free port of `127.0.0.1`. Access tokens live `expires_in` seconds
    /// (GitHub 8 h, GitLab and Bitbucket 2 h, as the real ones) unless changed.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base_url = format!("http://{}", listener.local_addr().expect("address"));
        let state = Arc::new(Mutex::new(State {
            expires_in: HashMap::from([
                (ProviderType::Github, 28_800),
                (ProviderType::Gitlab, 7_200),
                (ProviderType::Bitbucket, 7_200),
            ]),
            ..State::default()
        }));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let state = state.clone();
                        async move { Ok::<_, std::convert::Infallible>(handle(&state, request).await) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            base_url,
            state,
            task,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.base_url
    }

    /// The code the provider would send back after `login` authorized an authorization
    /// URL carrying `challenge` (its PKCE `code_challenge`, if any).
    pub fn issue_code(
        &self,
        provider: ProviderType,
        login: &str,
        challenge: Option<&str>,
    ) -> String {
        let mut state = lock(&self.state);
        state.issued += 1;
        let code = format!("code-{}-{}", provider.as_str(), state.issued);
        state.codes.insert(
            code.clone(),
            Grant {
                provider,
                login: login.to_owned(),
                challenge: challenge.map(str::to_owned),
            },
        );
        code
    }

    /// A refresh token the provider will accept once, for `login`.
    pub fn seed_refresh_token(&self, provider: ProviderType, login: &str) -> String {
        let mut state = lock(&self.state);
        state.issued += 1;
        let token = format!("seeded-refresh-{}-{}", provider.as_str(), state.issued);
        state.refresh_tokens.insert(
            token.clone(),
            Grant {
                provider,
                login: login.to_owned(),
                challenge: None,
            },
        );
        token
    }

    /// Sets the lifetime of the access tokens `provider` issues from now on.
    pub fn set_expires_in(&self, provider: ProviderType, seconds: u64) {
        lock(&self.state).expires_in.insert(provider, seconds);
    }

    /// Every token request `provider` received.
    pub fn token_requests(&self, provider: ProviderType) -> Vec<TokenRequest> {
        lock(&self.state)
            .token_requests
            .iter()
            .filter(|r| r.provider == provider)
            .cloned()
            .collect()
    }

    /// How many refresh grants `provider` received (granted or not).
    pub fn refreshes(&self, provider: ProviderType) -> usize {
        self.token_requests(provider)
            .iter()
            .filter(|r| r.form.get("grant_type").map(String::as_str) == Some("refresh_token"))
            .count()
    }

    /// The tokens `provider` issued last.
    pub fn last_issued(&self, provider: ProviderType) -> Option<IssuedPair> {
        lock(&self.state).last_issued.get(&provider).cloned()
    }

    /// Whether `provider` would still accept `refresh_token`.
    pub fn accepts_refresh_token(&self, refresh_token: &str) -> bool {
        lock(&self.state).refresh_tokens.contains_key(refresh_token)
    }
}

fn respond(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json; charset=utf-8")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

/// An OAuth refusal in the provider's own way.
fn refusal(provider: ProviderType, status: StatusCode, error: &str) -> Response<Full<Bytes>> {
    let github_code = match error {
        "invalid_client" => "incorrect_client_credentials",
        "invalid_grant" => "bad_verification_code",
        "invalid_refresh" => "bad_refresh_token",
        other => other,
    };
    match provider {
        // GitHub says no with 200 OK.
        ProviderType::Github => respond(
            StatusCode::OK,
            &json!({"error": github_code, "error_description": "refused by the fake",
                    "error_uri": "https://docs.github.com/apps"}),
        ),
        _ => {
            let error = if error == "invalid_refresh" {
                "invalid_grant"
            } else {
                error
            };
            respond(
                status,
                &json!({"error": error, "error_description": "refused by the fake"}),
            )
        }
    }
}

fn s256(verifier: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref())
}

fn basic_credentials(request: &Request<Incoming>) -> Option<(String, String)> {
    let value = request.headers().get("authorization")?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    let decode = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Some((decode(user), decode(password)))
}

async fn handle(state: &Mutex<State>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_owned();
    let token_endpoint = match path.as_str() {
        "/login/oauth/access_token" => Some(ProviderType::Github),
        "/oauth/token" => Some(ProviderType::Gitlab),
        "/site/oauth2/access_token" => Some(ProviderType::Bitbucket),
        _ => None,
    };
    if let Some(provider) = token_endpoint {
        let basic = basic_credentials(&request);
        let body = request
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let form: BTreeMap<String, String> =
            url::form_urlencoded::parse(&body).into_owned().collect();
        return token(&mut lock(state), provider, form, basic);
    }
    let user_endpoint = match path.as_str() {
        "/user" => Some(ProviderType::Github),
        "/api/v4/user" => Some(ProviderType::Gitlab),
        "/2.0/user" => Some(ProviderType::Bitbucket),
        _ => None,
    };
    let Some(provider) = user_endpoint else {
        return respond(StatusCode::NOT_FOUND, &json!({"message": "Not Found"}));
    };
    if provider == ProviderType::Github && request.headers().get("user-agent").is_none() {
        return respond(
            StatusCode::FORBIDDEN,
            &json!({"message": "Request forbidden by administrative rules. Please make sure your request has a User-Agent header"}),
        );
    }
    let bearer = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned)
        .unwrap_or_default();
    let grant = lock(state)
        .access_tokens
        .get(&bearer)
        .filter(|g| g.provider == provider)
        .cloned();
    let Some(grant) = grant else {
        return respond(
            StatusCode::UNAUTHORIZED,
            &json!({"message": "Bad credentials"}),
        );
    };
    let body = match provider {
        ProviderType::Github => json!({"login": grant.login, "id": 583231, "type": "User"}),
        ProviderType::Gitlab => json!({"username": grant.login, "id": 42, "state": "active"}),
        _ => json!({"username": grant.login, "account_id": "557058:1234",
                    "uuid": "{0b4f3a52-1234}", "display_name": "A User"}),
    };
    respond(StatusCode::OK, &body)
}

fn token(
    state: &mut State,
    provider: ProviderType,
    form: BTreeMap<String, String>,
    basic: Option<(String, String)>,
) -> Response<Full<Bytes>> {
    state.token_requests.push(TokenRequest {
        provider,
        form: form.clone(),
        basic: basic.clone(),
    });
    let (client_id, client_secret) = client_of(provider);
    let credentials = match provider {
        // Bitbucket takes the consumer's key and secret as HTTP Basic only.
        ProviderType::Bitbucket if form.contains_key("client_secret") => None,
        ProviderType::Bitbucket => basic,
        _ => match (form.get("client_id"), form.get("client_secret")) {
            (Some(id), Some(secret)) => Some((id.clone(), secret.clone())),
            _ => None,
        },
    };
    if credentials != Some((client_id.to_owned(), client_secret.to_owned())) {
        return refusal(provider, StatusCode::UNAUTHORIZED, "invalid_client");
    }
    let grant = match form.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            let code = form.get("code").cloned().unwrap_or_default();
            let Some(grant) = state.codes.remove(&code).filter(|g| g.provider == provider) else {
                return refusal(provider, StatusCode::BAD_REQUEST, "invalid_grant");
            };
            if form
                .get("redirect_uri")
                .is_none_or(|u| !u.ends_with("/callback"))
            {
                return refusal(provider, StatusCode::BAD_REQUEST, "invalid_grant");
            }
            if let Some(challenge) = &grant.challenge {
                let verified = form
                    .get("code_verifier")
                    .is_some_and(|verifier| &s256(verifier) == challenge);
                if !verified {
                    return refusal(provider, StatusCode::BAD_REQUEST, "invalid_grant");
                }
            }
            grant
        }
        Some("refresh_token") => {
            let refresh = form.get("refresh_token").cloned().unwrap_or_default();
            match state
                .refresh_tokens
                .remove(&refresh)
                .filter(|g| g.provider == provider)
            {
                Some(grant) => grant,
                None => return refusal(provider, StatusCode::BAD_REQUEST, "invalid_refresh"),
            }
        }
        _ => return refusal(provider, StatusCode::BAD_REQUEST, "unsupported_grant_type"),
    };
    state.issued += 1;
    let n = state.issued;
    let prefix = match provider {
        ProviderType::Github => "ghu",
        ProviderType::Gitlab => "glat",
        _ => "bbat",
    };
    let pair = IssuedPair {
        access_token: format!("{prefix}_access_{n}"),
        refresh_token: format!("{prefix}_refresh_{n}"),
    };
    state
        .access_tokens
        .insert(pair.access_token.clone(), grant.clone());
    state
        .refresh_tokens
        .insert(pair.refresh_token.clone(), grant);
    state.last_issued.insert(provider, pair.clone());
    let expires_in = state.expires_in.get(&provider).copied().unwrap_or(7_200);
    let body = match provider {
        ProviderType::Github => json!({
            "access_token": pair.access_token, "token_type": "bearer", "scope": "",
            "expires_in": expires_in, "refresh_token": pair.refresh_token,
            "refresh_token_expires_in": 15_897_600,
        }),
        ProviderType::Gitlab => json!({
            "access_token": pair.access_token, "token_type": "Bearer",
            "expires_in": expires_in, "refresh_token": pair.refresh_token,
            "scope": "api read_user", "created_at": 1_700_000_000,
        }),
        _ => json!({
            "access_token": pair.access_token, "scopes": "repository account",
            "token_type": "bearer", "expires_in": expires_in,
            "state": "authorization_code", "refresh_token": pair.refresh_token,
        }),
    };
    respond(StatusCode::OK, &body)
}
