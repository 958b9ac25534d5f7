//! `InstallationTokens` against a fake GitHub API that checks the App JWT with the public key
//! of a key pair generated for this test run (no key material is committed).

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use chrono::{TimeDelta, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use openhands_github::jwt::AppClaims;
use openhands_github::{GithubAppConfig, InstallationTokens, TokenError};
use serde_json::json;
use std::collections::HashMap;

mod common;
use common::key_pair;
use std::sync::{Arc, Mutex};

const CLIENT_ID: &str = "Iv23testclient";

/// The private key squeezed onto one line with literal `\n`, as in a `.env` file.
fn config(api_url: &str) -> GithubAppConfig {
    let one_line = key_pair().0.replace('\n', "\\n");
    let vars: HashMap<&str, String> = HashMap::from([
        ("GITHUB_APP_CLIENT_ID", CLIENT_ID.to_owned()),
        ("GITHUB_APP_PRIVATE_KEY", one_line),
        ("GITHUB_APP_WEBHOOK_SECRET", "whsec".to_owned()),
        ("GITHUB_API_URL", api_url.to_owned()),
    ]);
    GithubAppConfig::from_lookup(|k| vars.get(k).cloned())
        .expect("valid config")
        .expect("configured")
}

#[derive(Default)]
struct Recorded {
    /// Installation ids of the token requests GitHub answered with a token.
    exchanges: Vec<u64>,
    /// Whatever the fake found wrong with a request.
    problems: Vec<String>,
}

/// `POST /app/installations/{id}/access_tokens`. Installation 2 gets tokens that expire in
/// 4 minutes, 401 and 404 answer with that status; others get one-hour tokens.
struct FakeGithub {
    url: String,
    recorded: Arc<Mutex<Recorded>>,
    handle: actix_web::dev::ServerHandle,
}

fn check(req: &HttpRequest) -> Result<(), String> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    if header("accept").as_deref() != Some("application/vnd.github+json") {
        return Err(format!("accept: {:?}", header("accept")));
    }
    if header("x-github-api-version").as_deref() != Some("2022-11-28") {
        return Err("api version".to_owned());
    }
    if !header("user-agent").is_some_and(|ua| ua.starts_with("openhands-rust/")) {
        return Err("user agent".to_owned());
    }
    let jwt = header("authorization")
        .and_then(|v| v.strip_prefix("Bearer ").map(str::to_owned))
        .ok_or("no bearer token")?;
    let key = DecodingKey::from_rsa_pem(key_pair().1.as_bytes()).map_err(|e| e.to_string())?;
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_issuer(&[CLIENT_ID]);
    validation.set_required_spec_claims(&["exp", "iat", "iss"]);
    let claims = jsonwebtoken::decode::<AppClaims>(&jwt, &key, &validation)
        .map_err(|e| format!("jwt: {e}"))?
        .claims;
    let now = Utc::now().timestamp();
    if !(now - 65..=now - 55).contains(&claims.iat) {
        return Err(format!("iat {} vs now {now}", claims.iat));
    }
    if !(now + 535..=now + 545).contains(&claims.exp) {
        return Err(format!("exp {} vs now {now}", claims.exp));
    }
    Ok(())
}

impl FakeGithub {
    fn start() -> Self {
        let recorded: Arc<Mutex<Recorded>> = Arc::default();
        let shared = recorded.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let server = HttpServer::new(move || {
                    let shared = shared.clone();
                    App::new().route(
                        "/app/installations/{id}/access_tokens",
                        web::post().to(move |req: HttpRequest, id: web::Path<u64>| {
                            let shared = shared.clone();
                            async move {
                                // Slow enough for concurrent callers to overlap.
                                actix_web::rt::time::sleep(std::time::Duration::from_millis(150))
                                    .await;
                                let id = id.into_inner();
                                if let Err(problem) = check(&req) {
                                    shared.lock().expect("recorded").problems.push(problem);
                                    return HttpResponse::Unauthorized().json(
                                        json!({"message": "A JSON web token could not be decoded"}),
                                    );
                                }
                                match id {
                                    401 => {
                                        return HttpResponse::Unauthorized()
                                            .json(json!({"message": "Bad credentials"}));
                                    }
                                    404 => {
                                        return HttpResponse::NotFound()
                                            .json(json!({"message": "Not Found"}));
                                    }
                                    _ => {}
                                }
                                let mut recorded = shared.lock().expect("recorded");
                                recorded.exchanges.push(id);
                                let n = recorded.exchanges.len();
                                let lifetime = if id == 2 {
                                    TimeDelta::minutes(4)
                                } else {
                                    TimeDelta::hours(1)
                                };
                                HttpResponse::Created().json(json!({
                                    "token": format!("ghs_{id}_{n}"),
                                    "expires_at": (Utc::now() + lifetime)
                                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                                }))
                            }
                        }),
                    )
                })
                .workers(2)
                .disable_signals()
                .bind(("127.0.0.1", 0))
                .expect("bind fake github");
                let address = server.addrs()[0];
                let running = server.run();
                tx.send((address, running.handle())).expect("send address");
                let _ = running.await;
            });
        });
        let (address, handle) = rx.recv().expect("fake github started");
        Self {
            url: format!("http://{address}"),
            recorded,
            handle,
        }
    }

    fn exchanges(&self) -> Vec<u64> {
        self.recorded.lock().expect("recorded").exchanges.clone()
    }

    fn problems(&self) -> Vec<String> {
        self.recorded.lock().expect("recorded").problems.clone()
    }
}

