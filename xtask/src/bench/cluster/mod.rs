//! Issue 6's cluster figures: three replicas of the release server in SaaS mode on one
//! PostgreSQL database and one Redis (the clustered conversation manager,
//! `saas.clustered`, see `docs/cluster.md`).
//!
//! - [`delivery`]: cross-replica delivery delay, owner storing an event to a WebSocket
//!   watcher on another replica receiving it, with 1,000 watchers over the replicas;
//! - [`takeover`]: time from `kill -9` of a conversation's owner until another replica
//!   runs it, with the default lease;
//! - [`handover`]: time from SIGTERM to a replica running 100 working agents until each
//!   takes its next step on another replica (the graceful path of a deploy).
//!
//! The machine's PostgreSQL (`127.0.0.1:5432`, user `postgres`, trust auth) gets a fresh
//! database for the run, dropped afterwards; the machine's Redis gets a key prefix of the
//! run, whose keys are deleted afterwards. [`check_services`] looks for both first, so a
//! machine without them skips the section with a message. The replicas are in
//! [`replicas`]; the fake LLM, the watchers and the API calls are the agent
//! measurements'.

mod delivery;
mod handover;
mod redis;
mod replicas;
mod takeover;

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use serde::Serialize;

use super::agent::fake_llm::FakeLlm;
use super::agent::{api, fd_limit};
use super::psql;
use super::saas_auth::MACHINE_REDIS;
use super::server::ServerConfig;
use redis::Redis;
use replicas::{Deployment, NAMES, Replicas};

pub use delivery::Delivery;
pub use handover::Handover;
pub use takeover::Takeover;

/// The machine's PostgreSQL, where the run's database is made and dropped.
const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432";
/// Watchers of the delivery measurement, spread over the replicas.
const WATCHERS: usize = 1000;
/// `think` answers of the delivery measurement's task (as in the fan-out measurement).
const THINK_CALLS: u64 = 200;
/// Kills of the takeover measurement.
const TAKEOVER_RUNS: usize = 3;
/// Working conversations on the replica that gets SIGTERM in the handover measurement.
const HANDOVER_CONVERSATIONS: usize = 100;
/// The replica that gets SIGTERM (index in [`NAMES`]).
const HANDOVER_VICTIM: usize = 0;

/// What the cluster measurements report.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ClusterResults {
    pub database: String,
    pub replicas: usize,
    pub delivery: Delivery,
    pub takeover: Takeover,
    pub handover: Handover,
}

/// What the cluster measurements need from the machine, found before they start.
pub struct Services {
    redis: Redis,
}

/// Checks for the machine's PostgreSQL and Redis (and that no cluster timing is set in
/// the environment); the error says which is missing.
pub fn check_services() -> Result<Services> {
    replicas::ensure_default_timings()?;
    psql::run(
        &format!("{POSTGRES}/postgres"),
        "SELECT 1",
        "reach PostgreSQL on 127.0.0.1:5432 as user postgres",
    )?;
    let redis = Redis::connect(MACHINE_REDIS)
        .with_context(|| format!("no Redis answers at {MACHINE_REDIS}"))?;
    Ok(Services { redis })
}

