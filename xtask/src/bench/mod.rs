//! `cargo xtask bench`: how fast the release server is, and whether that meets
//! the project's targets.
//!
//! A separate command rather than timed tests (timings in tests are flaky and
//! slow every run). It builds the release binary, fills a fresh data dir through
//! the API, measures start-up and memory, loads a handful of routes and writes
//! `<target>/bench/results.{json,md}`. Each step is one module: `server` (the
//! child process), `prepare` (set-up data), `load` (the generator), `agent` (the
//! agent loop against a fake LLM, on a fresh server), `store` (the SQL stores on
//! PostgreSQL), `saas_auth` (authenticated routes of a SaaS server on PostgreSQL),
//! `webhooks` (signed GitHub deliveries recorded by a SaaS server on PostgreSQL),
//! `cluster` (three SaaS replicas on PostgreSQL and Redis: cross-replica delivery,
//! takeover after `kill -9` and handover on SIGTERM), `sandbox` (tool servers in `saas.bwrap` and `oss.process`
//! sandboxes: start, round trip, idle memory, agent events/s), `stats`, `rss`, `targets`
//! and `report`.

mod agent;
mod client;
mod cluster;
mod cpu;
#[cfg(test)]
mod fake_server;
mod load;
mod prepare;
mod psql;
mod report;
mod rss;
mod saas_auth;
mod sandbox;
mod scenarios;
mod server;
mod stats;
mod store;
mod targets;
mod webhooks;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, ensure};
use clap::Args;

use crate::cargo::{self, run_step};
use load::{LoadConfig, LoadOutcome};
use report::{Machine, Results, ScenarioResult};
use scenarios::Scenario;
use server::{ServerConfig, ServerProcess};

/// How often start-up is probed; also the resolution of the start-up figure.
const STARTUP_POLL: Duration = Duration::from_millis(2);
/// How often readiness is probed when the time is not being measured.
const READY_POLL: Duration = Duration::from_millis(5);
/// The longest the server may take to answer `/alive`.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Quiet time after the load before the idle RSS is read.
const IDLE_SETTLE: Duration = Duration::from_secs(1);
/// The server binary name inside `<target>/release`.
const SERVER_BIN: &str = "openhands";
const SERVER_PACKAGE: &str = "openhands-server";

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Seconds measured per scenario (after the warm-up).
    #[arg(long, default_value_t = 5)]
    duration: u64,
    /// Seconds of unmeasured load before each scenario's measured window.
    #[arg(long, default_value_t = 1)]
    warmup: u64,
    /// Concurrent keep-alive connections per scenario.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Tokio worker threads for the load generator (leave the other cores to the server).
    #[arg(long, default_value_t = 1)]
    worker_threads: usize,
    /// Conversations created before measuring.
    #[arg(long, default_value_t = 1000)]
    conversations: usize,
    /// How many times start-up is measured (the median is reported).
    #[arg(long, default_value_t = 5)]
    startup_runs: usize,
    /// Reuse the existing release binary instead of running `cargo build --release`.
    #[arg(long)]
    skip_build: bool,
    /// Bench this server binary instead of `<target>/release/openhands` (implies --skip-build).
    #[arg(long)]
    binary: Option<PathBuf>,
    /// Skip the agent measurements (events/s, memory per idle conversation, fan-out).
    #[arg(long)]
    skip_agent: bool,
    /// Run only the agent measurements and print them (results files are left alone),
    /// for iterating on the agent and delivery paths.
    #[arg(long, conflicts_with = "skip_agent")]
    only_agent: bool,
    /// Skip the SQL store figures (they need PostgreSQL: the machine's, or a throw-away one
    /// started from the installed binaries).
    #[arg(long)]
    skip_store: bool,
    /// Skip the SaaS figures (authenticated `GET /api/settings` by cookie and by API key, on
    /// PostgreSQL as `--skip-store` describes).
    #[arg(long)]
    skip_saas: bool,
    /// Skip the webhook figures (signed GitHub deliveries recorded per second, worker off, on
    /// PostgreSQL as `--skip-store` describes).
    #[arg(long)]
    skip_webhooks: bool,
    /// Run only the webhook figures and print them (results files are left alone), for
    /// iterating on the webhook route.
    #[arg(long, conflicts_with_all = ["skip_webhooks", "only_agent"])]
    only_webhooks: bool,
    /// Run this `auth_bench_seed` binary for the webhook figures instead of `cargo run
    /// --release --example auth_bench_seed` (e.g. `<target>/release/examples/auth_bench_seed`).
    #[arg(long)]
    seed_binary: Option<PathBuf>,
    /// Skip the cluster figures (three SaaS replicas on the machine's PostgreSQL and Redis:
    /// cross-replica delivery delay with 1,000 watchers, takeover time after `kill -9`,
    /// handover of 100 working conversations on SIGTERM).
    #[arg(long)]
    skip_cluster: bool,
    /// Run only the cluster figures and print them (results files are left alone), for
    /// iterating on the clustered conversation manager.
    #[arg(long, conflicts_with_all = ["skip_cluster", "only_agent", "only_webhooks"])]
    only_cluster: bool,
    /// Skip the sandbox figures (tool servers in bubblewrap and as plain processes: start
    /// to first output, call round trip, memory per idle sandbox, agent events/s); the
    /// report still lists them, as skipped.
    #[arg(long)]
    skip_sandbox: bool,
    /// Run only the sandbox figures and print them (results files are left alone), for
    /// iterating on the sandbox and the tool server.
    #[arg(long, conflicts_with_all = ["skip_sandbox", "only_agent", "only_webhooks", "only_cluster"])]
    only_sandbox: bool,
}

