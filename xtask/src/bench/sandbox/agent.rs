//! The agent's events/s on a server whose conversations run in `saas.bwrap` sandboxes.
//!
//! The same run as the agent section's events/s (one conversation, the fake LLM answers
//! N steps then `finish`, the rate from the events' own timestamps), on a fresh server
//! configured with `plugins.sandbox = "saas.bwrap"` and nothing else (OSS mode). Twice:
//! with `think` steps, which the target compares to the unisolated figure, and with
//! `execute_bash true` steps, where every step is a command in the sandbox. Before the
//! figures count, the bench checks that the server really runs a `bwrap` process: a
//! server that quietly fell back to another sandbox must not pass for an isolated one.

use std::path::Path;

use anyhow::{Context, Result, ensure};

use super::procs;
use crate::bench::agent::fake_llm::FakeLlm;
use crate::bench::agent::{EventThroughput, api, throughput};
use crate::bench::server::{ServerConfig, ServerProcess};
use crate::bench::{READY_POLL, READY_TIMEOUT, recreate_dir};

/// The sandbox implementation under test.
const SANDBOX_PLUGIN: &str = "saas.bwrap";

/// Both runs.
#[derive(Debug, Clone)]
pub struct AgentFigures {
    pub think: EventThroughput,
    pub bash: EventThroughput,
}

/// Starts a server over `data_dir` with `saas.bwrap` running `tool_server`, and runs
/// `steps` `think` steps, then `steps` `execute_bash true` steps, each in a new
/// conversation.
pub async fn measure(
    base: &ServerConfig,
    tool_server: &Path,
    data_dir: &Path,
    steps: u64,
) -> Result<AgentFigures> {
    recreate_dir(data_dir)?;
    let llm = FakeLlm::start().await?;
    let config = ServerConfig {
        data_dir: data_dir.to_owned(),
        env: vec![
            ("OPENHANDS_PLUGINS__SANDBOX", SANDBOX_PLUGIN.to_owned()),
            (
                "OPENHANDS_SANDBOX__TOOL_SERVER",
                tool_server.display().to_string(),
            ),
            // Finished conversations keep their sandbox until the server stops.
            ("SANDBOX_CLOSE_DELAY", "0".to_owned()),
        ],
        ..base.clone()
    };
    let mut server = ServerProcess::spawn(&config)?;
    server
        .wait_alive(READY_POLL, READY_TIMEOUT)
        .await
        .with_context(|| format!("starting a server with plugins.sandbox = {SANDBOX_PLUGIN}"))?;
    let addr = server.addr();
    let pid = server.pid()?;
    api::store_settings(addr, &llm.base_url()).await?;

    eprintln!("==> sandbox: agent events/s with {SANDBOX_PLUGIN} ({steps} think steps)");
    let think = throughput::measure(addr, &llm, steps)
        .await
        .context("think steps")?;
    ensure_isolated(pid)?;
    eprintln!(
        "==> sandbox: agent events/s with {SANDBOX_PLUGIN} ({steps} `execute_bash true` steps)"
    );
    llm.set_bash_steps(true);
    let bash = throughput::measure(addr, &llm, steps).await;
    llm.set_bash_steps(false);
    let bash = bash.context("execute_bash steps")?;
    server
        .stop()
        .await
        .context("stopping the server of the sandbox agent runs")?;
    Ok(AgentFigures { think, bash })
}

/// Fails unless a `bwrap` process runs below the server (the finished conversation keeps
/// its sandbox).
fn ensure_isolated(server_pid: u32) -> Result<()> {
    let below = procs::descendants_in(&procs::parents(), server_pid);
    let bwrap = below.iter().any(|pid| {
        std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .is_ok_and(|comm| comm.trim() == "bwrap")
    });
    ensure!(
        bwrap,
        "the server configured with plugins.sandbox = {SANDBOX_PLUGIN} runs no bwrap process \
         after its conversation ran: its tools were not isolated"
    );
    Ok(())
}
