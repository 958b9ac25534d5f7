//! Conversations that run: the agent driven by a scripted OpenAI-compatible server, over
//! HTTP and the WebSocket. Included by `agent_api.rs` (`oss.process`) and
//! `agent_api_isolated.rs` (`saas.bwrap`), so every case runs in both sandboxes; the
//! including file names the sandbox as `crate::SANDBOX`.

use futures_util::{SinkExt, StreamExt};
use openhands_runtime::testing::{ScriptedLlm, ScriptedReply};
use openhands_test_support::git::GitHttpServer;
use openhands_test_support::{TestServer, json_body as body};
use serde_json::{Value, json};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

fn tool(name: &str, arguments: Value) -> ScriptedReply {
    ScriptedReply::tool_call(name, arguments)
}

fn finish() -> ScriptedReply {
    tool("finish", json!({"message": "All done."}))
}

async fn server_with_llm(
    llm: &ScriptedLlm,
    adjust: impl FnOnce(&mut openhands_core::config::Config),
) -> TestServer {
    let server = TestServer::spawn_with(|c| {
        c.plugins.sandbox = Some(crate::SANDBOX.into());
        adjust(c);
    })
    .await;
    let res = server
        .post_json(
            "/api/settings",
            &json!({"llm_model": "openai/test-model", "llm_api_key": "sk-test-llm-key", "llm_base_url": llm.base_url()}),
        )
        .await;
    assert_eq!(res.status(), 200);
    server
}

async fn create(server: &TestServer, request: Value) -> String {
    let res = server.post_json("/api/conversations", &request).await;
    assert_eq!(res.status(), 200, "create");
    let got = body(res).await;
    assert!(
        matches!(
            got["conversation_status"].as_str(),
            Some("STARTING" | "RUNNING")
        ),
        "{got}"
    );
    got["conversation_id"].as_str().expect("id").to_owned()
}

fn kinds(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(
            |e| match (e["action"].as_str(), e["observation"].as_str()) {
                (Some(a), _) => format!("action:{a}"),
                (_, Some("agent_state_changed")) => format!(
                    "state:{}",
                    e["extras"]["agent_state"].as_str().unwrap_or("?")
                ),
                (_, Some(o)) => format!("obs:{o}"),
                _ => "?".to_owned(),
            },
        )
        .collect()
}

