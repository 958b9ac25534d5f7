//! A persistent bash session.
//!
//! One `bash --noprofile --norc` process lives as long as its session, so `cd`, exported
//! variables and shell functions carry over between commands. It runs in its own process
//! group with a minimal environment (PATH, HOME = workspace, LANG, TERM plus the configured
//! variables) and `exec 2>&1`, so stdout and stderr arrive interleaved on one pipe.
//!
//! Each command is sent as a here-document sourced into the shell
//! (`. /dev/stdin <<'DELIM' ... DELIM`), so multi-line commands and heredocs work, and the
//! command's own stdin is that (already consumed) document: a command that reads stdin gets
//! end-of-file instead of swallowing the next command. After it the shell prints a sentinel
//! line with a per-command nonce, the exit code and `$PWD`; output is everything before it.
//!
//! Timeouts: the shell traps SIGINT with `return 130`, which aborts the sourced command (even
//! a loop) while keeping the shell alive. When a command outlives its timeout the session
//! sends SIGINT to the process group and waits briefly for the sentinel; if the shell does not
//! come back (the command ignores SIGINT, or it exited the shell), the whole process group is
//! killed and a fresh shell is started in the last known working directory. Either way the
//! caller gets the partial output with `timed_out: true`, so no command can hang the session.
//!
//! A [`ShellControl`] shared with the session lets another task interrupt the running
//! command or close the shell while `run` holds the session (the requests of one session are
//! serialized, `bash_interrupt` is not). Signals go to the process group directly (no helper
//! process), so they work even when a fork bomb has used up the process limit.

mod buffer;

use crate::error::ToolError;
use buffer::OutputBuffer;
use openhands_core::tool_protocol::CommandOutput;
use rustix::process::{Pid, Signal};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::time::Instant;

/// How long an interrupted command gets to return to the prompt before the shell is killed.
const INTERRUPT_GRACE: Duration = Duration::from_secs(3);
/// How long `start` waits for a fresh shell to answer.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const SIGINT_TRAP: &str = "trap 'return 130 2>/dev/null' INT";

/// What other tasks may do to a session's shell while a command runs.
#[derive(Debug, Default)]
pub struct ShellControl {
    /// The current shell's process group (0: none).
    pgid: AtomicI32,
    /// A command is running.
    running: AtomicBool,
    /// The running command was interrupted by [`Self::interrupt`].
    interrupted: AtomicBool,
    /// The session is being closed: the shell is not restarted when it ends.
    closed: AtomicBool,
}

impl ShellControl {
    /// Sends SIGINT to the running command (and the shell, which traps it and returns to its
    /// prompt). Nothing happens when no command runs.
    pub fn interrupt(&self) {
        if self.running.load(Ordering::SeqCst) {
            self.interrupted.store(true, Ordering::SeqCst);
            self.signal(Signal::INT);
        }
    }

    /// Marks the session closed and kills the shell's whole process group.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.signal(Signal::KILL);
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    fn signal(&self, signal: Signal) {
        signal_group(self.pgid.load(Ordering::SeqCst), signal);
    }
}

/// Sends `signal` to process group `pgid` (nothing for 0).
fn signal_group(pgid: i32, signal: Signal) {
    let Some(pid) = Pid::from_raw(pgid) else {
        return;
    };
    if let Err(e) = rustix::process::kill_process_group(pid, signal) {
        tracing::debug!(pgid, error = %e, "could not signal the bash process group");
    }
}

/// How a shell is started.
#[derive(Debug, Clone)]
pub struct ShellSpec {
    /// The workspace: HOME, and the first working directory.
    pub workdir: PathBuf,
    /// Variables added to the minimal base environment (may hold secrets).
    pub env: Vec<(String, String)>,
    /// CPU seconds each process of the shell may use (`ulimit -t`); 0: no limit.
    pub cpu_seconds: u64,
}

