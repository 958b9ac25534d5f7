//! Starting tool servers inside bubblewrap.
//!
//! Agents run untrusted code. On a shared server, a shell started by the agent must not
//! see or touch anything but its own workspace: an attacker with such a shell once read
//! the server's secrets from `/proc/$PPID/environ`, listed other tenants' workspaces,
//! read other users' shells' environments through `/proc`, reached PostgreSQL and Redis
//! on loopback, and left `setsid sleep` running after the conversation was deleted. This
//! launcher starts each conversation's tool server in a `bwrap` sandbox that closes each
//! of those doors; `tests/bwrap.rs` and `tests/bwrap_limits.rs` replay the attacks
//! against the real `bwrap` and tool server.
//!
//! # What is isolated
//!
//! - **Environment**: `bwrap` is spawned with an empty environment (inside, it is pid 1
//!   and its `/proc/1/environ` is readable) and `--clearenv`; the sandbox gets `PATH`,
//!   `HOME`, `LANG`, `TERM` and, in proxy mode, the proxy variables. No server secret.
//! - **Processes**: a new pid namespace (`/proc` lists only the sandbox), ipc, uts and
//!   cgroup namespaces, a new session (no `TIOCSTI` into the server's terminal), all
//!   capabilities dropped, an unprivileged uid (1000), `no_new_privs`, no nested user
//!   namespaces (`--disable-userns`, bwrap >= 0.8), and the tool server's own seccomp
//!   filter (`--seccomp`).
//! - **Files**: a fresh root holding read-only `/usr` (and `/bin`, `/lib`, ... as on the
//!   host), a handful of `/etc` entries ([`policy::ETC_ENTRIES`]) plus synthetic
//!   `passwd`, `group` and `hosts`, private `/proc`, `/dev`, `/tmp`, `/run`, the tool
//!   server binary read-only, and the workspace: the only writable host directory.
//!   The host's data directory, home directories, `/root`, `/var`, `/srv` and other
//!   workspaces do not exist inside. The root itself is remounted read-only.
//! - **Network**: a new network namespace with only loopback (the host's loopback
//!   services are unreachable); in proxy mode HTTP(S) leaves through a Unix socket to
//!   the server's filtering proxy (bound read-only at `/run/openhands`); `open` mode
//!   shares the host's network and filters nothing.
//! - **File descriptors**: only stdin, stdout and stderr reach the sandbox (a wrapper
//!   closes every other inherited descriptor before `bwrap` starts).
//! - **Resources**: a cgroup per sandbox bounds memory (no swap), processes and CPU for
//!   all its processes together (`cgroup.rs` explains v1 and v2); the tool server's
//!   rlimits bound each process. Without usable cgroups only the rlimits apply and
//!   [`BwrapLauncher::preflight_warnings`] says so.
//! - **Lifetime**: killing `bwrap` ends the pid namespace and everything in it, including
//!   `setsid`/`nohup` processes; `--die-with-parent` does the same when the server dies.
//!   (That signal follows the *thread* that spawned `bwrap`: launch from the async
//!   runtime's long-lived worker threads, never from a short-lived blocking thread.)
//!
//! # What is not
//!
//! - **Kernel bugs**: namespaces and seccomp share one kernel with the host; a kernel
//!   exploit escapes. Keep the kernel patched; use VMs for hostile multi-tenancy.
//! - **Side channels**: CPU caches and speculative execution are shared (Spectre-class
//!   leaks between tenants on one host are not addressed here).
//! - **The workspace's own contents**: the agent can read and change anything in its
//!   workspace, including `.git/config`, hooks and files the user uploaded. The server
//!   never runs workspace code outside the sandbox.
//! - **The server's uid**: the sandbox's uid 1000 maps to the server's own uid, so files
//!   created in the workspace belong to the server's user on the host, and the sandbox
//!   can read any file it *sees* that this uid may read (only the binds above, which
//!   is why `/etc/ssl/private` is not among them). If the server runs as root, that
//!   means root-only files among the system files, and, in `open` network mode, peers
//!   that trust `SO_PEERCRED` uid 0. Run the server as a dedicated unprivileged user.
//! - **What the shared `/usr` and `/etc` entries reveal**: installed packages, versions
//!   and the kernel version (`uname`) are visible, and so are the host paths of the
//!   sandbox's own binds (workspace, runtime directory, tool server) through
//!   `/proc/self/mountinfo` and `bwrap`'s command line (`/proc/1/cmdline`): their names,
//!   not their neighbours' contents.
//! - **The proxy's policy**: whatever the egress proxy allows, the sandbox can reach.

