//! The GitHub App end to end: GitHub's documented webhook payloads (`tests/fixtures`), signed
//! with the webhook secret, sent to a running SaaS server (SQLite), conversations on the
//! scripted LLM, and a fake GitHub API that checks every call (the App JWT against the test
//! key pair's public key, the installation token on every repository call, the user token on
//! `GET /user`) and records them.

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use chrono::Utc;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use openhands_core::extension::{IntegrationRegistration, sign_hmac_sha256_hex};
use openhands_core::secret::Secret;
use openhands_github::GithubSettings;
use openhands_github::jwt::AppClaims;
use openhands_integrations::entity::Model;
use openhands_integrations::{callbacks, deliveries};
use openhands_runtime::testing::{ScriptedLlm, ScriptedReply};
use openhands_server::saas::{WebhooksAction, webhooks};
use openhands_sql_store::{Database, PoolOptions};
use openhands_test_support::git::{GIT_HTTP_ADDRESS, GitHttpServer};
use openhands_test_support::header_user::HEADER_USER_AUTH;
use openhands_test_support::{TestServer, json_body};

mod common;
use common::key_pair;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

// The server under test must link the provider crate for its registration to exist.
use openhands_github as _;

const CLIENT_ID: &str = "Iv23testapp";
const SECRET: &str = "It's a Secret to Everybody";
const INSTALLATION_TOKEN: &str = "ghs_installation_token_1";
const USER_TOKEN: &str = "ghu_codertocat_token";
/// The OpenHands user who linked the GitHub account `Codertocat`.
const USER: &str = "user-codertocat";
const SENDER: &str = "Codertocat";
const SENDER_ID: u64 = 21031067;
const PUBLIC_URL: &str = "https://openhands.test";
const PR_LINK_PATH: &str = "/Codertocat/Hello-World/pull/7";

/// A call the fake GitHub received.
#[derive(Debug, Clone)]
struct Call {
    method: String,
    path: String,
    body: Value,
}

/// What the fake GitHub knows and records.
#[derive(Default)]
struct State {
    calls: Vec<Call>,
    /// Whatever the fake found wrong with a request.
    problems: Vec<String>,
}

/// The fake GitHub REST API.
struct FakeGithub {
    url: String,
    state: Arc<Mutex<State>>,
    /// The next this many permission checks answer 502.
    failing_permission_checks: Arc<AtomicUsize>,
    /// The next this many comment posts answer 500.
    failing_comments: Arc<AtomicUsize>,
    handle: actix_web::dev::ServerHandle,
}

fn header(req: &HttpRequest, name: &str) -> Option<String> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn check_app_jwt(req: &HttpRequest) -> Result<(), String> {
    let jwt = header(req, "authorization")
        .and_then(|v| v.strip_prefix("Bearer ").map(str::to_owned))
        .ok_or("token exchange without a bearer JWT")?;
    let key = DecodingKey::from_rsa_pem(key_pair().1.as_bytes()).map_err(|e| e.to_string())?;
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_issuer(&[CLIENT_ID]);
    validation.set_required_spec_claims(&["exp", "iat", "iss"]);
    jsonwebtoken::decode::<AppClaims>(&jwt, &key, &validation)
        .map(|_| ())
        .map_err(|e| format!("App JWT refused: {e}"))
}

