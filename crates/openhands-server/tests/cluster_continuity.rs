//! Work that keeps going across replica loss and deploys, on real server processes (see
//! `cluster_support`): a numbered-step task (each step appends its number to `steps.log` in
//! the workspace) must finish without any user message whatever happens to the replica
//! running it, with every step's action stored once and every command run once, except a
//! command reported interrupted, which ran at most once. Watchers follow the conversation
//! across replicas and must see exactly the stored events.

mod cluster_support;
use cluster_support::*;

use openhands_runtime::testing::{ScriptedLlm, numbered_steps};
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

const LEAVING: &str = "This server is shutting down";
const HANDED_OVER: &str = "Moved to another server";
const RESUMED: &str = "Resumed on another server";

/// The ports of the replicas a watcher may reconnect to (a replica leaves the list before
/// it is stopped, as it leaves a load balancer's pool).
#[derive(Clone, Default)]
struct Directory(Arc<Mutex<Vec<u16>>>);

impl Directory {
    fn of(cluster: &Cluster) -> Self {
        let ports = cluster.replicas.iter().map(|r| r.port).collect();
        Self(Arc::new(Mutex::new(ports)))
    }

    fn ports(&self) -> std::sync::MutexGuard<'_, Vec<u16>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn remove(&self, port: u16) {
        self.ports().retain(|p| *p != port);
    }

    fn add(&self, port: u16) {
        self.ports().push(port);
    }

    /// A listed port other than `not`, spread by `seed`.
    fn other_than(&self, not: u16, seed: usize) -> Option<u16> {
        let ports: Vec<u16> = self.ports().iter().copied().filter(|p| *p != not).collect();
        (!ports.is_empty()).then(|| ports[seed % ports.len()])
    }
}

/// What a watcher saw, over all its sockets.
struct Followed {
    seen: Vec<Value>,
    closes: Vec<Option<CloseCode>>,
}

async fn socket_at(port: u16, id: &str, latest: i64) -> Option<Socket> {
    let url = format!(
        "ws://127.0.0.1:{port}/api/conversations/{id}/events/socket?latest_event_id={latest}"
    );
    tokio_tungstenite::connect_async(url)
        .await
        .ok()
        .map(|(socket, _)| socket)
}

