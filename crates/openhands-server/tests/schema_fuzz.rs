//! Schema fuzzing: `schemathesis` (PyPI, the pinned [`SCHEMATHESIS_VERSION`]) reads each
//! server's own `/openapi.json` and sends it generated requests, valid and invalid, checking
//! every answer: no 5xx (`not_a_server_error`), only statuses the document declares
//! (`status_code_conformance`), bodies that match the declared schemas
//! (`response_schema_conformance`) and declared content types
//! (`content_type_conformance`). One run against an OSS server and one against a SaaS server
//! signed in through the real OIDC provider with an API key made by `POST /api/keys`, so the
//! org, key, git-linking and webhook routes that SaaS mode adds are fuzzed too.
//!
//! Bounded for CI: at most [`MAX_EXAMPLES`] examples per operation, [`MAX_SECONDS`] per
//! server, a fixed seed ([`SEED`]). A longer hunt on a developer's machine sets
//! `SCHEMA_FUZZ_MAX_EXAMPLES`, `SCHEMA_FUZZ_SECONDS` and `SCHEMA_FUZZ_SEED`. Nothing is excluded: the WebSocket route is not in the
//! document (OpenAPI cannot describe it), conversations start real agents against the
//! scripted LLM (no network), and destructive routes (`DELETE`, leaving orgs) only touch
//! these throw-away servers.
//!
//! Without `schemathesis` (`pip install schemathesis==<SCHEMATHESIS_VERSION>`, or the path in
//! `SCHEMATHESIS`) the tests are skipped with a message, unless `SCHEMA_FUZZ_REQUIRED` is set
//! (`.ci/run` sets it and installs the pinned version).

use openhands_runtime::testing::ScriptedLlm;
use openhands_test_support::oidc::OidcConfig;
use openhands_test_support::{TestServer, saas};
use serde_json::json;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// The version `.ci/run` installs (keep the two equal).
const SCHEMATHESIS_VERSION: &str = "4.32.5";
/// Examples generated per operation and phase.
const MAX_EXAMPLES: &str = "15";
/// Time budget of one run (the run stops generating then; requests in flight finish).
const MAX_SECONDS: &str = "60";
/// The generator's seed, so a failure found in CI reproduces.
const SEED: &str = "20251";
/// A run that takes this much longer than its budget has hung.
const GRACE: Duration = Duration::from_secs(120);

