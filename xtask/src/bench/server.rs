//! Starting, probing and stopping the server under test.
//!
//! The bench starts the release binary several times (set-up, start-up runs,
//! load). [`ServerProcess`] owns the child: it is stopped gracefully when the
//! bench is done with it, and killed by `Drop` on every other path (an error, a
//! panic), so no bench run leaves a server holding a port or the data dir.

use std::fs::{File, OpenOptions};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hyper::StatusCode;

use super::client::{HttpConn, RequestSpec};

/// How long a graceful stop may take before the child is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// The longest a single readiness probe may hang before it counts as "not yet".
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Where and how to start the server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub binary: PathBuf,
    pub data_dir: PathBuf,
    /// Server stdout and stderr are appended here, keeping the report readable.
    pub log_file: PathBuf,
    /// Extra environment for the child, set after (so overriding) the defaults.
    pub env: Vec<(&'static str, String)>,
}

/// A running server child; killed on drop unless [`ServerProcess::stop`] ran.
pub struct ServerProcess {
    child: Option<Child>,
    addr: SocketAddr,
    spawned_at: Instant,
    log_file: PathBuf,
}

impl ServerProcess {
    /// Starts `openhands serve` on a free loopback port.
    pub fn spawn(config: &ServerConfig) -> Result<Self> {
        Self::spawn_on(config, free_port()?)
    }

    /// Starts `openhands serve` on loopback `port` (for a config that names its own
    /// address, e.g. a public URL; take the port from [`free_port`]).
    pub fn spawn_on(config: &ServerConfig, port: u16) -> Result<Self> {
        let log = open_log(&config.log_file)?;
        let log_err = log
            .try_clone()
            .with_context(|| format!("duplicating handle of {}", config.log_file.display()))?;
        let mut cmd = Command::new(&config.binary);
        cmd.arg("serve")
            .env("FILE_STORE_PATH", &config.data_dir)
            .env("OPENHANDS_HOST", "127.0.0.1")
            .env("OPENHANDS_PORT", port.to_string())
            .env("OPENHANDS_RATE_LIMIT", "off")
            .env("RUST_LOG", "warn")
            .envs(config.env.iter().map(|(key, value)| (key, value)))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        let spawned_at = Instant::now();
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {} serve", config.binary.display()))?;
        Ok(Self {
            child: Some(child),
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            spawned_at,
            log_file: config.log_file.clone(),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn pid(&self) -> Result<u32> {
        self.child
            .as_ref()
            .map(Child::id)
            .context("server process already stopped")
    }

    /// Polls `GET /alive` every `interval` until it answers 200 and returns the
    /// time since spawn. Fails if the child exits or `timeout` passes first.
    pub async fn wait_alive(&mut self, interval: Duration, timeout: Duration) -> Result<Duration> {
        self.wait_answering("/alive", interval, timeout).await
    }

    /// Like [`ServerProcess::wait_alive`] on `GET /ready`, which also needs the
    /// server's database and Redis to answer.
    pub async fn wait_ready(&mut self, interval: Duration, timeout: Duration) -> Result<Duration> {
        self.wait_answering("/ready", interval, timeout).await
    }

    async fn wait_answering(
        &mut self,
        path: &str,
        interval: Duration,
        timeout: Duration,
    ) -> Result<Duration> {
        let probe = RequestSpec::get(path);
        loop {
            if let Some(status) = self.try_wait()? {
                bail!(
                    "server exited with {status} before answering {path} (log: {})",
                    self.log_file.display()
                );
            }
            if probe_once(self.addr, &probe).await {
                return Ok(self.spawned_at.elapsed());
            }
            if self.spawned_at.elapsed() > timeout {
                bail!(
                    "server did not answer 200 on {}{path} within {timeout:?} (log: {})",
                    self.addr,
                    self.log_file.display()
                );
            }
            tokio::time::sleep(interval).await;
        }
    }

    /// SIGKILL, as a crash would: no shutdown, no handover. Returns the moment the
    /// signal was sent, then reaps the child.
    pub fn kill(mut self) -> Result<Instant> {
        let mut child = self
            .child
            .take()
            .context("server process already stopped")?;
        child.kill().context("killing server")?;
        let killed = Instant::now();
        child.wait().context("waiting for killed server")?;
        Ok(killed)
    }

    /// Sends SIGTERM (through the `kill` command: xtask has no unsafe or libc),
    /// waits for the exit and kills the child if it outlives [`STOP_GRACE`].
    pub async fn stop(mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let terminated = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .is_ok_and(|status| status.success());
        if terminated {
            let deadline = Instant::now() + STOP_GRACE;
            while Instant::now() < deadline {
                if child.try_wait().context("waiting for server")?.is_some() {
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            eprintln!("warning: server ignored SIGTERM for {STOP_GRACE:?}; killing it");
        }
        child.kill().context("killing server")?;
        child.wait().context("waiting for killed server")?;
        Ok(())
    }

    fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        match self.child.as_mut() {
            Some(child) => child.try_wait().context("polling server process"),
            None => bail!("server process already stopped"),
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Best effort: the child may have exited already.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// True when `GET /alive` answers 200 within [`PROBE_TIMEOUT`].
async fn probe_once(addr: SocketAddr, probe: &RequestSpec) -> bool {
    let attempt = async {
        let mut conn = HttpConn::connect(addr).await?;
        conn.send(probe).await
    };
    matches!(
        tokio::time::timeout(PROBE_TIMEOUT, attempt).await,
        Ok(Ok(reply)) if reply.status == StatusCode::OK
    )
}

/// A loopback port that was free a moment ago (bind port 0, read it, release it).
/// The value a child process sees for `key` in an environment list (the last one set wins).
#[cfg(test)]
pub fn env_value<'a>(env: &'a [(&str, String)], key: &str) -> Option<&'a str> {
    env.iter()
        .rev()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.as_str())
}

pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .context("binding 127.0.0.1:0 to find a free port")?;
    Ok(listener
        .local_addr()
        .context("reading bound address")?
        .port())
}

fn open_log(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening server log {}", path.display()))
}