mod cgroup;
mod error;
pub mod policy;
mod preflight;
mod resources;

pub use cgroup::Cgroups;
pub use error::BwrapError;
pub use policy::{BwrapFeatures, HostLayout, LaunchTarget, Mount, SandboxPlan};
pub use resources::BwrapResources;

use async_trait::async_trait;
use cgroup::SandboxCgroup;
use openhands_core::conversation::validate_conversation_id;
use openhands_core::extension::SandboxError;
use openhands_core::sandbox_config::{NetworkMode, SandboxConfig, SandboxLimits};
use openhands_core::sandbox_host::{Isolation, LaunchedToolServer, ToolServerLauncher};
use resources::LiveLaunches;
use std::collections::VecDeque;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// Runs before `bwrap` (as the same process, through `exec`): joins the sandbox's cgroups
/// so that nothing in the sandbox ever runs outside them, closes every inherited file
/// descriptor but 0, 1 and 2, and starts `bwrap` with an empty environment.
/// Arguments: the number of `cgroup.procs` files, the files, then `bwrap` and its args.
const WRAPPER: &str = r#"n=$1; shift
while [ "$n" -gt 0 ]; do
  printf '%s\n' "$$" > "$1" || { printf 'openhands: cannot join cgroup %s\n' "$1" >&2; exit 125; }
  shift; n=$((n-1))
done
for fd in /proc/$$/fd/*; do
  fd=${fd##*/}
  case $fd in 0|1|2) ;; *) exec {fd}>&- ;; esac
done
exec -c "$@""#;

/// Shared files under the runtime directory (sandbox names never start with '.').
const ETC_DIR: &str = ".etc";
const PREFLIGHT_DIR: &str = ".preflight";

/// Starts each conversation's tool server in its own bubblewrap sandbox (`saas.bwrap`).
pub struct BwrapLauncher {
    bwrap: PathBuf,
    bash: PathBuf,
    features: BwrapFeatures,
    layout: HostLayout,
    limits: SandboxLimits,
    mode: NetworkMode,
    tool_server: PathBuf,
    tool_server_args: Vec<String>,
    runtime_dir: PathBuf,
    cgroups: Cgroups,
    warnings: Vec<String>,
    live: LiveLaunches,
}

/// Numbers launches (and trials) process-wide, so cgroup names never collide, even
/// between several launchers in one process.
static NEXT_LAUNCH: AtomicU64 = AtomicU64::new(1);

impl std::fmt::Debug for BwrapLauncher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BwrapLauncher")
            .field("bwrap", &self.bwrap)
            .field("tool_server", &self.tool_server)
            .field("cgroups", &self.cgroups)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

/// Longest conversation id used verbatim in host paths; longer or unusual ids are hashed.
const MAX_VERBATIM_ID: usize = 40;
/// Longest Unix socket path (`sun_path` holds 108 bytes with the terminating NUL).
const MAX_SOCKET_PATH: usize = 107;

/// The name of `id`'s sandbox in host paths and cgroups: the id itself when it is short
/// and made of `[A-Za-z0-9_-]`, else `+` and a SHA-256 prefix of it (`+` never starts a
/// verbatim name, so a chosen id cannot collide with another's hash). Ids the server
/// refuses anyway (`validate_conversation_id`) are refused here too.
fn sandbox_name(id: &str) -> Result<String, BwrapError> {
    validate_conversation_id(id).map_err(|_| BwrapError::InvalidConversationId(id.to_owned()))?;
    let verbatim = id.len() <= MAX_VERBATIM_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'));
    if verbatim {
        return Ok(id.to_owned());
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, id.as_bytes());
    let hex: String = digest.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(format!("+{hex}"))
}

