//! The sandbox figures: what running each conversation's tools in a tool server, and that
//! tool server inside bubblewrap, costs the server.
//!
//! Isolation is only worth having if it does not make conversations slow to start, tool
//! calls slow to answer or idle conversations expensive to keep. So the bench starts tool
//! servers the way the server does, through the real launchers (`saas.bwrap`'s
//! `IsolatedLauncher` with its egress proxy, `oss.process`'s `ProcessLauncher` for
//! comparison) and the real protocol client, and measures: start to first command output
//! ([`timing`]), the round trip of a trivial call ([`timing`]), the memory of idle
//! sandboxes ([`memory`], with the release tool server) and the agent's events/s on a
//! server configured with `plugins.sandbox = "saas.bwrap"` ([`agent`]).
//!
//! A machine without a usable `bwrap` (not installed, user namespaces refused, no tool
//! server binary) still gets a report: each figure it could not produce says
//! [`Figure::Skipped`] and why, in `results.md` and in its target row.

mod agent;
mod memory;
mod procs;
pub mod report;
mod timing;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use openhands_core::config::SandboxConfig;
use openhands_core::sandbox_host::{ProcessLauncher, TOOL_SERVER_NAME, ToolServerProgram};
use openhands_sandbox::IsolatedLauncher;
use serde::Serialize;

use super::agent::EventThroughput;
use super::server::ServerConfig;
use crate::cargo::{self, run_step};
pub use memory::SandboxMemory;
pub use timing::Latency;

/// How much each measurement does.
#[derive(Debug, Clone, Copy)]
struct Counts {
    /// Measured starts per launcher (after `warmup_starts` unmeasured ones).
    starts: usize,
    /// Unmeasured starts first, so the page cache holds `bwrap`, bash and the tool server.
    warmup_starts: usize,
    /// Measured calls per round-trip figure.
    round_trips: usize,
    /// Idle sandboxes whose memory is summed.
    idle_sandboxes: usize,
    /// Steps of each agent run (`think` or `execute_bash true`), as in the agent's events/s.
    agent_steps: u64,
}

/// The bench's counts.
const COUNTS: Counts = Counts {
    starts: 100,
    warmup_starts: 3,
    round_trips: 2_000,
    idle_sandboxes: 20,
    agent_steps: 500,
};
/// The package whose release binary runs in the sandboxes.
const TOOL_SERVER_PACKAGE: &str = "openhands-tool-server";

/// A figure, or why this run could not produce it.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Figure<T> {
    Measured(T),
    Skipped { reason: String },
}

impl<T> Figure<T> {
    fn skipped(reason: &str) -> Self {
        Figure::Skipped {
            reason: reason.to_owned(),
        }
    }
}

/// Everything the sandbox section measured.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SandboxResults {
    /// The tool server program the sandboxes ran.
    pub tool_server: String,
    /// `bwrap --version` of the isolated launches, or why there were none.
    pub bwrap: String,
    /// The cgroup hierarchy the isolated sandboxes were limited by (`v1`, `v2`, `none`).
    pub cgroups: String,
    /// Isolated start (workspace, launch, hello, configure) to the output of `echo ready`.
    pub isolated_start: Figure<Latency>,
    /// The same with `oss.process` (a plain child process), for comparison.
    pub process_start: Figure<Latency>,
    /// `bash_run` of `true` in a running isolated sandbox.
    pub isolated_bash: Figure<Latency>,
    /// `ping` to a running isolated sandbox's tool server.
    pub isolated_ping: Figure<Latency>,
    /// `bash_run` of `true` with `oss.process`, for comparison.
    pub process_bash: Figure<Latency>,
    /// `ping` with `oss.process`, for comparison.
    pub process_ping: Figure<Latency>,
    /// Memory of idle isolated sandboxes (each ran one command), per sandbox.
    pub memory: Figure<SandboxMemory>,
    /// The agent's events/s (`think` steps) on a server using `saas.bwrap`.
    pub agent_think: Figure<EventThroughput>,
    /// The same with `execute_bash true` steps, each a command in the sandbox.
    pub agent_bash: Figure<EventThroughput>,
}

