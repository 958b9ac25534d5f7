//! Takeover time: from `kill -9` of the replica that runs a conversation until the
//! conversation runs on another replica, with the default cluster timings
//! (`cluster.lease_ms` 3000, `cluster.renew_interval_ms` 250; see `docs/cluster.md`,
//! "Takeover").
//!
//! Each run starts a conversation through the victim (which then owns it) with the fake
//! LLM answering `think` slowly, so a turn is in progress, and watches it from a
//! surviving replica. Once the turn is under way the victim gets SIGKILL: no shutdown, no
//! handover, its lease is left to expire. Two moments are timed from the kill:
//!
//! - the watcher receiving the takeover's status event (`agent_state_changed`, `reason`
//!   "Resumed on another server: ..."), which the new owner stores and publishes before it
//!   starts the run;
//! - `GET /api/conversations/{id}` on the other survivor answering `RUNNING` from the new
//!   owner. Until the old lease expires that route still answers the dead owner's
//!   `RUNNING`, so only an answer to a request sent after the status event arrived, or
//!   after the route answered something else (the lease expired, or the new owner is
//!   still `STARTING`), counts.
//!
//! The runs kill each replica in turn; a killed one is restarted (as a new replica)
//! before the next run, and every run's conversation is stopped after it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use serde::Serialize;

use super::Deployment;
use super::delivery::owner_index;
use super::redis::Redis;
use super::replicas::{NAMES, Replicas};
use crate::bench::agent::api;
use crate::bench::agent::events::Frame;
use crate::bench::agent::fake_llm::FakeLlm;
use crate::bench::agent::watcher::{self, Incoming, Socket};
use crate::bench::client::HttpConn;
use crate::bench::stats;

/// The server defaults the figure is about (`docs/configuration.md`); the replicas are
/// not given any cluster timing, these only label the report.
pub const DEFAULT_LEASE_MS: u64 = 3_000;
pub const DEFAULT_RENEW_INTERVAL_MS: u64 = 250;
/// The start of the takeover status event's `reason`.
pub(super) const RESUMED_REASON: &str = "Resumed on another server";
/// How long the fake LLM takes per answer while the victim runs the turn, and how many
/// `think` answers it has (far more than a run needs: the turn is still going on when
/// the victim dies).
const TURN_ANSWER_DELAY: Duration = Duration::from_millis(100);
const TURN_THINK_CALLS: u64 = 10_000;
/// Events after the turn's `running` state before the kill: the agent is mid-turn.
const MID_TURN_EVENTS: usize = 4;
/// How often the survivor's conversation route is polled (the resolution of that figure).
const POLL_EVERY: Duration = Duration::from_millis(20);
/// The longest the turn may take to get under way.
const SETUP_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest a takeover may take before the run fails.
const TAKEOVER_TIMEOUT: Duration = Duration::from_secs(30);

/// One kill and what followed it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TakeoverRun {
    /// The replica killed (it owned the conversation).
    pub killed: String,
    /// The replica that took the conversation over.
    pub resumed_on: String,
    /// Kill to the status event at a watcher on a survivor.
    pub status_event_ms: f64,
    /// Kill to `GET /api/conversations/{id}` on a survivor answering the new owner's
    /// `RUNNING`.
    pub running_ms: f64,
}

impl TakeoverRun {
    /// When both signs of the takeover were seen.
    pub fn complete_ms(&self) -> f64 {
        self.status_event_ms.max(self.running_ms)
    }
}

/// Median and maximum of one figure over the runs, in ms.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Spread {
    pub median_ms: f64,
    pub max_ms: f64,
}

impl Spread {
    fn of(values: &[f64]) -> Self {
        Self {
            median_ms: round(stats::median(values).unwrap_or(0.0)),
            max_ms: round(values.iter().copied().fold(0.0, f64::max)),
        }
    }
}

/// What the takeover measurement reports.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Takeover {
    pub lease_ms: u64,
    pub renew_interval_ms: u64,
    pub runs: Vec<TakeoverRun>,
    pub status_event: Spread,
    pub running: Spread,
    /// Kill to both signs seen, the figure the target holds.
    pub complete: Spread,
}

