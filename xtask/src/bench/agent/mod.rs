//! The agent measurements: events/s of one agent loop, memory per idle watched
//! conversation, and the delay of fanning events out to many watchers.
//!
//! They run against a fake LLM ([`fake_llm`]) that answers instantly, so what is
//! measured is the server's own work: running the loop, storing events and
//! streaming them. They use a fresh server start on a data dir of their own,
//! after the HTTP scenarios, so the 1,000 set-up conversations and the load do not
//! skew them and they do not skew the start-up and idle figures. All three share
//! that one server, in report order; the memory figure is a difference of two
//! readings, so the conversation left by the first measurement does not count.

// The cluster measurements (`super::cluster`) drive the same fake LLM, API calls
// and watchers, and the sandbox figures (`super::sandbox`) the same events/s run, so
// these are shared with the rest of the bench.
pub(super) mod api;
mod arrival;
pub(super) mod events;
pub(super) mod fake_llm;
pub(super) mod fanout;
pub(super) mod fd_limit;
mod memory;
pub(super) mod throughput;
pub(super) mod watcher;
mod watcher_threads;

use anyhow::{Context, Result};
use serde::Serialize;

use super::server::{ServerConfig, ServerProcess};
use super::{READY_POLL, READY_TIMEOUT, recreate_dir};
use fake_llm::FakeLlm;

pub use fanout::FanOut;
pub use memory::IdleMemory;
pub use throughput::EventThroughput;

/// `think` answers before `finish` in the events/s run.
const THROUGHPUT_THINK_CALLS: u64 = 500;
/// Idle conversations (each with one watcher) in the memory run.
const IDLE_CONVERSATIONS: usize = 1000;
/// Watchers of the one conversation in the fan-out run.
const FANOUT_WATCHERS: usize = 1000;
/// `think` answers of the fan-out run's measured task.
const FANOUT_THINK_CALLS: u64 = 200;

/// What the agent measurements report.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AgentResults {
    pub events: EventThroughput,
    pub idle_memory: IdleMemory,
    pub fanout: FanOut,
}

/// Runs the three measurements on a fresh server over `data_dir`; `base`
/// provides the binary and the log file.
pub async fn measure(base: &ServerConfig, data_dir: std::path::PathBuf) -> Result<AgentResults> {
    fd_limit::ensure_room_for(IDLE_CONVERSATIONS.max(FANOUT_WATCHERS), "--skip-agent")?;
    recreate_dir(&data_dir)?;
    let llm = FakeLlm::start().await?;
    let config = ServerConfig {
        data_dir,
        env: vec![
            // Every conversation of the memory run stays running.
            ("MAX_CONCURRENT_CONVERSATIONS", "5000".to_owned()),
            // No idle close while conversations wait to be measured.
            ("SANDBOX_CLOSE_DELAY", "0".to_owned()),
        ],
        ..base.clone()
    };
    let mut server = ServerProcess::spawn(&config)?;
    server
        .wait_alive(READY_POLL, READY_TIMEOUT)
        .await
        .context("starting the server for the agent measurements")?;
    let addr = server.addr();
    let pid = server.pid()?;
    api::store_settings(addr, &llm.base_url()).await?;

    eprintln!("==> agent: events/s ({THROUGHPUT_THINK_CALLS} think calls)");
    let events = throughput::measure(addr, &llm, THROUGHPUT_THINK_CALLS)
        .await
        .context("agent events/s")?;
    eprintln!("==> agent: memory per idle conversation ({IDLE_CONVERSATIONS}, one watcher each)");
    let idle_memory = memory::measure(addr, pid, &llm, IDLE_CONVERSATIONS)
        .await
        .context("memory per idle conversation")?;
    eprintln!(
        "==> agent: fan-out delay ({FANOUT_WATCHERS} watchers, {FANOUT_THINK_CALLS} think calls)"
    );
    let fanout = fanout::measure(addr, pid, &llm, FANOUT_WATCHERS, FANOUT_THINK_CALLS)
        .await
        .context("fan-out delay")?;
    eprintln!("    fake LLM answered {} completions", llm.served());

    server
        .stop()
        .await
        .context("stopping the server of the agent measurements")?;
    Ok(AgentResults {
        events,
        idle_memory,
        fanout,
    })
}
