//! What the GitLab tests share: a SaaS server on a fresh SQLite file with the integration
//! on, the scripted LLM, a local git repository served over HTTP as the project's clone URL,
//! the fake GitLab, an account linked to the GitLab user `alice`, and the hook installed
//! through the crate's own installer (so deliveries carry the token and headers GitLab would).

// Each test binary uses a part of it.
#![allow(dead_code)]

pub mod fake_gitlab;

use fake_gitlab::{Call, FakeGitlab};
use openhands_core::scope::UserScope;
use openhands_core::secret::Secret;
use openhands_gitlab::GitlabSettings;
use openhands_integrations::deliveries;
use openhands_integrations::entity::Model;
use openhands_runtime::testing::{ScriptedLlm, ScriptedReply};
use openhands_sql_store::{Database, PoolOptions};
use openhands_test_support::git::{GIT_HTTP_ADDRESS, GitHttpServer};
use openhands_test_support::header_user::HEADER_USER_AUTH;
use openhands_test_support::{TestServer, json_body};
use serde_json::{Value, json};
use std::process::Command;
use std::time::Duration;

/// The OpenHands user who linked the GitLab account `alice` and installed the hook.
pub const USER: &str = "user-alice";
pub const ALICE_ID: u64 = 101;
pub const ALICE_TOKEN: &str = "glpat-alice-token";
pub const PROJECT_ID: u64 = 42;
pub const PROJECT: &str = "acme/app";
pub const PUBLIC_URL: &str = "https://openhands.test";
/// The merge request branch the local repository has.
pub const MR_BRANCH: &str = "feature-x";

/// The hook as GitLab holds it: what it sends with every delivery.
#[derive(Debug, Clone)]
pub struct InstalledHook {
    pub token: String,
    pub webhook_id: String,
    pub user_id: String,
}

pub struct Env {
    pub server: TestServer,
    pub db: Database,
    pub gitlab: FakeGitlab,
    pub database_url: String,
    pub hook: Option<InstalledHook>,
    _repo: tempfile::TempDir,
    pub git_host: GitHttpServer,
    _llm: Option<ScriptedLlm>,
    _sqlite: openhands_test_support::sqlite::TestSqlite,
}

/// A bare repository with `main` and the merge request's branch, for [`GitHttpServer`].
fn local_repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("repo dir");
    let bare = openhands_test_support::git::bare_repository(dir.path());
    for args in [&["branch", MR_BRANCH, "main"][..], &["update-server-info"]] {
        let out = Command::new("git")
            .args(args)
            .current_dir(&bare)
            .output()
            .expect("run git");
        assert!(out.status.success(), "git {args:?}: {out:?}");
    }
    dir
}

/// One of the documented payloads in `tests/fixtures`.
pub fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("fixture json")
}

