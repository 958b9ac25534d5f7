//! `cargo xtask <task>`: the project's automation, written in Rust so it runs the
//! same on every machine and CI without a spread of shell scripts.
//!
//! Each task lives in its own module; this file only parses the command line and
//! dispatches.

mod bench;
mod cargo;
mod ci;
mod web;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// Project automation (`cargo xtask <task>`).
#[derive(Debug, Parser)]
#[command(name = "xtask", about, disable_version_flag = true)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Format check, clippy, dependency rules and the test suite, failing fast.
    Ci(ci::CiArgs),
    /// Build the release server, load it and write target/bench/results.{json,md}.
    Bench(bench::BenchArgs),
    /// Install the web app's packages (when missing) and build it to web/dist.
    Web(web::WebArgs),
}

fn main() -> Result<()> {
    match Cli::parse().task {
        Task::Ci(args) => ci::run(&args),
        Task::Bench(args) => bench::run(&args),
        Task::Web(args) => web::run(&args),
    }
}
