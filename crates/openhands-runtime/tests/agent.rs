//! The agent loop end to end against a scripted LLM, a real shell and a temporary workspace.

mod common;
use common::*;

use openhands_runtime::agent::{AgentConfig, AgentInput, AgentOutcome};
use openhands_runtime::testing::{ScriptedLlm, ScriptedReply, event_kind};
use serde_json::{Value, json};
use std::time::Duration;

#[tokio::test]
async fn creates_runs_edits_and_finishes() {
    let ws = tempfile::tempdir().expect("workspace");
    let server = ScriptedLlm::start([
        editor(json!({"command": "create", "path": "hello.txt", "file_text": "hello world\n"})),
        bash("cat hello.txt && echo $GREETING"),
        editor(json!({"command": "str_replace", "path": "hello.txt", "old_str": "world", "new_str": "there"})),
        // The queue is then empty: the server answers `finish`.
    ])
    .await
    .expect("server");
    let run = start(
        config(&server, ws.path()).await,
        first_message("make a greeting file"),
    );
    run.wait_for_state("finished", 1).await;
    let io = run.io.clone();
    assert_eq!(run.close().await, AgentOutcome::Finished);

    let events = io.events();
    assert_eq!(
        kinds(&events),
        [
            "state:running",
            "action:edit",
            "observation:edit",
            "action:run",
            "observation:run",
            "action:edit",
            "observation:edit",
            "action:finish",
            "state:finished",
        ]
    );
    assert_eq!(
        events.iter().map(|e| e.id).collect::<Vec<_>>(),
        (1..=9).collect::<Vec<_>>()
    );
    assert_eq!(
        std::fs::read_to_string(ws.path().join("hello.txt")).expect("file on disk"),
        "hello there\n"
    );

    let create = &events[1];
    assert_eq!(args(create)["command"], "create");
    assert_eq!(args(create)["impl_source"], "oh_aci");
    assert_eq!(
        create.extra["tool_call_metadata"]["function_name"],
        "str_replace_based_edit_tool"
    );
    assert_eq!(create.extra["tool_call_metadata"]["tool_call_id"], "call_1");
    assert_eq!(
        create.extra["llm_metrics"]["accumulated_token_usage"]["prompt_tokens"],
        100
    );
    let (_, created) = extras(&events[2]);
    assert_eq!(events[2].cause, Some(create.id));
    assert_eq!(created["prev_exist"], false);
    assert_eq!(created["new_content"], "hello world\n");

    let run_action = &events[3];
    assert_eq!(
        run_action.message,
        "Running command: cat hello.txt && echo $GREETING"
    );
    for (key, value) in [
        ("command", json!("cat hello.txt && echo $GREETING")),
        ("is_input", json!(false)),
        ("blocking", json!(false)),
        ("hidden", json!(false)),
        ("confirmation_state", json!("confirmed")),
        ("security_risk", json!(-1)),
    ] {
        assert_eq!(args(run_action)[key], value, "run action arg {key}");
    }
    let observation = &events[4];
    assert_eq!(observation.cause, Some(run_action.id));
    assert_eq!(observation.extra["success"], true);
    assert_eq!(
        observation.message,
        "Command `cat hello.txt && echo $GREETING` executed with exit code 0."
    );
    let (content, run_extras) = extras(observation);
    assert_eq!(content, "hello world\nbonjour\n");
    assert_eq!(run_extras["metadata"]["exit_code"], 0);
    assert_eq!(run_extras["metadata"]["pid"], -1);
    assert_eq!(run_extras["command"], "cat hello.txt && echo $GREETING");

    let (_, edited) = extras(&events[6]);
    assert_eq!(edited["old_content"], "hello world\n");
    assert_eq!(edited["new_content"], "hello there\n");
    assert!(
        edited["diff"]
            .as_str()
            .unwrap_or_default()
            .contains("+hello there")
    );
    assert_eq!(args(&events[7])["final_thought"], "Done.");

    let usage = io.usage();
    assert_eq!(usage.len(), 4, "one record per LLM call");
    assert!(
        usage
            .iter()
            .all(|u| u.model == "openai/gpt-4o" && u.prompt_tokens == 100)
    );
    assert!(usage[0].cost_usd > 0.0, "gpt-4o has a price");
    assert_eq!(
        events[7].extra["llm_metrics"]["accumulated_token_usage"]["completion_tokens"],
        80
    );

    let requests = server.requests();
    assert_eq!(requests.len(), 4);
    assert_eq!(requests[0]["messages"][0]["role"], "system");
    assert_eq!(
        requests[0]["messages"][1]["content"],
        "make a greeting file"
    );
    let results = tool_results(&requests[2]);
    assert_eq!(results[0].0, "call_1");
    assert!(
        results[0].1.starts_with("File created successfully"),
        "{results:?}"
    );
    assert_eq!(results[1].0, "call_2");
    assert!(
        results[1].1.starts_with("hello world\nbonjour\n"),
        "{results:?}"
    );
    assert!(results[1].1.contains("exit code 0"));
}