fn create_dir(path: &Path, mode: u32) -> Result<(), BwrapError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(path)
        .map_err(|e| BwrapError::io("creating directory", path, e))
}

impl BwrapLauncher {
    /// Finds `bwrap`, checks the tool server, picks a cgroup hierarchy and starts a trial
    /// sandbox with the full policy; fails with an error naming what to install or which
    /// kernel setting to change. `runtime_dir` is a server-private directory for
    /// per-sandbox files (created if missing). Blocks for the trial (tens of ms).
    pub fn new(
        config: &SandboxConfig,
        tool_server: PathBuf,
        runtime_dir: PathBuf,
    ) -> Result<Self, BwrapError> {
        let bwrap = preflight::find_bwrap(&config.bwrap_path)?;
        let features = preflight::bwrap_features(&bwrap)?;
        let bash = preflight::find_bash()?;
        preflight::check_tool_server(&tool_server)?;
        create_dir(&runtime_dir, 0o700)?;
        // `bwrap` starts in `/`: relative paths would resolve there.
        let runtime_dir = std::fs::canonicalize(&runtime_dir)
            .map_err(|e| BwrapError::io("resolving", &runtime_dir, e))?;
        let tool_server = std::fs::canonicalize(&tool_server)
            .map_err(|e| BwrapError::io("resolving", &tool_server, e))?;
        let longest_socket = runtime_dir
            .join("x".repeat(MAX_VERBATIM_ID))
            .join("net/proxy.sock");
        if config.network.mode == NetworkMode::Proxy
            && longest_socket.as_os_str().len() > MAX_SOCKET_PATH
        {
            return Err(BwrapError::RuntimeDirTooLong(runtime_dir));
        }
        let etc = runtime_dir.join(ETC_DIR);
        create_dir(&etc, 0o755)?;
        for (name, content) in policy::synthetic_etc() {
            let path = etc.join(name);
            std::fs::write(&path, content).map_err(|e| BwrapError::io("writing", &path, e))?;
        }
        let (cgroups, mut warnings) = cgroup::detect();
        if !features.disable_userns {
            warnings.push(format!(
                "{} does not support --disable-userns (bubblewrap < 0.8): the sandbox can \
                 create nested user namespaces, which widens the kernel attack surface",
                bwrap.display()
            ));
        }
        if config.network.mode == NetworkMode::Open {
            warnings.push(
                "[sandbox.network] mode = \"open\": sandboxes share the host's network, \
                 including services listening on its loopback"
                    .into(),
            );
        }
        if preflight::runs_as_root() {
            warnings.push(
                "the server runs as root: the sandbox's user has no capabilities, but it is \
                 root on the host for file ownership (its files belong to root; it can read \
                 root-only files among the system files it sees); run the server as a \
                 dedicated unprivileged user"
                    .into(),
            );
        }
        let launcher = Self {
            bwrap,
            bash,
            features,
            layout: HostLayout::probe(&etc),
            limits: config.limits.clone(),
            mode: config.network.mode,
            tool_server,
            tool_server_args: Vec::new(),
            runtime_dir,
            cgroups,
            warnings,
            live: Arc::default(),
        };
        launcher.trial_sandbox()?;
        Ok(launcher)
    }

    /// Problems that do not stop the server but weaken the sandbox (no cgroups, an old
    /// `bwrap`, open network, running as root), for the log and `/ready`.
    pub fn preflight_warnings(&self) -> Vec<String> {
        self.warnings.clone()
    }

    /// The cgroup hierarchy in use.
    pub fn cgroups(&self) -> &Cgroups {
        &self.cgroups
    }

    /// The `bwrap` program in use.
    pub fn bwrap_path(&self) -> &Path {
        &self.bwrap
    }

    /// Where (on the host) the egress proxy of `conversation_id` must listen: the sandbox
    /// sees this socket at [`policy::PROXY_SOCKET_IN_SANDBOX`]. Pure; see
    /// [`Self::prepare_proxy_socket`] to create its directory.
    pub fn proxy_socket_path(&self, conversation_id: &str) -> Result<PathBuf, BwrapError> {
        Ok(self.proxy_dir(conversation_id)?.join("proxy.sock"))
    }

