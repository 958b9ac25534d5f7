//! What each request does: the state of one connection and the dispatch of [`Request`]s to
//! the modules that do the work.

use crate::archive;
use crate::bash::ShellSpec;
use crate::clone::{self, CloneSpec};
use crate::editor::FileEditor;
use crate::error::ToolError;
use crate::files;
use crate::git;
use crate::limits;
use crate::session::Sessions;
use crate::workspace::Workspace;
use openhands_core::tool_protocol::{
    CloneReply, CommandOutput, Done, EditorCommand, EditorOutcome, FileContent, Request,
    ToolFailure, WriteReply, ZipReply,
};
use serde::Serialize;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// Variables of the configured environment that a clone needs too (the way out and the
/// certificates that go with it).
fn needed_by_git(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.ends_with("_proxy")
        || lower.starts_with("ssl_cert_")
        || matches!(lower.as_str(), "git_ssl_cainfo" | "curl_ca_bundle")
}

/// What `configure` set.
#[derive(Debug, Default)]
struct Config {
    env: Vec<(String, String)>,
    git_user_name: Option<String>,
    git_user_email: Option<String>,
}

/// The state of one connection.
#[derive(Debug)]
pub struct State {
    ws: Workspace,
    max_workspace_bytes: u64,
    shell_cpu_seconds: u64,
    config: Mutex<Config>,
    sessions: Sessions,
    editor: tokio::sync::Mutex<FileEditor>,
    /// Clones wait for each other (the second one finds the repository).
    clone_lock: tokio::sync::Mutex<()>,
    /// The workspace was over its disk limit when last measured.
    over_limit: AtomicBool,
}

type Reply = Result<serde_json::Value, ToolFailure>;

fn reply<T: Serialize>(value: Result<T, ToolError>) -> Reply {
    let value = value?;
    serde_json::to_value(value)
        .map_err(|e| ToolFailure::from(ToolError::Command(format!("encoding failed: {e}"))))
}

impl State {
    pub fn new(ws: Workspace, max_workspace_bytes: u64, shell_cpu_seconds: u64) -> Self {
        Self {
            editor: tokio::sync::Mutex::new(FileEditor::new(ws.clone())),
            ws,
            max_workspace_bytes,
            shell_cpu_seconds,
            config: Mutex::default(),
            sessions: Sessions::default(),
            clone_lock: tokio::sync::Mutex::default(),
            over_limit: AtomicBool::new(false),
        }
    }

    pub fn workspace(&self) -> &Workspace {
        &self.ws
    }

    /// Kills every shell (the connection ended).
    pub fn kill_shells(&self) {
        self.sessions.kill_all();
    }

    fn config(&self) -> std::sync::MutexGuard<'_, Config> {
        self.config.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Answers one request.
    pub async fn handle(&self, request: Request) -> Reply {
        match request {
            Request::Configure {
                env,
                git_user_name,
                git_user_email,
            } => reply(self.configure(env, git_user_name, git_user_email).await),
            Request::Clone {
                url,
                branch,
                credentials,
                timeout_ms,
            } => {
                let _one_at_a_time = self.clone_lock.lock().await;
                let env = self
                    .config()
                    .env
                    .iter()
                    .filter(|(name, _)| needed_by_git(name))
                    .cloned()
                    .collect();
                let spec = CloneSpec {
                    url: &url,
                    branch: branch.as_deref(),
                    credentials: credentials.as_ref(),
                    timeout: Duration::from_millis(timeout_ms),
                    env,
                };
                let cloned = clone::clone(self.ws.root(), spec).await?;
                if cloned {
                    self.set_identity().await?;
                }
                reply(Ok(CloneReply { cloned }))
            }
            Request::BashRun {
                session,
                command,
                timeout_ms,
            } => reply(
                self.bash_run(&session, &command, Duration::from_millis(timeout_ms))
                    .await,
            ),
            Request::BashInterrupt { session } => {
                self.sessions.interrupt(&session);
                reply(Ok(Done {}))
            }
            Request::BashClose { session } => {
                self.sessions.close(&session).await;
                reply(Ok(Done {}))
            }
            Request::Edit { command } => reply(self.edit(command).await),
            Request::ListFiles { path } => reply(files::list(&self.ws, &path).await),
            Request::ReadFile { path, max_bytes } => reply(
                files::read(&self.ws, &path, max_bytes)
                    .await
                    .map(|data| FileContent { data }),
            ),
            Request::WriteFile { name, data } => reply(self.write_file(&name, data).await),
            Request::Zip { max_bytes } => reply(
                archive::zip(self.ws.root(), max_bytes)
                    .await
                    .map(|data| ZipReply { data }),
            ),
            Request::GitChanges => reply(git::changes(self.ws.root()).await),
            Request::GitDiff { path } => reply(git::diff(&self.ws, &path).await),
            Request::Ping => reply(Ok(Done {})),
        }
    }

