//! SQL store figures of SaaS mode: runs the `store_bench` example of `openhands-sql-store`
//! (release build) against PostgreSQL and reads the figures it writes.
//!
//! The measurement lives next to the stores it measures, so xtask stays a thin orchestrator
//! without a database driver; this module only builds and runs it and checks its output.

use std::path::Path;

use anyhow::{Context, Result, ensure};
use serde::{Deserialize, Serialize};

use super::super::cargo;

/// Throughput and latency of one store operation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StoreFigure {
    pub operations: u64,
    pub ops_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// What the store bench measured.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StoreResults {
    pub database: String,
    pub users: u64,
    pub conversations: u64,
    pub measured_user_conversations: u64,
    pub concurrency: u64,
    /// Callers of the list measurement (latency at moderate load).
    pub list_concurrency: u64,
    pub seed_s: f64,
    pub settings_load: StoreFigure,
    pub settings_store: StoreFigure,
    pub secrets_load: StoreFigure,
    pub conversation_list: StoreFigure,
}

/// Runs the store bench for `duration_s` seconds per operation; figures go through
/// `<bench dir>/store.json`.
pub fn measure(bench_dir: &Path, duration_s: u64) -> Result<StoreResults> {
    let out = bench_dir.join("store.json");
    let mut cmd = cargo::cargo();
    cmd.args([
        "run",
        "--quiet",
        "--release",
        "-p",
        "openhands-sql-store",
        "--example",
        "store_bench",
        "--",
        "--duration",
    ])
    .arg(duration_s.to_string())
    .arg("--out")
    .arg(&out)
    .stdout(std::process::Stdio::null());
    let status = cmd
        .status()
        .with_context(|| format!("could not start `{}`", cargo::display(&cmd)))?;
    ensure!(status.success(), "the store bench exited with {status}");
    let text =
        std::fs::read_to_string(&out).with_context(|| format!("reading {}", out.display()))?;
    parse(&text)
}

/// The figures from the store bench's JSON.
pub fn parse(text: &str) -> Result<StoreResults> {
    serde_json::from_str(text).context("the store bench wrote unexpected JSON")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_figures_the_example_writes() -> Result<()> {
        let text = r#"{"database":"postgresql","users":10000,"conversations":100000,
            "measured_user_conversations":10000,"concurrency":32,"list_concurrency":8,"seed_s":12.5,
            "settings_load":{"operations":100,"ops_per_s":20000.0,"p50_ms":1.0,"p99_ms":3.0},
            "settings_store":{"operations":10,"ops_per_s":2000.0,"p50_ms":5.0,"p99_ms":9.0},
            "secrets_load":{"operations":50,"ops_per_s":10000.0,"p50_ms":2.0,"p99_ms":4.0},
            "conversation_list":{"operations":40,"ops_per_s":8000.0,"p50_ms":2.5,"p99_ms":6.5}}"#;
        let figures = parse(text)?;
        assert_eq!(figures.users, 10_000);
        assert_eq!(figures.conversation_list.p99_ms, 6.5);
        assert!(parse(r#"{"database":"postgresql"}"#).is_err());
        Ok(())
    }
}
