//! The agent moving between servers: a drain at shutdown ends it at a step boundary keeping
//! what it received, and a run resumed elsewhere records a lost action's fate before it
//! goes on. Scripted LLM, real shell, temporary workspace.

mod common;
use common::*;

use openhands_core::event::Event;
use openhands_runtime::agent::resume::ACTION_INTERRUPTED;
use openhands_runtime::agent::{AgentInput, AgentOutcome};
use openhands_runtime::testing::{ScriptedLlm, ScriptedReply, event_kind};
use std::time::{Duration, Instant};

fn drain() -> AgentInput {
    AgentInput::Drain {
        reason: "moving to another server".into(),
    }
}

fn last_state_reason(events: &[Event]) -> (String, String) {
    let state = events
        .iter()
        .rev()
        .find(|e| event_kind(e).starts_with("state:"))
        .expect("a state change");
    let (_, extras) = extras(state);
    (
        extras["agent_state"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        extras["reason"].as_str().unwrap_or_default().to_owned(),
    )
}

fn counter_lines(workspace: &std::path::Path) -> usize {
    std::fs::read_to_string(workspace.join("counter"))
        .unwrap_or_default()
        .lines()
        .count()
}

#[tokio::test]
async fn a_drain_lets_the_command_in_flight_finish_and_keeps_a_message_that_arrived() {
    let ws = tempfile::tempdir().expect("workspace");
    let server = ScriptedLlm::start([
        bash("sleep 0.5; echo step >> counter"),
        bash("echo never >> counter"),
    ])
    .await
    .expect("server");
    let run = start(config(&server, ws.path()).await, first_message("count"));
    run.wait_for("the command", |events| {
        events.iter().any(|e| event_kind(e) == "action:run")
    })
    .await;
    run.tx
        .send(AgentInput::UserMessage {
            content: "and then stop".into(),
            image_urls: vec![],
        })
        .await
        .expect("send");
    run.tx.send(drain()).await.expect("send");
    let io = run.io.clone();
    assert_eq!(run.close().await, AgentOutcome::Drained);

    let events = io.events();
    let tail: Vec<String> = kinds(&events).into_iter().rev().take(4).rev().collect();
    assert_eq!(
        tail,
        [
            "action:run",
            "observation:run",
            "action:message",
            "state:stopped"
        ],
        "the command's result, the message that came meanwhile, then stopped: {:#?}",
        kinds(&events)
    );
    assert_eq!(args(&events[events.len() - 2])["content"], "and then stop");
    assert_eq!(
        last_state_reason(&events),
        ("stopped".into(), "moving to another server".into())
    );
    assert_eq!(counter_lines(ws.path()), 1, "the command ran once");
    assert_eq!(server.requests().len(), 1, "no LLM call after the drain");
}

#[tokio::test]
async fn a_stop_after_a_drain_cuts_the_command_short_and_records_that_as_its_result() {
    let ws = tempfile::tempdir().expect("workspace");
    let server = ScriptedLlm::start([bash("sleep 30")])
        .await
        .expect("server");
    let run = start(config(&server, ws.path()).await, first_message("wait"));
    run.wait_for("the command", |events| {
        events.iter().any(|e| event_kind(e) == "action:run")
    })
    .await;
    run.tx.send(drain()).await.expect("send");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !run.task.is_finished(),
        "a drain waits for the command in flight"
    );
    let stopped = Instant::now();
    run.tx.send(AgentInput::Stop).await.expect("send");
    let io = run.io.clone();
    assert_eq!(run.close().await, AgentOutcome::Drained);
    assert!(
        stopped.elapsed() < Duration::from_secs(5),
        "interrupted at once"
    );

    let events = io.events();
    let action = events
        .iter()
        .find(|e| event_kind(e) == "action:run")
        .expect("the action");
    let result = events
        .iter()
        .find(|e| e.cause == Some(action.id))
        .expect("the command has a result");
    let (content, result_extras) = extras(result);
    assert_eq!(event_kind(result), "observation:error");
    assert_eq!(result_extras["error_id"], ACTION_INTERRUPTED);
    assert!(content.contains("did not finish in time"), "{content}");
    assert!(
        result.extra.contains_key("tool_call_metadata"),
        "linked to its call"
    );
    assert_eq!(last_state_reason(&events).0, "stopped");
}