impl Env {
    pub async fn start() -> Self {
        let gitlab = FakeGitlab::start();
        gitlab.with_state(|s| {
            s.users
                .insert(ALICE_TOKEN.into(), (ALICE_ID, "alice".into()));
            s.members.insert((PROJECT_ID, ALICE_ID), 30);
            s.projects.insert(PROJECT.into(), PROJECT_ID);
        });
        let sqlite = openhands_test_support::sqlite::fresh_database().expect("SQLite file");
        let database_url = sqlite.url().to_owned();
        let settings = GitlabSettings {
            base_url: gitlab.url.clone(),
            label: "openhands".into(),
            mention: "@openhands".into(),
            bot_login: Some("openhands-bot".into()),
            public_url: PUBLIC_URL.into(),
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
            c.plugins.user_auth = Some(HEADER_USER_AUTH.into());
            c.database.migrate_on_start = true;
            c.database.url = Some(Secret::new(url));
            GitlabSettings::install_for(&c.file_store_path, settings);
        })
        .await;
        let db = Database::connect(&database_url, PoolOptions::default())
            .await
            .expect("test connection");
        Self {
            server,
            db,
            gitlab,
            database_url,
            hook: None,
            _repo: repo,
            git_host,
            _llm: None,
            _sqlite: sqlite,
        }
    }

    /// A server with alice's LLM settings, her linked GitLab account and the hook installed.
    pub async fn ready() -> Self {
        let mut env = Self::start().await;
        env.store_settings().await;
        env.link_account(USER, ALICE_TOKEN, "alice").await;
        env.install_hook().await;
        env
    }

    /// The config a CLI command would run with.
    pub fn cli_config(&self) -> openhands_core::config::Config {
        let mut config = openhands_test_support::test_config(&self.server.data_dir());
        config.config_class = "saas".into();
        config.database.url = Some(Secret::new(self.database_url.clone()));
        config
    }

    /// LLM settings for [`USER`] on the scripted LLM; it finishes naming a merge request.
    pub async fn store_settings(&mut self) {
        let finish = format!(
            "Done: opened {}/{PROJECT}/-/merge_requests/3 for @openhands.",
            self.gitlab.url
        );
        let replies =
            (0..8).map(|_| ScriptedReply::tool_call("finish", json!({ "message": finish })));
        let llm = ScriptedLlm::start(replies).await.expect("scripted LLM");
        let res = self
            .server
            .client
            .post(self.server.url("/api/settings"))
            .header("X-Test-User", USER)
            .json(&json!({"llm_model": "openai/gpt-4o", "llm_api_key": "sk-test-key", "llm_base_url": llm.base_url()}))
            .send()
            .await
            .expect("POST settings");
        assert_eq!(res.status(), 200, "storing settings");
        self._llm = Some(llm);
    }

    /// Links the GitLab account `login` (a token of this GitLab) to OpenHands user `user`.
    pub async fn link_account(&self, user: &str, token: &str, login: &str) {
        let body = json!({"provider_tokens": {"gitlab": {"token": token, "user_id": login, "host": self.gitlab.host()}}});
        let res = self
            .server
            .client
            .post(self.server.url("/api/add-git-providers"))
            .header("X-Test-User", user)
            .json(&body)
            .send()
            .await
            .expect("POST add-git-providers");
        assert_eq!(res.status(), 200, "linking");
    }

    /// Installs the hook on [`PROJECT`] as [`USER`] and keeps what GitLab was given.
    pub async fn install_hook(&mut self) -> openhands_gitlab::store::Model {
        let row = openhands_gitlab::install::install_for_user(
            &self.cli_config(),
            &UserScope::user(USER),
            PROJECT,
        )
        .await
        .expect("installing the hook");
        let created = self
            .gitlab
            .calls()
            .into_iter()
            .rfind(|c| c.method == "POST" && c.path.ends_with("/hooks"))
            .expect("the hook was created on GitLab");
        let header = |name: &str| {
            created.body["custom_headers"]
                .as_array()
                .and_then(|h| h.iter().find(|h| h["key"] == name))
                .and_then(|h| h["value"].as_str())
                .unwrap_or_default()
                .to_owned()
        };
        self.hook = Some(InstalledHook {
            token: created.body["token"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            webhook_id: header("X-OpenHands-Webhook-ID"),
            user_id: header("X-OpenHands-User-ID"),
        });
        row
    }

    /// `fixture` made to be about [`PROJECT`] on the fake GitLab, asked by `alice`.
    pub fn payload(&self, name: &str) -> Value {
        let mut payload = fixture(name);
        let project = json!({
            "id": PROJECT_ID, "name": "app", "path_with_namespace": PROJECT,
            "web_url": format!("{}/{PROJECT}", self.gitlab.url),
            "git_http_url": self.git_host.url("repo.git"), "default_branch": "main",
        });
        payload["project"] = project.clone();
        payload["user"] = json!({"id": ALICE_ID, "name": "Alice", "username": "alice"});
        if payload["merge_request"].is_object() {
            payload["merge_request"]["source_branch"] = json!(MR_BRANCH);
            payload["merge_request"]["source_project_id"] = json!(PROJECT_ID);
            payload["merge_request"]["target_project_id"] = json!(PROJECT_ID);
            payload["merge_request"]["source"] = project.clone();
            payload["merge_request"]["target"] = project;
        }
        payload
    }

    /// Sends `payload` as GitLab does with `hook`'s token and headers.
    pub async fn deliver_as(
        &self,
        hook: &InstalledHook,
        event_uuid: &str,
        payload: &Value,
    ) -> reqwest::Response {
        let event = match payload["object_kind"].as_str() {
            Some("issue") => "Issue Hook",
            _ => "Note Hook",
        };
        self.server
            .client
            .post(self.server.url("/integration/gitlab/events"))
            .header("Content-Type", "application/json")
            .header("User-Agent", "GitLab/17.5.0")
            .header("X-Gitlab-Event", event)
            .header("X-Gitlab-Event-UUID", event_uuid)
            .header("X-Gitlab-Instance", self.gitlab.url.as_str())
            .header("X-Gitlab-Token", hook.token.as_str())
            .header("X-OpenHands-Webhook-ID", hook.webhook_id.as_str())
            .header("X-OpenHands-User-ID", hook.user_id.as_str())
            .body(payload.to_string())
            .send()
            .await
            .expect("POST webhook")
    }

    /// Sends `payload` through the installed hook.
    pub async fn deliver(&self, event_uuid: &str, payload: &Value) -> reqwest::Response {
        let hook = self.hook.clone().expect("a hook is installed");
        self.deliver_as(&hook, event_uuid, payload).await
    }

    pub async fn rows(&self) -> Vec<Model> {
        deliveries::list(&self.db, None).await.expect("list")
    }

    /// Waits until the delivery reaches `status`.
    pub async fn wait_for(&self, delivery_id: &str, status: &str) -> Model {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
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

    /// Waits for `count` notes on the fake GitLab.
    pub async fn wait_for_notes(&self, count: usize) -> Vec<Call> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let notes = self.gitlab.notes();
            if notes.len() >= count {
                return notes;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "expected {count} note(s): {:#?}",
                self.gitlab.calls()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn conversations(&self) -> Vec<Value> {
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

    /// No call to the fake GitLab was refused.
    pub fn assert_calls_were_expected(&self) {
        let problems = self.gitlab.problems();
        assert!(problems.is_empty(), "{problems:#?}");
    }
}

/// The text of a posted note.
pub fn text(call: &Call) -> &str {
    call.body["body"].as_str().unwrap_or_default()
}