#[tokio::test]
async fn malformed_tool_calls_become_error_observations_and_the_loop_goes_on() {
    let ws = tempfile::tempdir().expect("workspace");
    let server = ScriptedLlm::start([
        ScriptedReply::tool_call("execute_bash", Value::String("{not json".into())),
        ScriptedReply::tool_call("launch_rockets", json!({})),
        editor(json!({"command": "create", "path": "../escape.txt", "file_text": "x"})),
    ])
    .await
    .expect("server");
    let run = start(config(&server, ws.path()).await, first_message("go"));
    run.wait_for_state("finished", 1).await;
    let io = run.io.clone();
    assert_eq!(run.close().await, AgentOutcome::Finished);

    let events = io.events();
    assert_eq!(
        kinds(&events),
        [
            "state:running",
            "observation:error",
            "observation:error",
            "action:edit",
            "observation:error",
            "action:finish",
            "state:finished",
        ]
    );
    let (content, bad) = extras(&events[1]);
    assert_eq!(bad["error_id"], "AGENT_ERROR$BAD_ACTION");
    assert!(content.contains("not valid JSON"), "{content}");
    let (content, _) = extras(&events[2]);
    assert!(
        content.contains("unknown tool `launch_rockets`"),
        "{content}"
    );
    let (content, _) = extras(&events[4]);
    assert!(content.contains("outside the workspace"), "{content}");
    assert_eq!(events[4].cause, Some(events[3].id));
    assert!(
        !ws.path()
            .parent()
            .expect("parent")
            .join("escape.txt")
            .exists()
    );

    let results = tool_results(&server.requests()[3]);
    assert_eq!(results.len(), 3, "{results:?}");
    assert_eq!(results[0].0, "call_1");
    assert!(results[0].1.contains("not valid JSON"));
    assert!(results[2].1.contains("outside the workspace"));
}

#[tokio::test]
async fn confirmation_mode_waits_for_confirm_and_honours_reject() {
    let ws = tempfile::tempdir().expect("workspace");
    let server = ScriptedLlm::start([
        bash("echo yes > confirmed.txt"),
        bash("echo no > rejected.txt"),
        ScriptedReply::Text("Understood, I will not do that.".into()),
    ])
    .await
    .expect("server");
    let run = start(
        AgentConfig {
            confirmation_mode: true,
            ..config(&server, ws.path()).await
        },
        first_message("write files"),
    );
    run.wait_for_state("awaiting_user_confirmation", 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !ws.path().join("confirmed.txt").exists(),
        "nothing runs before Confirm"
    );
    assert_eq!(server.requests().len(), 1);
    run.tx.send(AgentInput::Confirm).await.expect("send");

    run.wait_for_state("awaiting_user_confirmation", 2).await;
    assert!(ws.path().join("confirmed.txt").exists());
    run.tx.send(AgentInput::Reject).await.expect("send");
    run.wait_for_state("awaiting_user_input", 1).await;
    assert!(!ws.path().join("rejected.txt").exists());
    assert_eq!(server.requests().len(), 2, "a rejection waits for the user");

    run.tx
        .send(AgentInput::UserMessage {
            content: "never mind".into(),
            image_urls: vec![],
        })
        .await
        .expect("send");
    run.wait_for_state("awaiting_user_input", 2).await;
    let io = run.io.clone();
    assert_eq!(run.close().await, AgentOutcome::AwaitingInput);

    let events = io.events();
    assert_eq!(
        kinds(&events),
        [
            "state:running",
            "action:run",
            "state:awaiting_user_confirmation",
            "action:run",
            "state:running",
            "observation:run",
            "action:run",
            "state:awaiting_user_confirmation",
            "action:run",
            "observation:user_rejected",
            "state:awaiting_user_input",
            "action:message",
            "state:running",
            "action:message",
            "state:awaiting_user_input",
        ]
    );
    assert_eq!(
        args(&events[1])["confirmation_state"],
        "awaiting_confirmation"
    );
    assert_eq!(args(&events[3])["confirmation_state"], "confirmed");
    assert_eq!(events[5].cause, Some(events[3].id));
    assert_eq!(args(&events[8])["confirmation_state"], "rejected");
    assert_eq!(events[9].cause, Some(events[8].id));
    assert_eq!(args(&events[13])["wait_for_response"], true);

    let third = &server.requests()[2];
    let results = tool_results(third);
    assert!(results[1].1.contains("rejected by the user"), "{results:?}");
    let last = third["messages"].as_array().and_then(|m| m.last()).cloned();
    assert_eq!(
        last.map(|m| m["content"].clone()),
        Some(json!("never mind"))
    );
}

