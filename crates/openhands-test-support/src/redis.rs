//! Redis for tests (feature `redis`).
//!
//! Rate limits and, later, clustered conversations are tested against a real Redis:
//!
//! * [`TestRedis`] starts a throw-away `redis-server` from the installed binary on a free
//!   loopback port, in its own temporary directory, with persistence off. A test can
//!   [`stop`](TestRedis::stop) it (killed, as a crash would) and
//!   [`restart`](TestRedis::restart) it on the same port, to check what clients do
//!   meanwhile. It runs under a watchdog shell that kills it and removes its directory when
//!   the test process exits, even on a panic.
//! * [`redis_for_test`] gives a test a URL and a key prefix of its own: on the machine's
//!   Redis at `127.0.0.1:6379` when it answers `PING` without a password, else on one
//!   throw-away server per test process. Set `OPENHANDS_TEST_REDIS_LOCAL=1` to always use a
//!   throw-away one.
//!
//! Like [`crate::postgres`], it talks to Redis through plain sockets and the command-line
//! tools, so it needs no Redis client library and `Drop` needs no async runtime.

use crate::postgres::{free_port, random_u64, shell_quote};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Why no Redis could be provided. The message says what to install or start.
#[derive(Debug, Clone)]
pub struct RedisUnavailable(pub String);

impl std::fmt::Display for RedisUnavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "no Redis for tests: {}", self.0)
    }
}

impl std::error::Error for RedisUnavailable {}

/// True when something on `127.0.0.1:port` answers `PING` with `PONG` (so no password).
pub fn answers_ping(port: u16) -> bool {
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_secs(1)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut reply = [0u8; 7];
    stream.read_exact(&mut reply).is_ok() && reply == *b"+PONG\r\n"
}

/// A `redis-server` of this test alone; killed when dropped.
#[derive(Debug)]
pub struct TestRedis {
    port: u16,
    dir: tempfile::TempDir,
    /// The watchdog shell; closing its stdin kills the server.
    watchdog: Option<Child>,
}

impl TestRedis {
    /// Starts a server on a free loopback port and waits until it answers.
    pub fn start() -> Result<Self, RedisUnavailable> {
        let dir = tempfile::Builder::new()
            .prefix("oh-test-redis-")
            .tempdir()
            .map_err(|e| RedisUnavailable(format!("creating a temporary directory: {e}")))?;
        let port = free_port().map_err(RedisUnavailable)?;
        let mut redis = Self {
            port,
            dir,
            watchdog: None,
        };
        redis.launch()?;
        Ok(redis)
    }

    /// `redis://127.0.0.1:<port>/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server (SIGKILL, no shutdown) and waits until it is gone.
    pub fn stop(&mut self) {
        if let Some(mut watchdog) = self.watchdog.take() {
            drop(watchdog.stdin.take());
            let _ = watchdog.wait();
        }
    }

    /// Starts the server again on the same port (empty: nothing is persisted).
    pub fn restart(&mut self) -> Result<(), RedisUnavailable> {
        self.stop();
        self.launch()
    }

    fn launch(&mut self) -> Result<(), RedisUnavailable> {
        let binary = which("redis-server").ok_or_else(|| {
            RedisUnavailable(
                "`redis-server` is not on PATH; install the `redis-server` package".into(),
            )
        })?;
        let dir = self.dir.path();
        // The watchdog removes the directory when the server ends (the test process may end
        // without dropping us), so a restart makes it again.
        std::fs::create_dir_all(dir)
            .map_err(|e| RedisUnavailable(format!("creating {}: {e}", dir.display())))?;
        let server = [
            shell_quote(&binary.to_string_lossy()),
            "--port".into(),
            self.port.to_string(),
            "--bind 127.0.0.1 --save '' --appendonly no --daemonize no".into(),
            "--dir".into(),
            shell_quote(&dir.to_string_lossy()),
            "--logfile".into(),
            shell_quote(&dir.join("redis.log").to_string_lossy()),
        ]
        .join(" ");
        let script = format!(
            "{server} </dev/null >/dev/null 2>&1 & pid=$!; cat >/dev/null; \
             kill -KILL $pid 2>/dev/null; wait $pid; rm -rf {dir}",
            dir = shell_quote(&dir.to_string_lossy()),
        );
        let watchdog = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| RedisUnavailable(format!("starting redis-server: {e}")))?;
        self.watchdog = Some(watchdog);
        let deadline = Instant::now() + Duration::from_secs(15);
        while !answers_ping(self.port) {
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(dir.join("redis.log")).unwrap_or_default();
                self.stop();
                return Err(RedisUnavailable(format!(
                    "the throw-away redis-server on port {} did not answer within 15 s; its log:\n{log}",
                    self.port
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|candidate| candidate.is_file())
    })
}

/// A Redis URL and a key prefix that belong to one test.
#[derive(Debug)]
pub struct RedisForTest {
    url: String,
    key_prefix: String,
    /// The throw-away server, when the machine has none (shared by the process's tests).
    _server: Option<Arc<TestRedis>>,
}

impl RedisForTest {
    /// The server's URL (database 0).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `oh_test_<random>:`, to set as `redis.key_prefix`.
    pub fn key_prefix(&self) -> &str {
        &self.key_prefix
    }
}

impl Drop for RedisForTest {
    fn drop(&mut self) {
        // Best effort: rate-limit keys expire by themselves, other keys may not.
        let script = format!(
            "redis-cli -u {url} --scan --pattern {pattern} | xargs -r redis-cli -u {url} DEL",
            url = shell_quote(&self.url),
            pattern = shell_quote(&format!("{}*", self.key_prefix)),
        );
        let _ = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The machine's Redis, or this process's throw-away one, with a fresh key prefix.
pub fn redis_for_test() -> Result<RedisForTest, RedisUnavailable> {
    static LOCAL: OnceLock<Result<Option<Arc<TestRedis>>, RedisUnavailable>> = OnceLock::new();
    let server = LOCAL
        .get_or_init(|| {
            let force_local = std::env::var_os("OPENHANDS_TEST_REDIS_LOCAL").is_some();
            if !force_local && answers_ping(6379) {
                Ok(None)
            } else {
                TestRedis::start().map(|server| Some(Arc::new(server)))
            }
        })
        .clone()?;
    let url = server
        .as_ref()
        .map(|s| s.url())
        .unwrap_or_else(|| "redis://127.0.0.1:6379/0".to_owned());
    Ok(RedisForTest {
        url,
        key_prefix: format!("oh_test_{:016x}:", random_u64()),
        _server: server,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_throw_away_server_stops_and_restarts_on_its_port() {
        let mut redis = TestRedis::start().expect("redis-server");
        assert!(answers_ping(redis.port()));
        assert!(redis.url().starts_with("redis://127.0.0.1:"));
        redis.stop();
        assert!(!answers_ping(redis.port()), "stopped");
        redis.restart().expect("restart");
        assert!(answers_ping(redis.port()), "answers again on the same port");
    }

    #[test]
    fn each_test_gets_its_own_key_prefix() {
        let a = redis_for_test().expect("redis");
        let b = redis_for_test().expect("redis");
        assert_ne!(a.key_prefix(), b.key_prefix());
        assert_eq!(a.url(), b.url());
    }
}
