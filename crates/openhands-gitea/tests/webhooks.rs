//! Gitea webhooks end to end: signed, real-shaped payloads sent to a running SaaS server
//! (SQLite), the scripted LLM, and a fake Gitea API that records the comments posted.

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use async_trait::async_trait;
use openhands_core::extension::{
    AuthError, AuthenticatedUser, IntegrationRegistration, RequestHeaders, UserAuth,
    sign_hmac_sha256_hex,
};
use openhands_core::scope::UserScope;
use openhands_core::secret::Secret;
use openhands_gitea::GiteaConfig;
use openhands_integrations::deliveries;
use openhands_integrations::entity::Model;
use openhands_runtime::testing::ScriptedLlm;
use openhands_server::saas::{WebhooksAction, webhooks};
use openhands_sql_store::{Database, PoolOptions};
use openhands_test_support::git::{GIT_HTTP_ADDRESS, GitHttpServer};
use openhands_test_support::{TestServer, json_body};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

// The server under test must link the provider crate for its registration to exist.
use openhands_gitea as _;

const SECRET: &str = "whsec-test-1";
const TOKEN: &str = "gitea-token-1";
const USER: &str = "alice-id";

/// Test-only login: the user named by `X-Test-User`.
struct HeaderUser;

#[async_trait]
impl UserAuth for HeaderUser {
    async fn authenticate(
        &self,
        request: &dyn RequestHeaders,
    ) -> Result<AuthenticatedUser, AuthError> {
        let user = request
            .header("x-test-user")
            .ok_or_else(|| AuthError::Unauthorized("X-Test-User missing".into()))?;
        Ok(AuthenticatedUser {
            scope: UserScope::user(user),
            email: Some(format!("{user}@example.com")),
            auth_type: None,
            set_cookies: Vec::new(),
        })
    }
}

openhands_core::register_plugin!(
    openhands_core::extension::UserAuth,
    "test.gitea_header_user",
    "Test only: the user named by X-Test-User",
    |ctx| Ok(Arc::new(HeaderUser))
);

/// A call the fake Gitea API received.
#[derive(Debug, Clone)]
struct Call {
    path: String,
    authorization: Option<String>,
    body: Value,
}

/// Gitea's comment endpoint, recording every call.
struct FakeGitea {
    url: String,
    calls: Arc<Mutex<Vec<Call>>>,
    handle: actix_web::dev::ServerHandle,
}

impl FakeGitea {
    fn start() -> Self {
        let calls: Arc<Mutex<Vec<Call>>> = Arc::default();
        let recorded = calls.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let server = HttpServer::new(move || {
                    let recorded = recorded.clone();
                    App::new().default_service(web::to(
                        move |req: HttpRequest, body: web::Bytes| {
                            let recorded = recorded.clone();
                            async move {
                                recorded.lock().expect("calls").push(Call {
                                    path: req.path().to_owned(),
                                    authorization: req
                                        .headers()
                                        .get("authorization")
                                        .and_then(|v| v.to_str().ok())
                                        .map(str::to_owned),
                                    body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                                });
                                HttpResponse::Created().json(json!({"id": 1}))
                            }
                        },
                    ))
                })
                .workers(1)
                .disable_signals()
                .bind(("127.0.0.1", 0))
                .expect("bind fake gitea");
                let address = server.addrs()[0];
                let running = server.run();
                tx.send((address, running.handle())).expect("send address");
                let _ = running.await;
            });
        });
        let (address, handle) = rx.recv().expect("fake gitea started");
        Self {
            url: format!("http://{address}"),
            calls,
            handle,
        }
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().expect("calls").clone()
    }
}

impl Drop for FakeGitea {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

/// A local git repository with one commit on `main`: the sandbox clones it.
fn local_repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("repo dir");
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
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
    // The files git's "dumb" HTTP protocol reads: the sandbox clones over HTTP.
    git(&["update-server-info"]);
    dir
}

struct Env {
    server: TestServer,
    db: Database,
    gitea: FakeGitea,
    database_url: String,
    /// Kept for the test's lifetime: `git_host` serves it.
    _repo: tempfile::TempDir,
    /// Serves `repo` over HTTP, the only way a sandboxed clone reaches it.
    git_host: GitHttpServer,
    llm: Option<ScriptedLlm>,
    _sqlite: openhands_test_support::sqlite::TestSqlite,
}