impl Takeover {
    pub fn of(runs: Vec<TakeoverRun>) -> Self {
        let figure =
            |f: fn(&TakeoverRun) -> f64| Spread::of(&runs.iter().map(f).collect::<Vec<_>>());
        Self {
            lease_ms: DEFAULT_LEASE_MS,
            renew_interval_ms: DEFAULT_RENEW_INTERVAL_MS,
            status_event: figure(|run| run.status_event_ms),
            running: figure(|run| run.running_ms),
            complete: figure(TakeoverRun::complete_ms),
            runs,
        }
    }

    /// The worst run's complete takeover, unless nothing was measured.
    pub fn worst_ms(&self) -> Option<f64> {
        (!self.runs.is_empty()).then_some(self.complete.max_ms)
    }
}

/// `runs` kills, each of the next replica in turn.
pub async fn measure(
    replicas: &mut Replicas,
    deployment: &Deployment,
    redis: &mut Redis,
    llm: &FakeLlm,
    runs: usize,
) -> Result<Takeover> {
    ensure!(runs > 0, "no takeover runs");
    let mut measured = Vec::with_capacity(runs);
    for run in 0..runs {
        let victim = run % NAMES.len();
        let outcome = run_once(replicas, deployment, redis, llm, victim)
            .await
            .with_context(|| format!("takeover run {}", run + 1));
        llm.set_think_budget(0);
        let outcome = outcome?;
        eprintln!(
            "    run {}: killed {}, resumed on {}: status event after {:.0} ms, RUNNING after {:.0} ms",
            run + 1,
            outcome.killed,
            outcome.resumed_on,
            outcome.status_event_ms,
            outcome.running_ms
        );
        measured.push(outcome);
        replicas
            .restart(victim)
            .await
            .with_context(|| format!("restarting the replica killed in run {}", run + 1))?;
    }
    Ok(Takeover::of(measured))
}

async fn run_once(
    replicas: &mut Replicas,
    deployment: &Deployment,
    redis: &mut Redis,
    llm: &FakeLlm,
    victim: usize,
) -> Result<TakeoverRun> {
    let count = NAMES.len();
    let watched_on = replicas.get((victim + 1) % count)?.addr();
    let polled_on = replicas.get((victim + 2) % count)?.addr();
    let killed_name = replicas.get(victim)?.name.to_owned();

    llm.set_answer_delay(TURN_ANSWER_DELAY);
    llm.set_think_budget(TURN_THINK_CALLS);
    let id = api::create_conversation(&mut HttpConn::connect(replicas.get(victim)?.addr()).await?)
        .await
        .context("creating the conversation")?;
    let owner = owner_index(replicas, deployment, redis, &id)?;
    ensure!(
        owner == victim,
        "the conversation started through replica {killed_name} runs on another one"
    );
    let mut socket = watcher::connect(watched_on, &id).await?;
    tokio::time::timeout(SETUP_TIMEOUT, wait_mid_turn(&mut socket))
        .await
        .map_err(|_| anyhow!("the turn did not get under way within {SETUP_TIMEOUT:?}"))??;
    let mut poll = HttpConn::connect(polled_on).await?;

    let killed = replicas.kill(victim)?;
    let event_seen = AtomicBool::new(false);
    let both = async {
        tokio::try_join!(
            status_event(&mut socket, killed, &event_seen),
            running_again(&mut poll, &id, killed, &event_seen)
        )
    };
    let (status_event_ms, running_ms) = tokio::time::timeout(TAKEOVER_TIMEOUT, both)
        .await
        .map_err(|_| {
            anyhow!("no replica took the conversation over within {TAKEOVER_TIMEOUT:?}")
        })??;
    drop(socket);

    let successor = owner_index(replicas, deployment, redis, &id)?;
    let resumed_on = replicas.get(successor)?.name.to_owned();
    llm.set_think_budget(0);
    api::stop_conversation(polled_on, &id)
        .await
        .context("stopping the conversation after its takeover")?;
    Ok(TakeoverRun {
        killed: killed_name,
        resumed_on,
        status_event_ms,
        running_ms,
    })
}

/// Reads the watcher until the agent has reached `running` and [`MID_TURN_EVENTS`]
/// more events arrived.
pub(super) async fn wait_mid_turn(socket: &mut Socket) -> Result<()> {
    let mut after_running = None;
    loop {
        let event = match watcher::next(socket).await? {
            Incoming::Frame(_, Frame::Event(event)) => event,
            Incoming::Frame(_, Frame::Notice) => continue,
            Incoming::Frame(_, Frame::Error(message)) => {
                bail!("the watcher was refused: {message}")
            }
            Incoming::Closed(reason) => bail!("the watcher was closed before the turn: {reason}"),
        };
        if event.is_finished() || event.error_reason().is_some() {
            bail!("the turn ended before the kill (event {})", event.id);
        }
        match &mut after_running {
            None if event.agent_state.as_deref() == Some("running") => after_running = Some(0),
            Some(seen) => {
                *seen += 1;
                if *seen >= MID_TURN_EVENTS {
                    return Ok(());
                }
            }
            None => {}
        }
    }
}

