//! Three `openhands` processes of one SaaS deployment: one PostgreSQL database, one
//! Redis key prefix, one secrets key, the clustered conversation manager
//! (`saas.clustered`) with its default timings.
//!
//! As in `openhands-server/tests/cluster_processes.rs`, the replicas run
//! `oss.local_user` (the one user of a box without login), so the measurements need no
//! OIDC provider; everything else is the `saas` class as deployed. The cluster timings
//! (`cluster.lease_ms`, `cluster.renew_interval_ms`) are deliberately left unset: the
//! takeover figure is about the defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};

use crate::bench::server::{ServerConfig, ServerProcess};
use crate::bench::{READY_POLL, READY_TIMEOUT, recreate_dir};

/// Replicas of the deployment, also the names of their data dirs and logs.
pub const NAMES: [&str; 3] = ["a", "b", "c"];
/// Replicas of one deployment share the key that seals secrets (bytes 0..32, the
/// cluster test's); the database is thrown away after the run.
const SECRETS_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
/// The longest `openhands migrate up` may take.
const MIGRATE_TIMEOUT: Duration = Duration::from_secs(120);

/// Where the deployment keeps its state.
#[derive(Debug, Clone)]
pub struct Deployment {
    pub database_url: String,
    pub redis_url: String,
    /// Every key of the run starts with it (`redis.key_prefix`).
    pub key_prefix: String,
}

impl Deployment {
    /// The Redis key holding the id of the replica that runs `conversation_id`.
    pub fn owner_key(&self, conversation_id: &str) -> String {
        format!("{}cm:owner:{{{conversation_id}}}", self.key_prefix)
    }
}

/// The environment every replica (and `openhands migrate`) shares: SaaS mode with the
/// local user on the deployment's database and Redis, rate limits off, every
/// conversation of the run allowed to keep running (the measurements stop their own),
/// no idle close, the bench's fake LLM on loopback allowed (SaaS mode refuses internal
/// LLM addresses otherwise), the cluster manager's decisions logged, and no config file
/// (so nothing but the defaults sets the cluster timings).
pub fn shared_env(deployment: &Deployment, config_file: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("OPENHANDS_CONFIG_CLS", "saas".to_owned()),
        ("OPENHANDS_PLUGINS__USER_AUTH", "oss.local_user".to_owned()),
        ("OPENHANDS_CONFIG_FILE", config_file.display().to_string()),
        ("DATABASE_URL", deployment.database_url.clone()),
        ("OPENHANDS_REDIS__URL", deployment.redis_url.clone()),
        ("OPENHANDS_REDIS__KEY_PREFIX", deployment.key_prefix.clone()),
        ("OPENHANDS_SECRETS_KEY", SECRETS_KEY.to_owned()),
        ("OPENHANDS_RATE_LIMIT", "off".to_owned()),
        ("OPENHANDS_USER_RATE_LIMIT", "off".to_owned()),
        ("MAX_CONCURRENT_CONVERSATIONS", "5000".to_owned()),
        ("SANDBOX_CLOSE_DELAY", "0".to_owned()),
        ("OPENHANDS_LLM_EGRESS_ALLOW", "127.0.0.1".to_owned()),
        ("RUST_LOG", "warn,openhands_cluster_manager=info".to_owned()),
        // Four replicas at once (three, and one restarting beside them) must fit in
        // PostgreSQL's default 100 connections with room for the bench: the default pool
        // (25 + 10 each) does not, and a taker waiting for a connection the leaving replica
        // still holds idle stalls the handover until that replica exits.
        ("DB_POOL_SIZE", "15".to_owned()),
        ("DB_MAX_OVERFLOW", "5".to_owned()),
    ]
}

/// Cluster settings in the bench's own environment would reach the replicas (children
/// inherit it) and change the figures; they must come from the defaults.
pub fn ensure_default_timings() -> Result<()> {
    for key in [
        "OPENHANDS_CLUSTER__LEASE_MS",
        "OPENHANDS_CLUSTER__RENEW_INTERVAL_MS",
    ] {
        ensure!(
            std::env::var_os(key).is_none(),
            "{key} is set: the cluster figures are measured with the default cluster timings, \
             unset it first"
        );
    }
    Ok(())
}

