//! `cargo xtask web`: install the web app's packages and build it to `web/dist`.
//!
//! The server serves `web/dist` (a placeholder page when it is missing), so building the
//! app is a step of the run command and of CI, not of `cargo build`: the server stays
//! buildable and runnable without Node. CI also runs the app's unit tests (`--test`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use anyhow::{Result, bail};
use clap::Args;

use crate::cargo::{run_step, workspace_root};

#[derive(Debug, Args)]
pub struct WebArgs {
    /// Also run the unit tests (vitest).
    #[arg(long)]
    pub test: bool,
    /// Reinstall packages from the lock file even when `node_modules` is up to date.
    #[arg(long)]
    pub clean_install: bool,
}

/// The web app's folder.
pub fn web_dir() -> PathBuf {
    workspace_root().join("web")
}

pub fn run(args: &WebArgs) -> Result<()> {
    let web = web_dir();
    check_node()?;
    let lock = modified(&web.join("package-lock.json"));
    // npm writes `node_modules/.package-lock.json` on every install.
    let installed = modified(&web.join("node_modules/.package-lock.json"));
    if args.clean_install || needs_install(lock, installed) {
        run_step(
            "web: npm ci",
            npm(&web).args(["ci", "--no-audit", "--no-fund"]),
        )?;
    }
    run_step("web: build", npm(&web).args(["run", "build"]))?;
    if args.test {
        run_step("web: unit tests (vitest)", npm(&web).args(["test"]))?;
    }
    eprintln!("==> web app built in {}", web.join("dist").display());
    Ok(())
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Packages must be (re)installed when none are, or the lock file changed since.
fn needs_install(lock: Option<SystemTime>, installed: Option<SystemTime>) -> bool {
    match (lock, installed) {
        (_, None) => true,
        (Some(lock), Some(installed)) => lock > installed,
        (None, Some(_)) => false,
    }
}

fn npm(dir: &Path) -> Command {
    let mut cmd = Command::new("npm");
    cmd.current_dir(dir);
    cmd
}

fn check_node() -> Result<()> {
    let works = |program: &str| {
        Command::new(program)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !works("node") || !works("npm") {
        bail!(
            "the web app needs Node.js 20.19+ and npm (e.g. `apt install nodejs npm`); \
             the server runs without them and shows a placeholder page instead of the app"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn installs_when_nothing_is_installed_or_the_lock_is_newer() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let later = t + Duration::from_secs(1);
        assert!(needs_install(Some(t), None));
        assert!(needs_install(Some(later), Some(t)));
        assert!(!needs_install(Some(t), Some(later)));
        assert!(!needs_install(Some(t), Some(t)));
    }
}
