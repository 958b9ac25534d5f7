//! A persistent bash session per conversation.
//!
//! One `bash --noprofile --norc` process lives as long as the conversation, so `cd`, exported
//! variables and shell functions carry over between commands. It runs in its own process
//! group with a minimal environment (PATH, HOME = workspace, LANG, TERM plus the given
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

use super::error::ToolError;
use super::output::{MAX_OUTPUT_CHARS, truncate_middle};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::time::Instant;

/// How long an interrupted command gets to return to the prompt before the shell is killed.
const INTERRUPT_GRACE: Duration = Duration::from_secs(3);
/// How long `start` waits for a fresh shell to answer.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes kept from the start of a huge output while it is being read.
const BUFFER_HEAD_BYTES: usize = 256 * 1024;
/// Bytes kept from the end of a huge output while it is being read.
const BUFFER_TAIL_BYTES: usize = 1024 * 1024;
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const SIGINT_TRAP: &str = "trap 'return 130 2>/dev/null' INT";

/// The result of one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    /// stdout and stderr, interleaved, exactly as printed (a final newline included), possibly
    /// cut in the middle, followed by a note when the command timed out or the shell exited.
    pub output: String,
    /// The command's exit code; -1 when it timed out.
    pub exit_code: i32,
    pub timed_out: bool,
    /// Whether `output` was cut to [`MAX_OUTPUT_CHARS`].
    pub truncated: bool,
    /// The shell's working directory after the command.
    pub working_dir: String,
}

/// A running shell.
pub struct BashSession {
    child: Child,
    stdin: ChildStdin,
    stdout: ChildStdout,
    /// Process group id (= the shell's pid, as it leads its own group).
    pgid: Option<u32>,
    workdir: PathBuf,
    env: Vec<(String, String)>,
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
                &self.env.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
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

/// Accumulated output, bounded: a huge output keeps its head and tail and counts the rest.
#[derive(Default)]
struct OutputBuffer {
    data: Vec<u8>,
    dropped: usize,
    /// Where to resume searching for the sentinel.
    scan_from: usize,
}

impl OutputBuffer {
    fn push(&mut self, bytes: &[u8]) {
        self.data.extend_from_slice(bytes);
        if self.data.len() > BUFFER_HEAD_BYTES + 2 * BUFFER_TAIL_BYTES {
            let end = self.data.len() - BUFFER_TAIL_BYTES;
            self.data.drain(BUFFER_HEAD_BYTES..end);
            self.dropped += end - BUFFER_HEAD_BYTES;
            self.scan_from = BUFFER_HEAD_BYTES;
        }
    }

    /// Finds `marker` followed by a full line; returns (marker start, line after marker, end).
    fn find_sentinel(&mut self, marker: &[u8]) -> Option<(usize, String, usize)> {
        let from = self.scan_from.min(self.data.len());
        let found = self.data[from..]
            .windows(marker.len())
            .position(|w| w == marker)
            .map(|i| from + i);
        let Some(start) = found else {
            self.scan_from = self.data.len().saturating_sub(marker.len());
            return None;
        };
        let rest = start + marker.len();
        let newline = self.data[rest..].iter().position(|&b| b == b'\n')?;
        let line = String::from_utf8_lossy(&self.data[rest..rest + newline]).into_owned();
        Some((start, line, rest + newline + 1))
    }

    /// The text of `data[..end]`, cut to [`MAX_OUTPUT_CHARS`].
    fn text(&self, end: usize) -> (String, bool) {
        let raw = String::from_utf8_lossy(&self.data[..end.min(self.data.len())]);
        truncate_middle(&raw, MAX_OUTPUT_CHARS, self.dropped)
    }
}

impl BashSession {
    /// Starts a shell in `workdir` with `env` added to the minimal base environment.
    pub async fn start(workdir: &Path, env: Vec<(String, String)>) -> Result<Self, ToolError> {
        let cwd = workdir.display().to_string();
        Self::spawn(workdir, &cwd, env).await
    }