/// A running shell.
pub struct BashSession {
    child: Child,
    stdin: ChildStdin,
    stdout: ChildStdout,
    /// Process group id (= the shell's pid, as it leads its own group); 0 once killed.
    pgid: i32,
    spec: ShellSpec,
    control: Arc<ShellControl>,
    cwd: String,
    /// Output read after the previous sentinel (from background jobs); starts the next output.
    carry: Vec<u8>,
    counter: u64,
    nonce: String,
}

impl std::fmt::Debug for BashSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `env` may hold secrets: only its names are shown.
        f.debug_struct("BashSession")
            .field("pgid", &self.pgid)
            .field("cwd", &self.cwd)
            .field(
                "env",
                &self
                    .spec
                    .env
                    .iter()
                    .map(|(k, _)| k.as_str())
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Drop for BashSession {
    fn drop(&mut self) {
        // The child is not reaped before `kill` zeroes `pgid`, so the group id cannot have
        // been reused by another process.
        signal_group(self.pgid, Signal::KILL);
    }
}

/// What reading up to the sentinel produced.
enum ReadEnd {
    Done {
        exit_code: i32,
        cwd: String,
        /// Start of the sentinel and end of its line in the buffer.
        span: (usize, usize),
    },
    Timeout,
    Eof,
}

impl BashSession {
    /// Starts a shell as `spec` says, in its workdir.
    pub async fn start(spec: ShellSpec, control: Arc<ShellControl>) -> Result<Self, ToolError> {
        let cwd = spec.workdir.display().to_string();
        Self::spawn(spec, &cwd, control).await
    }

    async fn spawn(
        spec: ShellSpec,
        cwd: &str,
        control: Arc<ShellControl>,
    ) -> Result<Self, ToolError> {
        let spawn_error = |source| ToolError::Spawn {
            workdir: cwd.to_owned(),
            source,
        };
        let path = std::env::var("PATH").unwrap_or_else(|_| DEFAULT_PATH.to_owned());
        let mut child = Command::new("bash")
            .args(["--noprofile", "--norc"])
            .current_dir(cwd)
            .env_clear()
            .env("PATH", path)
            .env("HOME", &spec.workdir)
            .env("LANG", "C.UTF-8")
            .env("TERM", "dumb")
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(spawn_error)?;
        let missing = |what: &str| ToolError::Shell {
            doing: "starting".into(),
            reason: format!("no {what} pipe"),
        };
        let stdin = child.stdin.take().ok_or_else(|| missing("stdin"))?;
        let stdout = child.stdout.take().ok_or_else(|| missing("stdout"))?;
        let pgid = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .unwrap_or(0);
        control.pgid.store(pgid, Ordering::SeqCst);
        let nonce = format!(
            "{:x}{:x}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        );
        let mut session = Self {
            pgid,
            child,
            stdin,
            stdout,
            spec,
            control,
            cwd: cwd.to_owned(),
            carry: Vec::new(),
            counter: 0,
            nonce,
        };
        session.handshake().await?;
        Ok(session)
    }

    /// Sets the shell up and waits until it answers.
    async fn handshake(&mut self) -> Result<(), ToolError> {
        let marker = format!("\n__OH_READY_{}__ ", self.nonce);
        // The hard CPU limit is one second above the soft one, so a process over it first
        // gets SIGXCPU (exit code 152, explained in the output) rather than SIGKILL.
        let cpu = match self.spec.cpu_seconds {
            0 => String::new(),
            n => format!(
                "ulimit -S -t {n} 2>/dev/null; ulimit -H -t {} 2>/dev/null\n",
                n.saturating_add(1)
            ),
        };
        self.write(&format!(
            "exec 2>&1\nexport PS1= PS2=\n{cpu}{SIGINT_TRAP}\nprintf '{} %s\\n' \"$PWD\"\n",
            marker.replace('\n', "\\n")
        ))
        .await?;
        let mut buffer = OutputBuffer::default();
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        match self
            .read_until(marker.as_bytes(), deadline, &mut buffer)
            .await?
        {
            ReadEnd::Done { span, .. } => {
                self.carry = buffer.data[span.1..].to_vec();
                Ok(())
            }
            ReadEnd::Timeout | ReadEnd::Eof => Err(ToolError::Shell {
                doing: "starting".into(),
                reason: "the shell did not answer".into(),
            }),
        }
    }

    /// Runs `command` (may be several lines) and returns its output once it finished or
    /// `timeout` passed (see the module docs for what happens then).
    pub async fn run(
        &mut self,
        command: &str,
        timeout: Duration,
    ) -> Result<CommandOutput, ToolError> {
        self.control.interrupted.store(false, Ordering::SeqCst);
        self.control.running.store(true, Ordering::SeqCst);
        let result = self.run_inner(command, timeout).await;
        self.control.running.store(false, Ordering::SeqCst);
        let mut output = result?;
        if self.control.interrupted.swap(false, Ordering::SeqCst) && !output.timed_out {
            output
                .output
                .push_str("\n[The command was interrupted (SIGINT).]");
        }
        Ok(output)
    }

    async fn run_inner(
        &mut self,
        command: &str,
        timeout: Duration,
    ) -> Result<CommandOutput, ToolError> {
        self.counter += 1;
        let id = format!("{}_{}", self.nonce, self.counter);
        let delimiter = format!("__OH_EOF_{id}__");
        let marker = format!("\n__OH_DONE_{id}__ ");
        let mut script = format!(". /dev/stdin <<'{delimiter}'\n{command}");
        if !command.ends_with('\n') {
            script.push('\n');
        }
        script.push_str(&format!(
            "{delimiter}\n__oh_ec=$?; {SIGINT_TRAP}; printf '\\n__OH_DONE_{id}__ %s %s\\n' \"$__oh_ec\" \"$PWD\"\n"
        ));
        let mut buffer = OutputBuffer::default();
        buffer.push(&std::mem::take(&mut self.carry));
        if let Err(e) = self.write(&script).await {
            // The shell is gone (e.g. a previous command ran `exit`): start over once.
            tracing::warn!(error = %e, "bash session lost, restarting");
            self.restart().await?;
            self.write(&script).await?;
        }
        let deadline = Instant::now() + timeout;
        match self
            .read_until(marker.as_bytes(), deadline, &mut buffer)
            .await?
        {
            ReadEnd::Done {
                exit_code,
                cwd,
                span,
            } => {
                self.cwd = cwd;
                Ok(self.output(&buffer, Some(span), exit_code, false, ""))
            }
            ReadEnd::Eof => {
                let code = match self.child.wait().await {
                    Ok(status) => status
                        .code()
                        .or_else(|| status.signal().map(|s| 128 + s))
                        .unwrap_or(-1),
                    Err(_) => -1,
                };
                if self.control.is_closed() {
                    return Ok(self.output(
                        &buffer,
                        None,
                        code,
                        false,
                        "\n[The shell was closed.]",
                    ));
                }
                self.restart().await?;
                let note = format!(
                    "\n[The shell exited with code {code}; a new shell was started in {}.]",
                    self.cwd
                );
                Ok(self.output(&buffer, None, code, false, &note))
            }
            ReadEnd::Timeout => self.after_timeout(&marker, timeout, &mut buffer).await,
        }
    }

    /// Interrupts a command that outlived its timeout, or kills the shell if that fails.
    async fn after_timeout(
        &mut self,
        marker: &str,
        timeout: Duration,
        buffer: &mut OutputBuffer,
    ) -> Result<CommandOutput, ToolError> {
        self.interrupt();
        let grace = Instant::now() + INTERRUPT_GRACE;
        let secs = timeout.as_secs_f64();
        match self.read_until(marker.as_bytes(), grace, buffer).await? {
            ReadEnd::Done { cwd, span, .. } => {
                self.cwd = cwd;
                let note = format!(
                    "\n[The command timed out after {secs} seconds and was interrupted (SIGINT).]"
                );
                Ok(self.output(buffer, Some(span), -1, true, &note))
            }
            ReadEnd::Timeout | ReadEnd::Eof if self.control.is_closed() => {
                Ok(self.output(buffer, None, -1, true, "\n[The shell was closed.]"))
            }
            ReadEnd::Timeout | ReadEnd::Eof => {
                self.restart().await?;
                let note = format!(
                    "\n[The command timed out after {secs} seconds and did not stop on SIGINT; the shell was killed and a new one started in {}. Shell variables were reset.]",
                    self.cwd
                );
                Ok(self.output(buffer, None, -1, true, &note))
            }
        }
    }

    /// Builds the result from the text before the sentinel (`sentinel` = its start and the
    /// end of its line; everything when the shell never printed it) and keeps what followed.
    fn output(
        &mut self,
        buffer: &OutputBuffer,
        sentinel: Option<(usize, usize)>,
        exit_code: i32,
        timed_out: bool,
        note: &str,
    ) -> CommandOutput {
        let end = match sentinel {
            Some((start, after)) => {
                self.carry = buffer.data[after..].to_vec();
                start
            }
            None => buffer.data.len(),
        };
        let (mut output, truncated) = buffer.text(end);
        output.push_str(note);
        CommandOutput {
            output,
            exit_code,
            timed_out,
            truncated,
            working_dir: self.cwd.clone(),
        }
    }

    async fn read_until(
        &mut self,
        marker: &[u8],
        deadline: Instant,
        buffer: &mut OutputBuffer,
    ) -> Result<ReadEnd, ToolError> {
        let mut chunk = vec![0u8; 16 * 1024];
        loop {
            if let Some((start, line, after)) = buffer.find_sentinel(marker) {
                let (code, cwd) = line.split_once(' ').unwrap_or((line.as_str(), ""));
                return Ok(ReadEnd::Done {
                    exit_code: code.trim().parse().unwrap_or(-1),
                    cwd: if cwd.is_empty() {
                        self.cwd.clone()
                    } else {
                        cwd.to_owned()
                    },
                    span: (start, after),
                });
            }
            match tokio::time::timeout_at(deadline, self.stdout.read(&mut chunk)).await {
                Err(_) => return Ok(ReadEnd::Timeout),
                Ok(Ok(0)) => return Ok(ReadEnd::Eof),
                Ok(Ok(n)) => buffer.push(&chunk[..n]),
                Ok(Err(e)) => {
                    return Err(ToolError::Shell {
                        doing: "reading output".into(),
                        reason: e.to_string(),
                    });
                }
            }
        }
    }

    async fn write(&mut self, text: &str) -> Result<(), ToolError> {
        let shell_error = |e: std::io::Error| ToolError::Shell {
            doing: "sending a command".into(),
            reason: e.to_string(),
        };
        self.stdin
            .write_all(text.as_bytes())
            .await
            .map_err(shell_error)?;
        self.stdin.flush().await.map_err(shell_error)
    }

    /// Sends SIGINT to the shell's process group (the running command and the shell, which
    /// traps it and returns to its prompt).
    pub fn interrupt(&self) {
        signal_group(self.pgid, Signal::INT);
    }

    /// Kills the shell with its whole process group and starts a new one in the last known
    /// working directory (the workspace when that is gone).
    async fn restart(&mut self) -> Result<(), ToolError> {
        Box::pin(self.restart_inner()).await
    }

    async fn restart_inner(&mut self) -> Result<(), ToolError> {
        self.kill().await;
        if self.control.is_closed() {
            return Err(ToolError::Shell {
                doing: "restarting".into(),
                reason: "the session was closed".into(),
            });
        }
        let cwd = if Path::new(&self.cwd).is_dir() {
            self.cwd.clone()
        } else {
            self.spec.workdir.display().to_string()
        };
        let fresh = Self::spawn(self.spec.clone(), &cwd, self.control.clone()).await?;
        *self = fresh;
        Ok(())
    }

    async fn kill(&mut self) {
        signal_group(self.pgid, Signal::KILL);
        let _ =
            self.control
                .pgid
                .compare_exchange(self.pgid, 0, Ordering::SeqCst, Ordering::SeqCst);
        self.pgid = 0;
        if let Err(e) = self.child.kill().await {
            tracing::debug!(error = %e, "bash already gone");
        }
    }

    /// Ends the shell and everything it started.
    pub async fn close(mut self) {
        self.kill().await;
    }
}

#[cfg(test)]
mod tests;
