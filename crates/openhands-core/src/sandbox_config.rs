//! `[sandbox]`: where conversations' tools run and what bounds them.
//!
//! The limits apply to isolated sandboxes (`saas.bwrap`); `oss.process` runs tools as the
//! server's own user and honours only `close_delay`, `tool_server` and the per-command
//! timeout. `docs/sandbox.md` explains each key and the threat model.

use serde::{Deserialize, Serialize};

/// Sandbox settings (`[sandbox]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxConfig {
    /// Seconds before an idle, unattended conversation is closed; 0 disables.
    /// Env: `SANDBOX_CLOSE_DELAY`.
    pub close_delay: u64,
    /// Lets SaaS mode run with a sandbox that isolates nothing (`oss.process`). Off: such a
    /// server refuses to start. On: it starts, warns, and says so in `/ready`.
    pub allow_unisolated: bool,
    /// The tool server program. Unset: `openhands-tool-server` next to the server binary
    /// (or one directory up, for test binaries), else the server binary's own
    /// `tool-server` subcommand.
    pub tool_server: Option<String>,
    /// The `bwrap` program of isolated sandboxes.
    pub bwrap_path: String,
    /// Hosts (`git.example.com`: over https) or origins (`http://mirror.internal:8080`),
    /// besides the git providers' own, that conversations may clone from in SaaS mode
    /// (`owner/repo` on a provider is always accepted).
    pub clone_hosts: Vec<String>,
    /// Seconds a tool server started only for the file routes (no agent running) lives
    /// after its last use.
    pub idle_tool_server_seconds: u64,
    /// Where the conversations' workspaces live; unset: `<data dir>/workspaces`. Replicas
    /// of a cluster that share it (a network file system) carry a conversation's files
    /// along when it moves to another replica (takeover, handover at shutdown); otherwise
    /// the new owner starts from a fresh clone.
    pub workspaces_dir: Option<std::path::PathBuf>,
    pub limits: SandboxLimits,
    pub network: NetworkPolicy,
}

impl SandboxConfig {
    /// The directory of the conversations' workspaces: `workspaces_dir`, else
    /// `<data_dir>/workspaces`.
    pub fn workspaces_dir(&self, data_dir: &std::path::Path) -> std::path::PathBuf {
        self.workspaces_dir
            .clone()
            .unwrap_or_else(|| data_dir.join("workspaces"))
    }
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            close_delay: 3600,
            allow_unisolated: false,
            tool_server: None,
            bwrap_path: "bwrap".into(),
            clone_hosts: Vec::new(),
            idle_tool_server_seconds: 60,
            workspaces_dir: None,
            limits: SandboxLimits::default(),
            network: NetworkPolicy::default(),
        }
    }
}

/// Resource limits of one isolated sandbox (`[sandbox.limits]`). 0 turns a limit off.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxLimits {
    /// Memory of all the sandbox's processes together (cgroup `memory.max`), bytes.
    pub memory_bytes: u64,
    /// Processes and threads at once (cgroup `pids.max`, and `RLIMIT_NPROC`).
    pub processes: u64,
    /// CPU share, in thousandths of a core (cgroup `cpu.max`); 1000 = one core.
    pub cpu_millicores: u64,
    /// CPU seconds one process may use (`RLIMIT_CPU`).
    pub cpu_seconds_per_process: u64,
    /// Largest file a process may write (`RLIMIT_FSIZE`), bytes.
    pub file_size_bytes: u64,
    /// Open files per process (`RLIMIT_NOFILE`).
    pub open_files: u64,
    /// Disk the workspace may use, bytes; checked after each command and before writes.
    pub workspace_bytes: u64,
    /// Longest one shell command may run, seconds (the LLM may ask for less).
    pub command_timeout_seconds: u64,
}

impl Default for SandboxLimits {
    fn default() -> Self {
        Self {
            memory_bytes: 2 << 30,
            processes: 512,
            cpu_millicores: 1000,
            cpu_seconds_per_process: 3600,
            file_size_bytes: 1 << 30,
            open_files: 1024,
            workspace_bytes: 10 << 30,
            command_timeout_seconds: 600,
        }
    }
}

/// How an isolated sandbox reaches the network (`[sandbox.network]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkPolicy {
    pub mode: NetworkMode,
    /// Hosts (`example.com`, `*.example.com`) or networks (`10.1.0.0/16`, an address)
    /// reachable even where the built-in rules refuse them (private and loopback ranges).
    pub allow: Vec<String>,
    /// Hosts or networks never reachable. Wins over `allow`.
    pub deny: Vec<String>,
    /// Ports the proxy connects to; empty allows any.
    pub ports: Vec<u16>,
}

impl Default for NetworkPolicy {
    fn default() -> Self {
        Self {
            mode: NetworkMode::Proxy,
            allow: Vec::new(),
            deny: Vec::new(),
            ports: Vec::new(),
        }
    }
}

/// `[sandbox.network] mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NetworkMode {
    /// No network of its own; HTTP and HTTPS through the server's filtering proxy.
    Proxy,
    /// No network at all.
    None,
    /// The host's network, unfiltered (trusted single-tenant deployments only).
    Open,
}