impl Env {
    async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// A server whose config `tweak` changes after the test settings.
    async fn start_with(tweak: impl FnOnce(&mut openhands_core::config::Config)) -> Self {
        let gitea = FakeGitea::start();
        let sqlite = openhands_test_support::sqlite::fresh_database().expect("SQLite file");
        let database_url = sqlite.url().to_owned();
        let settings = GiteaConfig {
            base_url: gitea.url.clone(),
            webhook_secret: SECRET.into(),
            token: TOKEN.into(),
            user_id: USER.into(),
            bot_login: "openhands".into(),
            max_attempts: 2,
            backoff_ms: 50,
        };
        let url = database_url.clone();
        let repo = local_repo();
        let git_host = GitHttpServer::serve(repo.path()).await;
        let origin = git_host.origin().to_owned();
        let server = TestServer::spawn_with(move |c| {
            c.sandbox.clone_hosts.push(origin);
            c.sandbox.network.allow.push(GIT_HTTP_ADDRESS.into());
            c.config_class = "saas".into();
            c.plugins.user_auth = Some("test.gitea_header_user".into());
            c.database.migrate_on_start = true;
            c.database.url = Some(Secret::new(url));
            GiteaConfig::install_for(&c.file_store_path, settings);
            tweak(c);
        })
        .await;
        let db = Database::connect(&database_url, PoolOptions::default())
            .await
            .expect("test connection");
        Self {
            server,
            db,
            gitea,
            database_url,
            _repo: repo,
            git_host,
            llm: None,
            _sqlite: sqlite,
        }
    }

