//! The running tool servers of one sandbox implementation, one per conversation.
//!
//! Each has a waiter task that owns the child process and its launch resources: it reports
//! why the child ended to the client (so calls fail with "the memory limit was reached"
//! rather than "connection closed"), kills everything the sandbox started, and removes the
//! entry. Launches of one conversation are serialized; different conversations launch in
//! parallel.

use super::launcher::{LaunchResources, ToolServerLauncher};
use crate::extension::SandboxError;
use crate::tool_protocol::ToolClient;
use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::process::{Child, ChildStderr};
use tokio::sync::oneshot;

/// Lines of a tool server's stderr kept for the error of a failed start.
const STDERR_TAIL_LINES: usize = 20;
/// Longest stderr line kept or logged.
const STDERR_LINE_CHARS: usize = 512;

/// A running tool server and the variables its launcher wants in the tools' environment.
type Found = (Arc<ToolClient>, Vec<(String, String)>);

/// Who wants a tool server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Use {
    /// The agent: lives until released.
    Agent,
    /// The file routes: lives until idle.
    Files,
}

struct Entry {
    tools: Arc<ToolClient>,
    extra_env: Vec<(String, String)>,
    agent: bool,
    last_used: Instant,
    generation: u64,
    kill: Option<oneshot::Sender<()>>,
}