/// Answers one request, checking its credentials.
fn answer(
    req: &HttpRequest,
    body: &Value,
    failing_permission_checks: &AtomicUsize,
    failing_comments: &AtomicUsize,
) -> Result<HttpResponse, String> {
    let path = req.path().to_owned();
    let method = req.method().as_str().to_owned();
    if header(req, "accept").as_deref() != Some("application/vnd.github+json") {
        return Err(format!("{method} {path}: Accept header"));
    }
    if path.starts_with("/app/installations/") && path.ends_with("/access_tokens") {
        check_app_jwt(req)?;
        return Ok(HttpResponse::Created().json(json!({
            "token": INSTALLATION_TOKEN,
            "expires_at": (Utc::now() + chrono::Duration::hours(1)).to_rfc3339(),
        })));
    }
    let bearer = header(req, "authorization").unwrap_or_default();
    if path == "/user" {
        return Ok(if bearer == format!("Bearer {USER_TOKEN}") {
            HttpResponse::Ok().json(json!({"login": SENDER, "id": SENDER_ID, "type": "User"}))
        } else {
            HttpResponse::Unauthorized().json(json!({"message": "Bad credentials"}))
        });
    }
    if bearer != format!("Bearer {INSTALLATION_TOKEN}") {
        return Err(format!("{method} {path}: not the installation token"));
    }
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method.as_str(), parts.as_slice()) {
        ("GET", ["repos", _, _, "collaborators", login, "permission"]) => {
            if failing_permission_checks
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                return Ok(HttpResponse::BadGateway().json(json!({"message": "Server Error"})));
            }
            let permission = if login.eq_ignore_ascii_case(SENDER) {
                "admin"
            } else {
                "read"
            };
            Ok(HttpResponse::Ok().json(json!({"permission": permission, "role_name": permission})))
        }
        ("GET", ["repos", _, _, "pulls", _]) => {
            Ok(HttpResponse::Ok().json(json!({"number": 2, "head": {"ref": "changes"}})))
        }
        ("POST", ["repos", _, _, "issues", _, "reactions"])
        | ("POST", ["repos", _, _, "issues", "comments", _, "reactions"])
        | ("POST", ["repos", _, _, "pulls", "comments", _, "reactions"]) => {
            if body["content"] != "eyes" {
                return Err(format!("{path}: reaction {body}"));
            }
            Ok(HttpResponse::Created().json(json!({"id": 1, "content": "eyes"})))
        }
        ("POST", ["repos", _, _, "issues", _, "comments"])
        | ("POST", ["repos", _, _, "pulls", _, "comments", _, "replies"]) => {
            if body["body"].as_str().is_none_or(|b| b.is_empty()) {
                return Err(format!("{path}: comment without a body"));
            }
            if failing_comments
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                return Ok(HttpResponse::InternalServerError().finish());
            }
            Ok(HttpResponse::Created().json(json!({"id": 99})))
        }
        _ => Err(format!("unexpected call {method} {path}")),
    }
}

impl FakeGithub {
    fn start() -> Self {
        let state: Arc<Mutex<State>> = Arc::default();
        let failing_permission_checks = Arc::new(AtomicUsize::new(0));
        let failing_comments = Arc::new(AtomicUsize::new(0));
        let (shared, permissions, comments) = (
            state.clone(),
            failing_permission_checks.clone(),
            failing_comments.clone(),
        );
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let server = HttpServer::new(move || {
                    let (shared, permissions, comments) =
                        (shared.clone(), permissions.clone(), comments.clone());
                    App::new().default_service(web::to(
                        move |req: HttpRequest, bytes: web::Bytes| {
                            let (shared, permissions, comments) =
                                (shared.clone(), permissions.clone(), comments.clone());
                            async move {
                                let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                                let result = answer(&req, &body, &permissions, &comments);
                                let mut state = shared.lock().expect("state");
                                state.calls.push(Call {
                                    method: req.method().as_str().to_owned(),
                                    path: req.path().to_owned(),
                                    body,
                                });
                                match result {
                                    Ok(response) => response,
                                    Err(problem) => {
                                        state.problems.push(problem);
                                        HttpResponse::Unauthorized()
                                            .json(json!({"message": "refused by the fake"}))
                                    }
                                }
                            }
                        },
                    ))
                })
                .workers(1)
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
            state,
            failing_permission_checks,
            failing_comments,
            handle,
        }
    }

    fn calls(&self) -> Vec<Call> {
        self.state.lock().expect("state").calls.clone()
    }

    fn problems(&self) -> Vec<String> {
        self.state.lock().expect("state").problems.clone()
    }

    /// The comments and thread replies posted.
    fn comments(&self) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| {
                c.method == "POST"
                    && (c.path.ends_with("/comments") || c.path.ends_with("/replies"))
            })
            .collect()
    }
}

impl Drop for FakeGithub {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

/// A local git repository with `main` and the pull request's `changes` branch.
fn local_repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("repo dir");
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .args(args)
            .current_dir(dir.path())
            .output()
            .expect("run git");
        assert!(out.status.success(), "git {args:?}: {out:?}");
    };
    git(&["init", "--quiet", "-b", "main"]);
    git(&[
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@example.com",
        "commit",
        "--quiet",
        "--allow-empty",
        "-m",
        "init",
    ]);
    git(&["branch", "changes"]);
    // The files git's "dumb" HTTP protocol reads: the sandbox clones over HTTP.
    git(&["update-server-info"]);
    dir
}