pub fn run(args: &BenchArgs) -> Result<()> {
    if cfg!(debug_assertions) {
        return relaunch_optimized();
    }
    ensure!(args.duration > 0, "--duration must be at least 1 second");
    ensure!(args.connections > 0, "--connections must be at least 1");
    ensure!(
        args.worker_threads > 0,
        "--worker-threads must be at least 1"
    );
    ensure!(args.startup_runs > 0, "--startup-runs must be at least 1");

    let target_dir = cargo::target_dir()?;
    let binary = server_binary(args, &target_dir)?;
    let bench_dir = target_dir.join("bench");
    let data_dir = bench_dir.join("data");
    recreate_dir(&data_dir)?;
    let log_file = bench_dir.join("server.log");
    remove_if_present(&log_file)?;
    let config = ServerConfig {
        binary,
        data_dir,
        log_file,
        env: Vec::new(),
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.worker_threads)
        .enable_all()
        .build()
        .context("building the load generator's runtime")?;
    let agent_data_dir = bench_dir.join("agent-data");
    if args.only_agent {
        let agent = runtime.block_on(agent::measure(&config, agent_data_dir))?;
        println!("{}", report::render_agent_only(&agent));
        return Ok(());
    }
    if args.only_webhooks {
        let webhooks = runtime.block_on(measure_webhooks(args, &config, &bench_dir))?;
        println!("{}", report::render_webhooks_only(&webhooks));
        return Ok(());
    }
    if args.only_sandbox {
        let tool_server = tool_server_binary(args, &target_dir)?;
        let sandbox = runtime
            .block_on(sandbox::measure(&config, tool_server))
            .context("sandbox figures")?;
        println!("{}", report::render_sandbox_only(&sandbox));
        return Ok(());
    }
    if args.only_cluster {
        let services = cluster::check_services().context("the cluster figures")?;
        let cluster = runtime
            .block_on(cluster::measure(&config, &bench_dir, services))
            .context("cluster figures")?;
        println!("{}", report::render_cluster_only(&cluster));
        return Ok(());
    }
    let tool_server = tool_server_binary(args, &target_dir)?;
    let results = runtime.block_on(measure(args, &config, agent_data_dir, tool_server))?;

    let markdown = report::write(&bench_dir, &results)?;
    println!("{markdown}");
    eprintln!(
        "==> wrote {} and results.md (server log: {})",
        bench_dir.join("results.json").display(),
        config.log_file.display()
    );
    Ok(())
}

