//! Handover on SIGTERM: from the signal to a replica that runs conversations until each of
//! them takes its next step on another replica (see `docs/cluster.md`, "Handover at
//! shutdown").
//!
//! A replica being replaced (a rolling deploy, a scale-down) gets SIGTERM. It stops
//! admitting work, drains every running agent at its next step boundary (an LLM call in
//! flight is abandoned) with a `stopped` state, releases the leases and sends `take_over`
//! for all of them at once to the live replicas. Each taker stores a status event
//! (`agent_state_changed`, `reason` "Moved to another server: ...", the state before the
//! stop) and the agent goes on with its task without a user message. What a user sees is
//! the pause in the work; this measures it from the signal, with many conversations
//! moving at once, which is what a deploy does.
//!
//! Set-up: the conversations are started through the victim (which then owns them; checked
//! in Redis as the other measurements do), the fake LLM answering `think` in
//! [`ANSWER_DELAY`] with a budget that outlasts the run, so every agent is mid-task. Each
//! conversation has one WebSocket watcher on a survivor (round-robin over both), connected
//! right after the conversation was created, replaying from the first event
//! (`latest_event_id=-1`) and read without pause until the end, so no event is missed and
//! none waits in a socket buffer.
//!
//! Once every agent is mid-task, the victim gets SIGTERM. For each conversation its
//! watcher notes, as the times the bench read the frames:
//!
//! - the victim's `stopped` state (the drain);
//! - the handover's status event;
//! - the first agent action stored after it: the next step, on the new owner, the figure
//!   the target holds. It includes one fake LLM answer ([`ANSWER_DELAY`]): the resumed
//!   agent asks the LLM before it acts.
//!
//! A conversation without both the status event and a next step within
//! [`HANDOVER_TIMEOUT`] is a failure, reported with what its watcher saw (e.g. a takeover
//! after the lease ran out instead of a handover, or a handover to a waiting agent). The
//! victim's exit is timed too (polled every 5 ms by the server module). The moment of the
//! signal is taken just before the `kill` command starts, so every figure includes the
//! few ms that command takes, never less.
//!
//! Afterwards the fake LLM's budget is spent and every conversation stopped through a
//! survivor. The victim's slot stays empty (the handover is the section's last
//! measurement).

mod watch;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde::Serialize;
use tokio::sync::mpsc;

use super::Deployment;
use super::delivery::owner_index;
use super::redis::Redis;
use super::replicas::{NAMES, Replicas};
use super::takeover::millis;
use crate::bench::agent::api;
use crate::bench::agent::fake_llm::FakeLlm;
use crate::bench::agent::watcher;
use crate::bench::client::HttpConn;
use crate::bench::stats::DelaySummary;
use watch::{Phases, Watched, lock};

/// How long the fake LLM takes per answer: each agent takes about ten steps a second.
const ANSWER_DELAY: Duration = Duration::from_millis(100);
/// `think` answers for all conversations together, far more than the run uses.
const THINK_BUDGET: u64 = 1_000_000;
/// The longest the set-up may take until every agent is mid-task.
const SETUP_TIMEOUT: Duration = Duration::from_secs(120);
/// The longest a conversation may take from the signal to its next step before it counts
/// as a failure (well past a lease, so a takeover instead of a handover shows as such).
const HANDOVER_TIMEOUT: Duration = Duration::from_secs(30);

/// What the handover measurement reports.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Handover {
    /// The replica that got SIGTERM.
    pub stopped_replica: String,
    /// Running conversations on it at the signal.
    pub conversations: usize,
    pub llm_answer_ms: u64,
    /// Signal to the victim's `stopped` state at the watchers.
    pub drained: DelaySummary,
    /// Signal to the handover's status event at the watchers; its count is how many
    /// conversations were handed over.
    pub status_event: DelaySummary,
    /// The status event's own `timestamp` to its read at the watcher (the delivery).
    pub status_event_lag: DelaySummary,
    /// Signal to the first agent action after the status event: the target's figure.
    pub next_step: DelaySummary,
    /// The next step's own `timestamp` to its read at the watcher (the delivery).
    pub next_step_lag: DelaySummary,
    /// Signal to the victim's exit.
    pub exit_ms: f64,
    /// How many conversations each replica runs afterwards (`none`: no owner).
    pub resumed_on: BTreeMap<String, usize>,
    /// Conversations without a next step within the timeout.
    pub failures: usize,
    /// The first few failures, with what their watchers saw.
    pub failure_examples: Vec<String>,
}

impl Handover {
    /// How many conversations were handed over (their watchers saw the status event).
    pub fn handed_over(&self) -> usize {
        self.status_event.deliveries
    }

    /// The next step's p99, unless a conversation failed or none was measured.
    pub fn clean_p99_ms(&self) -> Option<f64> {
        if self.failures > 0 {
            return None;
        }
        self.next_step.measured_p99()
    }
}

