//! `cargo xtask ci`: the checks a change must pass, in the order that fails fastest.
//!
//! `.ci/run` and developers call the same task, so "green locally" and "green in
//! CI" mean the same thing. Besides fmt, clippy and tests it enforces the
//! architecture's dependency rule that `openhands-core` never pulls in
//! `actix-web`: the web framework stays behind the API and server crates.
//! The web app is installed from its lock file, built and unit-tested before the
//! Rust tests, so the browser test (`web_e2e`) runs against the app just built.

use anyhow::{Result, bail};
use clap::Args;

use crate::cargo::{self, capture, run_step};

/// The crate that must stay free of the web framework.
const CORE_CRATE: &str = "openhands-core";
/// The crate that must not appear in [`CORE_CRATE`]'s normal dependency graph.
const FORBIDDEN_IN_CORE: &str = "actix-web";

#[derive(Debug, Args)]
pub struct CiArgs {
    /// Only run the tests (skip fmt, clippy and the dependency rules).
    #[arg(long)]
    skip_lint: bool,
}

pub fn run(args: &CiArgs) -> Result<()> {
    if !args.skip_lint {
        run_step(
            "fmt",
            cargo::cargo().args(["fmt", "--all", "--", "--check"]),
        )?;
        run_step(
            "clippy",
            cargo::cargo().args([
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ]),
        )?;
        check_core_dependencies()?;
    }
    crate::web::run(&crate::web::WebArgs {
        test: true,
        clean_install: true,
    })?;
    run_tests()?;
    eprintln!("==> ci passed");
    Ok(())
}

/// What `cargo tree -i <forbidden>` told us about a crate's graph.
#[derive(Debug, PartialEq, Eq)]
enum TreeVerdict {
    /// The forbidden package is not in the graph.
    Absent,
    /// The forbidden package is in the graph; carries the printed inverted tree.
    Present(String),
    /// cargo failed for another reason; carries its error output.
    Inconclusive(String),
}

/// Interprets `cargo tree -p <crate> -e normal -i <pkg>`: cargo exits non-zero
/// with "did not match any packages" when `<pkg>` is not resolved for `<crate>` at
/// all, and with "nothing to print" when it is resolved but not reachable through
/// normal edges (e.g. only a dev-dependency). A printed tree means it is there.
fn interpret_tree(success: bool, stdout: &str, stderr: &str) -> TreeVerdict {
    if success {
        if stdout.trim().is_empty() {
            TreeVerdict::Absent
        } else {
            TreeVerdict::Present(stdout.trim().to_owned())
        }
    } else if stderr.contains("did not match any packages") || stderr.contains("nothing to print") {
        TreeVerdict::Absent
    } else {
        TreeVerdict::Inconclusive(stderr.trim().to_owned())
    }
}

fn check_core_dependencies() -> Result<()> {
    eprintln!("==> dependency rules ({CORE_CRATE} must not depend on {FORBIDDEN_IN_CORE})");
    let mut cmd = cargo::cargo();
    cmd.args([
        "tree",
        "-p",
        CORE_CRATE,
        "-e",
        "normal",
        "-i",
        FORBIDDEN_IN_CORE,
    ]);
    let output = capture(&mut cmd)?;
    let verdict = interpret_tree(
        output.status.success(),
        &String::from_utf8_lossy(&output.stdout),
        &String::from_utf8_lossy(&output.stderr),
    );
    match verdict {
        TreeVerdict::Absent => Ok(()),
        TreeVerdict::Present(tree) => bail!(
            "step `dependency rules` failed: {CORE_CRATE} depends on {FORBIDDEN_IN_CORE}:\n{tree}"
        ),
        TreeVerdict::Inconclusive(stderr) => bail!(
            "step `dependency rules` failed: `{}` exited with {}: {stderr}",
            cargo::display(&cmd),
            output.status
        ),
    }
}

/// nextest when installed (faster, clearer output), else plain `cargo test`.
fn run_tests() -> Result<()> {
    let has_nextest = cargo::cargo()
        .args(["nextest", "--version"])
        .output()
        .is_ok_and(|output| output.status.success());
    if has_nextest {
        run_step(
            "tests (nextest)",
            cargo::cargo().args(["nextest", "run", "--workspace", "--no-fail-fast"]),
        )
    } else {
        run_step("tests", cargo::cargo().args(["test", "--workspace"]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unmatched_spec_means_absent() {
        let stderr = "error: package ID specification `actix-web` did not match any packages";
        assert_eq!(interpret_tree(false, "", stderr), TreeVerdict::Absent);
    }

    #[test]
    fn nothing_to_print_means_absent() {
        let stderr = "error: nothing to print.\n\nTo find dependencies ...";
        assert_eq!(interpret_tree(false, "", stderr), TreeVerdict::Absent);
    }

    #[test]
    fn printed_tree_means_present() {
        let stdout = "actix-web v4.18.0\n└── openhands-core v0.0.0\n";
        assert_eq!(
            interpret_tree(true, stdout, ""),
            TreeVerdict::Present(stdout.trim().to_owned())
        );
    }

    #[test]
    fn other_failures_are_inconclusive() {
        let stderr = "error: package `openhands-core` not found";
        assert_eq!(
            interpret_tree(false, "", stderr),
            TreeVerdict::Inconclusive(stderr.to_owned())
        );
    }
}