impl SandboxResults {
    /// Every figure skipped for `reason` (e.g. `--skip-sandbox`).
    pub fn skipped(reason: &str) -> Self {
        Self {
            tool_server: "not used".to_owned(),
            bwrap: "not used".to_owned(),
            cgroups: "not used".to_owned(),
            isolated_start: Figure::skipped(reason),
            process_start: Figure::skipped(reason),
            isolated_bash: Figure::skipped(reason),
            isolated_ping: Figure::skipped(reason),
            process_bash: Figure::skipped(reason),
            process_ping: Figure::skipped(reason),
            memory: Figure::skipped(reason),
            agent_think: Figure::skipped(reason),
            agent_bash: Figure::skipped(reason),
        }
    }
}

/// The release tool server the sandboxes run: built like the server (`cargo build
/// --release -p openhands-tool-server`) unless `skip_build`, or the one next to a
/// `--binary`. `Err` carries why there is none, which skips the section.
pub fn tool_server_binary(
    skip_build: bool,
    server_binary: Option<&Path>,
    target_dir: &Path,
) -> Result<std::result::Result<PathBuf, String>> {
    let binary = match server_binary {
        Some(server) => server.with_file_name(TOOL_SERVER_NAME),
        None => {
            if !skip_build {
                run_step(
                    "build tool server (release)",
                    cargo::cargo().args(["build", "--release", "-p", TOOL_SERVER_PACKAGE]),
                )?;
            }
            target_dir.join("release").join(TOOL_SERVER_NAME)
        }
    };
    Ok(if binary.is_file() {
        Ok(binary)
    } else {
        Err(format!(
            "no release tool server at {} (drop --skip-build, or build `-p {TOOL_SERVER_PACKAGE}` \
             --release next to --binary)",
            binary.display()
        ))
    })
}

/// Runs every sandbox measurement with `tool_server`, in a scratch directory under the
/// system's temporary directory (kept short: the egress proxy's socket path must fit in
/// 107 bytes); `base` provides the server binary and log for the agent runs.
pub async fn measure(
    base: &ServerConfig,
    tool_server: std::result::Result<PathBuf, String>,
) -> Result<SandboxResults> {
    let tool_server = match tool_server {
        Ok(path) => path,
        Err(reason) => return Ok(SandboxResults::skipped(&reason)),
    };
    measure_with(base, &tool_server, COUNTS).await
}

async fn measure_with(
    base: &ServerConfig,
    tool_server: &Path,
    counts: Counts,
) -> Result<SandboxResults> {
    let scratch = std::env::temp_dir().join(format!("oh-sbx-{}", std::process::id()));
    super::recreate_dir(&scratch)?;
    let results = measure_in(base, tool_server, &scratch, counts).await;
    if let Err(err) = std::fs::remove_dir_all(&scratch) {
        eprintln!("warning: could not remove {}: {err}", scratch.display());
    }
    results
}