/// `name` from the environment, else `default`.
fn setting(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// The `schemathesis` program, or `None` (after saying why) when it is missing and nothing
/// requires it.
fn schemathesis(test: &str) -> Option<PathBuf> {
    let program = std::env::var_os("SCHEMATHESIS")
        .map_or_else(|| PathBuf::from("schemathesis"), PathBuf::from);
    let version = Command::new(&program).arg("--version").output();
    match version {
        Ok(output) if output.status.success() => {
            let text = String::from_utf8_lossy(&output.stdout);
            if !text.contains(SCHEMATHESIS_VERSION) {
                eprintln!(
                    "{test}: {} is `{}`, not the pinned {SCHEMATHESIS_VERSION}; results may differ",
                    program.display(),
                    text.trim()
                );
            }
            Some(program)
        }
        _ => {
            assert!(
                std::env::var_os("SCHEMA_FUZZ_REQUIRED").is_none(),
                "SCHEMA_FUZZ_REQUIRED is set but `{}` cannot run: pip install \
                 schemathesis=={SCHEMATHESIS_VERSION}, or set SCHEMATHESIS to its path",
                program.display()
            );
            eprintln!(
                "SKIPPED {test}: `{}` is missing (pip install schemathesis=={SCHEMATHESIS_VERSION}, \
                 or set SCHEMATHESIS)",
                program.display()
            );
            None
        }
    }
}

/// The `schemathesis.toml` of a run. Random ids only ever find nothing (404), so the
/// routes under a conversation get the id of one that exists half the time, and workspace
/// paths are sometimes real or hostile ones, so the requests reach the agent and the
/// sandbox's tool server (not `/api/conversations/{id}` itself: its `DELETE` would take the
/// conversation from the rest of the run); likewise for the secret `FUZZ` and the
/// providers' names.
fn config(conversation_id: &str) -> String {
    format!(
        r#"
[dictionaries.conversation]
values = ["{conversation_id}"]

[dictionaries.workspace_path]
values = ["", ".", "notes.txt", "src/", "..", "../outside", "/etc/passwd", "a/../../b", ".git/config"]

[dictionaries.secret]
values = ["FUZZ"]

[dictionaries.provider]
values = ["gitlab", "github", "gitea"]

[parameters]
"path.secret_id" = {{ dictionary = "secret", probability = 0.5 }}
"path.provider" = {{ dictionary = "provider", probability = 0.5 }}

[[operations]]
include-path-regex = "^/api/conversations/[{{]conversation_id[}}]/"
parameters = {{ "path.conversation_id" = {{ dictionary = "conversation", probability = 0.5 }}, "query.path" = {{ dictionary = "workspace_path", probability = 0.3 }}, "query.file" = {{ dictionary = "workspace_path", probability = 0.3 }} }}
"#
    )
}

/// Creates the secret `FUZZ` and a conversation through the API with `headers`; the
/// conversation's id.
async fn conversation(base: &str, headers: &[(&str, &str)]) -> String {
    let post = |path: &str, body: serde_json::Value| {
        let mut request = reqwest::Client::new()
            .post(format!("{base}{path}"))
            .json(&body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send()
    };
    let res = post("/api/secrets", json!({"name": "FUZZ", "value": "fuzz"}))
        .await
        .expect("create a secret");
    assert_eq!(res.status(), 201);
    let res = post("/api/conversations", json!({"initial_user_msg": "Hello"}))
        .await
        .expect("create a conversation");
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.expect("json");
    body["conversation_id"]
        .as_str()
        .expect("conversation id")
        .to_owned()
}

/// Runs schemathesis against the document of the server at `base` with `headers` and the
/// `schemathesis.toml` text `config`; fails the test, with schemathesis' report, when any
/// check failed.
async fn fuzz(program: PathBuf, base: String, headers: Vec<String>, config: &str) {
    let report = tempfile::tempdir().expect("report dir");
    let config_file = report.path().join("schemathesis.toml");
    std::fs::write(&config_file, config).expect("schemathesis.toml");
    let seconds = setting("SCHEMA_FUZZ_SECONDS", MAX_SECONDS);
    let hard_limit = GRACE + Duration::from_secs(seconds.parse().expect("SCHEMA_FUZZ_SECONDS"));
    let mut command = tokio::process::Command::new(&program);
    command
        .arg("--config-file")
        .arg(&config_file)
        .arg("run")
        .arg(format!("{base}/openapi.json"))
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,response_schema_conformance,content_type_conformance",
            "--workers",
            "2",
            "--request-timeout",
            "30",
            "--generation-database",
            "none",
            // Credentials come from `-H`; generated ones would only be refused.
            "--generation-with-security-parameters",
            "false",
            "--suppress-health-check",
            "all",
            "--no-color",
            "--report",
            "junit",
        ])
        .arg("--max-examples")
        .arg(setting("SCHEMA_FUZZ_MAX_EXAMPLES", MAX_EXAMPLES))
        .arg("--max-time")
        .arg(&seconds)
        .arg("--seed")
        .arg(setting("SCHEMA_FUZZ_SEED", SEED))
        .arg("--report-dir")
        .arg(report.path())
        .current_dir(report.path())
        .env("NO_COLOR", "1")
        .kill_on_drop(true);
    for header in &headers {
        command.arg("-H").arg(header);
    }
    let started = Instant::now();
    let output = tokio::time::timeout(hard_limit, command.output())
        .await
        .unwrap_or_else(|_| panic!("schemathesis ran longer than {hard_limit:?}"))
        .expect("schemathesis starts");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}\n{stderr}");
    println!("schemathesis took {:.0?}", started.elapsed());
    assert!(
        output.status.success(),
        "schemathesis found failures against {base} (exit {:?}); see the output above",
        output.status.code()
    );
}