    /// Creates the directory of [`Self::proxy_socket_path`] (mode 0755) and returns the
    /// socket's path, for binding the proxy before [`ToolServerLauncher::launch`].
    pub fn prepare_proxy_socket(&self, conversation_id: &str) -> Result<PathBuf, BwrapError> {
        let dir = self.proxy_dir(conversation_id)?;
        create_dir(&dir, 0o755)?;
        Ok(dir.join("proxy.sock"))
    }

    /// The host directory of one sandbox's runtime files.
    fn sandbox_dir(&self, conversation_id: &str) -> Result<PathBuf, BwrapError> {
        Ok(self.runtime_dir.join(sandbox_name(conversation_id)?))
    }

    fn proxy_dir(&self, conversation_id: &str) -> Result<PathBuf, BwrapError> {
        Ok(self.sandbox_dir(conversation_id)?.join("net"))
    }

    /// The policy [`ToolServerLauncher::launch`] would apply, for review and tests.
    pub fn plan(&self, conversation_id: &str, workspace: &Path) -> Result<SandboxPlan, BwrapError> {
        let proxy_dir = self.proxy_dir(conversation_id)?;
        if !workspace.is_absolute() || !workspace.is_dir() {
            return Err(BwrapError::InvalidWorkspace(workspace.to_owned()));
        }
        Ok(self.plan_unchecked(workspace, &proxy_dir))
    }

    fn plan_unchecked(&self, workspace: &Path, proxy_dir: &Path) -> SandboxPlan {
        let mut plan = SandboxPlan::build(
            &self.layout,
            self.features,
            &self.limits,
            self.mode,
            &self.tool_server,
            &LaunchTarget {
                workspace,
                proxy_dir,
            },
        );
        plan.command.splice(
            1..1,
            self.tool_server_args.iter().map(std::ffi::OsString::from),
        );
        plan
    }

    /// Arguments the tool server program needs before its own flags: `["tool-server"]`
    /// when it is the server binary itself.
    pub fn with_tool_server_args(mut self, args: Vec<String>) -> Self {
        self.tool_server_args = args;
        self
    }

    /// The wrapper's program and arguments for `plan`, joining `cgroup`.
    fn command_line(
        &self,
        plan: &SandboxPlan,
        cgroup: Option<&SandboxCgroup>,
    ) -> std::process::Command {
        let procs = cgroup.map(SandboxCgroup::procs_files).unwrap_or_default();
        let mut command = std::process::Command::new(&self.bash);
        command
            .args(["--noprofile", "--norc", "-c", WRAPPER, "openhands-sandbox"])
            .arg(procs.len().to_string())
            .args(&procs)
            .arg(&self.bwrap)
            .args(plan.to_args(self.features))
            .env_clear()
            .current_dir("/");
        command
    }

    /// Runs `true` in a sandbox with the full policy (and cgroups with the configured
    /// limits), so a kernel that refuses it stops the server at start-up.
    fn trial_sandbox(&self) -> Result<(), BwrapError> {
        let trial = NEXT_LAUNCH.fetch_add(1, Ordering::Relaxed);
        let dir = self
            .runtime_dir
            .join(format!("{PREFLIGHT_DIR}-{}-{trial}", std::process::id()));
        let workspace = dir.join("workspace");
        let proxy_dir = dir.join("net");
        create_dir(&workspace, 0o755)?;
        create_dir(&proxy_dir, 0o755)?;
        let mut plan = self.plan_unchecked(&workspace, &proxy_dir);
        plan.command = vec!["/usr/bin/true".into()];
        let name = format!("{}-{trial}-.preflight", std::process::id());
        let cgroup = SandboxCgroup::create(&self.cgroups, &name, &self.limits)?;
        let output = self
            .command_line(&plan, cgroup.as_ref())
            .stdin(Stdio::null())
            .output();
        if let Some(cgroup) = &cgroup {
            cgroup.kill_all(std::time::Duration::from_secs(1));
            cgroup.remove();
        }
        let _ = std::fs::remove_dir_all(&dir);
        let output = output.map_err(|source| BwrapError::Spawn {
            program: self.bwrap.clone(),
            source,
        })?;
        if output.status.success() {
            return Ok(());
        }
        let said = preflight::bounded(&output.stderr);
        if said.contains("openhands: cannot join cgroup") {
            return Err(BwrapError::CgroupJoin(said));
        }
        Err(BwrapError::SandboxRefused {
            bwrap_said: format!("{said} ({})", output.status),
            sysctls: preflight::userns_sysctls(),
        })
    }

