//! The messages of the tool protocol (see the module docs of [`super`]).

use serde::{Deserialize, Serialize};

/// The tool server's first frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// [`super::PROTOCOL_VERSION`] of the tool server.
    pub protocol: u32,
    /// Name and version of the tool server, for logs.
    pub server: String,
    /// The workspace as the tools see it (`/workspace` in an isolated sandbox, the host
    /// path for a local process). Shown to the LLM; never opened by the server.
    pub workspace: String,
}

/// One request with its id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestFrame {
    pub id: u64,
    #[serde(flatten)]
    pub request: Request,
}

/// What the client asks for. Paths are relative to the workspace root (absolute paths
/// under it are accepted too); the tool server refuses anything that resolves outside it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Sets the environment of shells started from now on (the conversation's custom
    /// secrets and the proxy variables) and the git identity. Answer: `{}`.
    Configure {
        env: Vec<(String, String)>,
        #[serde(default)]
        git_user_name: Option<String>,
        #[serde(default)]
        git_user_email: Option<String>,
    },
    /// Clones `url` into the (empty) workspace unless it already holds a repository.
    /// `credentials` reach git through a credential helper reading the tool server's
    /// environment, never through argv or `.git/config`. Answer: [`CloneReply`].
    Clone {
        url: String,
        #[serde(default)]
        branch: Option<String>,
        #[serde(default)]
        credentials: Option<GitCredentials>,
        /// Longest the clone may take.
        timeout_ms: u64,
    },
    /// Runs a command in the named persistent shell (started on first use in the
    /// workspace). Answer: [`CommandOutput`].
    BashRun {
        session: String,
        command: String,
        timeout_ms: u64,
    },
    /// Interrupts the command running in `session`, if any. Answer: `{}`.
    BashInterrupt { session: String },
    /// Ends the shell `session` and everything it started. Answer: `{}`.
    BashClose { session: String },
    /// One file-editor command. Answer: [`EditorOutcome`].
    Edit { command: EditorCommand },
    /// Entries of a directory (directories end with `/`), git-ignored and always-hidden
    /// entries left out. Answer: `Vec<String>` of workspace-relative paths.
    ListFiles { path: String },
    /// A file's bytes, at most `max_bytes`. Answer: [`FileContent`].
    ReadFile { path: String, max_bytes: u64 },
    /// Writes a new regular file named `name` (a plain name) at the workspace root,
    /// replacing a regular file of that name; symlinks are never followed. Answer:
    /// [`WriteReply`].
    WriteFile {
        name: String,
        #[serde(with = "base64_bytes")]
        data: Vec<u8>,
    },
    /// The workspace as a zip archive without `.git`, at most `max_bytes`. Answer:
    /// [`ZipReply`].
    Zip { max_bytes: u64 },
    /// Changed files against `HEAD`. Answer: `Vec<GitChange>`.
    GitChanges,
    /// A file's text now and at `HEAD`. Answer: [`GitDiff`].
    GitDiff { path: String },
    /// Answer: `{}`. Measures the round trip.
    Ping,
}

/// Credentials for a clone: `username` and `password` as git's credential protocol
/// carries them.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitCredentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for GitCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitCredentials")
            .field("username", &self.username)
            .field("password", &"<hidden>")
            .finish()
    }
}

/// Whether `clone` cloned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloneReply {
    /// `false` when the workspace already held a repository.
    pub cloned: bool,
}

/// The result of one shell command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandOutput {
    /// stdout and stderr, interleaved, possibly cut in the middle, followed by a note when
    /// the command timed out, hit a limit or the shell exited.
    pub output: String,
    /// The command's exit code; -1 when it timed out.
    pub exit_code: i32,
    pub timed_out: bool,
    /// Whether `output` was cut.
    pub truncated: bool,
    /// The shell's working directory after the command.
    pub working_dir: String,
}

/// One editor command, as the LLM sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum EditorCommand {
    View {
        path: String,
        /// 1-based inclusive line range; `end == -1` means to the end of the file.
        #[serde(default)]
        view_range: Option<(i64, i64)>,
    },
    Create {
        path: String,
        file_text: String,
    },
    StrReplace {
        path: String,
        old_str: String,
        new_str: String,
    },
    Insert {
        path: String,
        insert_line: i64,
        new_str: String,
    },
    UndoEdit {
        path: String,
    },
}

impl EditorCommand {
    /// The command's name on the wire.
    pub fn name(&self) -> &'static str {
        match self {
            Self::View { .. } => "view",
            Self::Create { .. } => "create",
            Self::StrReplace { .. } => "str_replace",
            Self::Insert { .. } => "insert",
            Self::UndoEdit { .. } => "undo_edit",
        }
    }

    /// The path as given.
    pub fn path(&self) -> &str {
        match self {
            Self::View { path, .. }
            | Self::Create { path, .. }
            | Self::StrReplace { path, .. }
            | Self::Insert { path, .. }
            | Self::UndoEdit { path } => path,
        }
    }
}