/// Runs the measurements on replicas of `base`'s binary; data dirs and logs go under
/// `<bench dir>/cluster`.
pub async fn measure(
    base: &ServerConfig,
    bench_dir: &Path,
    services: Services,
) -> Result<ClusterResults> {
    fd_limit::ensure_room_for(WATCHERS, "--skip-cluster")?;
    let run = format!("oh_bench_cluster_{}_{}", std::process::id(), unix_nanos());
    // Declared before the replicas, so dropped after them: the keys and the database
    // go once no replica writes them any more, on every path.
    let mut keys = RunKeys {
        redis: services.redis,
        prefix: format!("{run}:"),
    };
    let database = Database::create(&run)?;
    let deployment = Deployment {
        database_url: database.url(),
        redis_url: MACHINE_REDIS.to_owned(),
        key_prefix: keys.prefix.clone(),
    };
    let llm = FakeLlm::start().await?;
    eprintln!(
        "==> cluster: {} replicas on PostgreSQL and Redis",
        NAMES.len()
    );
    let mut replicas = Replicas::start(base, &bench_dir.join("cluster"), &deployment).await?;
    api::store_settings(replicas.get(0)?.addr(), &llm.base_url()).await?;

    eprintln!(
        "==> cluster: cross-replica delivery ({WATCHERS} watchers over {} replicas, {THINK_CALLS} think calls)",
        NAMES.len()
    );
    let delivery = delivery::measure(
        &replicas,
        &deployment,
        &mut keys.redis,
        &llm,
        WATCHERS,
        THINK_CALLS,
    )
    .await
    .context("cross-replica delivery delay")?;
    eprintln!(
        "==> cluster: takeover after kill -9 ({TAKEOVER_RUNS} runs, default lease {} ms)",
        takeover::DEFAULT_LEASE_MS
    );
    let takeover = takeover::measure(
        &mut replicas,
        &deployment,
        &mut keys.redis,
        &llm,
        TAKEOVER_RUNS,
    )
    .await
    .context("takeover after kill -9")?;
    // Last: its victim is not restarted, the two survivors are stopped below.
    eprintln!(
        "==> cluster: handover on SIGTERM ({HANDOVER_CONVERSATIONS} working conversations on replica {})",
        NAMES[HANDOVER_VICTIM]
    );
    let handover = handover::measure(
        &mut replicas,
        &deployment,
        &mut keys.redis,
        &llm,
        HANDOVER_VICTIM,
        HANDOVER_CONVERSATIONS,
    )
    .await
    .context("handover on SIGTERM")?;
    eprintln!("    fake LLM answered {} completions", llm.served());
    replicas
        .stop()
        .await
        .context("stopping the cluster replicas")?;
    Ok(ClusterResults {
        database: "postgresql".to_owned(),
        replicas: NAMES.len(),
        delivery,
        takeover,
        handover,
    })
}

/// The run's database on the machine's PostgreSQL; dropped with this value.
struct Database {
    name: String,
}

impl Database {
    fn create(name: &str) -> Result<Self> {
        psql::run(
            &format!("{POSTGRES}/postgres"),
            &format!("CREATE DATABASE \"{name}\""),
            "create the cluster run's database",
        )?;
        Ok(Self {
            name: name.to_owned(),
        })
    }

    fn url(&self) -> String {
        format!("{POSTGRES}/{}", self.name)
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        // `WITH (FORCE)` closes the connections a killed replica's pool left behind.
        let dropped = psql::run(
            &format!("{POSTGRES}/postgres"),
            &format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name),
            "drop the cluster run's database",
        );
        if let Err(err) = dropped {
            eprintln!("warning: {err:#}");
        }
    }
}

/// The run's Redis connection; the keys under its prefix are deleted on drop.
struct RunKeys {
    redis: Redis,
    prefix: String,
}

impl Drop for RunKeys {
    fn drop(&mut self) {
        if let Err(err) = self.redis.delete_prefixed(&self.prefix) {
            eprintln!(
                "warning: deleting the Redis keys `{}*`: {err:#}",
                self.prefix
            );
        }
    }
}

fn unix_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos())
}

/// Results for the report's and the targets' tests: cross-replica p99 `cross_p99_ms`,
/// one takeover run per entry of `takeovers_ms` (status event then `RUNNING` 100 ms
/// later), a handover whose next step has p99 850 ms.
#[cfg(test)]
pub fn example(cross_p99_ms: f64, takeovers_ms: &[f64]) -> ClusterResults {
    use super::cpu::CpuUsage;
    use super::stats::DelaySummary;
    let delays = |deliveries, p99_ms| DelaySummary {
        deliveries,
        p50_ms: 1.5,
        p99_ms,
        max_ms: 20.0,
    };
    let runs = takeovers_ms
        .iter()
        .enumerate()
        .map(|(run, ms)| takeover::TakeoverRun {
            killed: NAMES
                .get(run % NAMES.len())
                .copied()
                .unwrap_or("a")
                .to_owned(),
            resumed_on: "b".to_owned(),
            status_event_ms: *ms - 100.0,
            running_ms: *ms,
        })
        .collect();
    ClusterResults {
        database: "postgresql".to_owned(),
        replicas: 3,
        delivery: Delivery {
            replicas: 3,
            watchers: 1000,
            think_calls: 200,
            llm_answer_ms: 10,
            cross_replica: delays(268_000, cross_p99_ms),
            // Reading after the bench's own queue is later, and not what the target is about.
            cross_replica_read: delays(268_000, cross_p99_ms + 8.0),
            owner_replica: delays(134_000, 4.0),
            usage: CpuUsage {
                wall_s: 4.0,
                server_cpu_s: 5.0,
                bench_cpu_s: 2.5,
            },
        },
        takeover: Takeover::of(runs),
        handover: handover::example(850.0),
    }
}