    async fn spawn(
        workdir: &Path,
        cwd: &str,
        env: Vec<(String, String)>,
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
            .env("HOME", workdir)
            .env("LANG", "C.UTF-8")
            .env("TERM", "dumb")
            .envs(env.iter().map(|(k, v)| (k, v)))
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
        let nonce = format!(
            "{:x}{:x}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        );
        let mut session = Self {
            pgid: child.id(),
            child,
            stdin,
            stdout,
            workdir: workdir.to_owned(),
            env,
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
        self.write(&format!(
            "exec 2>&1\nexport PS1= PS2=\n{SIGINT_TRAP}\nprintf '{} %s\\n' \"$PWD\"\n",
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

    /// The working directory after the last command.
    pub fn working_dir(&self) -> &str {
        &self.cwd
    }

    /// Runs `command` (may be several lines) and returns its output once it finished or
    /// `timeout` passed (see the module docs for what happens then).
    pub async fn run(
        &mut self,
        command: &str,
        timeout: Duration,
    ) -> Result<CommandOutput, ToolError> {
        self.run_inner(command, timeout).await
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
                let code = self
                    .child
                    .wait()
                    .await
                    .ok()
                    .and_then(|s| s.code())
                    .unwrap_or(-1);
                self.restart().await?;
                let note = format!(
                    "\n[The shell exited with code {code}; a new shell was started in {}.]",
                    self.cwd
                );
                Ok(self.output(&buffer, None, code, false, &note))
            }
            ReadEnd::Timeout => {
                self.interrupt().await;
                let grace = Instant::now() + INTERRUPT_GRACE;
                let secs = timeout.as_secs_f64();
                match self
                    .read_until(marker.as_bytes(), grace, &mut buffer)
                    .await?
                {
                    ReadEnd::Done { cwd, span, .. } => {
                        self.cwd = cwd;
                        let note = format!(
                            "\n[The command timed out after {secs} seconds and was interrupted (SIGINT).]"
                        );
                        Ok(self.output(&buffer, Some(span), -1, true, &note))
                    }
                    ReadEnd::Timeout | ReadEnd::Eof => {
                        self.restart().await?;
                        let note = format!(
                            "\n[The command timed out after {secs} seconds and did not stop on SIGINT; the shell was killed and a new one started in {}. Shell variables were reset.]",
                            self.cwd
                        );
                        Ok(self.output(&buffer, None, -1, true, &note))
                    }
                }
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
    pub async fn interrupt(&mut self) {
        self.signal_group("INT").await;
    }

    async fn signal_group(&self, signal: &str) {
        let Some(pgid) = self.pgid else { return };
        let result = Command::new("kill")
            .args(["-s", signal, "--", &format!("-{pgid}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await;
        if let Err(e) = result {
            tracing::warn!(pgid, signal, error = %e, "could not signal the bash process group");
        }
    }

    /// Kills the shell with its whole process group and starts a new one in the last known
    /// working directory (the workspace when that is gone).
    async fn restart(&mut self) -> Result<(), ToolError> {
        Box::pin(self.restart_inner()).await
    }

    async fn restart_inner(&mut self) -> Result<(), ToolError> {
        self.kill().await;
        let cwd = if Path::new(&self.cwd).is_dir() {
            self.cwd.clone()
        } else {
            self.workdir.display().to_string()
        };
        let fresh = Self::spawn(&self.workdir, &cwd, std::mem::take(&mut self.env)).await?;
        *self = fresh;
        Ok(())
    }

    async fn kill(&mut self) {
        self.signal_group("KILL").await;
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
mod tests {
    use super::*;

    fn dir() -> tempfile::TempDir {
        tempfile::tempdir().expect("temp dir")
    }

    async fn session(dir: &Path) -> BashSession {
        BashSession::start(dir, vec![("MY_TOKEN".into(), "tok-123".into())])
            .await
            .expect("bash starts")
    }

    const T: Duration = Duration::from_secs(10);

    #[tokio::test]
    async fn state_persists_between_commands() {
        let tmp = dir();
        std::fs::create_dir(tmp.path().join("sub")).expect("mkdir");
        let mut bash = session(tmp.path()).await;
        let out = bash.run("cd sub && export FOO=bar", T).await.expect("run");
        assert_eq!(out.exit_code, 0);
        assert!(out.working_dir.ends_with("/sub"), "{}", out.working_dir);
        let out = bash
            .run("echo $FOO-$MY_TOKEN; pwd; echo $HOME", T)
            .await
            .expect("run");
        let lines: Vec<&str> = out.output.lines().collect();
        assert_eq!(lines[0], "bar-tok-123");
        assert!(lines[1].ends_with("/sub"));
        assert_eq!(lines[2], tmp.path().display().to_string());
        bash.close().await;
    }

    #[tokio::test]
    async fn exit_codes_stderr_and_stdin_are_handled() {
        let tmp = dir();
        let mut bash = session(tmp.path()).await;
        let out = bash
            .run("echo out; echo err >&2; (exit 3)", T)
            .await
            .expect("run");
        assert_eq!(out.exit_code, 3);
        assert_eq!(out.output, "out\nerr\n");
        assert!(!out.timed_out);
        // A command reading stdin sees end-of-file instead of eating the protocol.
        let out = bash.run("cat; echo after", T).await.expect("run");
        assert_eq!((out.output.as_str(), out.exit_code), ("after\n", 0));
        let out = bash
            .run("cat <<'EOF'\nline 1\nline 2\nEOF", T)
            .await
            .expect("run");
        assert_eq!(out.output, "line 1\nline 2\n");
        let out = bash.run("printf 'no newline'", T).await.expect("run");
        assert_eq!(out.output, "no newline");
    }

    #[tokio::test]
    async fn timeout_interrupts_and_session_survives() {
        let tmp = dir();
        let mut bash = session(tmp.path()).await;
        bash.run("export KEEP=yes", T).await.expect("run");
        let started = std::time::Instant::now();
        let out = bash
            .run("echo before; sleep 100", Duration::from_millis(500))
            .await
            .expect("run");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert!(out.timed_out);
        assert_eq!(out.exit_code, -1);
        assert!(out.output.starts_with("before"), "{}", out.output);
        assert!(out.output.contains("timed out"), "{}", out.output);
        let out = bash.run("echo $KEEP", T).await.expect("run after timeout");
        assert_eq!(out.output, "yes\n", "the same shell kept its variables");
    }

    #[tokio::test]
    async fn a_loop_is_interrupted_as_a_whole() {
        let tmp = dir();
        let mut bash = session(tmp.path()).await;
        let out = bash
            .run(
                "for i in 1 2 3; do sleep 30; done; echo finished",
                Duration::from_millis(300),
            )
            .await
            .expect("run");
        assert!(out.timed_out);
        assert!(!out.output.contains("finished"));
        assert_eq!(bash.run("echo ok", T).await.expect("run").output, "ok\n");
    }

    #[tokio::test]
    async fn a_command_ignoring_sigint_gets_the_shell_restarted() {
        let tmp = dir();
        let mut bash = session(tmp.path()).await;
        bash.run("mkdir d && cd d", T).await.expect("run");
        let out = bash
            .run("trap '' INT; sleep 100", Duration::from_millis(300))
            .await
            .expect("run");
        assert!(out.timed_out);
        assert!(out.output.contains("new one started"), "{}", out.output);
        let out = bash.run("pwd", T).await.expect("run after restart");
        assert!(
            out.output.ends_with("/d\n"),
            "restarted in the last cwd: {}",
            out.output
        );
    }

    #[tokio::test]
    async fn exit_restarts_the_shell() {
        let tmp = dir();
        let mut bash = session(tmp.path()).await;
        let out = bash.run("echo bye; exit 4", T).await.expect("run");
        assert_eq!(out.exit_code, 4);
        assert!(out.output.starts_with("bye"));
        assert_eq!(
            bash.run("echo again", T).await.expect("run").output,
            "again\n"
        );
    }

    #[tokio::test]
    async fn long_output_is_cut_in_the_middle() {
        let tmp = dir();
        let mut bash = session(tmp.path()).await;
        let out = bash
            .run("echo START; seq 1 20000; echo END", T)
            .await
            .expect("run");
        assert!(out.truncated);
        assert!(out.output.starts_with("START\n1\n"));
        assert!(out.output.ends_with("20000\nEND\n"));
        assert!(out.output.contains("characters cut ...]"), "note present");
        assert!(out.output.chars().count() < MAX_OUTPUT_CHARS + 100);
    }
}
