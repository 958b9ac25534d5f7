//! Errors of the tools and their protocol form.
//!
//! Their messages go back to the LLM and the user, so they say what to do differently; the
//! [`FailureCode`] each maps to is for programs (the server turns codes into HTTP statuses).

use openhands_core::tool_protocol::{FailureCode, ToolFailure};
use thiserror::Error;

/// Why a tool call failed.
#[derive(Debug, Error)]
pub enum ToolError {
    /// The shell could not be started.
    #[error("could not start bash in {workdir}: {source}")]
    Spawn {
        workdir: String,
        #[source]
        source: std::io::Error,
    },
    /// Talking to the running shell failed.
    #[error("the bash session failed while {doing}: {reason}")]
    Shell { doing: String, reason: String },
    /// A path resolves outside the workspace (`..`, another absolute path, or a symlink).
    #[error(
        "path {path} is outside the workspace {workspace}; only files under the workspace can be used"
    )]
    OutsideWorkspace { path: String, workspace: String },
    /// A path could not be resolved (e.g. a dangling symlink) or is not an acceptable name.
    #[error("path {path} cannot be resolved: {reason}")]
    InvalidPath { path: String, reason: String },
    /// The path does not exist.
    #[error("the path {path} does not exist; please provide a valid path")]
    NotFound { path: String },
    /// `create` on an existing path.
    #[error("file already exists at {path}; cannot overwrite files using command `create`")]
    AlreadyExists { path: String },
    /// A file command on a directory.
    #[error("the path {path} is a directory; only the `view` command can be used on directories")]
    IsDirectory { path: String },
    /// The file is not UTF-8 text.
    #[error("the file {path} is not UTF-8 text and cannot be viewed or edited")]
    NotText { path: String },
    /// `str_replace` found nothing to replace.
    #[error(
        "no replacement was performed: no occurrence of old_str `{old_str}` in {path}; it must match exactly, including whitespace"
    )]
    NoMatch { path: String, old_str: String },
    /// `str_replace` found several places.
    #[error(
        "no replacement was performed: {count} occurrences, lines {lines} of old_str `{old_str}` in {path}; make old_str unique by including more context"
    )]
    MultipleMatches {
        path: String,
        old_str: String,
        count: usize,
        lines: String,
    },
    /// `undo_edit` with nothing to undo.
    #[error("no edit history found for {path}")]
    NoHistory { path: String },
    /// A parameter is missing or out of range.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// More bytes than allowed (a read, an archive, an upload, the workspace's disk limit).
    #[error("{0}")]
    TooLarge(String),
    /// A git operation on a workspace without `.git`.
    #[error("the workspace is not a git repository")]
    NotARepository,
    /// The clone failed; the message has git's reason with credentials removed.
    #[error("{0}")]
    CloneFailed(String),
    /// Reading or writing a file failed.
    #[error("I/O on {path} failed: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A helper program (git) failed.
    #[error("{0}")]
    Command(String),
}

impl ToolError {
    pub(crate) fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }

    /// The protocol code of this error.
    pub fn code(&self) -> FailureCode {
        match self {
            Self::Spawn { .. } | Self::Shell { .. } => FailureCode::Shell,
            Self::OutsideWorkspace { .. } => FailureCode::OutsideWorkspace,
            Self::InvalidPath { .. } => FailureCode::InvalidPath,
            Self::NotFound { .. } => FailureCode::NotFound,
            Self::AlreadyExists { .. } => FailureCode::AlreadyExists,
            Self::IsDirectory { .. } => FailureCode::IsDirectory,
            Self::NotText { .. } => FailureCode::NotText,
            Self::NoMatch { .. } | Self::MultipleMatches { .. } | Self::NoHistory { .. } => {
                FailureCode::EditFailed
            }
            Self::InvalidArgument(_) => FailureCode::InvalidArgument,
            Self::TooLarge(_) => FailureCode::TooLarge,
            Self::NotARepository => FailureCode::NotARepository,
            // `.git` is there but holds no repository (a clone that has only begun, or an
            // agent's `mkdir .git`): git's own words, as the routes answer 404, not 500.
            Self::Command(message) if message.contains("not a git repository") => {
                FailureCode::NotARepository
            }
            Self::CloneFailed(_) => FailureCode::CloneFailed,
            Self::Io { .. } | Self::Command(_) => FailureCode::Io,
        }
    }
}

impl From<ToolError> for ToolFailure {
    fn from(error: ToolError) -> Self {
        ToolFailure::new(error.code(), error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn editor_failures_keep_their_message_and_get_edit_failed() {
        let failure = ToolFailure::from(ToolError::NoHistory {
            path: "/w/a.txt".into(),
        });
        assert_eq!(failure.code, FailureCode::EditFailed);
        assert_eq!(failure.message, "no edit history found for /w/a.txt");
        let failure = ToolFailure::from(ToolError::OutsideWorkspace {
            path: "../x".into(),
            workspace: "/w".into(),
        });
        assert_eq!(failure.code, FailureCode::OutsideWorkspace);
        assert!(failure.message.contains("outside the workspace"));
    }

    #[test]
    fn git_saying_there_is_no_repository_is_not_a_repository() {
        let failure = ToolFailure::from(ToolError::Command(
            "fatal: not a git repository (or any of the parent directories): .git".into(),
        ));
        assert_eq!(failure.code, FailureCode::NotARepository);
        let failure = ToolFailure::from(ToolError::Command("fatal: bad object HEAD".into()));
        assert_eq!(failure.code, FailureCode::Io);
    }
}
