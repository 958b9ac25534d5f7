//! Shared by the bubblewrap tests (`bwrap.rs`, `bwrap_limits.rs`): a host with two
//! tenants' workspaces, a launcher with the real `bwrap` and tool server, and process
//! inspection from the host's side. Included with `#[path]`; cargo also builds it as an
//! empty test target.
#![allow(dead_code)]

use openhands_core::sandbox_config::{NetworkMode, NetworkPolicy, SandboxConfig, SandboxLimits};
use openhands_core::sandbox_host::{LaunchResources, ToolServerLauncher};
use openhands_core::tool_protocol::{CommandOutput, Done, Request, ToolCallError, ToolClient};
use openhands_sandbox::bwrap::BwrapLauncher;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tempfile::TempDir;

pub const BWRAP: &str = "/usr/bin/bwrap";

/// Whether to run: false (with a reason printed) only when bwrap is missing and not required.
pub fn bwrap_available() -> bool {
    if Path::new(BWRAP).exists() {
        return true;
    }
    assert!(
        std::env::var_os("SANDBOX_TESTS_REQUIRE_BWRAP").is_none(),
        "SANDBOX_TESTS_REQUIRE_BWRAP is set but {BWRAP} is missing: install the Debian \
         package `bubblewrap`"
    );
    eprintln!("skipped: {BWRAP} is missing (install the Debian package `bubblewrap`)");
    false
}

/// The tool server binary: `OPENHANDS_TEST_TOOL_SERVER`, else `target/<profile>/`, built once.
pub fn tool_server() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        if let Some(path) = std::env::var_os("OPENHANDS_TEST_TOOL_SERVER") {
            return PathBuf::from(path);
        }
        let exe = std::env::current_exe().expect("test binary path");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target/<profile>/deps");
        let path = profile_dir.join("openhands-tool-server");
        if !path.exists() {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let target = profile_dir.parent().expect("target dir");
            let status = std::process::Command::new(cargo)
                .args(["build", "-p", "openhands-tool-server"])
                .env("CARGO_TARGET_DIR", target)
                .status();
            assert!(
                status.is_ok_and(|s| s.success()) && path.exists(),
                "the tool server is missing at {} and could not be built: run `cargo build -p \
                 openhands-tool-server` first",
                path.display()
            );
        }
        path
    })
    .clone()
}

pub fn limits() -> SandboxLimits {
    SandboxLimits {
        memory_bytes: 512 << 20,
        processes: 128,
        file_size_bytes: 64 << 20,
        ..SandboxLimits::default()
    }
}

/// A data directory holding the tenant's workspace and another tenant's secret.
pub struct Host {
    pub data: TempDir,
    pub runtime: TempDir,
    pub workspace: PathBuf,
    pub secret: PathBuf,
}

pub fn host() -> Host {
    let data = tempfile::tempdir().expect("data dir");
    let workspace = data.path().join("workspaces/tenant-a/conv-a");
    let other = data.path().join("workspaces/tenant-b/conv-b");
    std::fs::create_dir_all(&workspace).expect("workspace");
    std::fs::create_dir_all(&other).expect("other workspace");
    let secret = other.join("secret.txt");
    std::fs::write(&secret, "tenant-b-secret-4f2a").expect("secret");
    let runtime = tempfile::tempdir().expect("runtime dir");
    Host {
        data,
        runtime,
        workspace,
        secret,
    }
}

pub fn launcher(host: &Host, limits: SandboxLimits, mode: NetworkMode) -> BwrapLauncher {
    let config = SandboxConfig {
        bwrap_path: BWRAP.into(),
        limits,
        network: NetworkPolicy {
            mode,
            ..NetworkPolicy::default()
        },
        ..SandboxConfig::default()
    };
    BwrapLauncher::new(&config, tool_server(), host.runtime.path().join("rt"))
        .expect("preflight passes")
}

/// A running sandbox: the launch, its client, and the host around it.
pub struct Sandbox {
    pub client: ToolClient,
    pub child: tokio::process::Child,
    pub resources: Box<dyn LaunchResources>,
    pub launcher: BwrapLauncher,
    pub host: Host,
    pub id: String,
    pub startup: Duration,
}

/// A conversation id of its own for each sandbox: tests run in parallel processes that
/// share cgroup parents, so the id carries the process id too.
pub fn conversation_id() -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
    format!(
        "conv-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

pub async fn start_with(host: Host, limits: SandboxLimits, mode: NetworkMode) -> Sandbox {
    start_named(conversation_id(), host, limits, mode).await
}

pub async fn start_named(
    id: String,
    host: Host,
    limits: SandboxLimits,
    mode: NetworkMode,
) -> Sandbox {
    let launcher = launcher(&host, limits, mode);
    let started = Instant::now();
    let mut launched = launcher
        .launch(&id, &host.workspace)
        .await
        .expect("launches");
    let stdout = launched.child.stdout.take().expect("stdout piped");
    let stdin = launched.child.stdin.take().expect("stdin piped");
    let client = match ToolClient::connect(stdout, stdin).await {
        Ok(client) => client,
        Err(e) => panic!(
            "the tool server did not say hello: {e} ({:?})",
            launched.resources.exit_reason()
        ),
    };
    // What the server's sandbox host does first: the launcher's variables reach the shells.
    let configured = client
        .call::<Done>(Request::Configure {
            env: launched.extra_env.clone(),
            git_user_name: None,
            git_user_email: None,
        })
        .await;
    assert!(configured.is_ok(), "configure: {configured:?}");
    Sandbox {
        client,
        child: launched.child,
        resources: launched.resources,
        launcher,
        host,
        id,
        startup: started.elapsed(),
    }
}

pub async fn start() -> Sandbox {
    start_with(host(), limits(), NetworkMode::None).await
}

impl Sandbox {
    pub async fn try_run(
        &self,
        command: &str,
        timeout_ms: u64,
    ) -> Result<CommandOutput, ToolCallError> {
        self.client
            .call(Request::BashRun {
                session: "main".into(),
                command: command.into(),
                timeout_ms,
            })
            .await
    }

    pub async fn run(&self, command: &str) -> CommandOutput {
        self.try_run(command, 20_000)
            .await
            .expect("the command runs")
    }
}

/// Host processes whose command line contains `needle`.
pub fn host_processes_with(needle: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                String::from_utf8_lossy(&c)
                    .replace('\0', " ")
                    .contains(needle)
            })
        })
        .collect()
}

/// `pid` and all its descendants, from each process's parent in `/proc/*/stat`.
pub fn process_tree(pid: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| {
                    let p: u32 = e.file_name().to_str()?.parse().ok()?;
                    let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).ok()?;
                    let ppid = stat
                        .rsplit_once(')')?
                        .1
                        .split_whitespace()
                        .nth(1)?
                        .parse()
                        .ok()?;
                    Some((p, ppid))
                })
                .collect()
        })
        .unwrap_or_default();
    let mut tree = vec![pid];
    let mut i = 0;
    while let Some(&p) = tree.get(i) {
        tree.extend(parents.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    tree
}

pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}
