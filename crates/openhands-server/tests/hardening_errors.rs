//! Issue 25, items 8 and 10: ordinary requests that used to end in a 500 or a 404 they
//! should not have. Each test pins the answer a client gets instead: a NUL character
//! refused on both databases (and conversations still start), the file routes on a
//! workspace without a repository, an empty `repository`, HEAD and OPTIONS on API routes,
//! `limit=0`, an id that is not UTF-8, and the temporary files a killed writer leaves.
//! Lost database connections are in `hardening_errors_db.rs`.

use openhands_runtime::testing::{ScriptedLlm, ScriptedReply};
use openhands_test_support::git::GitHttpServer;
use openhands_test_support::{TestServer, json_body as body};
use serde_json::{Value, json};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

fn finish() -> ScriptedReply {
    ScriptedReply::tool_call("finish", json!({"message": "All done."}))
}

/// Stores settings whose LLM is `llm`, so conversations can start without a network.
async fn settings_with(server: &TestServer, llm: &ScriptedLlm) {
    let res = server
        .post_json(
            "/api/settings",
            &json!({"llm_model": "openai/test-model", "llm_api_key": "sk-test", "llm_base_url": llm.base_url()}),
        )
        .await;
    assert_eq!(res.status(), 200);
}

async fn create(server: &TestServer, request: Value) -> String {
    let res = server.post_json("/api/conversations", &request).await;
    assert_eq!(res.status(), 200, "create {request}");
    body(res).await["conversation_id"]
        .as_str()
        .expect("id")
        .to_owned()
}