pub(super) struct LiveSandboxes<L> {
    launcher: L,
    idle: Duration,
    entries: Mutex<HashMap<String, Entry>>,
    launch_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    generations: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl<L: ToolServerLauncher> LiveSandboxes<L> {
    pub(super) fn new(launcher: L, idle: Duration) -> Arc<Self> {
        Arc::new(Self {
            launcher,
            idle,
            entries: Mutex::new(HashMap::new()),
            launch_locks: Mutex::new(HashMap::new()),
            generations: AtomicU64::new(1),
        })
    }

    pub(super) fn launcher(&self) -> &L {
        &self.launcher
    }

    /// The connected tool server of `id`, if one runs (its use is recorded).
    pub(super) fn running(&self, id: &str) -> Option<Arc<ToolClient>> {
        let mut entries = lock(&self.entries);
        let entry = entries.get_mut(id)?;
        if !entry.tools.is_connected() {
            return None;
        }
        entry.last_used = Instant::now();
        Some(entry.tools.clone())
    }

    /// The tool server of `id`, started in `workspace` when none runs, and the variables
    /// the launcher wants in the tools' environment.
    pub(super) async fn get_or_launch(
        self: &Arc<Self>,
        id: &str,
        workspace: &Path,
        usage: Use,
    ) -> Result<Found, SandboxError> {
        let launch_lock = lock(&self.launch_locks)
            .entry(id.to_owned())
            .or_default()
            .clone();
        let result = {
            let _launching = launch_lock.lock().await;
            match self.claim_running(id, usage) {
                Some(found) => Ok(found),
                None => self.launch(id, workspace, usage).await,
            }
        };
        let mut locks = lock(&self.launch_locks);
        if Arc::strong_count(&launch_lock) == 2 {
            locks.remove(id);
        }
        result
    }

    fn claim_running(&self, id: &str, usage: Use) -> Option<Found> {
        let mut entries = lock(&self.entries);
        let entry = entries.get_mut(id)?;
        if !entry.tools.is_connected() {
            return None;
        }
        entry.last_used = Instant::now();
        entry.agent |= usage == Use::Agent;
        Some((entry.tools.clone(), entry.extra_env.clone()))
    }

    async fn launch(
        self: &Arc<Self>,
        id: &str,
        workspace: &Path,
        usage: Use,
    ) -> Result<Found, SandboxError> {
        let mut launched = self.launcher.launch(id, workspace).await?;
        let stderr_tail = Arc::new(Mutex::new(VecDeque::new()));
        if let Some(stderr) = launched.child.stderr.take() {
            tokio::spawn(log_stderr(stderr, id.to_owned(), stderr_tail.clone()));
        }
        let (Some(stdout), Some(stdin)) =
            (launched.child.stdout.take(), launched.child.stdin.take())
        else {
            launched.resources.kill_all();
            return Err(SandboxError::Setup(
                "the sandbox was started without its protocol pipes".into(),
            ));
        };
        let (exit_tx, exit_rx) = oneshot::channel();
        let tools = match ToolClient::connect_with_exit(stdout, stdin, exit_rx).await {
            Ok(tools) => Arc::new(tools),
            Err(e) => {
                launched.resources.kill_all();
                let _ = launched.child.kill().await;
                let tail: Vec<String> = lock(&stderr_tail).iter().cloned().collect();
                let detail = if tail.is_empty() {
                    String::new()
                } else {
                    format!(" (its last words: {})", tail.join(" | "))
                };
                return Err(SandboxError::Setup(format!(
                    "starting the sandbox failed: {e}{detail}"
                )));
            }
        };
        let generation = self.generations.fetch_add(1, Ordering::Relaxed);
        let (kill_tx, kill_rx) = oneshot::channel();
        lock(&self.entries).insert(
            id.to_owned(),
            Entry {
                tools: tools.clone(),
                extra_env: launched.extra_env.clone(),
                agent: usage == Use::Agent,
                last_used: Instant::now(),
                generation,
                kill: Some(kill_tx),
            },
        );
        tokio::spawn(self.clone().wait_for_end(
            id.to_owned(),
            generation,
            launched.child,
            launched.resources,
            kill_rx,
            exit_tx,
        ));
        if usage == Use::Files {
            tokio::spawn(self.clone().close_when_idle(id.to_owned(), generation));
        }
        Ok((tools, launched.extra_env))
    }

    async fn wait_for_end(
        self: Arc<Self>,
        id: String,
        generation: u64,
        mut child: Child,
        resources: Box<dyn LaunchResources>,
        kill: oneshot::Receiver<()>,
        exit_tx: oneshot::Sender<Option<String>>,
    ) {
        let status = tokio::select! {
            status = child.wait() => status.ok(),
            _ = kill => None,
        };
        resources.kill_all();
        let _ = child.kill().await;
        let reason = resources.exit_reason().or_else(|| {
            status
                .filter(|s| !s.success())
                .map(|s| format!("the sandbox's tool server ended ({s})"))
        });
        if let Some(reason) = &reason {
            tracing::info!(conversation_id = %id, %reason, "sandbox ended");
        }
        let _ = exit_tx.send(reason);
        drop(resources);
        let mut entries = lock(&self.entries);
        if entries.get(&id).is_some_and(|e| e.generation == generation) {
            entries.remove(&id);
        }
    }

    async fn close_when_idle(self: Arc<Self>, id: String, generation: u64) {
        loop {
            tokio::time::sleep(self.idle).await;
            let idle_for = {
                let entries = lock(&self.entries);
                match entries.get(&id) {
                    Some(e) if e.generation == generation && !e.agent => e.last_used.elapsed(),
                    _ => return,
                }
            };
            if idle_for >= self.idle {
                self.stop_generation(&id, Some(generation)).await;
                return;
            }
        }
    }

    /// Ends the tool server of `id` and everything its sandbox started.
    pub(super) async fn stop(&self, id: &str) {
        self.stop_generation(id, None).await;
    }

    async fn stop_generation(&self, id: &str, generation: Option<u64>) {
        let entry = {
            let mut entries = lock(&self.entries);
            match entries.get(id) {
                Some(e) if generation.is_none_or(|g| g == e.generation) => entries.remove(id),
                _ => None,
            }
        };
        if let Some(mut entry) = entry {
            if let Some(kill) = entry.kill.take() {
                let _ = kill.send(());
            }
            // Wait until the waiter has ended it, so a stop is complete when it returns.
            let tools = entry.tools;
            for _ in 0..200 {
                if !tools.is_connected() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Logs a tool server's stderr at debug and keeps its last lines. The sandbox is hostile:
/// lines are cut at [`STDERR_LINE_CHARS`] while reading, so a line without an end cannot
/// grow the server's memory.
async fn log_stderr(mut stderr: ChildStderr, id: String, tail: Arc<Mutex<VecDeque<String>>>) {
    use tokio::io::AsyncReadExt;
    let mut chunk = [0u8; 4096];
    let mut line = Vec::with_capacity(STDERR_LINE_CHARS);
    while let Ok(n) = stderr.read(&mut chunk).await {
        if n == 0 {
            break;
        }
        for &byte in &chunk[..n] {
            if byte == b'\n' {
                let text = String::from_utf8_lossy(&line).into_owned();
                line.clear();
                tracing::debug!(conversation_id = %id, "sandbox: {text}");
                let mut tail = lock(&tail);
                if tail.len() == STDERR_TAIL_LINES {
                    tail.pop_front();
                }
                tail.push_back(text);
            } else if line.len() < STDERR_LINE_CHARS {
                line.push(byte);
            }
        }
    }
}