struct Env {
    server: TestServer,
    db: Database,
    database_url: String,
    github: FakeGithub,
    repo: tempfile::TempDir,
    /// Serves `repo` over HTTP, the only way a sandboxed clone reaches it.
    git_host: GitHttpServer,
    llm: Option<ScriptedLlm>,
    _sqlite: openhands_test_support::sqlite::TestSqlite,
}

fn settings(api_url: &str, extra: &[(&str, &str)]) -> GithubSettings {
    let mut vars: HashMap<&str, String> = HashMap::from([
        ("GITHUB_APP_CLIENT_ID", CLIENT_ID.to_owned()),
        // On one line with literal `\n`, as in a `.env` file.
        ("GITHUB_APP_PRIVATE_KEY", key_pair().0.replace('\n', "\\n")),
        ("GITHUB_APP_WEBHOOK_SECRET", SECRET.to_owned()),
        ("GITHUB_API_URL", api_url.to_owned()),
        ("GITHUB_WEB_URL", api_url.to_owned()),
        ("GITHUB_WEBHOOK_MAX_ATTEMPTS", "3".to_owned()),
        ("GITHUB_WEBHOOK_BACKOFF_MS", "50".to_owned()),
    ]);
    for (k, v) in extra {
        vars.insert(k, (*v).to_owned());
    }
    GithubSettings::from_lookup(|k| vars.get(k).cloned(), Some(PUBLIC_URL.to_owned()))
        .expect("valid settings")
        .expect("configured")
}

impl Env {
    async fn start() -> Self {
        Self::start_with(&[]).await
    }

    async fn start_with(extra: &[(&str, &str)]) -> Self {
        let github = FakeGithub::start();
        let sqlite = openhands_test_support::sqlite::fresh_database().expect("SQLite file");
        let database_url = sqlite.url().to_owned();
        let settings = settings(&github.url, extra);
        let url = database_url.clone();
        let repo = local_repo();
        let git_host = GitHttpServer::serve(repo.path()).await;
        let origin = git_host.origin().to_owned();
        let server = TestServer::spawn_with(move |c| {
            c.sandbox.clone_hosts.push(origin);
            c.sandbox.network.allow.push(GIT_HTTP_ADDRESS.into());
            c.config_class = "saas".into();
            c.plugins.user_auth = Some(HEADER_USER_AUTH.into());
            c.database.migrate_on_start = true;
            c.database.url = Some(Secret::new(url));
            GithubSettings::install_for(&c.file_store_path, settings);
        })
        .await;
        let db = Database::connect(&database_url, PoolOptions::default())
            .await
            .expect("test connection");
        Self {
            server,
            db,
            database_url,
            github,
            repo,
            git_host,
            llm: None,
            _sqlite: sqlite,
        }
    }

    /// LLM settings for the user, on the scripted LLM: it finishes with a message that
    /// names a pull request.
    async fn store_settings(&mut self) {
        let finish = format!("Done: opened {}{PR_LINK_PATH}.", self.github.url);
        let llm = ScriptedLlm::start(
            (0..8).map(|_| ScriptedReply::tool_call("finish", json!({ "message": finish }))),
        )
        .await
        .expect("scripted LLM");
        let res = self
            .server
            .client
            .post(self.server.url("/api/settings"))
            .header("X-Test-User", USER)
            .json(
                &json!({"llm_model": "openai/gpt-4o", "llm_api_key": "sk-test-key",
                          "llm_base_url": llm.base_url()}),
            )
            .send()
            .await
            .expect("POST settings");
        assert_eq!(res.status(), 200, "storing settings");
        self.llm = Some(llm);
    }

    /// Links the GitHub account `Codertocat` to [`USER`].
    async fn link_account(&self) {
        let res = self
            .server
            .client
            .post(self.server.url("/api/add-git-providers"))
            .header("X-Test-User", USER)
            .json(&json!({"provider_tokens": {"github": {"token": USER_TOKEN, "user_id": SENDER}}}))
            .send()
            .await
            .expect("POST add-git-providers");
        assert_eq!(res.status(), 200, "linking");
    }