/// One running replica.
pub struct Replica {
    pub name: &'static str,
    /// Its `cluster.replica_id`: the value of the owner keys of its conversations.
    pub id: String,
    server: ServerProcess,
}

impl Replica {
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    pub fn pid(&self) -> Result<u32> {
        self.server.pid()
    }

    /// Stops the process with SIGTERM (its graceful shutdown: a clustered replica hands
    /// its conversations over) and returns once it exited; a process that outlives the
    /// server module's grace period is killed.
    pub async fn stop(self) -> Result<()> {
        self.server
            .stop()
            .await
            .with_context(|| format!("stopping replica {}", self.name))
    }
}

/// The replicas, in [`NAMES`] order; every one is killed on drop (by
/// [`ServerProcess`]) unless stopped.
pub struct Replicas {
    base: ServerConfig,
    dir: PathBuf,
    env: Vec<(&'static str, String)>,
    /// How many processes were started, numbering replica ids (a restarted process is a
    /// new replica).
    started: usize,
    /// `None` for a replica killed and not restarted yet.
    slots: Vec<Option<Replica>>,
}

impl Replicas {
    /// Applies the schema (`openhands migrate up`), then starts the replicas and waits
    /// until each answers `/ready` (database and Redis reachable). `base` gives the binary;
    /// data dirs and logs go under `dir`.
    pub async fn start(base: &ServerConfig, dir: &Path, deployment: &Deployment) -> Result<Self> {
        recreate_dir(dir)?;
        let env = shared_env(deployment, &dir.join("none.toml"));
        migrate(&base.binary, dir, &env)?;
        let mut replicas = Self {
            base: base.clone(),
            dir: dir.to_owned(),
            env,
            started: 0,
            slots: Vec::with_capacity(NAMES.len()),
        };
        for name in NAMES {
            let replica = replicas.spawn(name)?;
            replicas.slots.push(Some(replica));
        }
        for index in 0..NAMES.len() {
            replicas.wait_ready(index).await?;
        }
        Ok(replicas)
    }

    /// Replica `index`, failing when it was killed.
    pub fn get(&self, index: usize) -> Result<&Replica> {
        self.slots
            .get(index)
            .and_then(Option::as_ref)
            .with_context(|| format!("replica {index} is not running"))
    }

    /// Every replica's address, in [`NAMES`] order (all must run).
    pub fn addrs(&self) -> Result<Vec<SocketAddr>> {
        (0..self.slots.len())
            .map(|index| Ok(self.get(index)?.addr()))
            .collect()
    }

    /// Every replica's process id, in [`NAMES`] order (all must run).
    pub fn pids(&self) -> Result<Vec<u32>> {
        (0..self.slots.len())
            .map(|index| self.get(index)?.pid())
            .collect()
    }

    /// The index of the running replica whose id is `id`.
    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.slots
            .iter()
            .position(|slot| slot.as_ref().is_some_and(|replica| replica.id == id))
    }

    /// Kills replica `index` with SIGKILL (no shutdown, no handover) and returns the
    /// moment of the kill; the slot stays empty until [`Replicas::restart`].
    pub fn kill(&mut self, index: usize) -> Result<Instant> {
        self.take(index)?.server.kill()
    }

    /// Takes replica `index` out of its slot, e.g. to stop it with [`Replica::stop`]; the
    /// slot stays empty until [`Replicas::restart`].
    pub fn take(&mut self, index: usize) -> Result<Replica> {
        self.slots
            .get_mut(index)
            .and_then(Option::take)
            .with_context(|| format!("replica {index} is not running"))
    }

    /// Starts a new process (a new replica id) in slot `index` and waits until it is ready.
    pub async fn restart(&mut self, index: usize) -> Result<()> {
        let name = *NAMES.get(index).context("no such replica")?;
        ensure!(
            self.slots.get(index).is_some_and(Option::is_none),
            "replica {name} still runs"
        );
        let replica = self.spawn(name)?;
        if let Some(slot) = self.slots.get_mut(index) {
            *slot = Some(replica);
        }
        self.wait_ready(index).await
    }

