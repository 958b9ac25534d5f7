//! Issue 25, item 8: a lost database connection. A connection PostgreSQL terminated
//! between requests costs the client nothing (reads are retried once on a fresh
//! connection), and a database that is gone answers 503 with `Retry-After`, never 500.

use openhands_test_support::postgres::{TestDatabase, fresh_database};
use openhands_test_support::{TestServer, json_body as body};
use serde_json::json;
use std::path::PathBuf;
use std::process::Command;

/// `psql`, on `PATH` or in the newest `/usr/lib/postgresql/*/bin`.
fn psql() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin/psql"))
        .filter(|p| p.exists())
        .collect();
    versions.sort();
    versions.pop().unwrap_or_else(|| PathBuf::from("psql"))
}

/// Runs `sql` on the server's `postgres` database, as the test database's user.
fn admin(db: &TestDatabase, sql: &str) -> String {
    let url = db.url().replace(db.name(), "postgres");
    let out = Command::new(psql())
        .args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            &url,
            "-c",
            sql,
        ])
        .output()
        .expect("running psql");
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Ends every connection the server holds to `db`.
fn terminate_backends(db: &TestDatabase) -> usize {
    let ended = admin(
        db,
        &format!(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = '{}' AND pid <> pg_backend_pid()",
            db.name()
        ),
    );
    ended.parse().unwrap_or(0)
}

async fn saas_server(db: &TestDatabase) -> TestServer {
    let url = db.url().to_owned();
    let server = TestServer::spawn_with(|c| {
        c.config_class = "saas".into();
        c.plugins.user_auth = Some("oss.local_user".into());
        c.database.migrate_on_start = true;
        c.database.url = Some(openhands_core::secret::Secret::new(url));
    })
    .await;
    server.store_default_settings().await;
    server
}

#[tokio::test]
async fn terminated_connections_between_requests_cost_the_client_nothing() {
    let db = fresh_database().expect("PostgreSQL for tests");
    let server = saas_server(&db).await;
    let created = body(server.post_json("/api/conversations", &json!({})).await).await;
    let id = created["conversation_id"].as_str().expect("id").to_owned();
    for round in 0..3 {
        assert!(
            terminate_backends(&db) > 0,
            "round {round}: connections ended"
        );
        for path in [
            format!("/api/conversations/{id}"),
            "/api/conversations".to_owned(),
            "/api/secrets".to_owned(),
            format!("/api/conversations/{id}/events"),
        ] {
            let res = server.get(&path).await;
            assert_eq!(res.status(), 200, "round {round}: {path}");
        }
        terminate_backends(&db);
        let res = server
            .post_json("/api/settings", &json!({"language": "fr"}))
            .await;
        assert_eq!(res.status(), 200, "round {round}: a write after the loss");
    }
}

#[tokio::test]
async fn a_database_that_is_gone_answers_503_with_retry_after() {
    let db = fresh_database().expect("PostgreSQL for tests");
    let server = saas_server(&db).await;
    let created = body(server.post_json("/api/conversations", &json!({})).await).await;
    let id = created["conversation_id"].as_str().expect("id").to_owned();
    admin(
        &db,
        &format!("DROP DATABASE \"{}\" WITH (FORCE)", db.name()),
    );

    for path in [
        format!("/api/conversations/{id}"),
        "/api/conversations".to_owned(),
        "/api/secrets".to_owned(),
        format!("/api/conversations/{id}/list-files"),
    ] {
        let res = server.get(&path).await;
        assert_eq!(res.status(), 503, "{path}");
        assert_eq!(
            res.headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok()),
            Some("1"),
            "{path}"
        );
    }
    for (path, request) in [
        ("/api/settings", json!({"language": "fr"})),
        ("/api/conversations", json!({})),
        ("/api/secrets", json!({"name": "TOKEN", "value": "v"})),
    ] {
        let res = server.post_json(path, &request).await;
        assert_eq!(res.status(), 503, "POST {path}");
        assert!(res.headers().contains_key("retry-after"), "POST {path}");
    }
}

#[tokio::test]
async fn org_routes_answer_503_when_the_database_is_gone() {
    use openhands_test_support::header_user::{HEADER_USER_AUTH, USER_HEADER};
    let db = fresh_database().expect("PostgreSQL for tests");
    let url = db.url().to_owned();
    let server = TestServer::spawn_with(|c| {
        c.config_class = "saas".into();
        c.plugins.user_auth = Some(HEADER_USER_AUTH.into());
        c.database.migrate_on_start = true;
        c.database.url = Some(openhands_core::secret::Secret::new(url));
    })
    .await;
    let get = |path: &'static str| {
        server
            .client
            .get(server.url(path))
            .header(USER_HEADER, "ann")
            .send()
    };
    let paths = ["/api/organizations", "/api/organizations/invitations"];
    for path in paths {
        let before = get(path).await.expect("GET");
        assert_eq!(
            before.status(),
            200,
            "{path} works while the database is up"
        );
    }
    admin(
        &db,
        &format!("DROP DATABASE \"{}\" WITH (FORCE)", db.name()),
    );
    for path in paths {
        let res = get(path).await.expect("GET");
        assert_eq!(res.status(), 503, "{path}");
        assert!(res.headers().contains_key("retry-after"), "{path}");
    }
}
