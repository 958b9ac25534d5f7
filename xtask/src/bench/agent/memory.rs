//! Memory per idle conversation: what one more finished-but-open conversation,
//! watched by one browser tab, costs the server in resident memory.
//!
//! Every LLM answer is `finish`, so each conversation runs one short task and
//! then idles (status RUNNING, its agent task waiting for a message). Each gets
//! one WebSocket watcher that stays open and is read (and discarded) in the
//! background, as a tab would. The figure is the RSS growth over all of them,
//! divided by their number, read after the server has settled.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail, ensure};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};

use super::api;
use super::events::Frame;
use super::fake_llm::FakeLlm;
use super::watcher::{self, Incoming, Socket};
use crate::bench::client::HttpConn;
use crate::bench::rss;

/// Conversations created concurrently.
const IN_FLIGHT: usize = 16;
/// Quiet time before each RSS reading.
const SETTLE: Duration = Duration::from_secs(1);
/// The longest creating every conversation and seeing each finish may take.
const TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct IdleMemory {
    pub conversations: usize,
    pub rss_before_kb: u64,
    pub rss_after_kb: u64,
    pub kb_per_conversation: f64,
}

/// Watcher tasks holding their sockets open; aborted (sockets closed) on drop.
struct Held(Vec<JoinHandle<()>>);

impl Drop for Held {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// What the watchers report: each sends one message when its conversation has
/// finished (or failed), and `open` counts those still connected.
#[derive(Clone)]
struct Reports {
    finished: mpsc::UnboundedSender<Result<()>>,
    open: Arc<AtomicUsize>,
}

pub async fn measure(
    addr: SocketAddr,
    pid: u32,
    llm: &FakeLlm,
    conversations: usize,
) -> Result<IdleMemory> {
    ensure!(conversations > 0, "no conversations to measure");
    llm.set_think_budget(0);
    tokio::time::sleep(SETTLE).await;
    let rss_before_kb = rss::rss_kb(pid).context("reading RSS before the conversations")?;

    let (finished, mut finished_rx) = mpsc::unbounded_channel();
    let open = Arc::new(AtomicUsize::new(0));
    let reports = Reports {
        finished,
        open: Arc::clone(&open),
    };
    let setup = async {
        let held = open_all(addr, conversations, reports).await?;
        for _ in 0..conversations {
            match finished_rx.recv().await {
                Some(report) => report?,
                None => bail!("every watcher ended before its conversation finished"),
            }
        }
        anyhow::Ok(held)
    };
    let held = tokio::time::timeout(TIMEOUT, setup).await.map_err(|_| {
        anyhow!("{conversations} conversations did not all finish within {TIMEOUT:?}")
    })??;

    tokio::time::sleep(SETTLE).await;
    let rss_after_kb = rss::rss_kb(pid).context("reading RSS after the conversations")?;
    let still_open = open.load(Ordering::Acquire);
    drop(held);
    ensure!(
        still_open == conversations,
        "only {still_open} of {conversations} watchers were still connected when RSS was read"
    );
    let grown = rss_after_kb.saturating_sub(rss_before_kb) as f64;
    Ok(IdleMemory {
        conversations,
        rss_before_kb,
        rss_after_kb,
        kb_per_conversation: (grown / conversations as f64 * 10.0).round() / 10.0,
    })
}

/// Creates `total` conversations, [`IN_FLIGHT`] at a time, each with a watcher.
async fn open_all(addr: SocketAddr, total: usize, reports: Reports) -> Result<Held> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = JoinSet::new();
    for _ in 0..IN_FLIGHT.min(total) {
        let next = Arc::clone(&next);
        let reports = reports.clone();
        workers.spawn(async move {
            let mut conn = HttpConn::connect(addr).await?;
            // Aborts this worker's watchers too if set-up fails or times out.
            let mut held = Held(Vec::new());
            while next.fetch_add(1, Ordering::Relaxed) < total {
                let id = api::create_conversation(&mut conn)
                    .await
                    .context("creating an idle conversation")?;
                let socket = watcher::connect(addr, &id).await?;
                reports.open.fetch_add(1, Ordering::AcqRel);
                held.0.push(tokio::spawn(hold(socket, id, reports.clone())));
            }
            anyhow::Ok(held)
        });
    }
    let mut held = Held(Vec::with_capacity(total));
    while let Some(joined) = workers.join_next().await {
        let mut worker_held = joined.context("conversation worker panicked")??;
        held.0.append(&mut worker_held.0);
    }
    Ok(held)
}

/// Reads and discards frames until the socket ends, reporting the first
/// `finished` (or `error`) state event of the conversation.
async fn hold(mut socket: Socket, id: String, reports: Reports) {
    let mut pending = Some(reports.finished);
    // The loop only ends on a problem; it holds the socket open until then.
    let ended = loop {
        match watcher::next(&mut socket).await {
            Ok(Incoming::Frame(_, Frame::Event(event))) => {
                if let Some(reason) = event.error_reason() {
                    break anyhow!("conversation {id} entered the error state: {reason}");
                }
                if event.is_finished()
                    && let Some(finished) = pending.take()
                {
                    let _ = finished.send(Ok(()));
                }
            }
            Ok(Incoming::Frame(..)) => {}
            Ok(Incoming::Closed(reason)) => {
                break anyhow!("the server closed the watcher of {id}: {reason}");
            }
            Err(err) => break err.context(format!("watcher of conversation {id}")),
        }
    };
    reports.open.fetch_sub(1, Ordering::AcqRel);
    if let Some(finished) = pending {
        let _ = finished.send(Err(ended));
    }
}
