//! Fan-out delay: how long an event takes from creation to every watcher.
//!
//! One conversation, many watchers of it (many tabs or clients on one task).
//! After its first task has finished and every watcher has caught up on the
//! replay, the fake LLM is given a budget of `think` calls and a user message goes
//! in through `POST .../message` (a browser would send it on its socket; the
//! watchers' sockets are not split into halves for that, as the lock between the
//! halves was a twentieth of the bench's CPU). Each watcher then records, for every live event, its receive
//! time minus the event's timestamp, until it sees the `finished` state of the
//! new task. The timestamp is taken when the event is created, just before it is
//! stored, so the delay includes storing as well as broadcasting and sending.
//! "Receive time" is when the frame's bytes arrived at the watcher's socket (the
//! kernel's stamp): the bench reads 1,000 sockets on two threads of idle priority
//! ([`super::watcher_threads`], so that the servers keep the cores while they
//! write), and the time it reads the last of them adds its own queue, which a
//! browser on its own machine would not have. That later figure is reported too,
//! as read by the bench.
//!
//! The fake LLM answers after [`LLM_ANSWER_DELAY`] here, not at once: with instant
//! answers one conversation makes ~1,000 events/s, and 1,000 watchers would need a
//! million WebSocket frames per second from two cores shared with the load
//! generator, so the figure would measure a saturated machine instead of the
//! delivery path. Real LLM calls take hundreds of milliseconds; 10 ms is still
//! far faster than any of them.
//!
//! The watchers ([`Audience`]) may be spread over several servers: the cluster
//! measurements (`bench::cluster`) use that for the delay to watchers on another
//! replica than the conversation's owner.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail, ensure};
use serde::Serialize;
use tokio::sync::oneshot;
use tokio::task::JoinSet;

use super::api;
use super::events::{self, Frame};
use super::fake_llm::FakeLlm;
use super::watcher::{self, Incoming, Received, Socket};
use super::watcher_threads::WatcherThreads;
use crate::bench::client::HttpConn;
use crate::bench::cpu::{CpuUsage, CpuWindow};
use crate::bench::stats::DelaySummary;

/// How long the fake LLM takes per answer during the fan-out measurement.
pub const LLM_ANSWER_DELAY: Duration = Duration::from_millis(10);
/// Watchers connecting concurrently.
const CONNECTING: usize = 16;
/// The longest the first task, the connections or the replay may take.
const SETUP_TIMEOUT: Duration = Duration::from_secs(120);
/// The longest the measured task may take to reach every watcher.
const TIMEOUT: Duration = Duration::from_secs(120);
/// The user message that starts the measured task.
const MESSAGE: &str = "again";

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FanOut {
    pub watchers: usize,
    pub think_calls: u64,
    /// Live events received, summed over watchers, and their delays until they
    /// arrived at the watchers' sockets.
    #[serde(flatten)]
    pub delays: DelaySummary,
    /// The same events' delays until the bench read them.
    pub read: DelaySummary,
    /// CPU the server and the bench used from the user message until every
    /// watcher saw the task finish, and that window's wall time.
    pub usage: CpuUsage,
}

pub async fn measure(
    addr: SocketAddr,
    server_pid: u32,
    llm: &FakeLlm,
    watchers: usize,
    think_calls: u64,
) -> Result<FanOut> {
    llm.set_think_budget(0);
    let mut conn = HttpConn::connect(addr).await?;
    let id = api::create_conversation(&mut conn)
        .await
        .context("creating the watched conversation")?;
    let audience = Audience::gather(&[addr], &id, watchers).await?;
    let (mut delays, usage) = audience
        .measure_task(llm, think_calls, &[server_pid])
        .await?;
    let Delays { arrived, read } = delays.pop().unwrap_or_default();
    Ok(FanOut {
        watchers,
        think_calls,
        delays: DelaySummary::of(arrived),
        read: DelaySummary::of(read),
        usage,
    })
}

/// Watchers of one conversation, spread round-robin over one or more servers
/// (replicas of one deployment), caught up on the replay of its first task.
pub struct Audience {
    /// The servers the watchers are spread over; the user message goes to the first.
    addrs: Vec<SocketAddr>,
    conversation_id: String,
    /// Each watcher's task: the index of its server and its delays.
    readers: JoinSet<(usize, Result<Delays>)>,
    /// The threads the watchers run on (declared last: dropped after the tasks).
    threads: WatcherThreads,
}

