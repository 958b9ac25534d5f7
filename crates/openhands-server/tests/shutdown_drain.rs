//! The graceful shutdown of a single server (OSS mode, `oss.standalone`), as `main` runs it
//! at SIGTERM (`openhands_server::shutdown`): out of the pool and no new conversations at
//! once, the command in flight allowed to finish, `stopped` stored with the reason, and
//! WebSockets closed with 1012 only after that.

use futures_util::StreamExt;
use openhands_runtime::testing::{ScriptedLlm, ScriptedReply};
use openhands_test_support::{TestServer, json_body};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test]
async fn a_shutdown_refuses_new_work_finishes_the_command_and_then_closes_sockets_with_1012() {
    let llm = ScriptedLlm::start([ScriptedReply::tool_call(
        "execute_bash",
        json!({"command": "sleep 1.5; echo finished-before-exit > done.txt"}),
    )])
    .await
    .expect("LLM");
    let mut server = TestServer::spawn().await;
    let res = server
        .post_json(
            "/api/settings",
            &json!({"llm_model": "openai/test-model", "llm_api_key": "sk-test",
                    "llm_base_url": llm.base_url()}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let res = server
        .post_json("/api/conversations", &json!({"initial_user_msg": "wait"}))
        .await;
    assert_eq!(res.status(), 200);
    let id = json_body(res).await["conversation_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let url = format!(
        "ws://{}/api/conversations/{id}/events/socket?latest_event_id=-1",
        server.address
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.expect("socket");
    let deadline = Instant::now() + WAIT;
    while !server
        .all_events(&id)
        .await
        .iter()
        .any(|e| e["action"] == "run")
    {
        assert!(Instant::now() < deadline, "the command never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let client = server.client.clone();
    let ready = server.url("/ready");
    let conversations = server.url("/api/conversations");
    let data_dir = server.data_dir();
    let signalled = Instant::now();
    let shutting_down = tokio::spawn(async move {
        server.shut_down().await;
        server
    });

    // Out of the pool at once, while the command still runs.
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let res = client.get(&ready).send().await.expect("ready");
        if res.status() == 503 {
            let body: Value = res.json().await.expect("json");
            assert!(body["failed"]["server"].is_string(), "{body}");
            break;
        }
        assert!(Instant::now() < deadline, "/ready still 200 while draining");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let res = client
        .post(&conversations)
        .json(&json!({"initial_user_msg": "too late"}))
        .send()
        .await
        .expect("start");
    assert_eq!(res.status(), 503);
    assert_eq!(
        res.headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["code"], "server_shutting_down", "{body}");

    // The socket stays open until the drain is over, then closes with 1012.
    let close = loop {
        let frame = tokio::time::timeout(WAIT, socket.next())
            .await
            .expect("a frame in time");
        match frame {
            Some(Ok(Message::Close(close))) => break close,
            Some(Ok(_)) => {}
            other => panic!("the socket ended without a close frame: {other:?}"),
        }
    };
    let closed_after = signalled.elapsed();
    let close = close.expect("a close frame with a code");
    assert_eq!(close.code, CloseCode::Restart);
    assert!(
        closed_after >= Duration::from_millis(500),
        "closed only after the command finished: {closed_after:?}"
    );

    let server = shutting_down.await.expect("shut down");
    assert_eq!(
        std::fs::read_to_string(data_dir.join("workspaces").join(&id).join("done.txt"))
            .expect("the command finished")
            .trim(),
        "finished-before-exit"
    );
    // What the drained agent stored, read back by the next server on the same data dir.
    let restarted = server.restart().await;
    let events = restarted.all_events(&id).await;
    let kinds: Vec<String> = events
        .iter()
        .map(|e| {
            e["action"]
                .as_str()
                .or(e["observation"].as_str())
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    let tail = &kinds[kinds.len() - 3..];
    assert_eq!(
        tail,
        ["run", "run", "agent_state_changed"],
        "the command's result, then the state: {events:#?}"
    );
    let last = events.last().expect("events");
    assert_eq!(last["extras"]["agent_state"], "stopped");
    assert_eq!(
        last["extras"]["reason"],
        openhands_standalone_manager::SHUTDOWN_REASON
    );
}
