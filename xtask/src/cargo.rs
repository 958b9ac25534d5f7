//! Running `cargo` (and other tools) from xtask.
//!
//! Every task shells out to cargo; keeping the "which cargo, from which directory,
//! and what does a failure look like" decisions in one place means each task reads
//! as a list of steps and every failure names the step and the command line.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{Context, Result, bail};

/// The cargo that launched us (`$CARGO`), so toolchain overrides carry through.
pub fn cargo() -> Command {
    let program = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut cmd = Command::new(program);
    cmd.current_dir(workspace_root());
    cmd
}

/// The workspace root: xtask always lives one level below it.
pub fn workspace_root() -> &'static Path {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir)
}

/// Prints a `==> name` header, runs `cmd` with inherited output and fails with a
/// message naming the step and the command when it does not exit successfully.
pub fn run_step(name: &str, cmd: &mut Command) -> Result<()> {
    eprintln!("==> {name}");
    let status = cmd
        .status()
        .with_context(|| format!("step `{name}`: could not start `{}`", display(cmd)))?;
    if !status.success() {
        bail!(
            "step `{name}` failed: `{}` exited with {status}",
            display(cmd)
        );
    }
    Ok(())
}

/// Runs `cmd` to completion, capturing its output; only failing to start is an error.
pub fn capture(cmd: &mut Command) -> Result<Output> {
    cmd.output()
        .with_context(|| format!("could not start `{}`", display(cmd)))
}

/// The target directory cargo uses for this workspace (honours `CARGO_TARGET_DIR`
/// and `.cargo/config.toml`), from `cargo metadata`.
pub fn target_dir() -> Result<PathBuf> {
    let mut cmd = cargo();
    cmd.args(["metadata", "--format-version", "1", "--no-deps"]);
    let output = capture(&mut cmd)?;
    if !output.status.success() {
        bail!(
            "`{}` exited with {}: {}",
            display(&cmd),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    parse_target_dir(&output.stdout)
}

fn parse_target_dir(metadata: &[u8]) -> Result<PathBuf> {
    #[derive(serde::Deserialize)]
    struct Metadata {
        target_directory: PathBuf,
    }
    let metadata: Metadata =
        serde_json::from_slice(metadata).context("parsing `cargo metadata` output")?;
    Ok(metadata.target_directory)
}

/// A command line for messages, e.g. `cargo clippy --workspace`.
pub fn display(cmd: &Command) -> String {
    let program = Path::new(cmd.get_program())
        .file_name()
        .unwrap_or(cmd.get_program())
        .to_string_lossy()
        .into_owned();
    std::iter::once(program)
        .chain(cmd.get_args().map(|arg| arg.to_string_lossy().into_owned()))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_dir_is_read_from_metadata() -> Result<()> {
        let json = br#"{"packages":[],"target_directory":"/tmp/t","version":1}"#;
        assert_eq!(parse_target_dir(json)?, PathBuf::from("/tmp/t"));
        Ok(())
    }

    #[test]
    fn metadata_without_target_dir_is_an_error() {
        assert!(parse_target_dir(br#"{"packages":[]}"#).is_err());
    }

    #[test]
    fn display_shows_program_name_and_args() {
        let mut cmd = Command::new("/usr/bin/cargo");
        cmd.args(["tree", "-i", "actix-web"]);
        assert_eq!(display(&cmd), "cargo tree -i actix-web");
    }
}