/// Asserts a 422 whose `loc` ends with `field`.
async fn assert_refused_field(res: reqwest::Response, field: &str) {
    assert_eq!(res.status(), 422, "{field}");
    let got = body(res).await;
    let loc = got["detail"][0]["loc"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(loc.iter().any(|l| l == field), "loc names {field}: {got}");
    assert!(
        got["detail"][0]["msg"]
            .as_str()
            .is_some_and(|m| m.contains("NUL")),
        "{got}"
    );
}

/// A NUL in any string of a request is refused with 422 naming the field, before it can
/// reach a PostgreSQL text column; afterwards the user's conversations still start.
async fn nul_is_refused_cleanly(database_url: Option<String>) {
    let llm = ScriptedLlm::start(vec![]).await.expect("scripted LLM");
    let server = TestServer::spawn_with(|c| {
        c.config_class = "saas".into();
        c.plugins.user_auth = Some("oss.local_user".into());
        c.database.migrate_on_start = true;
        c.database.url = database_url.map(openhands_core::secret::Secret::new);
    })
    .await;
    settings_with(&server, &llm).await;

    let nul = "gpt\u{0}4o";
    for (request, field) in [
        (json!({"llm_model": nul}), "llm_model"),
        (json!({"language": nul}), "language"),
        (json!({"llm_api_key": nul}), "llm_api_key"),
        (json!({"mcp_config": {"sse_servers": [nul]}}), "mcp_config"),
    ] {
        let res = server.post_json("/api/settings", &request).await;
        assert_refused_field(res, field).await;
    }
    let settings = body(server.get("/api/settings").await).await;
    assert_eq!(settings["llm_model"], "openai/test-model", "nothing stored");

    let res = server
        .post_json(
            "/api/secrets",
            &json!({"name": "TOKEN", "value": "v", "description": nul}),
        )
        .await;
    assert_refused_field(res, "description").await;
    let res = server
        .post_json("/api/secrets", &json!({"name": "TOKEN", "value": nul}))
        .await;
    assert_refused_field(res, "value").await;
    for (request, field) in [
        (json!({"initial_user_msg": nul}), "initial_user_msg"),
        (
            json!({"conversation_instructions": nul}),
            "conversation_instructions",
        ),
        (json!({"selected_branch": nul}), "selected_branch"),
    ] {
        let res = server.post_json("/api/conversations", &request).await;
        assert_refused_field(res, field).await;
    }

    // The user is not stuck: a conversation starts, and NUL stays out of its title too.
    let id = create(&server, json!({"initial_user_msg": "hello"})).await;
    let res = server
        .client
        .patch(server.url(&format!("/api/conversations/{id}")))
        .json(&json!({"title": nul}))
        .send()
        .await
        .expect("PATCH");
    assert_refused_field(res, "title").await;
    let res = server
        .get("/api/conversations?selected_repository=a%00b")
        .await;
    assert_eq!(res.status(), 422, "a NUL in a query parameter");
    let listed = body(server.get("/api/conversations").await).await;
    assert_eq!(listed["results"][0]["conversation_id"], id.as_str());
}

#[tokio::test]
async fn a_nul_character_is_refused_with_422_on_sqlite_and_conversations_still_start() {
    nul_is_refused_cleanly(None).await;
}

#[tokio::test]
async fn a_nul_character_is_refused_with_422_on_postgres_and_conversations_still_start() {
    let db = openhands_test_support::postgres::fresh_database().expect("PostgreSQL for tests");
    nul_is_refused_cleanly(Some(db.url().to_owned())).await;
}

#[tokio::test]
async fn file_routes_after_a_failed_clone_answer_404_and_400_not_500() {
    let llm = ScriptedLlm::start(vec![]).await.expect("scripted LLM");
    let missing = tempfile::tempdir().expect("dir");
    let git_host = GitHttpServer::serve(missing.path()).await;
    let server = TestServer::spawn_with(|c| {
        c.plugins.sandbox = Some("oss.process".into());
        git_host.allow_in(c);
    })
    .await;
    settings_with(&server, &llm).await;
    let url = git_host.url("nope.git");
    let id = create(&server, json!({"repository": url, "initial_user_msg": "x"})).await;
    server.wait_for_agent_state(&id, "error", -1, WAIT).await;

    let base = format!("/api/conversations/{id}");
    let res = server.get(&format!("{base}/git/changes")).await;
    assert_eq!(res.status(), 404);
    let got = body(res).await;
    assert!(got.to_string().contains("not a git repository"), "{got}");
    let res = server.get(&format!("{base}/git/diff?path=README.md")).await;
    assert_eq!(res.status(), 404);
    let res = server.get(&format!("{base}/list-files?path=nope")).await;
    assert_eq!(res.status(), 404);
    assert!(body(res).await.to_string().contains("nope"));
    let res = server.get(&format!("{base}/select-file?file=.")).await;
    assert_eq!(res.status(), 400);
    assert!(body(res).await.to_string().contains("directory"));
    let res = server
        .get(&format!("{base}/select-file?file=nope.txt"))
        .await;
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn git_changes_on_a_workspace_with_a_broken_git_dir_is_404_not_500() {
    let llm = ScriptedLlm::start(vec![finish()])
        .await
        .expect("scripted LLM");
    let server = TestServer::spawn_with(|c| c.plugins.sandbox = Some("oss.process".into())).await;
    settings_with(&server, &llm).await;
    let id = create(&server, json!({"initial_user_msg": "x"})).await;
    server.wait_for_agent_state(&id, "finished", -1, WAIT).await;
    // What a clone that has only just begun leaves: `.git` without a repository in it.
    let workspace = server.data_dir().join(format!("workspaces/{id}"));
    std::fs::create_dir_all(workspace.join(".git")).expect(".git");
    let res = server
        .get(&format!("/api/conversations/{id}/git/changes"))
        .await;
    assert_eq!(
        res.status(),
        404,
        "{}",
        res.text().await.unwrap_or_default()
    );
}

#[tokio::test]
async fn an_empty_repository_is_no_repository() {
    let llm = ScriptedLlm::start(vec![finish(), finish()])
        .await
        .expect("scripted LLM");
    let server = TestServer::spawn_with(|c| c.plugins.sandbox = Some("oss.process".into())).await;
    settings_with(&server, &llm).await;
    for repository in ["", "   "] {
        let id = create(
            &server,
            json!({"repository": repository, "initial_user_msg": "x"}),
        )
        .await;
        let events = server.wait_for_agent_state(&id, "finished", -1, WAIT).await;
        assert!(
            !events.iter().any(|e| e["observation"] == "error"),
            "no clone was tried for {repository:?}: {events:#?}"
        );
        let info = body(server.get(&format!("/api/conversations/{id}")).await).await;
        assert_eq!(info["selected_repository"], Value::Null, "{info}");
    }
}

#[tokio::test]
async fn head_answers_like_get_without_a_body() {
    let server = TestServer::spawn().await;
    server.store_default_settings().await;
    for path in [
        "/api/settings",
        "/api/conversations",
        "/alive",
        "/api/options/models",
    ] {
        let get = server.get(path).await;
        let head = server
            .client
            .head(server.url(path))
            .send()
            .await
            .expect("HEAD");
        assert_eq!(head.status(), get.status(), "{path}");
        assert_eq!(
            head.headers().get("content-type"),
            get.headers().get("content-type"),
            "{path}"
        );
        assert!(head.bytes().await.expect("body").is_empty(), "{path}");
    }
    let head = server
        .client
        .head(server.url("/api/no-such-route"))
        .send()
        .await
        .expect("HEAD");
    assert_eq!(head.status(), 404);
}

fn allowed(res: &reqwest::Response) -> Vec<String> {
    let mut methods: Vec<String> = res
        .headers()
        .get("allow")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .split(',')
        .map(|m| m.trim().to_owned())
        .filter(|m| !m.is_empty())
        .collect();
    methods.sort();
    methods
}

#[tokio::test]
async fn options_lists_the_allowed_methods_and_cors_preflights_still_work() {
    let server = TestServer::spawn().await;
    let options = |path: &str| {
        server
            .client
            .request(reqwest::Method::OPTIONS, server.url(path))
            .send()
    };
    let res = options("/api/conversations").await.expect("OPTIONS");
    assert_eq!(res.status(), 204);
    assert_eq!(allowed(&res), ["GET", "HEAD", "OPTIONS", "POST"]);
    let res = options("/api/conversations/abc").await.expect("OPTIONS");
    assert_eq!(res.status(), 204);
    assert_eq!(allowed(&res), ["DELETE", "GET", "HEAD", "OPTIONS", "PATCH"]);
    let res = options("/api/reset-settings").await.expect("OPTIONS");
    assert_eq!(allowed(&res), ["OPTIONS", "POST"]);
    let res = options("/api/no-such-route").await.expect("OPTIONS");
    assert_eq!(res.status(), 404);

    let preflight = server
        .client
        .request(reqwest::Method::OPTIONS, server.url("/api/settings"))
        .header("origin", "http://localhost:3001")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .expect("preflight");
    assert!(preflight.status().is_success(), "{}", preflight.status());
    assert_eq!(
        preflight
            .headers()
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok()),
        Some("http://localhost:3001")
    );
}

#[tokio::test]
async fn limit_zero_and_out_of_range_limits_answer_alike_on_conversations_and_events() {
    let server = TestServer::spawn().await;
    server.store_default_settings().await;
    let id = create(&server, json!({"initial_user_msg": "x"})).await;
    let res = server.get("/api/conversations?limit=0").await;
    assert_eq!(res.status(), 200);
    assert_eq!(body(res).await["results"], json!([]));
    let res = server
        .get(&format!("/api/conversations/{id}/events?limit=0"))
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(body(res).await["events"], json!([]));
    for bad in ["limit=101", "limit=-1"] {
        for path in [
            format!("/api/conversations?{bad}"),
            format!("/api/conversations/{id}/events?{bad}"),
        ] {
            let res = server.get(&path).await;
            assert_eq!(res.status(), 400, "{path}");
            assert_eq!(
                body(res).await,
                json!({"detail": "Invalid limit"}),
                "{path}"
            );
        }
    }
}

#[tokio::test]
async fn a_conversation_id_that_is_not_utf8_is_400_like_other_invalid_ids() {
    let server = TestServer::spawn().await;
    for path in [
        "/api/conversations/%FF",
        "/api/conversations/%C3%28",
        "/api/conversations/%FF/events",
        "/api/conversations/%FF/list-files",
    ] {
        let res = server.get(path).await;
        assert_eq!(res.status(), 400, "{path}");
        assert!(body(res).await["detail"].is_string(), "{path}");
    }
    let res = server
        .client
        .delete(server.url("/api/conversations/%FF"))
        .send()
        .await
        .expect("DELETE");
    assert_eq!(res.status(), 400);
}

/// Sets a file's modification time `age` into the past.
fn age_file(path: &std::path::Path, age: Duration) {
    let file = std::fs::File::options()
        .write(true)
        .open(path)
        .expect("open");
    let then = std::time::SystemTime::now() - age;
    file.set_modified(then).expect("set mtime");
}

#[tokio::test]
async fn temporary_files_a_killed_writer_left_are_removed_after_a_restart() {
    let server = TestServer::spawn().await;
    server.store_default_settings().await;
    let id = create(&server, json!({"initial_user_msg": "x"})).await;
    let data = server.data_dir();
    let session = data.join(format!("sessions/{id}"));
    // A process that no longer exists (pid far above any pid_max) wrote these just now,
    // and an older writer left one a minute ago.
    let dead = u32::MAX - 7;
    let leftovers = [
        data.join(format!(".settings.json.tmp-{dead}-0")),
        data.join(format!(".secrets.json.tmp-{dead}-ab12-3")),
        session.join(format!(".metadata.json.tmp-{dead}-1")),
        session.join(format!("events/.7.json.tmp-{dead}-2")),
    ];
    for path in &leftovers {
        std::fs::write(path, b"{\"torn").expect("plant");
    }
    let old = session.join("events/.8.json.tmp-1-5");
    std::fs::write(&old, b"{").expect("plant");
    age_file(&old, Duration::from_secs(120));
    // A live writer's fresh file (pid 1 is always running) must survive.
    let live = data.join(".settings.json.tmp-1-9");
    std::fs::write(&live, b"{").expect("plant");

    let server = server.restart().await;
    assert_eq!(server.get("/api/settings").await.status(), 200);
    assert_eq!(server.get("/api/secrets").await.status(), 200);
    let res = server.get(&format!("/api/conversations/{id}/events")).await;
    assert_eq!(res.status(), 200);
    for path in leftovers.iter().chain([&old]) {
        assert!(!path.exists(), "{} was removed", path.display());
    }
    assert!(live.exists(), "a live writer's file is kept");
}