/// Watches conversation `id` from `port` until the agent finishes; when its server closes
/// the socket it reconnects to another listed replica from the last event it saw, as the
/// web app does.
async fn follow(id: String, directory: Directory, mut port: u16, seed: usize) -> Followed {
    let mut followed = Followed {
        seen: Vec::new(),
        closes: Vec::new(),
    };
    let mut latest = -1;
    let mut socket = socket_at(port, &id, latest).await.expect("first connect");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        match read_event(&mut socket).await {
            Received::Event(event) => {
                latest = event["id"].as_i64().expect("id");
                let finished = is_state(&event, "finished");
                followed.seen.push(event);
                if finished {
                    return followed;
                }
            }
            Received::Closed(code) => {
                followed.closes.push(code);
                loop {
                    assert!(
                        Instant::now() < deadline,
                        "{id}: no replica to reconnect to"
                    );
                    if let Some(next) = directory.other_than(port, seed)
                        && let Some(next_socket) = socket_at(next, &id, latest).await
                    {
                        port = next;
                        socket = next_socket;
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

/// Polls the stored events (through replica `via`) until `condition` holds; returns them.
async fn wait_stored(
    cluster: &Cluster,
    via: usize,
    id: &str,
    what: &str,
    condition: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let stored = cluster.stored_events(via, id).await;
        if condition(&stored) {
            return stored;
        }
        assert!(Instant::now() < deadline, "{what}; stored: {stored:#?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn reason_starts(event: &Value, prefix: &str) -> bool {
    event["extras"]["reason"]
        .as_str()
        .is_some_and(|r| r.starts_with(prefix))
}

fn runs(events: &[Value]) -> usize {
    events.iter().filter(|e| e["action"] == "run").count()
}

/// Same ids, same content, in the same order, up to the `finished` the watcher stopped at
/// (an idle conversation still moves at a later restart: `stopped`, then the handover).
fn assert_seen_is_stored(followed: &Followed, stored: &[Value]) {
    let seen: Vec<i64> = followed
        .seen
        .iter()
        .filter_map(|e| e["id"].as_i64())
        .collect();
    let kept: Vec<i64> = stored.iter().filter_map(|e| e["id"].as_i64()).collect();
    assert!(seen.len() <= kept.len(), "{seen:?} / {kept:?}");
    assert_eq!(
        seen,
        kept[..seen.len()],
        "the watcher saw every stored event once"
    );
    assert_eq!(followed.seen, stored[..seen.len()]);
}

#[tokio::test]
async fn killing_the_owner_mid_task_lets_another_replica_finish_it_without_a_message() {
    const STEPS: usize = 8;
    let llm = ScriptedLlm::with_policy(numbered_steps(STEPS, 0.4))
        .await
        .expect("LLM");
    let mut cluster = Cluster::start(3, &llm).await;
    let directory = Directory::of(&cluster);
    let id = cluster.start_conversation(0, "count to eight").await;
    let watcher = tokio::spawn(follow(
        id.clone(),
        directory.clone(),
        cluster.replicas[1].port,
        1,
    ));
    wait_stored(&cluster, 1, &id, "three steps", |e| runs(e) >= 3).await;

    directory.remove(cluster.replicas[0].port);
    cluster.replicas[0].kill();
    let killed = Instant::now();
    let followed = watcher.await.expect("watcher");
    let finished_after = killed.elapsed();

    let stored = cluster.stored_events(2, &id).await;
    assert_exactly_once(&stored, &cluster.step_log(&id), STEPS);
    assert_seen_is_stored(&followed, &stored);
    let resumed = stored
        .iter()
        .find(|e| reason_starts(e, RESUMED))
        .expect("a takeover");
    assert_eq!(resumed["extras"]["agent_state"], "running");
    assert!(
        !stored
            .iter()
            .any(|e| e["source"] == "user" && e["id"].as_i64() > Some(0)),
        "no user message after the first"
    );
    eprintln!(
        "finished {finished_after:?} after the kill; interrupted steps {:?}",
        interrupted_steps(&stored)
    );
}

#[tokio::test]
async fn sigterm_hands_the_task_over_at_once_and_tells_watchers_to_reconnect() {
    const STEPS: usize = 8;
    let llm = ScriptedLlm::with_policy(numbered_steps(STEPS, 0.3))
        .await
        .expect("LLM");
    let mut cluster = Cluster::start(3, &llm).await;
    let directory = Directory::of(&cluster);
    let id = cluster.start_conversation(0, "count to eight").await;
    // The watcher is on the replica that will stop.
    let watcher = tokio::spawn(follow(
        id.clone(),
        directory.clone(),
        cluster.replicas[0].port,
        0,
    ));
    wait_stored(&cluster, 1, &id, "two steps", |e| runs(e) >= 2).await;

    directory.remove(cluster.replicas[0].port);
    let signalled = Instant::now();
    cluster.replicas[0].terminate();
    let stored = wait_stored(&cluster, 1, &id, "the next step elsewhere", |events| {
        events
            .iter()
            .position(|e| reason_starts(e, HANDED_OVER))
            .is_some_and(|at| events[at..].iter().any(|e| e["action"] == "run"))
    })
    .await;
    let next_step_after = signalled.elapsed();
    assert!(
        next_step_after < Duration::from_secs(2),
        "the next step came {next_step_after:?} after SIGTERM"
    );
    let status = cluster.replicas[0].exit_status(WAIT).await;
    assert!(status.success(), "a clean exit: {status}");
    let exited_after = signalled.elapsed();

    let leaving = stored
        .iter()
        .find(|e| reason_starts(e, LEAVING))
        .expect("the leaving replica said so");
    assert_eq!(leaving["extras"]["agent_state"], "stopped");
    let handed = stored
        .iter()
        .find(|e| reason_starts(e, HANDED_OVER))
        .expect("the handover");
    assert_eq!(handed["extras"]["agent_state"], "running");

    let followed = watcher.await.expect("watcher");
    assert_eq!(
        followed.closes.first(),
        Some(&Some(CloseCode::Restart)),
        "the stopping replica closed the socket with 1012"
    );
    let stored = cluster.stored_events(1, &id).await;
    assert!(is_state(stored.last().expect("events"), "finished"));
    assert_exactly_once(&stored, &cluster.step_log(&id), STEPS);
    assert_seen_is_stored(&followed, &stored);
    eprintln!(
        "next step {next_step_after:?} after SIGTERM, exit after {exited_after:?}; interrupted {:?}",
        interrupted_steps(&stored)
    );
}

#[tokio::test]
async fn a_rolling_restart_of_every_replica_loses_no_task_no_event_and_runs_no_step_twice() {
    const STEPS: usize = 24;
    const CONVERSATIONS: usize = 10;
    let llm = ScriptedLlm::with_policy(numbered_steps(STEPS, 0.25))
        .await
        .expect("LLM");
    let mut cluster = Cluster::start(3, &llm).await;
    let directory = Directory::of(&cluster);
    let mut ids = Vec::new();
    let mut watchers = Vec::new();
    for n in 0..CONVERSATIONS {
        let id = cluster
            .start_conversation(n % 3, &format!("count, {n}"))
            .await;
        let port = cluster.replicas[(n + 1) % 3].port;
        watchers.push(tokio::spawn(follow(id.clone(), directory.clone(), port, n)));
        ids.push(id);
    }

    // Each original replica in turn: out of the pool, SIGTERM, exit, a new one in.
    for old in 0..3 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let port = cluster.replicas[old].port;
        directory.remove(port);
        cluster.replicas[old].terminate();
        let status = cluster.replicas[old].exit_status(WAIT).await;
        assert!(status.success(), "replica {old} exited cleanly: {status}");
        let new = cluster.add_replica().await;
        directory.add(cluster.replicas[new].port);
    }

    let restarted = Instant::now();
    let mut handovers = 0;
    for (id, watcher) in ids.iter().zip(watchers) {
        let followed = watcher.await.expect("watcher");
        let stored = cluster.stored_events(3, id).await;
        assert!(is_state(stored.last().expect("events"), "finished"), "{id}");
        assert_exactly_once(&stored, &cluster.step_log(id), STEPS);
        assert_seen_is_stored(&followed, &stored);
        handovers += stored
            .iter()
            .filter(|e| reason_starts(e, HANDED_OVER) && e["extras"]["agent_state"] == "running")
            .count();
    }
    assert!(
        handovers >= 3,
        "the restarts moved working conversations ({handovers} handovers)"
    );
    eprintln!(
        "{handovers} working conversations handed over; all finished {:?} after the last restart",
        restarted.elapsed()
    );
}