async fn measure_in(
    base: &ServerConfig,
    tool_server: &Path,
    scratch: &Path,
    counts: Counts,
) -> Result<SandboxResults> {
    let Counts {
        starts,
        warmup_starts,
        round_trips,
        idle_sandboxes,
        agent_steps,
    } = counts;
    let config = SandboxConfig {
        tool_server: Some(tool_server.display().to_string()),
        ..SandboxConfig::default()
    };
    let program = ToolServerProgram {
        program: tool_server.to_owned(),
        leading_args: Vec::new(),
    };

    eprintln!("==> sandbox: oss.process ({starts} starts, {round_trips} calls)");
    let process = timing::measure(
        ProcessLauncher::new(program),
        &scratch.join("process"),
        starts,
        warmup_starts,
        round_trips,
    )
    .await
    .context("oss.process figures")?;

    eprintln!("==> sandbox: checking bubblewrap (`{}`)", config.bwrap_path);
    let isolated = match IsolatedLauncher::new(&config, scratch.join("run")) {
        Ok(launcher) => launcher,
        Err(err) => {
            let reason = format!("bubblewrap is not usable here: {err}");
            eprintln!("==> sandbox: isolated figures skipped ({reason})");
            return Ok(SandboxResults {
                tool_server: tool_server.display().to_string(),
                process_start: Figure::Measured(process.start),
                process_bash: Figure::Measured(process.bash),
                process_ping: Figure::Measured(process.ping),
                ..SandboxResults::skipped(&reason)
            });
        }
    };
    let bwrap = bwrap_version(isolated.bwrap().bwrap_path());
    let cgroups = isolated.bwrap().cgroups().version().to_owned();

    eprintln!("==> sandbox: saas.bwrap memory ({idle_sandboxes} idle sandboxes)");
    let memory = memory::measure(&isolated, &scratch.join("memory"), idle_sandboxes)
        .await
        .context("memory of idle isolated sandboxes")?;

    eprintln!("==> sandbox: saas.bwrap ({starts} starts, {round_trips} calls)");
    let launched = timing::measure(
        isolated,
        &scratch.join("isolated"),
        starts,
        warmup_starts,
        round_trips,
    )
    .await
    .context("saas.bwrap figures")?;

    let agent = agent::measure(base, tool_server, &scratch.join("srv"), agent_steps)
        .await
        .context("agent events/s with saas.bwrap")?;

    Ok(SandboxResults {
        tool_server: tool_server.display().to_string(),
        bwrap,
        cgroups,
        isolated_start: Figure::Measured(launched.start),
        process_start: Figure::Measured(process.start),
        isolated_bash: Figure::Measured(launched.bash),
        isolated_ping: Figure::Measured(launched.ping),
        process_bash: Figure::Measured(process.bash),
        process_ping: Figure::Measured(process.ping),
        memory: Figure::Measured(memory),
        agent_think: Figure::Measured(agent.think),
        agent_bash: Figure::Measured(agent.bash),
    })
}

/// `bubblewrap 0.8.0`, or the path when `--version` says nothing useful.
fn bwrap_version(bwrap: &Path) -> String {
    std::process::Command::new(bwrap)
        .arg("--version")
        .output()
        .ok()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .filter(|version| !version.is_empty())
        .unwrap_or_else(|| bwrap.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A short run of every figure on this machine, with the debug builds of the server and
    /// the tool server (`cargo build -p openhands-server -p openhands-tool-server` first):
    /// `cargo test -p xtask -- --ignored sandbox_figures`.
    #[test]
    #[ignore = "needs bwrap and debug builds of the server and the tool server"]
    fn sandbox_figures_on_this_machine() -> Result<()> {
        let debug = cargo::target_dir()?.join("debug");
        let bench = std::env::temp_dir().join(format!("xtask-sbx-test-{}", std::process::id()));
        super::super::recreate_dir(&bench)?;
        let base = ServerConfig {
            binary: debug.join("openhands"),
            data_dir: bench.join("data"),
            log_file: bench.join("server.log"),
            env: Vec::new(),
        };
        let counts = Counts {
            starts: 5,
            warmup_starts: 1,
            round_trips: 50,
            idle_sandboxes: 2,
            agent_steps: 20,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let results =
            runtime.block_on(measure_with(&base, &debug.join(TOOL_SERVER_NAME), counts))?;
        let mut md = String::new();
        report::render(&mut md, &results);
        eprintln!("{md}");
        for target in report::targets(&results) {
            eprintln!("{target:?}");
        }
        std::fs::remove_dir_all(&bench)?;
        assert!(matches!(results.process_start, Figure::Measured(_)));
        Ok(())
    }
}