/// `cargo xtask` builds xtask unoptimised; a debug hyper client would be
/// slower than the server it measures. So the bench runs itself again as a
/// release build with the same arguments.
fn relaunch_optimized() -> Result<()> {
    eprintln!(
        "==> relaunching the bench as an optimised build (the load generator must not be the bottleneck)"
    );
    let mut cmd = cargo::cargo();
    cmd.args(["run", "--quiet", "--release", "--package", "xtask", "--"])
        .args(std::env::args_os().skip(1));
    let status = cmd
        .status()
        .with_context(|| format!("could not start `{}`", cargo::display(&cmd)))?;
    ensure!(status.success(), "the optimised bench exited with {status}");
    Ok(())
}

/// The binary to bench, building it first unless told not to.
fn server_binary(args: &BenchArgs, target_dir: &Path) -> Result<PathBuf> {
    let binary = match &args.binary {
        Some(binary) => binary.clone(),
        None => {
            if !args.skip_build {
                run_step(
                    "build (release)",
                    cargo::cargo().args(["build", "--release", "-p", SERVER_PACKAGE]),
                )?;
            }
            target_dir.join("release").join(SERVER_BIN)
        }
    };
    ensure!(
        binary.is_file(),
        "no server binary at {}: drop --skip-build, or pass --binary <path>",
        binary.display()
    );
    Ok(binary)
}

/// The tool server of the sandbox figures, built like the server, or why they are skipped.
fn tool_server_binary(
    args: &BenchArgs,
    target_dir: &Path,
) -> Result<std::result::Result<PathBuf, String>> {
    if args.skip_sandbox {
        return Ok(Err("--skip-sandbox".to_owned()));
    }
    sandbox::tool_server_binary(
        args.skip_build || args.binary.is_some(),
        args.binary.as_deref(),
        target_dir,
    )
}

/// Every measurement, in order: set-up, start-up runs, load and memory, then
/// the agent measurements on a fresh server over `agent_data_dir`, the sandbox figures
/// with `tool_server`, and the SQL, SaaS, webhook and cluster figures.
async fn measure(
    args: &BenchArgs,
    config: &ServerConfig,
    agent_data_dir: PathBuf,
    tool_server: std::result::Result<PathBuf, String>,
) -> Result<Results> {
    eprintln!(
        "==> set-up: settings and {} conversations",
        args.conversations
    );
    prepare::prepare(config, args.conversations).await?;

    eprintln!("==> start-up ({} runs)", args.startup_runs);
    let startup_ms_runs = measure_startup(config, args.startup_runs).await?;

    let mut server = ServerProcess::spawn(config)?;
    server
        .wait_alive(READY_POLL, READY_TIMEOUT)
        .await
        .context("starting the server for the load scenarios")?;
    let pid = server.pid()?;
    let startup_rss_mb = rss::rss_mb(pid).context("reading RSS after start-up")?;

    let load = LoadConfig {
        connections: args.connections,
        warmup: Duration::from_secs(args.warmup),
        duration: Duration::from_secs(args.duration),
    };
    let mut scenario_results = Vec::new();
    for scenario in scenarios::all(args.conversations) {
        eprintln!("==> load: {}", scenario.name);
        let outcome = load::run(server.addr(), &scenario.request, load)
            .await
            .with_context(|| format!("scenario `{}`", scenario.name))?;
        scenario_results.push(scenario_result(&scenario, outcome, load.duration));
    }

    tokio::time::sleep(IDLE_SETTLE).await;
    let idle_rss_mb = rss::rss_mb(pid).context("reading idle RSS")?;
    server.stop().await.context("stopping the server")?;

    let agent = if args.skip_agent {
        None
    } else {
        Some(agent::measure(config, agent_data_dir).await?)
    };

    let sandbox = sandbox::measure(config, tool_server)
        .await
        .context("sandbox figures")?;

    let bench_dir = config
        .log_file
        .parent()
        .context("the bench dir of the server log")?;
    let store = if args.skip_store {
        None
    } else {
        eprintln!("==> SQL stores on PostgreSQL");
        Some(store::measure(bench_dir, args.duration).context("SQL store figures")?)
    };

    let saas = if args.skip_saas {
        None
    } else {
        Some(
            saas_auth::measure(config, bench_dir.join("saas-data"), load)
                .await
                .context("SaaS authentication figures")?,
        )
    };

    let webhooks = if args.skip_webhooks {
        None
    } else {
        Some(measure_webhooks(args, config, bench_dir).await?)
    };

    let cluster = if args.skip_cluster {
        None
    } else {
        measure_cluster(config, bench_dir).await?
    };

    let startup_ms_median = stats::median(&startup_ms_runs);
    let mut targets = targets::evaluate(
        &scenario_results,
        targets::ServerFigures {
            startup_ms_median,
            idle_rss_mb,
        },
        agent.as_ref(),
        store.as_ref(),
        saas.as_ref(),
        webhooks.as_ref(),
        cluster.as_ref(),
    );
    targets.extend(sandbox::report::targets(&sandbox));
    Ok(Results {
        generated_at: unix_now(),
        machine: Machine {
            nproc: std::thread::available_parallelism().map_or(1, usize::from),
        },
        client_worker_threads: args.worker_threads,
        connections: args.connections,
        duration_s: args.duration,
        scenarios: scenario_results,
        startup_ms_median,
        startup_ms_runs,
        startup_rss_mb,
        idle_rss_mb,
        agent,
        store,
        saas,
        webhooks,
        cluster,
        sandbox,
        targets,
    })
}

