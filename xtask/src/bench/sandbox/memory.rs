//! Memory per idle conversation's sandbox: what keeping an isolated sandbox open costs
//! the host while its conversation waits for the user.
//!
//! N sandboxes are started with the real `IsolatedLauncher` (cgroups, egress proxy, the
//! release tool server) and each runs one command, so its shell exists as it would after
//! the agent's first step. After a short settle, every process of every sandbox is read
//! ([`super::procs`]) and the sums are divided by N. The launcher is called directly,
//! not through the server's sandbox registry, because only the launch hands out the
//! child's pid, where the process tree starts.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use openhands_core::conversation::new_conversation_id;
use openhands_core::sandbox_host::{LaunchResources, ToolServerLauncher};
use openhands_core::tool_protocol::{Done, Request, ToolClient};
use openhands_sandbox::IsolatedLauncher;
use openhands_sandbox::bwrap::Cgroups;
use serde::Serialize;
use tokio::io::AsyncReadExt;
use tokio::process::Child;

use super::procs::{self, ProcessMemory};
use super::timing::echo_ready;

/// Quiet time after the last start before memory is read.
const SETTLE: Duration = Duration::from_secs(1);

/// Memory of idle isolated sandboxes, per sandbox.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SandboxMemory {
    pub sandboxes: usize,
    /// Processes found in all of them.
    pub processes: usize,
    /// Sum of `VmRSS` over a sandbox's processes (shared pages counted in every process).
    pub rss_kb_per_sandbox: f64,
    /// Sum of `Pss` over a sandbox's processes (shared pages split among their users).
    pub pss_kb_per_sandbox: f64,
    /// The same split by process name, largest PSS first.
    pub by_process: Vec<ProcessKind>,
}

/// Processes of one name (`bwrap`, the tool server, `bash`), per sandbox.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ProcessKind {
    pub name: String,
    pub per_sandbox: f64,
    pub rss_kb_per_sandbox: f64,
    pub pss_kb_per_sandbox: f64,
}

/// A started sandbox; dropping it kills the child (`kill_on_drop`) and releases its
/// resources (cgroup, proxy, runtime directory), so an error path leaves nothing behind.
struct Running {
    id: String,
    child: Child,
    resources: Box<dyn LaunchResources>,
    tools: ToolClient,
}

/// Starts `count` sandboxes with workspaces under `dir`, reads their memory, stops them.
pub async fn measure(
    launcher: &IsolatedLauncher,
    dir: &Path,
    count: usize,
) -> Result<SandboxMemory> {
    ensure!(count > 0, "no sandboxes to measure");
    let mut running = Vec::with_capacity(count);
    for n in 1..=count {
        let sandbox = start(launcher, dir)
            .await
            .with_context(|| format!("starting sandbox {n} of {count}"))?;
        running.push(sandbox);
    }
    tokio::time::sleep(SETTLE).await;
    let parents = procs::parents();
    let cgroup_base = cgroup_base(launcher.bwrap().cgroups());
    let mut all = Vec::new();
    for sandbox in &running {
        let mut pids = sandbox
            .child
            .id()
            .map(|pid| procs::descendants_in(&parents, pid))
            .unwrap_or_default();
        if let Some(dir) = cgroup_base
            .as_deref()
            .and_then(|b| cgroup_dir(b, &sandbox.id))
        {
            pids.extend(procs::cgroup_procs(&dir));
        }
        let found: Vec<ProcessMemory> = pids.into_iter().filter_map(procs::read).collect();
        ensure!(
            found.len() >= 3,
            "sandbox {} shows {} live processes; expected bwrap, the tool server and bash",
            sandbox.id,
            found.len()
        );
        all.extend(found);
    }
    for sandbox in running {
        stop(sandbox).await;
    }
    Ok(summarize(&all, count))
}

async fn start(launcher: &IsolatedLauncher, dir: &Path) -> Result<Running> {
    let id = new_conversation_id();
    let workspace = dir.join(&id);
    std::fs::create_dir_all(&workspace)
        .with_context(|| format!("creating {}", workspace.display()))?;
    let mut launched = launcher.launch(&id, &workspace).await?;
    if let Some(mut stderr) = launched.child.stderr.take() {
        // Read and drop: a full pipe would stall the tool server.
        tokio::spawn(async move {
            let mut sink = Vec::new();
            while stderr.read_buf(&mut sink).await.is_ok_and(|n| n > 0) {
                sink.clear();
            }
        });
    }
    let (Some(stdout), Some(stdin)) = (launched.child.stdout.take(), launched.child.stdin.take())
    else {
        anyhow::bail!("the launcher started the tool server without its protocol pipes");
    };
    let sandbox = Running {
        id,
        child: launched.child,
        resources: launched.resources,
        tools: ToolClient::connect(stdout, stdin)
            .await
            .context("waiting for the tool server's hello")?,
    };
    let tools = &sandbox.tools;
    tools
        .call::<Done>(Request::Configure {
            env: launched.extra_env,
            git_user_name: None,
            git_user_email: None,
        })
        .await
        .context("configuring the sandbox")?;
    echo_ready(tools).await?;
    Ok(sandbox)
}