impl Drop for FakeGithub {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

fn tokens(github: &FakeGithub) -> InstallationTokens {
    InstallationTokens::new(&config(&github.url)).expect("token source")
}

#[tokio::test]
async fn first_call_exchanges_the_app_jwt_for_a_token() {
    let github = FakeGithub::start();
    let token = tokens(&github).token(7).await.expect("token");
    assert_eq!(token.secret(), "ghs_7_1");
    assert!(token.expires_at > Utc::now() + TimeDelta::minutes(55));
    assert_eq!(github.exchanges(), vec![7]);
    assert_eq!(github.problems(), Vec::<String>::new());
}

#[tokio::test]
async fn second_call_is_served_from_the_cache() {
    let github = FakeGithub::start();
    let tokens = tokens(&github);
    let first = tokens.token(7).await.expect("first");
    let second = tokens.token(7).await.expect("second");
    assert_eq!(first.secret(), second.secret());
    assert_eq!(github.exchanges(), vec![7]);
}

#[tokio::test]
async fn installations_are_cached_separately() {
    let github = FakeGithub::start();
    let tokens = tokens(&github);
    let a = tokens.token(7).await.expect("7");
    let b = tokens.token(8).await.expect("8");
    assert_ne!(a.secret(), b.secret());
    assert_eq!(github.exchanges(), vec![7, 8]);
}

#[tokio::test]
async fn concurrent_callers_for_one_installation_cause_one_exchange() {
    let github = FakeGithub::start();
    let tokens = Arc::new(tokens(&github));
    let calls: Vec<_> = (0..5)
        .map(|_| {
            let tokens = tokens.clone();
            tokio::spawn(async move { tokens.token(7).await })
        })
        .collect();
    for call in calls {
        let token = call.await.expect("task").expect("token");
        assert_eq!(token.secret(), "ghs_7_1");
    }
    assert_eq!(github.exchanges(), vec![7]);
}

#[tokio::test]
async fn a_token_within_five_minutes_of_expiry_is_exchanged_again() {
    let github = FakeGithub::start();
    let tokens = tokens(&github);
    let first = tokens.token(2).await.expect("first");
    let second = tokens.token(2).await.expect("second");
    assert_ne!(first.secret(), second.secret());
    assert_eq!(github.exchanges(), vec![2, 2]);
}

#[tokio::test]
async fn a_401_is_a_typed_error_naming_the_installation() {
    let github = FakeGithub::start();
    let err = tokens(&github).token(401).await.expect_err("401");
    assert!(
        matches!(
            err,
            TokenError::Unauthorized {
                installation_id: 401
            }
        ),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(message.contains("installation 401"), "{message}");
    assert!(
        !message.contains("PRIVATE KEY") && !message.contains("eyJ"),
        "{message}"
    );
    assert_eq!(github.problems(), Vec::<String>::new());
}

#[tokio::test]
async fn a_404_says_the_app_is_not_installed_there() {
    let github = FakeGithub::start();
    let err = tokens(&github).token(404).await.expect_err("404");
    assert!(
        matches!(
            err,
            TokenError::NotFound {
                installation_id: 404
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn errors_are_not_cached() {
    let github = FakeGithub::start();
    let tokens = tokens(&github);
    assert!(tokens.token(404).await.is_err());
    assert!(tokens.token(404).await.is_err());
    assert!(github.exchanges().is_empty());
}

#[tokio::test]
async fn an_unreachable_api_is_unavailable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let tokens =
        InstallationTokens::new(&config(&format!("http://127.0.0.1:{port}"))).expect("tokens");
    let err = tokens.token(7).await.expect_err("unreachable");
    assert!(
        matches!(
            err,
            TokenError::Unavailable {
                installation_id: 7,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn a_key_that_does_not_parse_is_a_config_error() {
    let vars: HashMap<&str, &str> = HashMap::from([
        ("GITHUB_APP_CLIENT_ID", CLIENT_ID),
        (
            "GITHUB_APP_PRIVATE_KEY",
            "-----BEGIN RSA PRIVATE KEY-----\\nnot-a-key\\n-----END RSA PRIVATE KEY-----",
        ),
        ("GITHUB_APP_WEBHOOK_SECRET", "whsec"),
    ]);
    let config = GithubAppConfig::from_lookup(|k| vars.get(k).map(|v| (*v).to_owned()))
        .expect("shape is fine")
        .expect("configured");
    let err = InstallationTokens::new(&config).expect_err("bad key");
    assert!(!err.to_string().contains("not-a-key"), "{err}");
}

#[tokio::test]
async fn the_fake_refuses_a_jwt_from_another_issuer() {
    let github = FakeGithub::start();
    let mut wrong = config(&github.url);
    wrong.client_id = "Iv23someoneelse".to_owned();
    let err = InstallationTokens::new(&wrong)
        .expect("tokens")
        .token(7)
        .await
        .expect_err("wrong iss");
    assert!(matches!(err, TokenError::Unauthorized { .. }), "{err:?}");
    assert_eq!(github.problems().len(), 1, "{:?}", github.problems());
    assert!(github.exchanges().is_empty());
}