/// The cluster figures, or `None` with a message when the machine has no PostgreSQL or
/// Redis for them.
async fn measure_cluster(
    config: &ServerConfig,
    bench_dir: &Path,
) -> Result<Option<cluster::ClusterResults>> {
    let services = match cluster::check_services() {
        Ok(services) => services,
        Err(err) => {
            eprintln!("==> cluster: skipped ({err:#}); pass --skip-cluster to silence this");
            return Ok(None);
        }
    };
    cluster::measure(config, bench_dir, services)
        .await
        .context("cluster figures")
        .map(Some)
}

/// The webhook figures, on a fresh server over `<bench dir>/webhooks-data`.
async fn measure_webhooks(
    args: &BenchArgs,
    config: &ServerConfig,
    bench_dir: &Path,
) -> Result<webhooks::WebhookResults> {
    let load = LoadConfig {
        connections: args.connections,
        warmup: Duration::from_secs(args.warmup),
        duration: Duration::from_secs(args.duration),
    };
    webhooks::measure(
        config,
        bench_dir.join("webhooks-data"),
        load,
        args.seed_binary.as_deref(),
    )
    .await
    .context("webhook figures")
}

/// Wall time from spawn to the first 200 on `/alive`, in ms, once per run.
async fn measure_startup(config: &ServerConfig, runs: usize) -> Result<Vec<f64>> {
    let mut times = Vec::with_capacity(runs);
    for run in 1..=runs {
        let mut server = ServerProcess::spawn(config)?;
        let elapsed = server
            .wait_alive(STARTUP_POLL, READY_TIMEOUT)
            .await
            .with_context(|| format!("start-up run {run}"))?;
        server
            .stop()
            .await
            .with_context(|| format!("stopping after start-up run {run}"))?;
        times.push((elapsed.as_secs_f64() * 100_000.0).round() / 100.0);
    }
    Ok(times)
}

fn scenario_result(scenario: &Scenario, outcome: LoadOutcome, window: Duration) -> ScenarioResult {
    let req_per_s = outcome.requests as f64 / window.as_secs_f64();
    let (p50_ms, p99_ms) = stats::summarize(outcome.latencies_us);
    ScenarioResult {
        name: scenario.name.clone(),
        method: scenario.request.method.to_string(),
        path: scenario.request.path.clone(),
        requests: outcome.requests,
        errors: outcome.errors,
        req_per_s: (req_per_s * 10.0).round() / 10.0,
        p50_ms,
        p99_ms,
    }
}

fn recreate_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("wiping {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
}

fn remove_if_present(file: &Path) -> Result<()> {
    match std::fs::remove_file(file) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            Err(err).with_context(|| format!("removing {}", file.display()))
        }
        _ => Ok(()),
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}
