//! How long a conversation waits for its sandbox: start to first command output, and the
//! round trip of one trivial call through a running tool server.
//!
//! Both go through [`ToolServerSandbox`], the code the server itself runs when a
//! conversation starts (workspace directory, launch, hello, `configure`) and stops, so a
//! slow step anywhere on that path shows here. Each sample is timed on its own (a wall
//! clock around one start or one call) and summarised by nearest rank, like the load
//! scenarios: every percentile is a time that was actually observed.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use openhands_core::conversation::new_conversation_id;
use openhands_core::extension::{Sandbox, SandboxSpec};
use openhands_core::sandbox_host::{ToolServerLauncher, ToolServerSandbox};
use openhands_core::scope::UserScope;
use openhands_core::tool_protocol::{CommandOutput, Done, Request, ToolClient};
use serde::Serialize;

use crate::bench::stats::percentile;

/// Idle time of a tool server started for the file routes (not used here: every tool
/// server of the bench is the agent's, ended by `remove`).
const FILES_IDLE: Duration = Duration::from_secs(60);
/// The shell session of the bench's commands.
const SESSION: &str = "main";
/// Longest a bench command may run inside the sandbox.
const COMMAND_TIMEOUT_MS: u64 = 10_000;
/// Unmeasured calls before each round-trip figure.
const WARMUP_CALLS: usize = 50;

/// A latency sample, summarised in milliseconds (three decimals: round trips are µs).
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Latency {
    pub samples: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    /// Summarises `micros` (sorted here) by nearest rank; all zero when empty.
    pub fn of(mut micros: Vec<u32>) -> Self {
        micros.sort_unstable();
        let at = |p| percentile(&micros, p).map_or(0.0, |us| f64::from(us).round() / 1000.0);
        Self {
            samples: micros.len(),
            p50_ms: at(50.0),
            p99_ms: at(99.0),
            max_ms: at(100.0),
        }
    }

    /// The p99, unless nothing was measured.
    pub fn measured_p99(&self) -> Option<f64> {
        (self.samples > 0).then_some(self.p99_ms)
    }
}

/// The figures of one launcher.
#[derive(Debug, Clone, Copy)]
pub struct LauncherTimes {
    /// Start to the output of `echo ready`.
    pub start: Latency,
    /// `bash_run` of `true`.
    pub bash: Latency,
    /// `ping`.
    pub ping: Latency,
}

/// Starts `warmup + starts` sandboxes one after the other with `launcher` (workspaces
/// under `data_dir`), timing the last `starts`, then times `calls` `true` commands and
/// `calls` pings on one running sandbox.
pub async fn measure<L: ToolServerLauncher>(
    launcher: L,
    data_dir: &Path,
    starts: usize,
    warmup: usize,
    calls: usize,
) -> Result<LauncherTimes> {
    let sandbox = ToolServerSandbox::new(data_dir, launcher, FILES_IDLE);
    let mut start_us = Vec::with_capacity(starts);
    for run in 0..warmup + starts {
        let id = new_conversation_id();
        let began = Instant::now();
        let tools = prepare(&sandbox, &id).await?;
        let ready = echo_ready(&tools).await;
        let elapsed = began.elapsed();
        sandbox
            .remove(&UserScope::local(), &id)
            .await
            .with_context(|| format!("stopping sandbox {id}"))?;
        ready.with_context(|| format!("start {}", run + 1))?;
        if run >= warmup {
            start_us.push(micros(elapsed));
        }
    }

    let id = new_conversation_id();
    let tools = prepare(&sandbox, &id).await?;
    let calls = round_trips(&tools, calls).await;
    sandbox
        .remove(&UserScope::local(), &id)
        .await
        .with_context(|| format!("stopping sandbox {id}"))?;
    let (bash, ping) = calls?;
    Ok(LauncherTimes {
        start: Latency::of(start_us),
        bash,
        ping,
    })
}

/// What the server does when a conversation starts: workspace, tool server, configure.
async fn prepare<L: ToolServerLauncher>(
    sandbox: &ToolServerSandbox<L>,
    id: &str,
) -> Result<Arc<ToolClient>> {
    let spec = SandboxSpec {
        scope: UserScope::local(),
        conversation_id: id.to_owned(),
        clone: None,
        branch: None,
        env: Vec::new(),
        git_user_name: None,
        git_user_email: None,
    };
    let prepared = sandbox
        .prepare(spec)
        .await
        .with_context(|| format!("starting sandbox {id}"))?;
    Ok(prepared.tools)
}

/// Runs `echo ready` (the first command starts the shell) and checks its output.
pub async fn echo_ready(tools: &ToolClient) -> Result<()> {
    let out = run(tools, "echo ready").await?;
    ensure!(
        out.output.trim() == "ready",
        "`echo ready` printed {:?}",
        out.output.chars().take(200).collect::<String>()
    );
    Ok(())
}

async fn run(tools: &ToolClient, command: &str) -> Result<CommandOutput> {
    let out: CommandOutput = tools
        .call(Request::BashRun {
            session: SESSION.to_owned(),
            command: command.to_owned(),
            timeout_ms: COMMAND_TIMEOUT_MS,
        })
        .await
        .with_context(|| format!("running `{command}` in the sandbox"))?;
    ensure!(
        out.exit_code == 0 && !out.timed_out,
        "`{command}` exited with {} (timed out: {})",
        out.exit_code,
        out.timed_out
    );
    Ok(out)
}

/// `calls` `true` commands, then `calls` pings, one at a time, after a few unmeasured ones.
async fn round_trips(tools: &ToolClient, calls: usize) -> Result<(Latency, Latency)> {
    echo_ready(tools).await?;
    for _ in 0..WARMUP_CALLS {
        run(tools, "true").await?;
        ping(tools).await?;
    }
    let mut bash_us = Vec::with_capacity(calls);
    for _ in 0..calls {
        let began = Instant::now();
        run(tools, "true").await?;
        bash_us.push(micros(began.elapsed()));
    }
    let mut ping_us = Vec::with_capacity(calls);
    for _ in 0..calls {
        let began = Instant::now();
        ping(tools).await?;
        ping_us.push(micros(began.elapsed()));
    }
    Ok((Latency::of(bash_us), Latency::of(ping_us)))
}

async fn ping(tools: &ToolClient) -> Result<()> {
    tools
        .call::<Done>(Request::Ping)
        .await
        .context("pinging the tool server")?;
    Ok(())
}

/// Whole microseconds, saturating (a sample past 71 minutes is off the scale anyway).
fn micros(elapsed: Duration) -> u32 {
    u32::try_from(elapsed.as_micros()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_keeps_microseconds_as_three_decimals() {
        let sample: Vec<u32> = (1..=100).rev().map(|i| i * 10 + 3).collect();
        let latency = Latency::of(sample);
        assert_eq!(latency.samples, 100);
        assert_eq!(
            (latency.p50_ms, latency.p99_ms, latency.max_ms),
            (0.503, 0.993, 1.003)
        );
        assert_eq!(latency.measured_p99(), Some(0.993));
    }

    #[test]
    fn empty_latency_has_no_p99() {
        let latency = Latency::of(Vec::new());
        assert_eq!((latency.samples, latency.p99_ms), (0, 0.0));
        assert_eq!(latency.measured_p99(), None);
    }

    #[test]
    fn micros_saturate() {
        assert_eq!(micros(Duration::from_micros(1_500)), 1_500);
        assert_eq!(micros(Duration::from_secs(10_000)), u32::MAX);
    }
}
