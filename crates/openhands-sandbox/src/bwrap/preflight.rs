//! Start-up checks: find `bwrap` and `bash`, learn what this `bwrap` supports, check the
//! tool server binary, and explain a kernel that refuses user namespaces.
//!
//! A sandbox that cannot start should stop the server at start-up with an error an
//! operator can act on (a package to install, a sysctl to set), not fail every
//! conversation later with bwrap's terse message.

use super::error::BwrapError;
use super::policy::BwrapFeatures;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Where the launcher looks for `bash` (it places the sandbox in its cgroups and closes
/// inherited file descriptors before `bwrap` starts).
const BASH: &[&str] = &["/bin/bash", "/usr/bin/bash"];

fn is_executable_file(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Resolves `program` like a shell: a path if it contains `/`, else a search of `PATH`
/// (and of `/usr/bin`, where the Debian package installs it, when `PATH` lacks it).
pub fn find_bwrap(program: &str) -> Result<PathBuf, BwrapError> {
    if program.contains('/') {
        let path = PathBuf::from(program);
        return match std::fs::canonicalize(&path) {
            // `bwrap` is started from `/`: a relative path must be resolved now.
            Ok(path) if is_executable_file(&path) => Ok(path),
            _ => Err(BwrapError::BwrapNotFound {
                program: program.into(),
                where_: String::new(),
            }),
        };
    }
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path_var)
        .chain([PathBuf::from("/usr/bin")])
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_absolute() && is_executable_file(candidate))
        .ok_or_else(|| BwrapError::BwrapNotFound {
            program: program.into(),
            where_: format!(" in PATH ({})", path_var.to_string_lossy()),
        })
}

/// The optional options this `bwrap` supports, from its `--help`.
pub fn bwrap_features(bwrap: &Path) -> Result<BwrapFeatures, BwrapError> {
    let out = Command::new(bwrap)
        .arg("--help")
        .env_clear()
        .stdin(Stdio::null())
        .output()
        .map_err(|source| BwrapError::Spawn {
            program: bwrap.to_owned(),
            source,
        })?;
    let mut help = String::from_utf8_lossy(&out.stdout).into_owned();
    help.push_str(&String::from_utf8_lossy(&out.stderr));
    Ok(BwrapFeatures::from_help(&help))
}

/// `bash` for the wrapper that starts `bwrap`.
pub fn find_bash() -> Result<PathBuf, BwrapError> {
    BASH.iter()
        .map(PathBuf::from)
        .find(|p| is_executable_file(p))
        .ok_or_else(|| BwrapError::MissingProgram {
            program: PathBuf::from(BASH[0]),
            why: "the sandbox launcher needs bash (the Debian package `bash`) to place \
                  sandboxes in their cgroups and close inherited file descriptors",
        })
}

/// The tool server must be an executable file.
pub fn check_tool_server(path: &Path) -> Result<(), BwrapError> {
    let problem = match std::fs::metadata(path) {
        Err(e) => format!(
            "cannot be used ({e}); build it with `cargo build -p openhands-tool-server` or set \
             `[sandbox] tool_server`"
        ),
        Ok(m) if !m.is_file() => "is not a file".into(),
        Ok(m) if m.permissions().mode() & 0o111 == 0 => "is not executable".into(),
        Ok(_) => return Ok(()),
    };
    Err(BwrapError::ToolServer {
        path: path.to_owned(),
        problem,
    })
}

/// The kernel settings that allow or forbid unprivileged user namespaces, with their
/// current values (absent ones are left out).
pub fn userns_sysctls() -> String {
    let values: Vec<String> = [
        (
            "user.max_user_namespaces",
            "/proc/sys/user/max_user_namespaces",
        ),
        (
            "kernel.unprivileged_userns_clone",
            "/proc/sys/kernel/unprivileged_userns_clone",
        ),
        (
            "kernel.apparmor_restrict_unprivileged_userns",
            "/proc/sys/kernel/apparmor_restrict_unprivileged_userns",
        ),
    ]
    .iter()
    .filter_map(|(name, file)| {
        std::fs::read_to_string(file)
            .ok()
            .map(|v| format!("{name} = {}", v.trim()))
    })
    .collect();
    if values.is_empty() {
        "unknown (/proc/sys is not readable)".into()
    } else {
        values.join(", ")
    }
}

/// Cuts bwrap's stderr to something that fits in an error message.
pub fn bounded(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let text = text.trim();
    if text.is_empty() {
        return "it exited without saying why".into();
    }
    let mut cut: String = text.chars().take(2000).collect();
    if cut.len() < text.len() {
        cut.push_str(" ...");
    }
    cut
}

/// Whether the server runs as root (then the sandbox's user is root on the host for file
/// ownership, though without any capability).
pub fn runs_as_root() -> bool {
    rustix::process::getuid().is_root()
}