/// Delays of live events in microseconds: until they arrived at a watcher's socket,
/// and until the bench read them (same events, same order).
#[derive(Debug, Default)]
pub struct Delays {
    pub arrived: Vec<u32>,
    pub read: Vec<u32>,
}

impl Delays {
    fn with_capacity(capacity: usize) -> Self {
        Self {
            arrived: Vec::with_capacity(capacity),
            read: Vec::with_capacity(capacity),
        }
    }

    /// Records one event received at `received`.
    fn push(&mut self, received: Received, event: &events::EventView) {
        self.arrived
            .push(events::delay_micros(received.arrived, event));
        self.read.push(events::delay_micros(received.read, event));
    }

    /// Adds another watcher's delays.
    pub fn extend(&mut self, other: Delays) {
        self.arrived.extend(other.arrived);
        self.read.extend(other.read);
    }
}

impl Audience {
    /// Waits for the first task of conversation `id` to finish, then opens `watchers`
    /// watchers, watcher `i` on `addrs[i % addrs.len()]`, and waits until every one
    /// has replayed that task.
    pub async fn gather(addrs: &[SocketAddr], id: &str, watchers: usize) -> Result<Self> {
        ensure!(watchers > 0, "no watchers to measure");
        let first = addrs.first().context("no server to watch")?;
        let first_task = api::wait_finished(*first, id, SETUP_TIMEOUT)
            .await
            .context("the first task of the watched conversation")?;
        let replayed_up_to = first_task.last().map_or(0, |event| event.id);

        // Sockets belong to the runtime that opened them: the watchers' own.
        let threads = WatcherThreads::start()?;
        let connecting = threads.spawn(connect_all(addrs.to_vec(), id.to_owned(), watchers));
        let sockets = tokio::time::timeout(SETUP_TIMEOUT, connecting)
            .await
            .map_err(|_| anyhow!("{watchers} watchers did not connect within {SETUP_TIMEOUT:?}"))?
            .context("connecting task panicked")??;
        let mut readers = JoinSet::new();
        let mut caught_up = Vec::with_capacity(watchers);
        for (server, socket) in sockets {
            let (ready, ready_rx) = oneshot::channel();
            caught_up.push(ready_rx);
            readers.spawn_on(
                async move { (server, record_delays(socket, replayed_up_to, ready).await) },
                threads.handle(),
            );
        }
        let replay = async {
            for ready in caught_up {
                ready
                    .await
                    .context("a watcher ended during the replay")?
                    .context("a watcher failed during the replay")?;
            }
            anyhow::Ok(())
        };
        tokio::time::timeout(SETUP_TIMEOUT, replay)
            .await
            .map_err(|_| {
                anyhow!("watchers did not replay the first task within {SETUP_TIMEOUT:?}")
            })??;
        Ok(Self {
            addrs: addrs.to_vec(),
            conversation_id: id.to_owned(),
            readers,
            threads,
        })
    }

    /// Gives the fake LLM `think_calls` answers of [`LLM_ANSWER_DELAY`] each, sends the
    /// user message to the first server and collects every live event's delay
    /// until each watcher saw the task finish. Returns the delays per server (in the
    /// order of the addresses given to [`Audience::gather`]) and the CPU that the
    /// `server_pids` and the bench used meanwhile.
    pub async fn measure_task(
        mut self,
        llm: &FakeLlm,
        think_calls: u64,
        server_pids: &[u32],
    ) -> Result<(Vec<Delays>, CpuUsage)> {
        llm.set_answer_delay(LLM_ANSWER_DELAY);
        llm.set_think_budget(think_calls);
        let window = CpuWindow::start(server_pids)?;
        let first = *self
            .addrs
            .first()
            .context("no server to send the message to")?;
        api::send_message(first, &self.conversation_id, MESSAGE)
            .await
            .context("sending the user message")?;

        let servers = self.addrs.len();
        let readers = &mut self.readers;
        let collect = async {
            let mut delays_us: Vec<Delays> = (0..servers).map(|_| Delays::default()).collect();
            while let Some(joined) = readers.join_next().await {
                let (server, delays) = joined.context("watcher task panicked")?;
                delays_us
                    .get_mut(server)
                    .context("a watcher of an unknown server")?
                    .extend(delays?);
            }
            anyhow::Ok(delays_us)
        };
        let delays_us = tokio::time::timeout(TIMEOUT, collect).await.map_err(|_| {
            anyhow!("not every watcher saw the measured task finish within {TIMEOUT:?}")
        })??;
        let usage = window.finish()?;
        self.threads.check()?;
        Ok((delays_us, usage))
    }
}