#[tokio::test]
async fn a_message_while_awaiting_confirmation_rejects_and_continues() {
    let ws = tempfile::tempdir().expect("workspace");
    let server = ScriptedLlm::start([bash("touch nope.txt")])
        .await
        .expect("server");
    let run = start(
        AgentConfig {
            confirmation_mode: true,
            ..config(&server, ws.path()).await
        },
        first_message("go"),
    );
    run.wait_for_state("awaiting_user_confirmation", 1).await;
    run.tx
        .send(AgentInput::UserMessage {
            content: "do something else".into(),
            image_urls: vec![],
        })
        .await
        .expect("send");
    run.wait_for_state("finished", 1).await;
    let io = run.io.clone();
    assert_eq!(run.close().await, AgentOutcome::Finished);
    assert!(!ws.path().join("nope.txt").exists());
    let kinds = kinds(&io.events());
    let rejected = kinds.iter().position(|k| k == "observation:user_rejected");
    let message = kinds.iter().position(|k| k == "action:message");
    assert!(rejected.is_some() && rejected < message, "{kinds:?}");
}

#[tokio::test]
async fn max_iterations_stops_the_loop_until_the_next_message() {
    let ws = tempfile::tempdir().expect("workspace");
    let think = || ScriptedReply::tool_call("think", json!({"thought": "hmm"}));
    let server = ScriptedLlm::start([think(), think(), think(), think()])
        .await
        .expect("server");
    let run = start(
        AgentConfig {
            max_iterations: 2,
            ..config(&server, ws.path()).await
        },
        first_message("think forever"),
    );
    run.wait_for_state("error", 1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(server.requests().len(), 2);
    let events = run.io.events();
    let error = events
        .iter()
        .find(|e| event_kind(e) == "observation:error")
        .expect("error observation");
    let (content, error_extras) = extras(error);
    assert!(content.contains("maximum iteration limit: 2"), "{content}");
    assert_eq!(error_extras["error_id"], "AGENT_ERROR$MAX_ITERATIONS");
    let state = events.last().expect("state");
    assert!(
        extras(state).1["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("iteration")
    );

    // A new message resets the count: two more thinks, then the limit again.
    run.tx
        .send(AgentInput::UserMessage {
            content: "continue".into(),
            image_urls: vec![],
        })
        .await
        .expect("send");
    run.wait_for_state("error", 2).await;
    assert_eq!(server.requests().len(), 4);
    let outcome = run.close().await;
    assert!(
        matches!(outcome, AgentOutcome::Error(ref e) if e.contains("iteration")),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn budget_limit_stops_the_loop() {
    let ws = tempfile::tempdir().expect("workspace");
    let server = ScriptedLlm::start([ScriptedReply::tool_call("think", json!({"thought": "a"}))])
        .await
        .expect("server");
    let run = start(
        AgentConfig {
            // One scripted call on gpt-4o costs 100*2.5e-6 + 20*1e-5 = $0.00045.
            max_budget_per_task: Some(0.0004),
            ..config(&server, ws.path()).await
        },
        first_message("spend"),
    );
    run.wait_for_state("error", 1).await;
    assert_eq!(server.requests().len(), 1);
    let outcome = run.close().await;
    assert!(
        matches!(outcome, AgentOutcome::Error(ref e) if e.contains("budget")),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn llm_failure_is_reported_and_the_agent_waits() {
    let ws = tempfile::tempdir().expect("workspace");
    let server = ScriptedLlm::start([ScriptedReply::Status(401)])
        .await
        .expect("server");
    let run = start(config(&server, ws.path()).await, first_message("hi"));
    run.wait_for_state("error", 1).await;
    let events = run.io.events();
    let (content, error_extras) = extras(&events[1]);
    assert_eq!(error_extras["error_id"], "STATUS$ERROR_LLM_AUTHENTICATION");
    assert!(content.contains("authentication"), "{content}");
    assert!(matches!(run.close().await, AgentOutcome::Error(_)));
}

#[tokio::test]
async fn resumes_from_history_with_earlier_turns() {
    let ws = tempfile::tempdir().expect("workspace");
    let server = ScriptedLlm::start([
        bash("echo first > one.txt"),
        ScriptedReply::Text("What next?".into()),
    ])
    .await
    .expect("server");
    let first = start(
        config(&server, ws.path()).await,
        first_message("first task"),
    );
    first.wait_for_state("awaiting_user_input", 1).await;
    let first_io = first.io.clone();
    assert_eq!(first.close().await, AgentOutcome::AwaitingInput);

    // A new run (as after a server restart) over the stored events.
    let mut history = first_message("first task");
    history.extend(first_io.events());
    let second = start(config(&server, ws.path()).await, history);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        server.requests().len(),
        2,
        "no LLM call until the user speaks"
    );
    second
        .tx
        .send(AgentInput::UserMessage {
            content: "second task".into(),
            image_urls: vec![],
        })
        .await
        .expect("send");
    second.wait_for_state("finished", 1).await;
    let second_io = second.io.clone();
    assert_eq!(second.close().await, AgentOutcome::Finished);
    assert_eq!(second_io.events()[0].id, first_io.events().len() as u64 + 1);

    let request = &server.requests()[2];
    let roles: Vec<&str> = request["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["role"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        roles,
        ["system", "user", "assistant", "tool", "assistant", "user"]
    );
    let messages = &request["messages"];
    assert_eq!(messages[1]["content"], "first task");
    assert_eq!(
        messages[2]["tool_calls"][0]["function"]["name"],
        "execute_bash"
    );
    assert_eq!(
        messages[3]["tool_call_id"],
        messages[2]["tool_calls"][0]["id"]
    );
    assert_eq!(messages[4]["content"], "What next?");
    assert_eq!(messages[5]["content"], "second task");
    // Metrics continue from the stored events.
    let finish = second_io
        .events()
        .into_iter()
        .find(|e| event_kind(e) == "action:finish")
        .expect("finish");
    assert_eq!(
        finish.extra["llm_metrics"]["accumulated_token_usage"]["prompt_tokens"],
        300
    );
}

#[tokio::test]
async fn stop_interrupts_a_running_command() {
    let ws = tempfile::tempdir().expect("workspace");
    let server = ScriptedLlm::start([bash("sleep 100")])
        .await
        .expect("server");
    let run = start(config(&server, ws.path()).await, first_message("wait"));
    run.wait_for("the run action", |events| {
        events.iter().any(|e| event_kind(e) == "action:run")
    })
    .await;
    let started = std::time::Instant::now();
    run.tx.send(AgentInput::Stop).await.expect("send");
    let io = run.io.clone();
    let outcome = tokio::time::timeout(Duration::from_secs(5), run.task)
        .await
        .expect("stops quickly")
        .expect("task");
    assert_eq!(outcome, AgentOutcome::Stopped);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(
        kinds(&io.events()).last().map(String::as_str),
        Some("state:stopped")
    );
}

#[tokio::test]
async fn the_deployments_command_timeout_caps_what_the_llm_asks_for() {
    let ws = tempfile::tempdir().expect("workspace");
    let server = ScriptedLlm::start([ScriptedReply::tool_call(
        "execute_bash",
        json!({"command": "sleep 30; echo woke", "timeout": 600}),
    )])
    .await
    .expect("server");
    let config = AgentConfig {
        max_command_timeout: Some(Duration::from_millis(300)),
        ..config(&server, ws.path()).await
    };
    let run = start(config, first_message("sleep"));
    run.wait_for_state("finished", 1).await;
    let io = run.io.clone();
    assert_eq!(run.close().await, AgentOutcome::Finished);
    let events = io.events();
    let run_observation = events
        .iter()
        .find(|e| event_kind(e) == "observation:run")
        .expect("a run observation");
    let (content, extras) = extras(run_observation);
    assert_eq!(extras["metadata"]["exit_code"], -1, "{content}");
    assert!(!content.contains("woke"), "{content}");
}

/// A tool call answered the way some OpenAI-compatible servers and proxies answer: with the
/// same response id every time.
fn same_response_id(call: usize, name: &str, arguments: Value) -> ScriptedReply {
    ScriptedReply::Raw(json!({
        "id": "chatcmpl-always-the-same", "object": "chat.completion", "model": "scripted",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": null, "tool_calls": [{
                "id": format!("call_{call}"), "type": "function",
                "function": {"name": name, "arguments": arguments.to_string()}}]}}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
    }))
}

/// (assistant turns with tool calls, tool results) in one recorded request.
fn turns(request: &Value) -> (usize, usize) {
    let messages = request["messages"].as_array().expect("messages");
    let calls = messages
        .iter()
        .filter(|m| m["role"] == "assistant" && m["tool_calls"].is_array())
        .count();
    (calls, tool_results(request).len())
}

#[tokio::test]
async fn a_repeated_response_id_still_grows_the_history_every_step() {
    let ws = tempfile::tempdir().expect("workspace");
    let mut replies: Vec<ScriptedReply> = (1..=10)
        .map(|n| {
            let command = format!("echo step-{n} | tee -a steps.txt");
            same_response_id(n, "execute_bash", json!({ "command": command }))
        })
        .collect();
    replies.push(same_response_id(11, "finish", json!({"message": "Done."})));
    let server = ScriptedLlm::start(replies).await.expect("server");
    let run = start(
        config(&server, ws.path()).await,
        first_message("do ten steps"),
    );
    run.wait_for_state("finished", 1).await;
    let io = run.io.clone();
    assert_eq!(run.close().await, AgentOutcome::Finished);

    let events = io.events();
    let runs = events
        .iter()
        .filter(|e| event_kind(e) == "action:run")
        .count();
    assert_eq!(runs, 10, "{:#?}", kinds(&events));
    let steps = std::fs::read_to_string(ws.path().join("steps.txt")).expect("steps file");
    let expected: String = (1..=10).map(|n| format!("step-{n}\n")).collect();
    assert_eq!(steps, expected);

    let requests = server.requests();
    assert_eq!(requests.len(), 11);
    for (k, request) in requests.iter().enumerate() {
        assert_eq!(turns(request), (k, k), "request {k} has every earlier step");
        if k > 0 {
            let results = tool_results(request);
            let (call_id, content) = results.last().expect("a result");
            assert_eq!(*call_id, format!("call_{k}"));
            assert!(content.starts_with(&format!("step-{k}\n")), "{content}");
            let before = requests[k - 1]["messages"].as_array().map(Vec::len);
            let now = request["messages"].as_array().map(Vec::len);
            assert!(now > before, "request {k} grew");
        }
    }
}

#[tokio::test]
async fn a_looping_llm_is_stopped_by_the_stuck_detector_long_before_max_iterations() {
    let ws = tempfile::tempdir().expect("workspace");
    let server = ScriptedLlm::start((1..=50).map(|n| {
        // The same command every call, with the same response id, as in the operator's report.
        same_response_id(n, "execute_bash", json!({"command": "ls"}))
    }))
    .await
    .expect("server");
    let run = start(
        AgentConfig {
            max_iterations: 50,
            ..config(&server, ws.path()).await
        },
        first_message("list the files"),
    );
    run.wait_for_state("error", 1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(server.requests().len(), 4, "stopped at the fourth repeat");
    let events = run.io.events();
    let runs = events
        .iter()
        .filter(|e| event_kind(e) == "action:run")
        .count();
    assert_eq!(runs, 4);
    let error = events
        .iter()
        .find(|e| event_kind(e) == "observation:error")
        .expect("error observation");
    let (content, error_extras) = extras(error);
    assert_eq!(error_extras["error_id"], "AGENT_ERROR$STUCK_IN_LOOP");
    assert!(content.contains("stuck in a loop"), "{content}");
    assert!(
        content
            .contains("`execute_bash` with the same arguments) got the same observation 4 times"),
        "{content}"
    );
    let state = events.last().expect("state");
    assert_eq!(event_kind(state), "state:error");
    assert!(
        extras(state).1["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("stuck in a loop")
    );
    let outcome = run.close().await;
    assert!(
        matches!(outcome, AgentOutcome::Error(ref e) if e.contains("stuck in a loop")),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn empty_replies_are_retried_until_the_stuck_detector_stops_them() {
    let ws = tempfile::tempdir().expect("workspace");
    let empty = || ScriptedReply::Text(String::new());
    let server = ScriptedLlm::start([empty(), empty(), empty(), empty(), empty()])
        .await
        .expect("server");
    let run = start(config(&server, ws.path()).await, first_message("hello?"));
    run.wait_for_state("error", 1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let requests = server.requests();
    assert_eq!(requests.len(), 3);
    assert_eq!(
        requests[2]["messages"], requests[0]["messages"],
        "empty replies are not sent back"
    );
    let events = run.io.events();
    let error = events
        .iter()
        .find(|e| event_kind(e) == "observation:error")
        .expect("error observation");
    let (content, _) = extras(error);
    assert!(content.contains("3 empty replies in a row"), "{content}");
    assert!(matches!(run.close().await, AgentOutcome::Error(_)));
}