/// Stops replica `victim` with SIGTERM while it runs `conversations` working agents (see
/// the module doc); the victim's slot stays empty.
pub async fn measure(
    replicas: &mut Replicas,
    deployment: &Deployment,
    redis: &mut Redis,
    llm: &FakeLlm,
    victim: usize,
    conversations: usize,
) -> Result<Handover> {
    ensure!(conversations > 0, "no conversations to hand over");
    let survivors = (0..NAMES.len())
        .filter(|index| *index != victim)
        .map(|index| Ok(replicas.get(index)?.addr()))
        .collect::<Result<Vec<_>>>()?;
    let cleanup_on = *survivors
        .first()
        .context("no replica survives the victim")?;
    llm.set_answer_delay(ANSWER_DELAY);
    llm.set_think_budget(THINK_BUDGET);
    let measured = run(
        replicas,
        deployment,
        redis,
        victim,
        conversations,
        &survivors,
    )
    .await;
    llm.set_think_budget(0);
    let (handover, ids) = measured?;
    let step = &handover.next_step;
    eprintln!(
        "    {} of {} handed over from {} ({:?}): next step p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms; it exited after {:.0} ms",
        handover.handed_over(),
        handover.conversations,
        handover.stopped_replica,
        handover.resumed_on,
        step.p50_ms,
        step.p99_ms,
        step.max_ms,
        handover.exit_ms
    );
    for failure in &handover.failure_examples {
        eprintln!("    failed: {failure}");
    }
    for id in &ids {
        api::stop_conversation(cleanup_on, id)
            .await
            .context("stopping the conversations after the handover")?;
    }
    Ok(handover)
}

async fn run(
    replicas: &mut Replicas,
    deployment: &Deployment,
    redis: &mut Redis,
    victim: usize,
    conversations: usize,
    survivors: &[SocketAddr],
) -> Result<(Handover, Vec<String>)> {
    let victim_name = replicas.get(victim)?.name;
    let (ready, mut readiness) = mpsc::unbounded_channel();
    let mut watched = Vec::with_capacity(conversations);
    let mut conn = HttpConn::connect(replicas.get(victim)?.addr()).await?;
    for (index, watched_on) in survivors.iter().cycle().take(conversations).enumerate() {
        let id = api::create_conversation(&mut conn)
            .await
            .with_context(|| format!("creating conversation {} of {conversations}", index + 1))?;
        let socket = watcher::connect(*watched_on, &id).await?;
        watched.push(Watched::start(id, socket, ready.clone()));
    }
    drop(ready);
    let setup_deadline = Instant::now() + SETUP_TIMEOUT;
    for _ in 0..conversations {
        match tokio::time::timeout_at(setup_deadline.into(), readiness.recv()).await {
            Ok(Some(mid_turn)) => mid_turn?,
            Ok(None) => bail!("the watchers ended before every agent was mid-task"),
            Err(_) => bail!("not every agent was mid-task within {SETUP_TIMEOUT:?}"),
        }
    }
    for conversation in &watched {
        ensure!(
            owner_index(replicas, deployment, redis, &conversation.id)? == victim,
            "conversation {} started through replica {victim_name} runs on another one",
            conversation.id
        );
    }

    let stopping = replicas.take(victim)?;
    let signalled = Instant::now();
    let all_watched = futures_util::future::join_all(watched.iter_mut().map(|w| &mut w.task));
    let (exited, _) = tokio::join!(
        async { stopping.stop().await.map(|()| signalled.elapsed()) },
        tokio::time::timeout_at((signalled + HANDOVER_TIMEOUT).into(), all_watched),
    );
    let exit_ms = millis(exited?);

    let mut phases = Phases::default();
    let mut resumed_on = BTreeMap::<String, usize>::new();
    for conversation in &watched {
        conversation.task.abort();
        phases.add(&conversation.id, &lock(&conversation.trace), signalled);
        let owner = redis.get(&deployment.owner_key(&conversation.id))?;
        let name = owner
            .and_then(|owner| replicas.index_of(&owner))
            .and_then(|index| NAMES.get(index).copied())
            .unwrap_or("none");
        *resumed_on.entry(name.to_owned()).or_default() += 1;
    }
    let handover = phases.summarise(Handover {
        stopped_replica: victim_name.to_owned(),
        conversations,
        llm_answer_ms: u64::try_from(ANSWER_DELAY.as_millis()).unwrap_or(u64::MAX),
        exit_ms,
        resumed_on,
        ..Handover::default()
    });
    let ids = watched.iter().map(|w| w.id.clone()).collect();
    Ok((handover, ids))
}

/// A handover of 100 conversations whose next step had p99 `next_step_p99_ms`, for the
/// report's and the targets' tests.
#[cfg(test)]
pub fn example(next_step_p99_ms: f64) -> Handover {
    let summary = |p50_ms, p99_ms, max_ms| DelaySummary {
        deliveries: 100,
        p50_ms,
        p99_ms,
        max_ms,
    };
    Handover {
        stopped_replica: "a".to_owned(),
        conversations: 100,
        llm_answer_ms: 100,
        drained: summary(120.0, 180.0, 190.0),
        status_event: summary(300.0, 450.0, 460.0),
        status_event_lag: summary(2.0, 5.0, 6.0),
        next_step: summary(420.0, next_step_p99_ms, next_step_p99_ms + 10.0),
        next_step_lag: summary(1.5, 4.0, 4.5),
        exit_ms: 700.0,
        resumed_on: BTreeMap::from([("b".to_owned(), 50), ("c".to_owned(), 50)]),
        failures: 0,
        failure_examples: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clean_run_reports_its_p99() {
        assert_eq!(example(850.0).clean_p99_ms(), Some(850.0));
        let mut empty = example(0.0);
        empty.next_step = DelaySummary::default();
        assert_eq!(empty.clean_p99_ms(), None, "nothing measured");
    }
}