    /// LLM settings for the Gitea user, on the scripted LLM (every call answers `finish`).
    async fn store_settings(&mut self) {
        let llm = ScriptedLlm::start(Vec::new()).await.expect("scripted LLM");
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

    fn labelled_issue(&self) -> Value {
        json!({
            "action": "label_updated",
            "number": 7,
            "issue": {"id": 70, "number": 7, "title": "Crash on start", "body": "It crashes.",
                      "labels": [{"id": 1, "name": "bug"}, {"id": 2, "name": "openhands"}],
                      "user": {"login": "alice"}, "state": "open"},
            "repository": {"id": 3, "name": "app", "full_name": "acme/app",
                           "clone_url": self.git_host.url(".git"),
                           "default_branch": "main", "owner": {"login": "acme"}},
            "sender": {"login": "alice"}
        })
    }

    fn comment_by(&self, login: &str, text: &str) -> Value {
        json!({
            "action": "created",
            "issue": {"number": 7, "title": "Crash on start", "body": "It crashes.", "labels": []},
            "comment": {"id": 9, "body": text, "user": {"login": login}},
            "repository": {"full_name": "acme/app",
                           "clone_url": self.git_host.url(".git"),
                           "default_branch": "main"},
            "sender": {"login": login}
        })
    }

    /// Sends `payload` as Gitea does; `signature` `None` omits the header.
    async fn deliver(
        &self,
        event: &str,
        delivery_id: &str,
        payload: &Value,
        signature: Option<String>,
    ) -> reqwest::Response {
        let body = payload.to_string();
        let mut request = self
            .server
            .client
            .post(self.server.url("/integration/gitea/events"))
            .header("Content-Type", "application/json")
            .header("X-Gitea-Event", event)
            .header("X-Gitea-Delivery", delivery_id)
            .body(body);
        if let Some(signature) = signature {
            request = request.header("X-Gitea-Signature", signature);
        }
        request.send().await.expect("POST webhook")
    }

    fn sign(payload: &Value) -> Option<String> {
        Some(sign_hmac_sha256_hex(
            SECRET.as_bytes(),
            payload.to_string().as_bytes(),
        ))
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
            let calls = self.gitea.calls();
            if calls.len() >= count {
                return calls;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "expected {count} comment(s), got {calls:#?}"
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
}

#[test]
fn the_gitea_integration_is_registered() {
    let names: Vec<_> = IntegrationRegistration::registered()
        .iter()
        .map(|r| r.name)
        .collect();
    assert!(names.contains(&"gitea"), "{names:?}");
}

#[tokio::test]
async fn a_labelled_issue_starts_one_conversation_and_posts_one_comment() {
    let mut env = Env::start().await;
    env.store_settings().await;
    let mut payload = env.labelled_issue();
    // Old Gitea versions also put the secret in the body: it must not be stored.
    payload["secret"] = json!(SECRET);

    let res = env
        .deliver("issues", "d-1", &payload, Env::sign(&payload))
        .await;
    assert_eq!(res.status(), 202);
    let row = env.wait_for("d-1", "done").await;
    let conversation_id = row.conversation_id.clone().expect("conversation id");
    assert_eq!(row.attempts, 1);
    assert!(!row.payload.contains(SECRET), "{}", row.payload);
    assert!(
        !row.headers.contains("x-gitea-signature"),
        "{}",
        row.headers
    );
    assert_eq!(
        row.job_summary.as_deref(),
        Some("acme/app#7 labelled: Crash on start")
    );

    let comments = env.wait_for_comments(1).await;
    assert_eq!(comments[0].path, "/api/v1/repos/acme/app/issues/7/comments");
    assert_eq!(
        comments[0].authorization.as_deref(),
        Some("token gitea-token-1")
    );
    let text = comments[0].body["body"].as_str().unwrap_or_default();
    assert!(text.contains(&conversation_id), "{text}");
    assert!(text.contains("finished"), "{text}");

    // A redelivery of the same id is acknowledged and ignored.
    let res = env
        .deliver("issues", "d-1", &payload, Env::sign(&payload))
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        json_body(res).await,
        json!({"message": "duplicate delivery ignored"})
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(env.rows().await.len(), 1);
    let conversations = env.conversations().await;
    assert_eq!(conversations.len(), 1, "{conversations:#?}");
    assert_eq!(
        conversations[0]["conversation_id"],
        conversation_id.as_str()
    );
    assert_eq!(env.gitea.calls().len(), 1, "the callback runs once");
}

#[tokio::test]
async fn a_bad_or_missing_signature_is_refused_and_nothing_is_stored() {
    let env = Env::start().await;
    let payload = env.labelled_issue();
    let wrong = Some(sign_hmac_sha256_hex(
        b"not-the-secret",
        payload.to_string().as_bytes(),
    ));
    for (delivery, signature) in [
        ("d-bad", wrong),
        ("d-none", None),
        ("d-junk", Some("zz".into())),
    ] {
        let res = env.deliver("issues", delivery, &payload, signature).await;
        assert_eq!(res.status(), 403, "{delivery}");
        let body = json_body(res).await;
        assert_eq!(body["error"]["code"], "bad_signature", "{body}");
    }
    assert!(env.rows().await.is_empty());
}

#[tokio::test]
async fn the_bots_own_comment_is_recorded_as_ignored_and_starts_nothing() {
    let mut env = Env::start().await;
    env.store_settings().await;
    let own = env.comment_by("openhands", "@openhands I finished this");
    let res = env
        .deliver("issue_comment", "d-bot", &own, Env::sign(&own))
        .await;
    assert_eq!(res.status(), 202);
    let row = env.wait_for("d-bot", "ignored").await;
    assert_eq!(row.conversation_id, None);
    let unrelated = env.comment_by("bob", "looks good to me");
    let res = env
        .deliver("issue_comment", "d-chat", &unrelated, Env::sign(&unrelated))
        .await;
    assert_eq!(res.status(), 202);
    env.wait_for("d-chat", "ignored").await;
    assert!(env.conversations().await.is_empty());
    assert!(env.gitea.calls().is_empty());
}

#[tokio::test]
async fn with_the_worker_off_a_delivery_is_recorded_and_stays_queued() {
    let env = Env::start_with(|c| c.webhook_worker = false).await;
    // The bot's own comment: a worker would mark it `ignored` within one poll.
    let own = env.comment_by("openhands", "@openhands I finished this");
    let res = env
        .deliver("issue_comment", "d-idle", &own, Env::sign(&own))
        .await;
    assert_eq!(res.status(), 202);
    // Longer than two polls of a worker.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let rows = env.rows().await;
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(
        (
            rows[0].delivery_id.as_str(),
            rows[0].status.as_str(),
            rows[0].attempts
        ),
        ("d-idle", "queued", 0)
    );
}

#[tokio::test]
async fn a_failing_delivery_is_retried_then_dead_lettered_and_replays_after_the_fix() {
    let mut env = Env::start().await;
    // No LLM settings for the user yet: starting the job fails.
    let payload = env.comment_by("alice", "@openhands please fix the crash");
    let res = env
        .deliver("issue_comment", "d-fail", &payload, Env::sign(&payload))
        .await;
    assert_eq!(res.status(), 202);
    let dead = env.wait_for("d-fail", "dead").await;
    assert_eq!(dead.attempts, 2, "max_attempts is 2");
    let error = dead.last_error.clone().unwrap_or_default();
    assert!(error.contains("has no settings"), "{error}");
    assert!(env.conversations().await.is_empty());

    let mut listed = Vec::new();
    webhooks(
        &env.cli_config(),
        WebhooksAction::List {
            status: Some("dead".into()),
        },
        |line| listed.push(line),
    )
    .await
    .expect("webhooks list");
    assert!(
        listed
            .iter()
            .any(|l| l.contains(&dead.id) && l.contains("has no settings")),
        "{listed:#?}"
    );

    env.store_settings().await;
    let mut replayed = Vec::new();
    webhooks(
        &env.cli_config(),
        WebhooksAction::Replay {
            id: dead.id.clone(),
        },
        |line| replayed.push(line),
    )
    .await
    .expect("webhooks replay");
    let done = env.wait_for("d-fail", "done").await;
    assert_eq!(done.last_error, None);
    assert_eq!(env.conversations().await.len(), 1);
    let comments = env.wait_for_comments(1).await;
    assert_eq!(comments[0].path, "/api/v1/repos/acme/app/issues/7/comments");

    // Only dead or failed deliveries can be replayed.
    let again = webhooks(
        &env.cli_config(),
        WebhooksAction::Replay { id: dead.id },
        |_| {},
    )
    .await;
    assert!(again.is_err());
}

#[tokio::test]
async fn a_later_comment_on_the_same_issue_continues_its_conversation() {
    let mut env = Env::start().await;
    env.store_settings().await;
    let labelled = env.labelled_issue();
    env.deliver("issues", "d-1", &labelled, Env::sign(&labelled))
        .await;
    let first = env.wait_for("d-1", "done").await;
    let conversation_id = first.conversation_id.clone().expect("conversation");
    env.wait_for_comments(1).await;

    // The same user asks again on issue 7: the same conversation gets the comment.
    let again = env.comment_by("alice", "@openhands also update the docs");
    env.deliver("issue_comment", "d-2", &again, Env::sign(&again))
        .await;
    let second = env.wait_for("d-2", "done").await;
    assert_eq!(
        second.conversation_id.as_deref(),
        Some(conversation_id.as_str())
    );
    let comments = env.wait_for_comments(2).await;
    assert_eq!(comments[1].path, "/api/v1/repos/acme/app/issues/7/comments");
    let text = comments[1].body["body"].as_str().unwrap_or_default();
    assert!(text.contains("finished"), "{text}");
    assert_eq!(env.conversations().await.len(), 1, "no second conversation");
    let res = env
        .server
        .client
        .get(
            env.server
                .url(&format!("/api/conversations/{conversation_id}/trajectory")),
        )
        .header("X-Test-User", USER)
        .send()
        .await
        .expect("trajectory");
    let events = json_body(res).await["trajectory"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let messages: Vec<&str> = events
        .iter()
        .filter(|e| e["source"] == "user" && e["action"] == "message")
        .filter_map(|e| e["args"]["content"].as_str())
        .collect();
    assert_eq!(messages.len(), 2, "{messages:#?}");
    assert!(
        messages[0].starts_with("Resolve issue #7"),
        "{}",
        messages[0]
    );
    assert_eq!(
        messages[1],
        "alice commented again on issue #7:\n\n@openhands also update the docs"
    );
    // The second outcome was reported after the follow-up's message, not for the first
    // task's end.
    let follow_up_id = events
        .iter()
        .find(|e| e["args"]["content"] == messages[1])
        .and_then(|e| e["id"].as_i64())
        .expect("the follow-up's id");
    let finished_after = events.iter().any(|e| {
        e["observation"] == "agent_state_changed"
            && e["extras"]["agent_state"] == "finished"
            && e["id"].as_i64() > Some(follow_up_id)
    });
    assert!(finished_after, "{events:#?}");
}
