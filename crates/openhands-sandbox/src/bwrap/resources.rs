//! What one launch leaves behind besides the process, and how it is released: the
//! sandbox's cgroups, a pidfd of `bwrap`, its per-sandbox runtime directory and the
//! logging of its stderr.
//!
//! Killing `bwrap` ends the sandbox's pid namespace (its init dies with it, and the kernel
//! kills every process of a namespace whose init died), which takes processes that left
//! their session (`setsid`, `nohup`) with it; the cgroup is swept as well, so nothing
//! survives even if a process somehow left the namespace.

use super::cgroup::SandboxCgroup;
use openhands_core::sandbox_host::LaunchResources;
use rustix::fd::OwnedFd;
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt as _, BufReader};

/// Longest stderr line logged (longer lines are cut).
const MAX_LINE: usize = 2000;
/// Lines of stderr logged per sandbox; the rest is read and dropped.
const MAX_LINES: usize = 1000;
/// `bwrap:` lines kept to explain a sandbox that did not start.
const TAIL: usize = 4;
/// How long `kill_all` waits for the cgroups to empty.
const KILL_PATIENCE: Duration = Duration::from_secs(2);

/// Which launch of a conversation currently owns its runtime directory.
pub(crate) type LiveLaunches = Arc<Mutex<HashMap<String, u64>>>;

/// The resources of one bubblewrap sandbox.
pub struct BwrapResources {
    pub(crate) conversation_id: String,
    /// The sandbox's name in host paths (the key of `live`).
    pub(crate) sandbox_name: String,
    pub(crate) cgroup: Option<SandboxCgroup>,
    /// A pidfd of `bwrap` (the outer process): signalling it cannot hit a reused pid.
    pub(crate) bwrap: Option<OwnedFd>,
    pub(crate) memory_bytes: u64,
    pub(crate) processes: u64,
    pub(crate) bwrap_errors: Arc<Mutex<VecDeque<String>>>,
    /// The per-sandbox runtime directory, removed on drop if this launch still owns it.
    pub(crate) runtime_dir: PathBuf,
    pub(crate) launch: u64,
    pub(crate) live: LiveLaunches,
}

impl std::fmt::Debug for BwrapResources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BwrapResources")
            .field("conversation_id", &self.conversation_id)
            .field("cgroup", &self.cgroup)
            .finish_non_exhaustive()
    }
}

/// "2 GiB", "128 MiB", "1500000 bytes".
pub fn human_bytes(bytes: u64) -> String {
    for (unit, name) in [(1u64 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")] {
        if bytes >= unit && bytes.is_multiple_of(unit) {
            return format!("{} {name}", bytes / unit);
        }
    }
    format!("{bytes} bytes")
}

impl BwrapResources {
    /// OOM kills so far, for callers that want to explain a killed command.
    pub fn oom_kills(&self) -> u64 {
        self.cgroup.as_ref().map_or(0, SandboxCgroup::oom_kills)
    }
}

impl LaunchResources for BwrapResources {
    fn kill_all(&self) {
        if let Some(fd) = &self.bwrap {
            let _ = rustix::process::pidfd_send_signal(fd, rustix::process::Signal::KILL);
        }
        if let Some(cgroup) = &self.cgroup {
            cgroup.kill_all(KILL_PATIENCE);
        }
    }

    fn exit_reason(&self) -> Option<String> {
        if let Some(cgroup) = &self.cgroup {
            if cgroup.oom_kills() > 0 {
                return Some(format!(
                    "the sandbox reached its memory limit of {} and was stopped",
                    human_bytes(self.memory_bytes)
                ));
            }
            if cgroup.pids_limit_hits() > 0 {
                return Some(format!(
                    "the sandbox reached its limit of {} processes",
                    self.processes
                ));
            }
        }
        let errors = self
            .bwrap_errors
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        (!errors.is_empty()).then(|| {
            format!(
                "the sandbox could not start: {}",
                errors.iter().cloned().collect::<Vec<_>>().join("; ")
            )
        })
    }
}

impl Drop for BwrapResources {
    fn drop(&mut self) {
        self.kill_all();
        if let Some(cgroup) = &self.cgroup {
            cgroup.remove();
        }
        let mut live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        if live.get(&self.sandbox_name) == Some(&self.launch) {
            live.remove(&self.sandbox_name);
            if let Err(e) = std::fs::remove_dir_all(&self.runtime_dir)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(
                    conversation_id = %self.conversation_id,
                    dir = %self.runtime_dir.display(),
                    error = %e,
                    "sandbox runtime directory not removed"
                );
            }
        }
    }
}

/// Logs the sandbox's stderr line by line at debug (bounded), keeping `bwrap:` lines.
pub(crate) fn log_stderr(
    conversation_id: String,
    stderr: impl AsyncRead + Unpin + Send + 'static,
    bwrap_errors: Arc<Mutex<VecDeque<String>>>,
) {
    tokio::spawn(async move {
        let mut reader = BufReader::new(stderr);
        let mut line = Vec::new();
        let mut logged = 0usize;
        loop {
            line.clear();
            // Reads at most MAX_LINE bytes per step, so a line without newline stays bounded.
            let mut limited = (&mut reader).take(MAX_LINE as u64);
            match limited.read_until(b'\n', &mut line).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end();
            if text.starts_with("bwrap:") {
                let mut errors = bwrap_errors.lock().unwrap_or_else(PoisonError::into_inner);
                if errors.len() == TAIL {
                    errors.pop_front();
                }
                errors.push_back(text.to_owned());
            }
            if logged < MAX_LINES {
                logged += 1;
                tracing::debug!(conversation_id = %conversation_id, line = %text, "sandbox stderr");
            } else if logged == MAX_LINES {
                logged += 1;
                tracing::debug!(conversation_id = %conversation_id, "sandbox stderr: further lines are not logged");
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::human_bytes;

    #[test]
    fn sizes_read_like_the_configuration() {
        assert_eq!(human_bytes(2 << 30), "2 GiB");
        assert_eq!(human_bytes(128 << 20), "128 MiB");
        assert_eq!(human_bytes(1_500_000), "1500000 bytes");
    }
}
