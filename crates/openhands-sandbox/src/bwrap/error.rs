//! Why a bubblewrap sandbox could not be set up, in words an operator can act on.
//!
//! Most failures happen once, at start-up (the preflight), and are read by whoever installs
//! the server: each variant names the package, kernel setting or path to look at.

use std::path::PathBuf;

/// A failure of [`super::BwrapLauncher`].
#[derive(Debug, thiserror::Error)]
pub enum BwrapError {
    /// No `bwrap` program where the configuration points.
    #[error(
        "bubblewrap (`{program}`) was not found{where_}; install the Debian/Ubuntu package \
         `bubblewrap` (or set `[sandbox] bwrap_path`)"
    )]
    BwrapNotFound { program: String, where_: String },

    /// `bwrap` exists but cannot build a sandbox (user namespaces are off or restricted).
    #[error(
        "bubblewrap could not create a sandbox: {bwrap_said}. This usually means \
         unprivileged user namespaces are disabled or restricted: `user.max_user_namespaces` \
         must be > 0, `kernel.unprivileged_userns_clone` must be 1 (Debian and older Ubuntu \
         kernels), and `kernel.apparmor_restrict_unprivileged_userns` must be 0 or an \
         AppArmor profile must allow bwrap to create user namespaces (Ubuntu 23.10+). \
         Current values: {sysctls}"
    )]
    SandboxRefused { bwrap_said: String, sysctls: String },

    /// A program the launcher itself needs is missing.
    #[error("{program} is missing: {why}")]
    MissingProgram { program: PathBuf, why: &'static str },

    /// The trial sandbox could not be placed in its cgroups.
    #[error(
        "a sandbox could not join its cgroups ({0}); make the cgroup hierarchy writable for \
         the server's user, or delegate it (systemd: Delegate=yes)"
    )]
    CgroupJoin(String),

    /// The tool server binary is missing or cannot be run.
    #[error("the tool server {path} {problem}")]
    ToolServer { path: PathBuf, problem: String },

    /// A conversation id that cannot name a directory or a cgroup.
    #[error(
        "conversation id {0:?} cannot be used in a sandbox (allowed: 1 to 128 ASCII letters, \
         digits, '-', '_' and '.', not starting with '.')"
    )]
    InvalidConversationId(String),

    /// Proxy sockets under this directory would exceed the 107 bytes of a Unix socket path.
    #[error(
        "the sandbox runtime directory {0} is too long for the proxy's Unix sockets (at most \
         about 50 characters); choose a shorter one"
    )]
    RuntimeDirTooLong(PathBuf),

    /// A workspace path the sandbox cannot bind.
    #[error("workspace {0} must be an absolute path to an existing directory")]
    InvalidWorkspace(PathBuf),

    /// A file-system operation on the server's side failed.
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// Starting `bwrap` failed.
    #[error("starting bubblewrap ({program}) failed: {source}")]
    Spawn {
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl BwrapError {
    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            what,
            path: path.into(),
            source,
        }
    }
}

impl From<BwrapError> for openhands_core::extension::SandboxError {
    fn from(e: BwrapError) -> Self {
        Self::Setup(e.to_string())
    }
}