    /// A fixture, cloned from the local repository.
    fn fixture(&self, name: &str) -> Value {
        let path = format!("{}/tests/fixtures/{name}.json", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).expect("fixture");
        let mut payload: Value = serde_json::from_str(&text).expect("fixture json");
        payload["repository"]["clone_url"] = json!(self.git_host.url(".git"));
        payload
    }

    /// Sends `payload` as GitHub does; `signature` `None` omits the header.
    async fn deliver_signed(
        &self,
        event: &str,
        delivery_id: &str,
        body: &str,
        signature: Option<String>,
    ) -> reqwest::Response {
        let mut request = self
            .server
            .client
            .post(self.server.url("/integration/github/events"))
            .header("Content-Type", "application/json")
            .header("User-Agent", "GitHub-Hookshot/abc123")
            .header("X-GitHub-Event", event)
            .header("X-GitHub-Delivery", delivery_id)
            .header("X-GitHub-Hook-ID", "292430182")
            .body(body.to_owned());
        if let Some(signature) = signature {
            request = request.header("X-Hub-Signature-256", signature);
        }
        request.send().await.expect("POST webhook")
    }

    async fn deliver(&self, event: &str, delivery_id: &str, payload: &Value) -> reqwest::Response {
        let body = payload.to_string();
        let signature = sign(&body);
        self.deliver_signed(event, delivery_id, &body, Some(signature))
            .await
    }

    async fn rows(&self) -> Vec<Model> {
        deliveries::list(&self.db, None).await.expect("list")
    }

