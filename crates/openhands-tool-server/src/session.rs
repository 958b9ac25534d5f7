//! The named shell sessions of one connection.
//!
//! Each session is started on first use and keeps its shell until it is closed or the
//! connection ends. Commands of one session wait for each other (the shell runs one at a
//! time); interrupting and closing go around that wait through the session's
//! [`ShellControl`], so they reach a command that is still running.

use crate::bash::{BashSession, ShellControl, ShellSpec};
use crate::error::ToolError;
use openhands_core::tool_protocol::CommandOutput;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// Most sessions open at once on one connection.
const MAX_SESSIONS: usize = 32;
/// Longest session name.
const MAX_NAME_CHARS: usize = 128;

/// One named session.
#[derive(Debug, Default)]
struct Slot {
    control: Arc<ShellControl>,
    shell: tokio::sync::Mutex<Option<BashSession>>,
}

/// The sessions of one connection.
#[derive(Debug, Default)]
pub struct Sessions {
    slots: Mutex<HashMap<String, Arc<Slot>>>,
}

impl Sessions {
    fn slots(&self) -> MutexGuard<'_, HashMap<String, Arc<Slot>>> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `command` in session `name`, starting its shell with `spec` if needed.
    pub async fn run(
        &self,
        name: &str,
        command: &str,
        timeout: Duration,
        spec: impl FnOnce() -> ShellSpec,
    ) -> Result<CommandOutput, ToolError> {
        let slot = self.slot(name)?;
        let mut shell = slot.shell.lock().await;
        if slot.control.is_closed() {
            return Err(ToolError::Shell {
                doing: "running a command".into(),
                reason: format!("the session {name} was closed"),
            });
        }
        let session = match &mut *shell {
            Some(session) => session,
            empty => empty.insert(BashSession::start(spec(), slot.control.clone()).await?),
        };
        let result = session.run(command, timeout).await;
        if result.is_err() {
            // The shell could not be talked to or restarted: start afresh next time.
            if let Some(broken) = shell.take() {
                broken.close().await;
            }
        }
        result
    }

    /// The slot of `name`, created when missing.
    fn slot(&self, name: &str) -> Result<Arc<Slot>, ToolError> {
        if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
            return Err(ToolError::InvalidArgument(format!(
                "a session name has 1 to {MAX_NAME_CHARS} characters"
            )));
        }
        let mut slots = self.slots();
        if let Some(slot) = slots.get(name) {
            return Ok(slot.clone());
        }
        if slots.len() >= MAX_SESSIONS {
            return Err(ToolError::InvalidArgument(format!(
                "{MAX_SESSIONS} shell sessions are open; close one before starting another"
            )));
        }
        let slot = Arc::new(Slot::default());
        slots.insert(name.to_owned(), slot.clone());
        Ok(slot)
    }

    /// Interrupts the command running in `name`, if any.
    pub fn interrupt(&self, name: &str) {
        let slot = self.slots().get(name).cloned();
        if let Some(slot) = slot {
            slot.control.interrupt();
        }
    }

    /// Ends session `name` and everything its shell started.
    pub async fn close(&self, name: &str) {
        let slot = self.slots().remove(name);
        if let Some(slot) = slot {
            slot.control.close();
            // A running command ends now that its shell is dead; then the slot is free.
            if let Some(shell) = slot.shell.lock().await.take() {
                shell.close().await;
            }
        }
    }

    /// Kills every session's process group at once (the connection ended).
    pub fn kill_all(&self) {
        for slot in self.slots().drain().map(|(_, slot)| slot) {
            slot.control.close();
        }
    }
}