#[tokio::test]
async fn the_oss_server_answers_as_its_openapi_document_says() {
    let Some(program) = schemathesis("the_oss_server_answers_as_its_openapi_document_says") else {
        return;
    };
    let server = TestServer::spawn().await;
    // Conversations start agents, which the scripted LLM finishes at once.
    server.store_default_settings().await;
    let id = conversation(&server.url(""), &[]).await;
    fuzz(program, server.url(""), Vec::new(), &config(&id)).await;
}

#[tokio::test]
async fn the_saas_server_answers_as_its_openapi_document_says() {
    let Some(program) = schemathesis("the_saas_server_answers_as_its_openapi_document_says") else {
        return;
    };
    let llm = ScriptedLlm::start(Vec::new()).await.expect("scripted LLM");
    let env = saas::Env::start(OidcConfig::default(), |c| {
        // Isolation is not under test here, and bubblewrap may be missing.
        c.plugins.sandbox = Some("oss.process".into());
        c.sandbox.allow_unisolated = true;
        // The e-mail routes reach the test provider's stand-in for Keycloak's admin API,
        // so they do their real work rather than answer 501 (a provider without one).
        c.auth.keycloak_server_url = c.auth.issuer_url.clone();
        c.auth.keycloak_realm_name = Some("openhands".into());
        c.auth.keycloak_admin_password = Some(openhands_core::secret::Secret::new(
            openhands_test_support::oidc::KEYCLOAK_ADMIN_PASSWORD,
        ));
        // Mounts the git-linking routes (GitLab: GitHub's client id would also ask for the
        // GitHub App's webhooks); the provider is never reached (a fuzzer cannot forge a
        // link's state), and would be a closed loopback port if it were.
        c.git_oauth.gitlab.client_id = Some("fuzz-client".into());
        c.git_oauth.gitlab.client_secret = Some(openhands_core::secret::Secret::new(
            "fuzz-secret".to_owned(),
        ));
        c.git_oauth.gitlab.base_url = Some("http://127.0.0.1:9".into());
        c.git_oauth.gitlab.api_url = Some("http://127.0.0.1:9".into());
        // Mounts the webhook route.
        #[cfg(feature = "gitea")]
        openhands_gitea::config::GiteaConfig::install_for(
            &c.file_store_path,
            openhands_gitea::config::GiteaConfig {
                base_url: "http://127.0.0.1:9".into(),
                webhook_secret: "fuzz-webhook-secret".into(),
                token: "fuzz-token".into(),
                user_id: "alice".into(),
                bot_login: "openhands".into(),
                max_attempts: 1,
                backoff_ms: 1_000,
            },
        );
    })
    .await;
    let mut browser = env.browser();
    let login = browser.login("alice", "/").await;
    assert!(login.status.is_redirection(), "{login:?}");
    let accepted = browser.post("/api/accept_tos", json!({})).await;
    assert!(accepted.status.is_success(), "{accepted:?}");
    let settings = browser
        .post(
            "/api/settings",
            json!({"llm_model": "openai/gpt-4o", "llm_api_key": "sk-test", "llm_base_url": llm.base_url()}),
        )
        .await;
    assert!(settings.status.is_success(), "{settings:?}");
    let created = browser.post("/api/keys", json!({"name": "fuzz"})).await;
    assert!(created.status.is_success(), "{created:?}");
    let key = created.body["key"]
        .as_str()
        .expect("the new key")
        .to_owned();
    let bearer = format!("Bearer {key}");
    let id = conversation(&env.server.url(""), &[("authorization", &bearer)]).await;
    fuzz(
        program,
        env.server.url(""),
        vec![format!("Authorization: {bearer}")],
        &config(&id),
    )
    .await;
}