/// Opens `total` watchers of conversation `id`, [`CONNECTING`] at a time, watcher `i`
/// on `addrs[i % addrs.len()]`; each comes with the index of its server.
async fn connect_all(
    addrs: Vec<SocketAddr>,
    id: String,
    total: usize,
) -> Result<Vec<(usize, Socket)>> {
    ensure!(!addrs.is_empty(), "no server to watch");
    let addrs: Arc<[SocketAddr]> = addrs.into();
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = JoinSet::new();
    for _ in 0..CONNECTING.min(total) {
        let next = Arc::clone(&next);
        let addrs = Arc::clone(&addrs);
        let id = id.to_owned();
        workers.spawn(async move {
            let mut sockets = Vec::new();
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= total {
                    break;
                }
                let server = index % addrs.len();
                let addr = addrs.get(server).copied().context("no server to watch")?;
                sockets.push((server, watcher::connect(addr, &id).await?));
            }
            anyhow::Ok(sockets)
        });
    }
    let mut sockets = Vec::with_capacity(total);
    while let Some(joined) = workers.join_next().await {
        sockets.extend(joined.context("connecting worker panicked")??);
    }
    Ok(sockets)
}

/// Skips the replay (ids up to `replayed_up_to`, signalling `caught_up` at the
/// last one), then returns the delay of every live event until the `finished`
/// state of the new task.
async fn record_delays(
    mut socket: Socket,
    replayed_up_to: u64,
    caught_up: oneshot::Sender<Result<()>>,
) -> Result<Delays> {
    let mut caught_up = Some(caught_up);
    let mut delays = Delays::with_capacity(1024);
    let outcome = loop {
        let (received, event) = match watcher::next(&mut socket).await {
            Ok(Incoming::Frame(received, Frame::Event(event))) => (received, event),
            Ok(Incoming::Frame(_, Frame::Notice)) => continue,
            Ok(Incoming::Frame(_, Frame::Error(message))) => {
                break Err(anyhow!("the server refused a watcher's message: {message}"));
            }
            Ok(Incoming::Closed(reason)) => {
                break Err(anyhow!(
                    "the server closed a watcher before the task finished: {reason}"
                ));
            }
            Err(err) => break Err(err),
        };
        if event.id <= replayed_up_to {
            if event.id == replayed_up_to
                && let Some(ready) = caught_up.take()
            {
                let _ = ready.send(Ok(()));
            }
            continue;
        }
        delays.push(received, &event);
        if let Some(reason) = event.error_reason() {
            break Err(anyhow!(
                "the measured task ended in the error state: {reason}"
            ));
        }
        if event.is_finished() {
            break Ok(delays);
        }
    };
    match (caught_up, outcome) {
        (Some(ready), Err(err)) => {
            let message = format!("{err:#}");
            let _ = ready.send(Err(err));
            bail!("{message}")
        }
        (_, outcome) => outcome,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fan_out_json_keeps_its_flat_delay_fields() -> Result<()> {
        let fanout = FanOut {
            watchers: 3,
            think_calls: 200,
            delays: DelaySummary::of(vec![1000, 2000, 3000]),
            read: DelaySummary::of(vec![4000]),
            usage: CpuUsage::default(),
        };
        let value = serde_json::to_value(&fanout)?;
        assert_eq!(value["deliveries"], 3);
        assert_eq!(value["p50_ms"], 2.0);
        assert_eq!(value["max_ms"], 3.0);
        assert!(value.get("delays").is_none());
        Ok(())
    }
}