/// What the server's sandbox does at the end of a conversation: kill everything, reap.
async fn stop(mut sandbox: Running) {
    sandbox.resources.kill_all();
    let _ = sandbox.child.kill().await;
}

/// The directory under which the launcher creates sandbox cgroups (`pids` on v1, where
/// every process is listed).
fn cgroup_base(cgroups: &Cgroups) -> Option<PathBuf> {
    match cgroups {
        Cgroups::V2 { base } => Some(base.clone()),
        Cgroups::V1 { memory, pids, cpu } => {
            pids.as_ref().or(memory.as_ref()).or(cpu.as_ref()).cloned()
        }
        Cgroups::None => None,
    }
}

/// The cgroup of sandbox `id` under `base`: `<our pid>-<launch>-<id>`.
fn cgroup_dir(base: &Path, id: &str) -> Option<PathBuf> {
    let prefix = format!("{}-", std::process::id());
    let suffix = format!("-{id}");
    std::fs::read_dir(base)
        .ok()?
        .filter_map(Result::ok)
        .find(|entry| {
            entry
                .file_name()
                .to_str()
                .is_some_and(|name| name.starts_with(&prefix) && name.ends_with(&suffix))
        })
        .map(|entry| entry.path())
}

/// Sums per sandbox (`count` of them), overall and by process name.
fn summarize(all: &[ProcessMemory], count: usize) -> SandboxMemory {
    let per = |kb: u64| (kb as f64 / count as f64 * 10.0).round() / 10.0;
    let mut kinds: BTreeMap<&str, (usize, u64, u64)> = BTreeMap::new();
    for process in all {
        let kind = kinds.entry(&process.name).or_default();
        kind.0 += 1;
        kind.1 += process.rss_kb;
        kind.2 += process.pss_kb;
    }
    let mut by_process: Vec<ProcessKind> = kinds
        .into_iter()
        .map(|(name, (n, rss, pss))| ProcessKind {
            name: name.to_owned(),
            per_sandbox: (n as f64 / count as f64 * 100.0).round() / 100.0,
            rss_kb_per_sandbox: per(rss),
            pss_kb_per_sandbox: per(pss),
        })
        .collect();
    by_process.sort_by(|a, b| b.pss_kb_per_sandbox.total_cmp(&a.pss_kb_per_sandbox));
    let distinct: BTreeSet<u32> = all.iter().map(|p| p.pid).collect();
    SandboxMemory {
        sandboxes: count,
        processes: distinct.len(),
        rss_kb_per_sandbox: per(all.iter().map(|p| p.rss_kb).sum()),
        pss_kb_per_sandbox: per(all.iter().map(|p| p.pss_kb).sum()),
        by_process,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(pid: u32, name: &str, rss_kb: u64, pss_kb: u64) -> ProcessMemory {
        ProcessMemory {
            pid,
            name: name.to_owned(),
            rss_kb,
            pss_kb,
        }
    }

    #[test]
    fn sums_are_per_sandbox_and_split_by_name() {
        let all = [
            process(1, "bwrap", 1000, 300),
            process(2, "bwrap", 1000, 200),
            process(3, "bash", 4000, 1500),
            process(4, "bwrap", 1000, 300),
            process(5, "bwrap", 1000, 200),
            process(6, "bash", 4000, 1500),
        ];
        let memory = summarize(&all, 2);
        assert_eq!(memory.processes, 6);
        assert_eq!(memory.rss_kb_per_sandbox, 6000.0);
        assert_eq!(memory.pss_kb_per_sandbox, 2000.0);
        let names: Vec<_> = memory.by_process.iter().map(|k| k.name.as_str()).collect();
        assert_eq!(names, ["bash", "bwrap"], "largest PSS first");
        assert_eq!(memory.by_process[1].per_sandbox, 2.0);
        assert_eq!(memory.by_process[1].pss_kb_per_sandbox, 500.0);
    }

    #[test]
    fn cgroups_are_found_by_our_pid_and_the_sandbox_name() -> Result<()> {
        let base = std::env::temp_dir().join(format!("xtask-cg-{}", std::process::id()));
        let me = std::process::id();
        for name in [
            format!("{me}-3-abc"),
            format!("{me}-4-xabc"),
            "1-5-def".to_owned(),
        ] {
            std::fs::create_dir_all(base.join(name))?;
        }
        let found = cgroup_dir(&base, "abc");
        let other = cgroup_dir(&base, "def");
        std::fs::remove_dir_all(&base)?;
        assert_eq!(found, Some(base.join(format!("{me}-3-abc"))));
        assert_eq!(other, None, "another process's sandbox");
        Ok(())
    }
}