#[tokio::test]
async fn agent_creates_runs_edits_and_finishes() {
    let llm = ScriptedLlm::start(vec![
        tool("str_replace_based_edit_tool", json!({"command": "create", "path": "hello.txt", "file_text": "hello world\n"})),
        tool("execute_bash", json!({"command": "cat hello.txt"})),
        tool("str_replace_based_edit_tool", json!({"command": "str_replace", "path": "hello.txt", "old_str": "world", "new_str": "agent"})),
        finish(),
    ]).await.expect("scripted LLM");
    let server = server_with_llm(&llm, |_| {}).await;
    let id = create(&server, json!({"initial_user_msg": "Write hello.txt"})).await;
    let events = server.wait_for_agent_state(&id, "finished", -1, WAIT).await;

    let ids: Vec<i64> = events.iter().filter_map(|e| e["id"].as_i64()).collect();
    assert_eq!(
        ids,
        (0..ids.len() as i64).collect::<Vec<_>>(),
        "ids increase without gaps"
    );
    let kinds = kinds(&events);
    let position = |k: &str| {
        kinds
            .iter()
            .position(|x| x == k)
            .unwrap_or_else(|| panic!("{k} missing in {kinds:?}"))
    };
    assert_eq!(kinds[0], "action:message");
    assert!(position("action:edit") < position("action:run"));
    assert!(position("action:run") < position("obs:run"));
    assert!(position("obs:run") < position("action:finish"));
    let output = events
        .iter()
        .find(|e| e["observation"] == "run")
        .expect("run observation");
    assert!(
        output["content"]
            .as_str()
            .is_some_and(|c| c.contains("hello world")),
        "{output}"
    );
    assert_eq!(output["extras"]["metadata"]["exit_code"], 0);
    assert!(output["cause"].as_i64().is_some());

    let file = server.data_dir().join(format!("workspaces/{id}/hello.txt"));
    assert_eq!(
        std::fs::read_to_string(file).expect("file on disk"),
        "hello agent\n"
    );
    let first_request = &llm.requests()[0];
    assert_eq!(first_request["model"], "test-model");
    assert!(
        first_request["messages"]
            .to_string()
            .contains("Write hello.txt")
    );

    // Usage is written to the metadata when the agent stops working.
    let metadata_file = server
        .data_dir()
        .join(format!("sessions/{id}/metadata.json"));
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let metadata: Value =
            serde_json::from_str(&std::fs::read_to_string(&metadata_file).expect("metadata"))
                .expect("json");
        if metadata["prompt_tokens"].as_i64().unwrap_or(0) > 0 {
            assert_eq!(metadata["llm_model"], "openai/test-model");
            assert!(metadata["total_tokens"].as_i64() > metadata["prompt_tokens"].as_i64());
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "usage never recorded: {metadata}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let info = body(server.get(&format!("/api/conversations/{id}")).await).await;
    assert_eq!(info["status"], "RUNNING");
    let listed = body(server.get("/api/conversations").await).await;
    assert_eq!(listed["results"][0]["status"], "RUNNING");
}

#[tokio::test]
async fn secrets_never_appear_in_events() {
    let llm = ScriptedLlm::start(vec![
        tool("execute_bash", json!({"command": "echo token=$MY_TOKEN"})),
        finish(),
    ])
    .await
    .expect("scripted LLM");
    let server = server_with_llm(&llm, |_| {}).await;
    let res = server
        .post_json(
            "/api/secrets",
            &json!({"name": "MY_TOKEN", "value": "s3cr3t-value-42"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let id = create(&server, json!({"initial_user_msg": "print the token"})).await;
    let events = server.wait_for_agent_state(&id, "finished", -1, WAIT).await;
    let text = serde_json::to_string(&events).expect("json");
    assert!(!text.contains("s3cr3t-value-42"), "secret leaked: {text}");
    assert!(!text.contains("sk-test-llm-key"));
    let output = events
        .iter()
        .find(|e| e["observation"] == "run")
        .expect("run observation");
    assert!(
        output["content"]
            .as_str()
            .is_some_and(|c| c.contains("token=<secret_hidden>")),
        "{output}"
    );
    let on_disk = std::fs::read_dir(server.data_dir().join(format!("sessions/{id}/events")))
        .expect("events dir");
    for entry in on_disk.flatten() {
        let stored = std::fs::read_to_string(entry.path()).expect("event file");
        assert!(!stored.contains("s3cr3t-value-42"));
    }
}

#[tokio::test]
async fn malformed_tool_call_becomes_an_error_observation_and_the_loop_goes_on() {
    let llm = ScriptedLlm::start(vec![
        ScriptedReply::ToolCall {
            name: "execute_bash".into(),
            arguments: Value::String("{not json".into()),
        },
        tool("no_such_tool", json!({})),
        finish(),
    ])
    .await
    .expect("scripted LLM");
    let server = server_with_llm(&llm, |_| {}).await;
    let id = create(&server, json!({"initial_user_msg": "go"})).await;
    let events = server.wait_for_agent_state(&id, "finished", -1, WAIT).await;
    let errors = events
        .iter()
        .filter(|e| e["observation"] == "error")
        .count();
    assert_eq!(errors, 2, "{:#?}", kinds(&events));
}

#[tokio::test]
async fn llm_rate_limit_is_retried() {
    let llm = ScriptedLlm::start(vec![ScriptedReply::Status(429), finish()])
        .await
        .expect("scripted LLM");
    let server = server_with_llm(&llm, |_| {}).await;
    let id = create(&server, json!({"initial_user_msg": "go"})).await;
    server.wait_for_agent_state(&id, "finished", -1, WAIT).await;
    assert_eq!(llm.requests().len(), 2);
}

#[tokio::test]
async fn stop_then_message_resumes_with_history() {
    let llm = ScriptedLlm::start(vec![finish(), finish()])
        .await
        .expect("scripted LLM");
    let server = server_with_llm(&llm, |_| {}).await;
    let id = create(&server, json!({"initial_user_msg": "first task"})).await;
    server.wait_for_agent_state(&id, "finished", -1, WAIT).await;

    let res = server
        .post_json(&format!("/api/conversations/{id}/stop"), &json!({}))
        .await;
    let got = body(res).await;
    assert_eq!(got["message"], "Conversation stopped successfully");
    assert_eq!(server.status_of(&id).await, "STOPPED");
    let res = server
        .post_json(&format!("/api/conversations/{id}/stop"), &json!({}))
        .await;
    assert_eq!(body(res).await["message"], "Conversation was not running");

    let res = server
        .post_json(&format!("/api/conversations/{id}/start"), &json!({}))
        .await;
    assert_eq!(res.status(), 200);
    let last = server.all_events(&id).await.len() as i64 - 1;
    let res = server
        .post_json(
            &format!("/api/conversations/{id}/message"),
            &json!({"message": "second task"}),
        )
        .await;
    assert_eq!(body(res).await, json!({"success": true}));
    server
        .wait_for_agent_state(&id, "finished", last, WAIT)
        .await;
    let requests = llm.requests();
    let resumed = requests.last().expect("a second LLM call").to_string();
    assert!(
        resumed.contains("first task") && resumed.contains("second task"),
        "{resumed}"
    );
}

#[tokio::test]
async fn message_to_a_stopped_conversation_starts_it_after_a_restart() {
    let llm = ScriptedLlm::start(vec![finish(), finish()])
        .await
        .expect("scripted LLM");
    let server = server_with_llm(&llm, |_| {}).await;
    let id = create(&server, json!({"initial_user_msg": "before restart"})).await;
    server.wait_for_agent_state(&id, "finished", -1, WAIT).await;
    let server = server.restart().await;
    assert_eq!(server.status_of(&id).await, "STOPPED");
    let last = server.all_events(&id).await.len() as i64 - 1;
    let res = server
        .post_json(
            &format!("/api/conversations/{id}/message"),
            &json!({"message": "after restart"}),
        )
        .await;
    assert_eq!(res.status(), 200);
    server
        .wait_for_agent_state(&id, "finished", last, WAIT)
        .await;
    let resumed = llm.requests().last().expect("request").to_string();
    assert!(resumed.contains("before restart") && resumed.contains("after restart"));
}

#[tokio::test]
async fn confirmation_mode_waits_for_the_user() {
    let llm = ScriptedLlm::start(vec![
        tool("execute_bash", json!({"command": "touch confirmed.txt"})),
        tool("execute_bash", json!({"command": "touch rejected.txt"})),
        finish(),
    ])
    .await
    .expect("scripted LLM");
    let server = server_with_llm(&llm, |_| {}).await;
    server
        .post_json("/api/settings", &json!({"confirmation_mode": true}))
        .await;
    let id = create(&server, json!({"initial_user_msg": "touch files"})).await;
    server
        .wait_for_agent_state(&id, "awaiting_user_confirmation", -1, WAIT)
        .await;
    let workspace = server.data_dir().join(format!("workspaces/{id}"));
    assert!(
        !workspace.join("confirmed.txt").exists(),
        "nothing runs before confirmation"
    );
    let confirm =
        json!({"action": "change_agent_state", "args": {"agent_state": "user_confirmed"}});
    assert_eq!(
        server
            .post_json(&format!("/api/conversations/{id}/events"), &confirm)
            .await
            .status(),
        200
    );
    let last = server.all_events(&id).await.len() as i64 - 1;
    server
        .wait_for_agent_state(&id, "awaiting_user_confirmation", last, WAIT)
        .await;
    assert!(workspace.join("confirmed.txt").exists());
    let reject = json!({"action": "change_agent_state", "args": {"agent_state": "user_rejected"}});
    assert_eq!(
        server
            .post_json(&format!("/api/conversations/{id}/events"), &reject)
            .await
            .status(),
        200
    );
    // As OpenHands: after a rejection the agent waits for the user.
    let events = server
        .wait_for_agent_state(&id, "awaiting_user_input", -1, WAIT)
        .await;
    assert!(!workspace.join("rejected.txt").exists());
    assert!(events.iter().any(|e| e["observation"] == "user_rejected"));
}

#[tokio::test]
async fn unsupported_client_actions_are_400() {
    let llm = ScriptedLlm::start(vec![]).await.expect("scripted LLM");
    let server = server_with_llm(&llm, |_| {}).await;
    let id = create(&server, json!({})).await;
    let res = server
        .post_json(
            &format!("/api/conversations/{id}/events"),
            &json!({"action": "browse", "args": {}}),
        )
        .await;
    assert_eq!(res.status(), 400);
    let res = server
        .post_json("/api/conversations/nope/message", &json!({"message": "x"}))
        .await;
    assert_eq!(res.status(), 404);
    let res = server
        .post_json("/api/conversations/nope/start", &json!({}))
        .await;
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn concurrency_limit_stops_the_least_recently_active() {
    let llm = ScriptedLlm::start(vec![finish(), finish()])
        .await
        .expect("scripted LLM");
    let server = server_with_llm(&llm, |c| c.max_concurrent_conversations = 1).await;
    let first = create(&server, json!({"initial_user_msg": "one"})).await;
    server
        .wait_for_agent_state(&first, "finished", -1, WAIT)
        .await;
    let second = create(&server, json!({"initial_user_msg": "two"})).await;
    server
        .wait_for_agent_state(&second, "finished", -1, WAIT)
        .await;
    assert_eq!(server.status_of(&first).await, "STOPPED");
    assert_eq!(server.status_of(&second).await, "RUNNING");
}

#[tokio::test]
async fn idle_conversations_without_watchers_are_closed() {
    let llm = ScriptedLlm::start(vec![finish()])
        .await
        .expect("scripted LLM");
    let server = server_with_llm(&llm, |c| c.sandbox.close_delay = 1).await;
    let id = create(&server, json!({"initial_user_msg": "quick"})).await;
    server.wait_for_agent_state(&id, "finished", -1, WAIT).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while server.status_of(&id).await != "STOPPED" {
        assert!(
            tokio::time::Instant::now() < deadline,
            "idle conversation was not closed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn repository_is_cloned_from_a_local_bare_repo() {
    let origin = tempfile::tempdir().expect("dir");
    openhands_test_support::git::bare_repository(origin.path());
    // Over HTTP, as from a git host: an isolated sandbox sees no host path.
    let git_host = GitHttpServer::serve(origin.path()).await;
    let url = git_host.url("repo.git");

    let llm = ScriptedLlm::start(vec![
        tool("str_replace_based_edit_tool", json!({"command": "str_replace", "path": "README.md", "old_str": "# repo", "new_str": "# changed"})),
        tool("str_replace_based_edit_tool", json!({"command": "create", "path": "new.txt", "file_text": "new\n"})),
        finish(),
    ]).await.expect("scripted LLM");
    let server = server_with_llm(&llm, |c| git_host.allow_in(c)).await;
    let id = create(
        &server,
        json!({"repository": url, "selected_branch": "main", "initial_user_msg": "edit"}),
    )
    .await;
    server.wait_for_agent_state(&id, "finished", -1, WAIT).await;

    let base = format!("/api/conversations/{id}");
    let files = body(server.get(&format!("{base}/list-files")).await).await;
    assert_eq!(files, json!(["README.md", "new.txt"]));
    let file = body(
        server
            .get(&format!("{base}/select-file?file=README.md"))
            .await,
    )
    .await;
    assert_eq!(file, json!({"code": "# changed\n"}));
    let changes = body(server.get(&format!("{base}/git/changes")).await).await;
    let mut changes = changes.as_array().cloned().unwrap_or_default();
    changes.sort_by_key(|c| c["path"].as_str().unwrap_or_default().to_owned());
    assert_eq!(
        changes,
        vec![
            json!({"status": "M", "path": "README.md"}),
            json!({"status": "A", "path": "new.txt"})
        ]
    );
    let diff = body(server.get(&format!("{base}/git/diff?path=README.md")).await).await;
    assert_eq!(
        diff,
        json!({"modified": "# changed\n", "original": "# repo\n"})
    );
}

#[tokio::test]
async fn a_failing_clone_is_an_error_event_and_status() {
    let llm = ScriptedLlm::start(vec![]).await.expect("scripted LLM");
    let missing = tempfile::tempdir().expect("dir");
    let git_host = GitHttpServer::serve(missing.path()).await;
    let server = server_with_llm(&llm, |c| git_host.allow_in(c)).await;
    let url = git_host.url("nope.git");
    let id = create(&server, json!({"repository": url, "initial_user_msg": "x"})).await;
    let events = server.wait_for_agent_state(&id, "error", -1, WAIT).await;
    let error = events
        .iter()
        .find(|e| e["observation"] == "error")
        .expect("error event");
    assert!(
        error["content"]
            .as_str()
            .is_some_and(|c| c.contains("cloning")),
        "{error}"
    );
    let deadline = tokio::time::Instant::now() + WAIT;
    while server.status_of(&id).await != "ERROR" {
        assert!(
            tokio::time::Instant::now() < deadline,
            "status never became ERROR"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(llm.requests().is_empty(), "the agent never ran");

    // Starting again retries the set-up (and fails the same way, as a new run).
    let before = server.all_events(&id).await.len() as i64 - 1;
    let res = server
        .post_json(&format!("/api/conversations/{id}/start"), &json!({}))
        .await;
    assert_eq!(body(res).await["conversation_status"], "STARTING");
    server
        .wait_for_agent_state(&id, "error", before, WAIT)
        .await;
}

#[tokio::test]
async fn file_routes_confine_paths_and_handle_uploads_and_zips() {
    let llm = ScriptedLlm::start(vec![
        tool(
            "str_replace_based_edit_tool",
            json!({"command": "create", "path": "src/main.txt", "file_text": "main\n"}),
        ),
        finish(),
    ])
    .await
    .expect("scripted LLM");
    let server = server_with_llm(&llm, |_| {}).await;
    let id = create(&server, json!({"initial_user_msg": "make src"})).await;
    server.wait_for_agent_state(&id, "finished", -1, WAIT).await;
    let base = format!("/api/conversations/{id}");
    let workspace = server.data_dir().join(format!("workspaces/{id}"));
    std::os::unix::fs::symlink("/etc", workspace.join("escape")).expect("symlink");
    std::fs::write(workspace.join("blob.bin"), [0xff, 0xfe, 0x00]).expect("write");

    assert_eq!(
        body(server.get(&format!("{base}/list-files?path=src")).await).await,
        json!(["src/main.txt"])
    );
    for bad in ["../../etc/passwd", "/etc/passwd", "escape/passwd"] {
        let res = server.get(&format!("{base}/select-file?file={bad}")).await;
        assert_eq!(res.status(), 400, "{bad}");
    }
    assert_eq!(
        server
            .get(&format!("{base}/list-files?path=.."))
            .await
            .status(),
        400
    );
    assert_eq!(
        server
            .get(&format!("{base}/select-file?file=blob.bin"))
            .await
            .status(),
        415
    );
    assert_eq!(
        server.get(&format!("{base}/git/changes")).await.status(),
        404
    );

    let form = reqwest::multipart::Form::new()
        .part(
            "files",
            reqwest::multipart::Part::bytes(b"uploaded".to_vec()).file_name("notes.txt"),
        )
        .part(
            "files",
            reqwest::multipart::Part::bytes(b"x".to_vec()).file_name("../evil.txt"),
        );
    let res = server
        .client
        .post(server.url(&format!("{base}/upload-files")))
        .multipart(form)
        .send()
        .await
        .expect("upload");
    let got = body(res).await;
    assert_eq!(
        got["uploaded_files"].as_array().map(Vec::len),
        Some(1),
        "{got}"
    );
    assert_eq!(got["skipped_files"][0]["name"], "../evil.txt");
    assert_eq!(
        std::fs::read_to_string(workspace.join("notes.txt")).expect("uploaded"),
        "uploaded"
    );

    let res = server.get(&format!("{base}/zip-directory")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/zip");
    let bytes = res.bytes().await.expect("zip");
    assert_eq!(&bytes[..2], b"PK");
}

#[tokio::test]
async fn delete_removes_the_workspace() {
    let llm = ScriptedLlm::start(vec![finish()])
        .await
        .expect("scripted LLM");
    let server = server_with_llm(&llm, |_| {}).await;
    let id = create(&server, json!({"initial_user_msg": "x"})).await;
    server.wait_for_agent_state(&id, "finished", -1, WAIT).await;
    let workspace = server.data_dir().join(format!("workspaces/{id}"));
    assert!(workspace.exists());
    let res = server
        .client
        .delete(server.url(&format!("/api/conversations/{id}")))
        .send()
        .await
        .expect("delete");
    assert_eq!(body(res).await, json!(true));
    assert!(!workspace.exists());
}

async fn connect(
    server: &TestServer,
    id: &str,
    latest: i64,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let url = format!(
        "ws://{}/api/conversations/{id}/events/socket?latest_event_id={latest}",
        server.address
    );
    tokio_tungstenite::connect_async(url)
        .await
        .expect("websocket")
        .0
}

async fn next_event(
    socket: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> Value {
    loop {
        let message = tokio::time::timeout(WAIT, socket.next())
            .await
            .expect("a message in time")
            .expect("open")
            .expect("frame");
        if let tokio_tungstenite::tungstenite::Message::Text(text) = message {
            return serde_json::from_str(&text).expect("json");
        }
    }
}

#[tokio::test]
async fn websocket_replays_history_then_streams_live_events_and_takes_messages() {
    let llm = ScriptedLlm::start(vec![
        finish(),
        tool("execute_bash", json!({"command": "echo live"})),
        finish(),
    ])
    .await
    .expect("scripted LLM");
    let server = server_with_llm(&llm, |_| {}).await;
    let id = create(&server, json!({"initial_user_msg": "first"})).await;
    let stored = server.wait_for_agent_state(&id, "finished", -1, WAIT).await;

    // A late watcher gets the whole history first.
    let mut socket = connect(&server, &id, -1).await;
    let mut seen = Vec::new();
    for _ in 0..stored.len() {
        seen.push(next_event(&mut socket).await);
    }
    assert_eq!(seen, stored);

    // Then it sends a message on the socket and sees the agent work live.
    let message = json!({"action": "message", "args": {"content": "second"}});
    socket
        .send(tokio_tungstenite::tungstenite::Message::Text(
            message.to_string().into(),
        ))
        .await
        .expect("send");
    let mut last_id = stored.last().and_then(|e| e["id"].as_i64()).unwrap_or(-1);
    loop {
        let event = next_event(&mut socket).await;
        if event.get("status_update").is_some() {
            continue;
        }
        let id_now = event["id"].as_i64().expect("event id");
        assert_eq!(id_now, last_id + 1, "no gap, no duplicate");
        last_id = id_now;
        if event["observation"] == "agent_state_changed"
            && event["extras"]["agent_state"] == "finished"
        {
            break;
        }
    }
    let all = server.all_events(&id).await;
    assert_eq!(all.last().and_then(|e| e["id"].as_i64()), Some(last_id));

    // A reconnect with latest_event_id gets only what came after.
    let mut again = connect(&server, &id, last_id - 1).await;
    assert_eq!(next_event(&mut again).await["id"].as_i64(), Some(last_id));
}

#[tokio::test]
async fn websocket_with_the_largest_latest_event_id_takes_messages() {
    let llm = ScriptedLlm::start(vec![finish(), finish()])
        .await
        .expect("scripted LLM");
    let server = server_with_llm(&llm, |_| {}).await;
    let id = create(&server, json!({"initial_user_msg": "first"})).await;
    let stored = server.wait_for_agent_state(&id, "finished", -1, WAIT).await;
    let last_id = stored.last().and_then(|e| e["id"].as_i64()).expect("ids");

    // `latest_event_id` is the client's: i64::MAX ("seen everything") must not overflow
    // the replay's start; the socket stays open and takes messages.
    let mut socket = connect(&server, &id, i64::MAX).await;
    let message = json!({"action": "message", "args": {"content": "second"}});
    socket
        .send(tokio_tungstenite::tungstenite::Message::Text(
            message.to_string().into(),
        ))
        .await
        .expect("send");
    let all = server
        .wait_for_agent_state(&id, "finished", last_id, WAIT)
        .await;
    let next = all
        .iter()
        .find(|e| e["id"].as_i64() == Some(last_id + 1))
        .expect("the message is stored");
    assert_eq!(next["args"]["content"], "second");
}

#[tokio::test]
async fn websocket_needs_the_session_key_when_set() {
    let llm = ScriptedLlm::start(vec![]).await.expect("scripted LLM");
    let server = server_with_llm(&llm, |c| c.session_api_key = None).await;
    drop(server);
    let server = TestServer::spawn_with(|c| {
        c.session_api_key = Some(openhands_core::secret::Secret::new("k3y"))
    })
    .await;
    let url = format!(
        "ws://{}/api/conversations/abc/events/socket",
        server.address
    );
    assert!(
        tokio_tungstenite::connect_async(url).await.is_err(),
        "refused without the key"
    );
    let url = format!(
        "ws://{}/api/conversations/abc/events/socket?session_api_key=k3y",
        server.address
    );
    let err = tokio_tungstenite::connect_async(url)
        .await
        .expect_err("unknown conversation");
    assert!(err.to_string().contains("404"), "{err}");
}

/// Opens an events socket whose receive buffer is a few kilobytes, so that a client that
/// stops reading makes the server's side of the connection back up quickly.
async fn connect_small_window(
    server: &TestServer,
    id: &str,
) -> tokio_tungstenite::WebSocketStream<tokio::net::TcpStream> {
    let addr = server.address;
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let stream = socket.connect(addr).await.expect("connect");
    let url = format!("ws://{addr}/api/conversations/{id}/events/socket?latest_event_id=-1");
    tokio::time::timeout(WAIT, tokio_tungstenite::client_async(url, stream))
        .await
        .expect("handshake in time")
        .expect("handshake")
        .0
}

#[tokio::test]
async fn a_watcher_that_stops_reading_never_slows_the_agent_or_other_watchers() {
    // ~1.2 MB of output while one watcher reads nothing. (Whether the kernel buffers
    // all of it or the watcher falls behind and is closed depends on socket buffer
    // tuning; `event_feed`'s unit tests cover the close itself.)
    const COMMANDS: usize = 40;
    let mut script = vec![finish()];
    // Each command differs, or the stuck detector would rightly stop an agent that runs
    // the same one again and again.
    for n in 0..COMMANDS {
        script.push(tool(
            "execute_bash",
            json!({"command": format!("yes {n:02}23456789abcdef | head -c 40000")}),
        ));
    }
    script.push(finish());
    let llm = ScriptedLlm::start(script).await.expect("scripted LLM");
    let server = server_with_llm(&llm, |c| c.watcher_buffer = 4).await;
    let id = create(&server, json!({"initial_user_msg": "first"})).await;
    let first = server.wait_for_agent_state(&id, "finished", -1, WAIT).await;
    let last_first = first.last().and_then(|e| e["id"].as_i64()).expect("ids");

    let mut slow = connect_small_window(&server, &id).await;
    let mut steady = connect(&server, &id, last_first).await;
    let message = json!({"action": "message", "args": {"content": "print a lot"}});
    steady
        .send(tokio_tungstenite::tungstenite::Message::Text(
            message.to_string().into(),
        ))
        .await
        .expect("send");

    // The steady watcher sees every event of the task, in order, while the slow one
    // reads nothing: the agent finishes without waiting for it.
    let mut expected = last_first + 1;
    loop {
        let event = next_event(&mut steady).await;
        if event.get("status_update").is_some() {
            continue;
        }
        assert_eq!(event["id"].as_i64(), Some(expected), "no gap, no duplicate");
        expected += 1;
        if event["observation"] == "agent_state_changed"
            && event["extras"]["agent_state"] == "finished"
        {
            break;
        }
    }
    let stored = server.all_events(&id).await;
    assert_eq!(
        stored.len() as i64,
        expected,
        "the steady watcher saw every stored event"
    );

    // The slow watcher then gets, in order, either everything or everything up to a
    // close frame that says how to resume.
    let mut next_id = 0;
    let deadline = tokio::time::Instant::now() + WAIT;
    while next_id < expected {
        let message = tokio::time::timeout_at(deadline, slow.next())
            .await
            .unwrap_or_else(|_| panic!("stalled after event {next_id}"))
            .expect("open")
            .expect("frame");
        match message {
            tokio_tungstenite::tungstenite::Message::Text(text) => {
                let event: Value = serde_json::from_str(&text).expect("json");
                if let Some(id) = event["id"].as_i64() {
                    assert_eq!(id, next_id, "in order");
                    next_id += 1;
                }
            }
            tokio_tungstenite::tungstenite::Message::Close(frame) => {
                let frame = frame.expect("a close reason");
                assert_eq!(u16::from(frame.code), 1008, "{}", frame.reason);
                let resume = format!("latest_event_id={}", next_id - 1);
                assert!(frame.reason.contains(&resume), "{}", frame.reason);
                return;
            }
            _ => {}
        }
    }
}