    /// Stops every running replica with SIGTERM, one after the other.
    pub async fn stop(mut self) -> Result<()> {
        for slot in &mut self.slots {
            if let Some(replica) = slot.take() {
                replica.stop().await?;
            }
        }
        Ok(())
    }

    async fn wait_ready(&mut self, index: usize) -> Result<()> {
        let replica = self
            .slots
            .get_mut(index)
            .and_then(Option::as_mut)
            .with_context(|| format!("replica {index} is not running"))?;
        replica
            .server
            .wait_ready(READY_POLL, READY_TIMEOUT)
            .await
            .with_context(|| format!("starting replica {}", replica.name))?;
        Ok(())
    }

    fn spawn(&mut self, name: &'static str) -> Result<Replica> {
        self.started += 1;
        let id = format!("bench-{name}-{}", self.started);
        let data_dir = self.dir.join(name);
        std::fs::create_dir_all(&data_dir)
            .with_context(|| format!("creating {}", data_dir.display()))?;
        let mut env = self.env.clone();
        env.push(("OPENHANDS_CLUSTER__REPLICA_ID", id.clone()));
        let config = ServerConfig {
            data_dir,
            log_file: self.dir.join(format!("{name}.log")),
            env,
            ..self.base.clone()
        };
        let server =
            ServerProcess::spawn(&config).with_context(|| format!("starting replica {name}"))?;
        Ok(Replica { name, id, server })
    }
}

/// `openhands migrate up` on the deployment's database.
fn migrate(binary: &Path, dir: &Path, env: &[(&'static str, String)]) -> Result<()> {
    let log = dir.join("migrate.log");
    let out = std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    let err = out
        .try_clone()
        .with_context(|| format!("duplicating handle of {}", log.display()))?;
    let mut child = Command::new(binary)
        .args(["migrate", "up"])
        .env("FILE_STORE_PATH", dir)
        .envs(env.iter().map(|(key, value)| (key, value)))
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .with_context(|| format!("starting {} migrate up", binary.display()))?;
    let deadline = Instant::now() + MIGRATE_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().context("waiting for migrate")? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            anyhow::bail!("`openhands migrate up` took over {MIGRATE_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    ensure!(
        status.success(),
        "`openhands migrate up` exited with {status} (log: {})",
        log.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_share_saas_with_the_local_user_and_default_cluster_timings() {
        let deployment = Deployment {
            database_url: "postgres://postgres@127.0.0.1:5432/oh_bench_cluster_1".to_owned(),
            redis_url: "redis://127.0.0.1:6379/0".to_owned(),
            key_prefix: "oh_bench_cluster_1:".to_owned(),
        };
        let env = shared_env(&deployment, Path::new("/tmp/none.toml"));
        let get = |key: &str| crate::bench::server::env_value(&env, key);
        assert_eq!(get("OPENHANDS_CONFIG_CLS"), Some("saas"));
        assert_eq!(get("OPENHANDS_PLUGINS__USER_AUTH"), Some("oss.local_user"));
        assert_eq!(
            get("DATABASE_URL"),
            Some("postgres://postgres@127.0.0.1:5432/oh_bench_cluster_1")
        );
        assert_eq!(
            get("OPENHANDS_REDIS__KEY_PREFIX"),
            Some("oh_bench_cluster_1:")
        );
        assert_eq!(get("OPENHANDS_CONFIG_FILE"), Some("/tmp/none.toml"));
        assert!(get("OPENHANDS_SECRETS_KEY").is_some());
        assert_eq!(get("OPENHANDS_LLM_EGRESS_ALLOW"), Some("127.0.0.1"));
        assert_eq!(
            deployment.owner_key("c1"),
            "oh_bench_cluster_1:cm:owner:{c1}"
        );
        assert!(
            env.iter()
                .all(|(key, _)| !key.starts_with("OPENHANDS_CLUSTER__")),
            "the cluster timings stay at their defaults: {env:?}"
        );
    }
}