    async fn configure(
        &self,
        env: Vec<(String, String)>,
        git_user_name: Option<String>,
        git_user_email: Option<String>,
    ) -> Result<Done, ToolError> {
        if let Some((name, _)) = env.iter().find(|(name, value)| {
            name.is_empty() || name.contains(['=', '\0']) || value.contains('\0')
        }) {
            return Err(ToolError::InvalidArgument(format!(
                "the environment variable `{name}` has an invalid name or value"
            )));
        }
        {
            // Each call sets the variables it names and keeps the others (a later call that
            // only sets the identity must not wipe the proxy variables and secrets).
            let mut config = self.config();
            for (name, value) in env {
                config.env.retain(|(existing, _)| *existing != name);
                config.env.push((name, value));
            }
            if git_user_name.is_some() {
                config.git_user_name = git_user_name;
            }
            if git_user_email.is_some() {
                config.git_user_email = git_user_email;
            }
        }
        if git::is_repository(self.ws.root()) {
            self.set_identity().await?;
        }
        Ok(Done {})
    }

    async fn set_identity(&self) -> Result<(), ToolError> {
        let (name, email) = {
            let config = self.config();
            (config.git_user_name.clone(), config.git_user_email.clone())
        };
        git::set_identity(self.ws.root(), name.as_deref(), email.as_deref()).await
    }

    async fn bash_run(
        &self,
        session: &str,
        command: &str,
        timeout: Duration,
    ) -> Result<CommandOutput, ToolError> {
        let spec = || ShellSpec {
            workdir: self.ws.root().to_owned(),
            env: self.config().env.clone(),
            cpu_seconds: self.shell_cpu_seconds,
        };
        let mut out = self.sessions.run(session, command, timeout, spec).await?;
        if let Some(note) = limits::exit_note(
            out.exit_code,
            limits::file_size_limit(),
            self.shell_cpu_seconds,
        ) {
            out.output.push_str(&note);
        }
        if self.measure_disk().await {
            out.output
                .push_str(&limits::disk_note(self.max_workspace_bytes));
        }
        out.working_dir = self.ws.show(Path::new(&out.working_dir));
        Ok(out)
    }

    async fn edit(&self, command: EditorCommand) -> Result<EditorOutcome, ToolError> {
        let writes = matches!(
            command,
            EditorCommand::Create { .. }
                | EditorCommand::StrReplace { .. }
                | EditorCommand::Insert { .. }
        );
        if writes {
            self.refuse_when_over_limit().await?;
        }
        self.editor.lock().await.execute(command).await
    }

    async fn write_file(&self, name: &str, data: Vec<u8>) -> Result<WriteReply, ToolError> {
        self.refuse_when_over_limit().await?;
        let path = files::write(&self.ws, name, data).await?;
        self.measure_disk().await;
        Ok(WriteReply { path })
    }

    /// Measures the workspace against its disk limit; whether it is over (false when off).
    async fn measure_disk(&self) -> bool {
        let limit = self.max_workspace_bytes;
        if limit == 0 {
            return false;
        }
        let root = self.ws.root().to_owned();
        let over = tokio::task::spawn_blocking(move || limits::usage_exceeds(&root, limit))
            .await
            .unwrap_or(false);
        self.over_limit.store(over, Ordering::SeqCst);
        over
    }

    /// Refuses a write while the workspace is over its disk limit (measured again first, as
    /// files may have been deleted since).
    async fn refuse_when_over_limit(&self) -> Result<(), ToolError> {
        if self.over_limit.load(Ordering::SeqCst) && self.measure_disk().await {
            return Err(ToolError::TooLarge(format!(
                "the workspace uses more than {} bytes, the limit; delete files to continue",
                self.max_workspace_bytes
            )));
        }
        Ok(())
    }
}