/// What an editor command did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EditorOutcome {
    /// The resolved absolute path, as the tools see it.
    pub path: String,
    /// The text for the LLM.
    pub output: String,
    /// Content before the change (`None` for `view` and for new files).
    pub old_content: Option<String>,
    /// Content after the change (`None` for `view` and for removed files).
    pub new_content: Option<String>,
    /// Whether the file existed before the command.
    pub prev_exist: bool,
    /// Unified diff of the change (`None` for `view`).
    pub diff: Option<String>,
}

/// A file's bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileContent {
    #[serde(with = "base64_bytes")]
    pub data: Vec<u8>,
}

/// Where an upload was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteReply {
    /// The file's path as the tools see it.
    pub path: String,
}

/// A zip archive of the workspace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZipReply {
    #[serde(with = "base64_bytes")]
    pub data: Vec<u8>,
}

/// One changed file, with OpenHands' status letters (`A`, `M`, `D`, `R`, `U`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitChange {
    pub status: String,
    pub path: String,
}

/// A file's text now (`modified`) and at `HEAD` (`original`); empty when absent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitDiff {
    pub modified: String,
    pub original: String,
}

/// An empty answer (`{}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Done {}

/// One answer with its id: exactly one of `ok` and `error` is set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseFrame {
    pub id: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ok: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ToolFailure>,
}

/// Why the tool server refused or failed a request. `message` is written for the LLM and
/// the user (it says what to do differently); `code` is for programs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct ToolFailure {
    pub code: FailureCode,
    pub message: String,
}

impl ToolFailure {
    pub fn new(code: FailureCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// Machine-readable reasons of [`ToolFailure`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureCode {
    /// The path does not exist.
    NotFound,
    /// The path resolves outside the workspace (`..`, another absolute path, a symlink).
    OutsideWorkspace,
    /// The path or name cannot be used (e.g. a dangling symlink, not a plain name).
    InvalidPath,
    AlreadyExists,
    IsDirectory,
    /// The file is not UTF-8 text.
    NotText,
    /// More bytes than the request allows.
    TooLarge,
    /// The workspace is not a git repository.
    NotARepository,
    /// An editor command could not be applied (no match, several matches, no history).
    EditFailed,
    InvalidArgument,
    /// The shell could not be started or talked to.
    Shell,
    /// The clone failed (the message has git's reason, credentials removed).
    CloneFailed,
    Io,
    /// An operation this tool server does not know (an older version).
    Unsupported,
}

/// Serde for byte vectors as standard base64 strings.
pub mod base64_bytes {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn requests_carry_their_op_and_id_side_by_side() {
        let frame = RequestFrame {
            id: 7,
            request: Request::BashRun {
                session: "main".into(),
                command: "ls".into(),
                timeout_ms: 1000,
            },
        };
        let value = serde_json::to_value(&frame).expect("serializes");
        assert_eq!(
            value,
            json!({"id": 7, "op": "bash_run", "session": "main", "command": "ls", "timeout_ms": 1000})
        );
        let back: RequestFrame = serde_json::from_value(value).expect("parses");
        assert_eq!(back, frame);
    }

    #[test]
    fn editor_commands_and_bytes_round_trip() {
        let request = Request::Edit {
            command: EditorCommand::View {
                path: "a.txt".into(),
                view_range: Some((1, -1)),
            },
        };
        let text = serde_json::to_string(&request).expect("serializes");
        assert!(text.contains(r#""command":"view""#), "{text}");
        assert_eq!(
            serde_json::from_str::<Request>(&text).expect("parses"),
            request
        );
        let write = Request::WriteFile {
            name: "x.bin".into(),
            data: vec![0, 255, 10],
        };
        let value = serde_json::to_value(&write).expect("serializes");
        assert_eq!(value["data"], "AP8K");
        assert_eq!(
            serde_json::from_value::<Request>(value).expect("parses"),
            write
        );
    }

    #[test]
    fn failures_have_snake_case_codes_and_credentials_hide_in_debug() {
        let failure = ToolFailure::new(FailureCode::OutsideWorkspace, "no");
        assert_eq!(
            serde_json::to_value(&failure).expect("serializes"),
            json!({"code": "outside_workspace", "message": "no"})
        );
        let credentials = GitCredentials {
            username: "x-access-token".into(),
            password: "ghp_secret".into(),
        };
        assert!(!format!("{credentials:?}").contains("ghp_secret"));
    }
}