#[tokio::test]
async fn a_drain_abandons_an_llm_call_in_flight_and_stores_nothing_of_it() {
    let ws = tempfile::tempdir().expect("workspace");
    let server = ScriptedLlm::start([ScriptedReply::Delayed {
        delay_ms: 10_000,
        reply: Box::new(bash("echo never >> counter")),
    }])
    .await
    .expect("server");
    let run = start(config(&server, ws.path()).await, first_message("slowly"));
    let deadline = Instant::now() + WAIT;
    while server.requests().is_empty() {
        assert!(Instant::now() < deadline, "the LLM was never called");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let drained = Instant::now();
    run.tx.send(drain()).await.expect("send");
    let io = run.io.clone();
    assert_eq!(run.close().await, AgentOutcome::Drained);
    assert!(
        drained.elapsed() < Duration::from_secs(2),
        "the call was not waited for: {:?}",
        drained.elapsed()
    );
    let events = io.events();
    assert_eq!(
        kinds(&events),
        ["state:running", "state:stopped"],
        "nothing of the abandoned call"
    );
    assert_eq!(counter_lines(ws.path()), 0);
}

/// The events of a run killed while its command ran: the action stored, no result. The
/// kill comes once the workspace holds `lines` lines of `counter`.
async fn history_with_a_lost_command(
    server: &ScriptedLlm,
    workspace: &std::path::Path,
    lines: usize,
) -> Vec<Event> {
    let run = start(config(server, workspace).await, first_message("count"));
    run.wait_for("the command", |events| {
        events.iter().any(|e| event_kind(e) == "action:run")
    })
    .await;
    let deadline = Instant::now() + WAIT;
    while counter_lines(workspace) < lines {
        assert!(Instant::now() < deadline, "the command never wrote");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // As if the server died: no drain, no stop, nothing more stored.
    run.task.abort();
    let mut history = first_message("count");
    history.extend(run.io.events());
    history
}

#[tokio::test]
async fn a_resumed_run_records_the_lost_result_then_goes_on_without_a_message() {
    let ws = tempfile::tempdir().expect("workspace");
    let server = ScriptedLlm::start([bash("echo step >> counter; sleep 30")])
        .await
        .expect("server");
    let history = history_with_a_lost_command(&server, ws.path(), 1).await;
    let lost = history
        .iter()
        .find(|e| event_kind(e) == "action:run")
        .expect("the action")
        .clone();

    // On the new server: the LLM is asked at once (it answers `finish`).
    let mut resumed = config(&server, ws.path()).await;
    resumed.resume_work = true;
    let run = start(resumed, history);
    run.wait_for_state("finished", 1).await;
    let io = run.io.clone();
    assert_eq!(run.close().await, AgentOutcome::Finished);

    let events = io.events();
    let first = &events[0];
    assert_eq!(
        event_kind(first),
        "observation:error",
        "{:#?}",
        kinds(&events)
    );
    assert_eq!(first.cause, Some(lost.id));
    assert_eq!(extras(first).1["error_id"], ACTION_INTERRUPTED);
    assert!(
        !kinds(&events).contains(&"action:run".to_owned()),
        "the command is not run again: {:#?}",
        kinds(&events)
    );
    assert_eq!(counter_lines(ws.path()), 1);
    // The LLM saw the loss as the call's result.
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    let results = tool_results(&requests[1]);
    assert_eq!(results.len(), 1, "{results:?}");
    assert!(
        results[0].1.contains("may or may not have run"),
        "{results:?}"
    );
}

#[tokio::test]
async fn a_run_started_for_the_user_records_the_lost_result_and_waits() {
    let ws = tempfile::tempdir().expect("workspace");
    let server = ScriptedLlm::start([bash("sleep 30")])
        .await
        .expect("server");
    let history = history_with_a_lost_command(&server, ws.path(), 0).await;
    let run = start(config(&server, ws.path()).await, history);
    run.wait_for("the lost result", |events| {
        events.iter().any(|e| event_kind(e) == "observation:error")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        server.requests().len(),
        1,
        "no LLM call until the user speaks"
    );
    assert_eq!(run.close().await, AgentOutcome::AwaitingInput);
}

#[tokio::test]
async fn an_action_awaiting_confirmation_is_asked_about_again_by_the_next_run() {
    let ws = tempfile::tempdir().expect("workspace");
    let server = ScriptedLlm::start([bash("echo yes > confirmed.txt")])
        .await
        .expect("server");
    let mut asking = config(&server, ws.path()).await;
    asking.confirmation_mode = true;
    let first = start(asking.clone(), first_message("write it"));
    first.wait_for_state("awaiting_user_confirmation", 1).await;
    let mut history = first_message("write it");
    history.extend(first.io.events());
    // The server ends (a restart, or a move to another server) before the user decides.
    assert_eq!(first.close().await, AgentOutcome::AwaitingInput);

    let second = start(asking, history);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(second.io.events().is_empty(), "it waits for the decision");
    second.tx.send(AgentInput::Confirm).await.expect("send");
    second.wait_for_state("finished", 1).await;
    let io = second.io.clone();
    assert_eq!(second.close().await, AgentOutcome::Finished);

    let events = io.events();
    assert_eq!(
        kinds(&events)[..3],
        ["action:run", "state:running", "observation:run"],
        "{:#?}",
        kinds(&events)
    );
    assert_eq!(args(&events[0])["confirmation_state"], "confirmed");
    assert_eq!(
        std::fs::read_to_string(ws.path().join("confirmed.txt"))
            .expect("the confirmed command ran")
            .trim(),
        "yes"
    );
    assert_eq!(server.requests().len(), 2, "one call before, one after");
}
