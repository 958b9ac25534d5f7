//! SaaS mode end to end: the schema check at start-up, `openhands migrate`, and the API
//! served by the SQL stores on SQLite and PostgreSQL.

use openhands_test_support::{TestServer, json_body};
use serde_json::json;
use std::path::Path;
use std::process::{Command, Output};

/// Runs the binary in SaaS mode over `data_dir` (its SQLite database lives there). Login is
/// the local user until the OIDC crate is linked.
fn openhands(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_openhands"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", data_dir)
        .env("FILE_STORE_PATH", data_dir)
        .env("OPENHANDS_CONFIG_FILE", data_dir.join("none.toml"))
        .env("OPENHANDS_PORT", "0")
        .env("OPENHANDS_CONFIG_CLS", "saas")
        .env("OPENHANDS_PLUGINS__USER_AUTH", "oss.local_user");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run openhands")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn saas_mode_refuses_a_database_with_pending_migrations_and_names_the_command() {
    let data = tempfile::tempdir().expect("data dir");
    let out = openhands(data.path(), &["serve"], &[]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("pending migration"), "{err}");
    assert!(err.contains("openhands migrate up"), "{err}");
    assert!(err.contains("m20261123_000001_users_orgs"), "{err}");
}

#[test]
fn migrate_status_up_and_down_report_one_line_per_migration() {
    let data = tempfile::tempdir().expect("data dir");
    let status = openhands(data.path(), &["migrate", "status"], &[]);
    assert!(status.status.success(), "{}", text(&status.stderr));
    let listed = text(&status.stdout);
    assert!(
        listed.contains("pending  m20261123_000001_users_orgs"),
        "{listed}"
    );
    // The four core migrations, then those of linked provider crates (e.g. the
    // integrations' `webhook_deliveries`), newest last.
    let names: Vec<&str> = listed
        .lines()
        .filter_map(|l| l.strip_prefix("pending  "))
        .collect();
    let total = names.len();
    assert!(total >= 4, "{listed}");
    assert!(
        listed.contains(&format!("0 applied, {total} pending")),
        "{listed}"
    );
    let newest = names[total - 1].to_owned();

    let up = openhands(data.path(), &["migrate", "up"], &[]);
    assert!(up.status.success(), "{}", text(&up.stderr));
    let applied = text(&up.stdout);
    assert_eq!(applied.matches("applied m2026").count(), total, "{applied}");
    assert!(data.path().join("openhands.db").is_file());

    let again = openhands(data.path(), &["migrate", "up"], &[]);
    assert!(text(&again.stdout).contains("nothing to apply"));

    let down = openhands(data.path(), &["migrate", "down"], &[]);
    assert!(down.status.success(), "{}", text(&down.stderr));
    let reverted = text(&down.stdout);
    assert!(
        reverted.contains(&format!("reverted {newest}")),
        "{reverted}"
    );
    let status = openhands(data.path(), &["migrate", "status"], &[]);
    let listed = text(&status.stdout);
    assert!(
        listed.contains(&format!("{} applied, 1 pending", total - 1)),
        "{listed}"
    );
    assert!(listed.contains(&format!("pending  {newest}")), "{listed}");
}