/// Reads the watcher until the takeover's status event; ms since `killed`.
async fn status_event(socket: &mut Socket, killed: Instant, seen: &AtomicBool) -> Result<f64> {
    loop {
        match watcher::next(socket).await? {
            Incoming::Frame(_, Frame::Event(event)) => {
                if is_takeover(event.agent_state.as_deref(), event.reason.as_deref()) {
                    let elapsed = millis(killed.elapsed());
                    seen.store(true, Ordering::Release);
                    return Ok(elapsed);
                }
            }
            Incoming::Frame(_, Frame::Notice) => {}
            Incoming::Frame(_, Frame::Error(message)) => {
                bail!("the watcher was refused: {message}")
            }
            Incoming::Closed(reason) => {
                bail!("the survivor closed the watcher before the takeover: {reason}")
            }
        }
    }
}

/// Polls the conversation route until it answers the new owner's `RUNNING` (see the
/// module doc); ms since `killed`.
async fn running_again(
    conn: &mut HttpConn,
    id: &str,
    killed: Instant,
    event_seen: &AtomicBool,
) -> Result<f64> {
    let mut left_running = false;
    loop {
        let counts = left_running || event_seen.load(Ordering::Acquire);
        let status = api::conversation_status(conn, id).await?;
        if status != "RUNNING" {
            left_running = true;
        } else if counts {
            return Ok(millis(killed.elapsed()));
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// Whether a state change is the takeover's.
fn is_takeover(agent_state: Option<&str>, reason: Option<&str>) -> bool {
    is_move(agent_state, reason, RESUMED_REASON)
}

/// Whether a state change is the status event of a move (a takeover, a handover) whose
/// `reason` starts with `prefix`.
pub(super) fn is_move(agent_state: Option<&str>, reason: Option<&str>, prefix: &str) -> bool {
    agent_state.is_some() && reason.is_some_and(|reason| reason.starts_with(prefix))
}

pub(super) fn millis(duration: Duration) -> f64 {
    round(duration.as_secs_f64() * 1000.0)
}

/// To a tenth of a millisecond, for reports.
fn round(ms: f64) -> f64 {
    (ms * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(status_event_ms: f64, running_ms: f64) -> TakeoverRun {
        TakeoverRun {
            killed: "a".to_owned(),
            resumed_on: "b".to_owned(),
            status_event_ms,
            running_ms,
        }
    }

    #[test]
    fn runs_summarise_to_median_and_max() {
        let takeover = Takeover::of(vec![
            run(3_100.0, 3_150.0),
            run(2_400.0, 2_600.0),
            run(3_900.0, 3_850.0),
        ]);
        assert_eq!(takeover.lease_ms, 3_000);
        assert_eq!(
            takeover.status_event,
            Spread {
                median_ms: 3_100.0,
                max_ms: 3_900.0
            }
        );
        assert_eq!(
            takeover.running,
            Spread {
                median_ms: 3_150.0,
                max_ms: 3_850.0
            }
        );
        assert_eq!(takeover.complete.median_ms, 3_150.0);
        assert_eq!(takeover.worst_ms(), Some(3_900.0));
        assert_eq!(Takeover::of(Vec::new()).worst_ms(), None);
    }

    #[test]
    fn only_the_resumed_reason_is_a_takeover() {
        let resumed =
            "Resumed on another server: the server that ran this conversation stopped answering.";
        assert!(is_takeover(Some("awaiting_user_input"), Some(resumed)));
        assert!(!is_takeover(Some("running"), Some("")));
        assert!(!is_takeover(
            Some("running"),
            Some(
                "Moved to another server: the server that ran this conversation is shutting down."
            )
        ));
        assert!(!is_takeover(None, Some(resumed)));
    }

    #[test]
    fn durations_round_to_a_tenth_of_a_millisecond() {
        assert_eq!(millis(Duration::from_micros(3_123_456)), 3_123.5);
    }
}