    async fn start(
        &self,
        conversation_id: &str,
        workspace: &Path,
    ) -> Result<LaunchedToolServer, BwrapError> {
        let plan = self.plan(conversation_id, workspace)?;
        let launch = NEXT_LAUNCH.fetch_add(1, Ordering::Relaxed);
        let sandbox_name = sandbox_name(conversation_id)?;
        let name = format!("{}-{launch}-{sandbox_name}", std::process::id());
        let cgroup = SandboxCgroup::create(&self.cgroups, &name, &self.limits)?;
        self.live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(sandbox_name.clone(), launch);
        // From here on, an error drops `resources`, which removes the cgroup and the
        // directory.
        let mut resources = BwrapResources {
            conversation_id: conversation_id.to_owned(),
            sandbox_name,
            cgroup,
            bwrap: None,
            memory_bytes: self.limits.memory_bytes,
            processes: self.limits.processes,
            bwrap_errors: Arc::new(Mutex::new(VecDeque::new())),
            runtime_dir: self.sandbox_dir(conversation_id)?,
            launch,
            live: self.live.clone(),
        };
        create_dir(&resources.runtime_dir, 0o755)?;
        if self.mode == NetworkMode::Proxy {
            create_dir(&resources.runtime_dir.join("net"), 0o755)?;
        }
        let mut command: tokio::process::Command =
            self.command_line(&plan, resources.cgroup.as_ref()).into();
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|source| BwrapError::Spawn {
            program: self.bwrap.clone(),
            source,
        })?;
        // The child is not reaped before we are done here, so its pid cannot be reused.
        resources.bwrap = child
            .id()
            .and_then(|pid| rustix::process::Pid::from_raw(pid.try_into().ok()?))
            .and_then(|pid| {
                rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok()
            });
        if let Some(stderr) = child.stderr.take() {
            resources::log_stderr(
                conversation_id.to_owned(),
                stderr,
                resources.bwrap_errors.clone(),
            );
        }
        tracing::debug!(
            conversation_id,
            pid = child.id(),
            cgroups = self.cgroups.version(),
            "sandbox started"
        );
        let extra_env = if self.mode == NetworkMode::Proxy {
            policy::proxy_env()
        } else {
            Vec::new()
        };
        Ok(LaunchedToolServer {
            child,
            extra_env,
            resources: Box::new(resources),
        })
    }
}

#[async_trait]
impl ToolServerLauncher for BwrapLauncher {
    async fn launch(
        &self,
        conversation_id: &str,
        workspace: &Path,
    ) -> Result<LaunchedToolServer, SandboxError> {
        Ok(self.start(conversation_id, workspace).await?)
    }

    fn isolation(&self) -> Isolation {
        Isolation::Isolated
    }

    fn reported_workspace(&self, _workspace: &Path) -> Option<String> {
        Some(policy::WORKSPACE_IN_SANDBOX.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::sandbox_name;

    #[test]
    fn conversation_ids_cannot_leave_their_directory() {
        for bad in ["", "..", "a/b", "a/../b", "x\0", "a\\b", &"a".repeat(101)] {
            assert!(sandbox_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn plain_ids_are_kept_and_others_hashed() {
        for plain in ["0c1f9a7e", "conv-1_2", "A"] {
            assert_eq!(sandbox_name(plain).ok().as_deref(), Some(plain));
        }
        for odd in [".etc", "a b", "é", "x.y", &"a".repeat(41)] {
            let name = sandbox_name(odd).expect("valid id");
            assert!(
                name.starts_with('+') && name.len() == 33,
                "{odd:?} -> {name}"
            );
        }
        assert_ne!(sandbox_name("a b").ok(), sandbox_name("a  b").ok());
    }
}