/// Settings, secrets and conversations through the API of a SaaS server on `database_url`
/// (`None`: the SQLite file under the data dir).
async fn api_round_trip(database_url: Option<String>) {
    let server = TestServer::spawn_with(|c| {
        c.config_class = "saas".into();
        c.plugins.user_auth = Some("oss.local_user".into());
        c.database.migrate_on_start = true;
        c.database.url = database_url.map(openhands_core::secret::Secret::new);
    })
    .await;
    let config = json_body(server.get("/api/options/config").await).await;
    assert_eq!(config["APP_MODE"], "saas");

    let res = server
        .post_json(
            "/api/settings",
            &json!({"llm_model": "openai/gpt-4o", "llm_api_key": "sk-saas-secret"}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let settings = json_body(server.get("/api/settings").await).await;
    assert_eq!(settings["llm_model"], "openai/gpt-4o");
    assert_eq!(settings["llm_api_key_set"], true);
    assert!(!settings.to_string().contains("sk-saas-secret"));

    let res = server
        .post_json(
            "/api/secrets",
            &json!({"name": "DEPLOY_TOKEN", "value": "tok-123", "description": "deploys"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let secrets = json_body(server.get("/api/secrets").await).await;
    assert_eq!(secrets["custom_secrets"][0]["name"], "DEPLOY_TOKEN");

    let res = server.post_json("/api/conversations", &json!({})).await;
    assert_eq!(res.status(), 200);
    let created = json_body(res).await;
    let id = created["conversation_id"].as_str().expect("id").to_owned();
    let listed = json_body(server.get("/api/conversations").await).await;
    assert_eq!(listed["results"][0]["conversation_id"], id.as_str());

    // A restart keeps everything: it is in the database, not in memory.
    let server = server.restart().await;
    let settings = json_body(server.get("/api/settings").await).await;
    assert_eq!(settings["llm_model"], "openai/gpt-4o");
    let info = server.get(&format!("/api/conversations/{id}")).await;
    assert_eq!(info.status(), 200);
}

#[tokio::test]
async fn saas_server_on_sqlite_serves_the_api_from_the_database() {
    api_round_trip(None).await;
}

#[tokio::test]
async fn saas_server_on_postgres_serves_the_api_from_the_database() {
    let db = openhands_test_support::postgres::fresh_database().expect("PostgreSQL for tests");
    api_round_trip(Some(db.url().to_owned())).await;
}

const K1: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
const K2: &str = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";

#[tokio::test]
async fn keys_rotate_reseals_everything_under_the_newest_key() {
    use openhands_core::config::VersionedKey;
    use openhands_core::secret::Secret;
    let data = tempfile::tempdir().expect("data dir");
    let data_dir = data.path().to_path_buf();
    let keys = |ids: &[(&str, &str)]| -> Vec<VersionedKey> {
        ids.iter()
            .map(|(id, key)| VersionedKey::new(*id, Secret::new(*key)))
            .collect()
    };
    let spawn = |ring: Vec<VersionedKey>| {
        let data_dir = data_dir.clone();
        TestServer::spawn_with(move |c| {
            c.file_store_path = data_dir.display().to_string();
            c.config_class = "saas".into();
            c.plugins.user_auth = Some("oss.local_user".into());
            c.database.migrate_on_start = true;
            c.secrets_keys = ring;
        })
    };
    let mut server = spawn(keys(&[("k1", K1)])).await;
    let res = server
        .post_json(
            "/api/settings",
            &json!({"llm_model": "m", "llm_api_key": "sk-rotate-me"}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let res = server
        .post_json("/api/secrets", &json!({"name": "TOKEN", "value": "t0k3n"}))
        .await;
    assert_eq!(res.status(), 201);
    server.stop().await;

    let ring = format!("k1:{K1},k2:{K2}");
    let env = [("OPENHANDS_SECRETS_KEYS", ring.as_str())];
    let status = openhands(data.path(), &["keys", "status"], &env);
    assert_eq!(status.status.code(), Some(3), "values still under k1");
    let rotate = openhands(data.path(), &["keys", "rotate"], &env);
    let out = text(&rotate.stdout);
    assert!(rotate.status.success(), "{out}{}", text(&rotate.stderr));
    assert!(out.contains("re-sealed 2 value(s) under `k2`"), "{out}");
    assert!(
        !out.contains("sk-rotate-me") && !out.contains("t0k3n"),
        "{out}"
    );
    let status = openhands(data.path(), &["keys", "status"], &env);
    assert!(status.status.success(), "{}", text(&status.stdout));

    // k1 can now be retired: a server with only k2 reads everything.
    let server = spawn(keys(&[("k2", K2)])).await;
    let settings = json_body(server.get("/api/settings").await).await;
    assert_eq!(settings["llm_api_key_set"], true, "{settings}");
    let secrets = json_body(server.get("/api/secrets").await).await;
    assert_eq!(secrets["custom_secrets"][0]["name"], "TOKEN");
}

#[tokio::test]
async fn db_copy_moves_a_sqlite_box_to_postgres() {
    let data = tempfile::tempdir().expect("data dir");
    let data_dir = data.path().to_path_buf();
    let mut server = TestServer::spawn_with({
        let data_dir = data_dir.clone();
        move |c| {
            c.file_store_path = data_dir.display().to_string();
            c.config_class = "saas".into();
            c.plugins.user_auth = Some("oss.local_user".into());
            c.database.migrate_on_start = true;
        }
    })
    .await;
    let res = server
        .post_json(
            "/api/settings",
            &json!({"llm_model": "moved/model", "llm_api_key": "sk-move"}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let created = json_body(server.post_json("/api/conversations", &json!({})).await).await;
    let id = created["conversation_id"].as_str().expect("id").to_owned();
    server.stop().await;

    let target = openhands_test_support::postgres::fresh_database().expect("PostgreSQL");
    let to = [("DATABASE_URL", target.url())];
    let refused = openhands(data.path(), &["db", "copy", "--to", target.url()], &[]);
    assert!(!refused.status.success(), "an unmigrated target is refused");
    assert!(
        text(&refused.stderr).contains("openhands migrate up"),
        "{}",
        text(&refused.stderr)
    );
    let migrated = openhands(data.path(), &["migrate", "up"], &to);
    assert!(migrated.status.success(), "{}", text(&migrated.stderr));
    let copied = openhands(data.path(), &["db", "copy", "--to", target.url()], &[]);
    let out = text(&copied.stdout);
    assert!(copied.status.success(), "{out}{}", text(&copied.stderr));
    assert!(out.contains("row counts match"), "{out}");
    assert!(!out.contains("sk-move"), "{out}");

    // The same data dir (same key) on PostgreSQL serves what SQLite held.
    let url = target.url().to_owned();
    let server = TestServer::spawn_with(move |c| {
        c.file_store_path = data_dir.display().to_string();
        c.config_class = "saas".into();
        c.plugins.user_auth = Some("oss.local_user".into());
        c.database.url = Some(openhands_core::secret::Secret::new(url));
    })
    .await;
    let settings = json_body(server.get("/api/settings").await).await;
    assert_eq!(settings["llm_model"], "moved/model");
    assert_eq!(settings["llm_api_key_set"], true);
    let info = server.get(&format!("/api/conversations/{id}")).await;
    assert_eq!(info.status(), 200);
}

#[tokio::test]
async fn a_saas_server_clones_only_provider_repositories_and_refuses_the_rest_with_a_code() {
    let server = TestServer::spawn_with(|c| {
        c.config_class = "saas".into();
        c.plugins.user_auth = Some("oss.local_user".into());
        c.database.migrate_on_start = true;
    })
    .await;
    let res = server
        .post_json(
            "/api/settings",
            &json!({"llm_model": "openai/gpt-4o", "llm_api_key": "sk-saas-secret"}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let other_workspace = server
        .data_dir()
        .join("workspaces/another-users-conversation");
    for (repository, code) in [
        (
            other_workspace.display().to_string(),
            "repository_local_path",
        ),
        (
            format!("file://{}", other_workspace.display()),
            "repository_scheme",
        ),
        ("git@github.com:octo/repo.git".into(), "repository_scheme"),
        ("ssh://git@github.com/octo/repo".into(), "repository_scheme"),
        (
            "https://internal.corp.example/octo/repo".into(),
            "repository_host",
        ),
        ("https://169.254.169.254/latest".into(), "repository_host"),
        ("octo/../../etc".into(), "repository_invalid"),
    ] {
        let res = server
            .post_json(
                "/api/conversations",
                &json!({"repository": repository, "initial_user_msg": "x"}),
            )
            .await;
        assert_eq!(res.status(), 400, "{repository}");
        let got = json_body(res).await;
        assert_eq!(got["msg_id"], code, "{repository}: {got}");
        assert!(
            got["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{got}"
        );
    }
    let listed = json_body(server.get("/api/conversations").await).await;
    assert_eq!(
        listed["results"].as_array().map(Vec::len),
        Some(0),
        "a refused request stores nothing: {listed}"
    );
}
