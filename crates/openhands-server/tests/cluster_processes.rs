//! Three real server processes in SaaS mode (see `cluster_support`). The owner of a
//! conversation is killed with SIGKILL in the middle of a turn: another replica resumes the
//! conversation within the lease time, and a watcher that reconnects to a surviving replica
//! with `latest_event_id` has, over both of its sockets, seen exactly the stored events: ids
//! strictly increasing, none missing, none twice.

mod cluster_support;
use cluster_support::*;

use openhands_runtime::testing::{ScriptedLlm, ScriptedReply};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

#[tokio::test]
async fn killing_the_owner_mid_turn_moves_the_conversation_and_a_reconnecting_watcher_misses_nothing()
 {
    let llm = ScriptedLlm::start(vec![
        // First turn.
        ScriptedReply::tool_call("finish", json!({"message": "First done."})),
        // Second turn: a long command, during which the owner dies.
        ScriptedReply::tool_call("execute_bash", json!({"command": "sleep 20"})),
        // Anything after the takeover: `finish` (also what the server answers when the
        // script is used up).
    ])
    .await
    .expect("scripted LLM");
    let mut cluster = Cluster::start(3, &llm).await;
    let http = cluster.http.clone();

    // Started through A, so A owns it; the watcher is on A too.
    let id = cluster.start_conversation(0, "first").await;
    let mut seen: Vec<Value> = Vec::new();
    let mut watcher = cluster.replicas[0].socket(&id, -1).await;
    loop {
        let event = next_event(&mut watcher).await.expect("A is alive");
        let finished = is_state(&event, "finished");
        seen.push(event);
        if finished {
            break;
        }
    }

    // Second turn, sent through C (routed to A); A is killed once the command runs.
    let mut sender = cluster.replicas[2].socket(&id, i64::MAX).await;
    send_message(&mut sender, "second").await;
    loop {
        let event = next_event(&mut watcher).await.expect("A is alive");
        let running = event["action"] == "run";
        seen.push(event);
        if running {
            break;
        }
    }
    cluster.replicas[0].kill();
    let killed = Instant::now();
    let seen_before_kill = seen.len();
    // Whatever A's socket still delivers, then it closes.
    while let Some(event) = next_event(&mut watcher).await {
        seen.push(event);
    }

    // B or C claims it after the lease ran out (plus at most one sweep), resumes it and
    // stores a status event saying so.
    let deadline = killed + Duration::from_millis(3 * LEASE_MS) + Duration::from_secs(5);
    let resumed_after = loop {
        let stored = cluster.stored_events(1, &id).await;
        let resumed = stored.iter().any(|e| {
            e["observation"] == "agent_state_changed"
                && e["extras"]["reason"]
                    .as_str()
                    .is_some_and(|r| r.starts_with("Resumed on another server"))
        });
        if resumed {
            break killed.elapsed();
        }
        assert!(
            Instant::now() < deadline,
            "no replica resumed the conversation; stored: {stored:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        resumed_after < Duration::from_millis(2 * LEASE_MS) + Duration::from_secs(2),
        "resumed {resumed_after:?} after the kill, lease {LEASE_MS} ms"
    );

    // The watcher reconnects to C from the last event it saw, and drives a third turn.
    let last_seen = seen.last().and_then(|e| e["id"].as_i64()).expect("ids");
    let mut watcher = cluster.replicas[2].socket(&id, last_seen).await;
    send_message(&mut watcher, "third").await;
    let mut third_sent = false;
    loop {
        let event = next_event(&mut watcher).await.expect("C is alive");
        if event["action"] == "message" && event["args"]["content"] == "third" {
            third_sent = true;
        }
        let done = third_sent && is_state(&event, "finished");
        seen.push(event);
        if done {
            break;
        }
    }

    // Seen over both sockets == stored: every id once, in order, with the same content.
    let stored = cluster.stored_events(2, &id).await;
    // The command that was running when A died got a result saying so; the agent went on
    // (to `finish`) without waiting for the third message.
    assert_eq!(interrupted_steps(&stored).len(), 0, "not a numbered step");
    let lost = stored
        .iter()
        .find(|e| e["extras"]["error_id"] == "AGENT_ERROR$ACTION_INTERRUPTED")
        .expect("the lost command's result");
    let sleep = stored
        .iter()
        .find(|e| e["action"] == "run")
        .expect("the command");
    assert_eq!(lost["cause"], sleep["id"]);
    let resumed = stored
        .iter()
        .find(|e| {
            e["extras"]["reason"]
                .as_str()
                .is_some_and(|r| r.starts_with("Resumed"))
        })
        .expect("the takeover");
    assert_eq!(
        resumed["extras"]["agent_state"], "running",
        "it goes on working"
    );
    let ids: Vec<i64> = seen.iter().filter_map(|e| e["id"].as_i64()).collect();
    let stored_ids: Vec<i64> = stored.iter().filter_map(|e| e["id"].as_i64()).collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "strictly increasing: {ids:?}"
    );
    assert_eq!(ids, stored_ids, "none missing, none twice");
    assert_eq!(seen, stored);
    eprintln!(
        "resumed {resumed_after:?} after the kill; {} events, {} seen before the kill",
        stored.len(),
        seen_before_kill
    );
    assert_eq!(
        stored_ids,
        (0..stored_ids.len() as i64).collect::<Vec<_>>(),
        "the store has no gap"
    );

    // Every surviving replica lists it as running (the owner publishes a status change at
    // its next upkeep, so a listing may lag by one renew interval).
    for replica in &cluster.replicas[1..] {
        let deadline = Instant::now() + WAIT;
        loop {
            let info: Value = http
                .get(replica.url(&format!("/api/conversations/{id}")))
                .send()
                .await
                .expect("info")
                .json()
                .await
                .expect("json");
            if info["status"] == "RUNNING" {
                break;
            }
            assert!(Instant::now() < deadline, "{}: {info}", replica.name);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