    /// Waits until the delivery reaches `status`.
    async fn wait_for(&self, delivery_id: &str, status: &str) -> Model {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let rows = self.rows().await;
            if let Some(row) = rows
                .iter()
                .find(|r| r.delivery_id == delivery_id && r.status == status)
            {
                return row.clone();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "delivery {delivery_id} never reached {status}: {rows:#?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn wait_for_comments(&self, count: usize) -> Vec<Call> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let comments = self.github.comments();
            if comments.len() >= count {
                return comments;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "expected {count} comment(s), got {:#?}",
                self.github.calls()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn conversations(&self) -> Vec<Value> {
        let res = self
            .server
            .client
            .get(self.server.url("/api/conversations"))
            .header("X-Test-User", USER)
            .send()
            .await
            .expect("GET conversations");
        assert_eq!(res.status(), 200);
        json_body(res).await["results"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The config `openhands webhooks` would run with.
    fn cli_config(&self) -> openhands_core::config::Config {
        let mut config = openhands_test_support::test_config(&self.server.data_dir());
        config.config_class = "saas".into();
        config.database.url = Some(Secret::new(self.database_url.clone()));
        config
    }

    /// No call to the fake GitHub was refused.
    fn assert_calls_were_authorized(&self) {
        let problems = self.github.problems();
        assert!(problems.is_empty(), "{problems:#?}");
    }
}

fn sign(body: &str) -> String {
    format!(
        "sha256={}",
        sign_hmac_sha256_hex(SECRET.as_bytes(), body.as_bytes())
    )
}

#[test]
fn the_github_integration_is_registered() {
    let names: Vec<_> = IntegrationRegistration::registered()
        .iter()
        .map(|r| r.name)
        .collect();
    assert!(names.contains(&"github"), "{names:?}");
}

#[tokio::test]
async fn a_labelled_issue_starts_one_conversation_and_its_end_posts_one_comment() {
    let mut env = Env::start().await;
    env.store_settings().await;
    env.link_account().await;
    let payload = env.fixture("issues_labeled");

    let res = env.deliver("issues", "d-label", &payload).await;
    assert_eq!(res.status(), 202);
    let row = env.wait_for("d-label", "done").await;
    let conversation_id = row.conversation_id.clone().expect("conversation id");
    assert_eq!(row.attempts, 1);
    assert!(
        !row.headers.contains("x-hub-signature-256"),
        "{}",
        row.headers
    );

    let comments = env.wait_for_comments(1).await;
    assert_eq!(
        comments[0].path,
        "/repos/Codertocat/Hello-World/issues/1/comments"
    );
    let text = comments[0].body["body"].as_str().unwrap_or_default();
    assert!(text.contains("finished"), "{text}");
    assert!(
        text.contains(&format!("{PUBLIC_URL}/conversations/{conversation_id}")),
        "{text}"
    );
    assert!(
        text.contains(&format!("{}{PR_LINK_PATH}", env.github.url)),
        "{text}"
    );
    let calls = env.github.calls();
    assert!(
        calls
            .iter()
            .any(|c| c.path == "/repos/Codertocat/Hello-World/issues/1/reactions"),
        "{calls:#?}"
    );
    assert!(
        calls
            .iter()
            .any(|c| c.path == "/app/installations/2311213/access_tokens"),
        "{calls:#?}"
    );

    // A redelivery of the same id is acknowledged and ignored.
    let res = env.deliver("issues", "d-label", &payload).await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        json_body(res).await,
        json!({"message": "duplicate delivery ignored"})
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(env.rows().await.len(), 1);
    let conversations = env.conversations().await;
    assert_eq!(conversations.len(), 1, "{conversations:#?}");
    assert_eq!(conversations[0]["trigger"], "resolver");
    assert_eq!(conversations[0]["selected_branch"], "main");
    assert_eq!(env.github.comments().len(), 1, "the callback runs once");
    let stored = callbacks::list(&env.db).await.expect("callbacks");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].status, "done");
    env.assert_calls_were_authorized();
}

#[tokio::test]
async fn the_same_signed_body_under_a_second_delivery_id_starts_nothing() {
    let mut env = Env::start().await;
    env.store_settings().await;
    env.link_account().await;
    let payload = env.fixture("issues_labeled");

    assert_eq!(
        env.deliver("issues", "d-first", &payload).await.status(),
        202
    );
    // A replay: the captured body and its valid signature, under a new delivery id.
    let res = env.deliver("issues", "d-replayed", &payload).await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        json_body(res).await,
        json!({"message": "duplicate delivery ignored"})
    );

    env.wait_for("d-first", "done").await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let rows = env.rows().await;
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(env.conversations().await.len(), 1);
    assert_eq!(callbacks::list(&env.db).await.expect("callbacks").len(), 1);
}

#[tokio::test]
async fn comments_on_an_issue_and_on_a_pull_request_each_start_one_conversation() {
    let mut env = Env::start().await;
    env.store_settings().await;
    env.link_account().await;
    let on_pr = env.fixture("issue_comment_created");
    let mut on_issue = on_pr.clone();
    on_issue["issue"]["pull_request"] = Value::Null;
    on_issue["issue"]["number"] = json!(1);
    on_issue["comment"]["id"] = json!(492700401);

    assert_eq!(
        env.deliver("issue_comment", "d-pr", &on_pr).await.status(),
        202
    );
    assert_eq!(
        env.deliver("issue_comment", "d-issue", &on_issue)
            .await
            .status(),
        202
    );
    env.wait_for("d-pr", "done").await;
    env.wait_for("d-issue", "done").await;
    let comments = env.wait_for_comments(2).await;
    let mut paths: Vec<_> = comments.iter().map(|c| c.path.clone()).collect();
    paths.sort();
    assert_eq!(
        paths,
        vec![
            "/repos/Codertocat/Hello-World/issues/1/comments",
            "/repos/Codertocat/Hello-World/issues/2/comments",
        ]
    );
    let conversations = env.conversations().await;
    assert_eq!(conversations.len(), 2, "{conversations:#?}");
    let mut branches: Vec<_> = conversations
        .iter()
        .map(|c| c["selected_branch"].as_str().unwrap_or_default().to_owned())
        .collect();
    branches.sort();
    // The pull request's conversation runs on its head branch (asked of the API).
    assert_eq!(branches, vec!["changes", "main"]);
    let calls = env.github.calls();
    for id in [492700400, 492700401] {
        let reaction = format!("/repos/Codertocat/Hello-World/issues/comments/{id}/reactions");
        assert!(calls.iter().any(|c| c.path == reaction), "{calls:#?}");
    }
    env.assert_calls_were_authorized();
}

#[tokio::test]
async fn an_inline_review_comment_is_answered_in_its_thread() {
    let mut env = Env::start().await;
    env.store_settings().await;
    env.link_account().await;
    let payload = env.fixture("pull_request_review_comment_created");

    let res = env
        .deliver("pull_request_review_comment", "d-inline", &payload)
        .await;
    assert_eq!(res.status(), 202);
    env.wait_for("d-inline", "done").await;
    let comments = env.wait_for_comments(1).await;
    assert_eq!(
        comments[0].path,
        "/repos/Codertocat/Hello-World/pulls/2/comments/2837450/replies"
    );
    let conversations = env.conversations().await;
    assert_eq!(conversations.len(), 1);
    assert_eq!(conversations[0]["selected_branch"], "changes");
    assert!(
        env.github
            .calls()
            .iter()
            .any(|c| c.path == "/repos/Codertocat/Hello-World/pulls/comments/2837450/reactions")
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(env.github.comments().len(), 1);
    env.assert_calls_were_authorized();
}

#[tokio::test]
async fn a_sender_without_write_access_or_a_bot_starts_nothing() {
    let mut env = Env::start().await;
    env.store_settings().await;
    env.link_account().await;
    let mut reader = env.fixture("issue_comment_created");
    reader["sender"]["login"] = json!("octo-reader");
    reader["comment"]["user"]["login"] = json!("octo-reader");
    let mut bot = env.fixture("issue_comment_created");
    bot["sender"]["type"] = json!("Bot");
    bot["sender"]["login"] = json!("openhands-ai[bot]");

    assert_eq!(
        env.deliver("issue_comment", "d-read", &reader)
            .await
            .status(),
        202
    );
    assert_eq!(
        env.deliver("issue_comment", "d-bot", &bot).await.status(),
        202
    );
    let row = env.wait_for("d-read", "ignored").await;
    assert!(
        row.job_summary
            .as_deref()
            .is_some_and(|s| s.contains("no write access")),
        "{row:?}"
    );
    env.wait_for("d-bot", "ignored").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(env.conversations().await.is_empty());
    assert!(env.github.comments().is_empty());
    env.assert_calls_were_authorized();
}

#[tokio::test]
async fn a_bad_signature_or_no_installation_is_refused_and_nothing_is_stored() {
    let env = Env::start().await;
    let payload = env.fixture("issues_labeled");
    let body = payload.to_string();
    let wrong = format!(
        "sha256={}",
        sign_hmac_sha256_hex(b"not-the-secret", body.as_bytes())
    );
    for (delivery, signature) in [
        ("d-wrong", Some(wrong)),
        ("d-none", None),
        ("d-sha1", Some("sha1=abcdef".to_owned())),
    ] {
        let res = env
            .deliver_signed("issues", delivery, &body, signature)
            .await;
        assert_eq!(res.status(), 403, "{delivery}");
        assert_eq!(json_body(res).await["error"]["code"], "bad_signature");
    }
    let mut anonymous = payload.clone();
    anonymous
        .as_object_mut()
        .expect("object")
        .remove("installation");
    let res = env.deliver("issues", "d-noinst", &anonymous).await;
    assert_eq!(res.status(), 400);
    assert_eq!(json_body(res).await["error"]["code"], "invalid_payload");
    assert!(env.rows().await.is_empty());
    assert!(env.github.calls().is_empty());
}

#[tokio::test]
async fn with_webhooks_disabled_deliveries_are_answered_and_dropped() {
    let env = Env::start_with(&[("GITHUB_WEBHOOKS_ENABLED", "false")]).await;
    let payload = env.fixture("issues_labeled");
    let res = env.deliver("issues", "d-off", &payload).await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        json_body(res).await,
        json!({"message": "GitHub webhooks are disabled on this server."})
    );
    assert!(env.rows().await.is_empty());
}

#[tokio::test]
async fn a_failing_github_api_is_retried_until_it_recovers() {
    let mut env = Env::start().await;
    env.store_settings().await;
    env.link_account().await;
    env.github
        .failing_permission_checks
        .store(2, Ordering::SeqCst);
    let payload = env.fixture("issues_labeled");

    assert_eq!(
        env.deliver("issues", "d-flaky", &payload).await.status(),
        202
    );
    let row = env.wait_for("d-flaky", "done").await;
    assert_eq!(row.attempts, 3, "two failed attempts, then success");
    assert_eq!(env.conversations().await.len(), 1);
    let comments = env.wait_for_comments(1).await;
    assert_eq!(comments.len(), 1);
    env.assert_calls_were_authorized();
}

#[tokio::test]
async fn a_sender_without_a_linked_account_is_told_how_to_link_it() {
    let mut env = Env::start().await;
    env.store_settings().await;
    let payload = env.fixture("issues_labeled");

    assert_eq!(
        env.deliver("issues", "d-nolink", &payload).await.status(),
        202
    );
    let row = env.wait_for("d-nolink", "dead").await;
    assert!(
        row.last_error
            .as_deref()
            .is_some_and(|e| e.contains("no linked OpenHands account")),
        "{row:?}"
    );
    let comments = env.wait_for_comments(1).await;
    assert_eq!(
        comments[0].path,
        "/repos/Codertocat/Hello-World/issues/1/comments"
    );
    let text = comments[0].body["body"].as_str().unwrap_or_default();
    assert!(text.contains("@Codertocat"), "{text}");
    assert!(
        text.contains(&format!("{PUBLIC_URL}/api/git-oauth/github/login")),
        "{text}"
    );
    assert!(env.conversations().await.is_empty());

    // After linking, `openhands webhooks replay` runs the dead-lettered request.
    env.link_account().await;
    let mut replayed = Vec::new();
    webhooks(
        &env.cli_config(),
        WebhooksAction::Replay { id: row.id.clone() },
        |line| replayed.push(line),
    )
    .await
    .expect("webhooks replay");
    let done = env.wait_for("d-nolink", "done").await;
    assert_eq!(done.last_error, None);
    assert_eq!(env.conversations().await.len(), 1);
    let comments = env.wait_for_comments(2).await;
    let text = comments[1].body["body"].as_str().unwrap_or_default();
    assert!(text.contains("finished"), "{text}");
    env.assert_calls_were_authorized();
}

#[tokio::test]
async fn a_user_without_llm_settings_is_told_after_the_last_attempt() {
    let env = Env::start().await;
    env.link_account().await;
    let payload = env.fixture("issues_labeled");

    assert_eq!(
        env.deliver("issues", "d-nollm", &payload).await.status(),
        202
    );
    let row = env.wait_for("d-nollm", "dead").await;
    assert_eq!(row.attempts, 3);
    let comments = env.wait_for_comments(1).await;
    let text = comments[0].body["body"].as_str().unwrap_or_default();
    assert!(text.contains("LLM API key"), "{text}");
    assert!(text.contains(&format!("{PUBLIC_URL}/settings")), "{text}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(env.github.comments().len(), 1, "told once, not per attempt");
}

#[tokio::test]
async fn an_outcome_whose_post_failed_is_posted_after_a_restart() {
    let mut env = Env::start_with(&[
        ("GITHUB_WEBHOOK_MAX_ATTEMPTS", "50"),
        ("GITHUB_WEBHOOK_BACKOFF_MS", "200"),
    ])
    .await;
    env.store_settings().await;
    env.link_account().await;
    env.github
        .failing_comments
        .store(usize::MAX, Ordering::SeqCst);
    let payload = env.fixture("issues_labeled");

    assert_eq!(
        env.deliver("issues", "d-restart", &payload).await.status(),
        202
    );
    env.wait_for("d-restart", "done").await;
    // The conversation ended and posting its outcome fails: the outcome waits in its row.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let rows = callbacks::list(&env.db).await.expect("callbacks");
        if rows
            .first()
            .is_some_and(|r| r.outcome.is_some() && r.attempts > 0)
        {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{rows:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let Env {
        server,
        db,
        database_url: _,
        github,
        repo: _repo,
        git_host: _git_host,
        llm: _llm,
        _sqlite,
    } = env;
    let mut server = server;
    server.stop().await;
    github.failing_comments.store(0, Ordering::SeqCst);
    // A new server on the same data dir and database; the first one is gone.
    let _server = server.restart().await;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let rows = callbacks::list(&db).await.expect("callbacks");
        if rows.first().is_some_and(|r| r.status == "done") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{rows:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let posted: Vec<_> = github
        .comments()
        .into_iter()
        .filter(|c| {
            c.body["body"]
                .as_str()
                .is_some_and(|b| b.contains("finished"))
        })
        .collect();
    assert!(!posted.is_empty());
    let problems = github.problems();
    assert!(problems.is_empty(), "{problems:#?}");
}
