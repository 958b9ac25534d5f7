//! A fresh, empty PostgreSQL database per test.
//!
//! SQL stores must be tested against a real PostgreSQL, not a mock. [`fresh_database`] gives
//! each test its own database, `oh_test_<random>`, dropped again (best effort) when the
//! returned [`TestDatabase`] is dropped:
//!
//! * when a PostgreSQL answers on `127.0.0.1:5432` as user `postgres` without a password
//!   (the machine's own server, or CI's), databases are created there;
//! * otherwise a throw-away server is started once per test process from the installed
//!   binaries (`initdb` and `postgres` under `/usr/lib/postgresql/*/bin`) in a temporary
//!   directory on a free port, with durability switched off for speed. A watchdog shell
//!   stops it and removes its directory when the test process exits, even on a panic.
//!
//! Set `OPENHANDS_TEST_PG_LOCAL=1` to skip the machine's server and always use a throw-away
//! one. Everything goes through the PostgreSQL command-line tools (`psql`), so this crate
//! needs no database driver and `Drop` needs no async runtime.

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Why no database could be provided. The message says what to install or start.
#[derive(Debug, Clone)]
pub struct PostgresUnavailable(pub String);

impl std::fmt::Display for PostgresUnavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "no PostgreSQL for tests: {}", self.0)
    }
}

impl std::error::Error for PostgresUnavailable {}

/// A database created for one test; dropped with it.
#[derive(Debug)]
pub struct TestDatabase {
    url: String,
    name: String,
    server: Server,
}

impl TestDatabase {
    /// `postgres://postgres@127.0.0.1:<port>/oh_test_<random>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // `WITH (FORCE)` closes connections a pool may still hold.
        let _ = self.server.psql(&format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.name
        ));
    }
}

/// A server databases are created on.
#[derive(Debug, Clone)]
struct Server {
    port: u16,
    psql: PathBuf,
}

impl Server {
    fn admin_url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Runs one SQL command as `postgres` on the `postgres` database.
    fn psql(&self, sql: &str) -> Result<String, String> {
        let output = Command::new(&self.psql)
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(self.admin_url("postgres"))
            .args(["-c", sql])
            .env("PGCONNECT_TIMEOUT", "5")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("running {}: {e}", self.psql.display()))?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
        }
    }
}

/// A new empty database, on the machine's server or on a throw-away one.
pub fn fresh_database() -> Result<TestDatabase, PostgresUnavailable> {
    let server = server()?;
    let name = format!("oh_test_{:016x}", random_u64());
    server
        .psql(&format!("CREATE DATABASE \"{name}\""))
        .map_err(|e| PostgresUnavailable(format!("CREATE DATABASE {name} failed: {e}")))?;
    Ok(TestDatabase {
        url: server.admin_url(&name),
        name,
        server,
    })
}

/// The server of this test process, found or started on first use.
fn server() -> Result<Server, PostgresUnavailable> {
    static SERVER: OnceLock<Result<Server, PostgresUnavailable>> = OnceLock::new();
    SERVER
        .get_or_init(|| {
            let bin = binaries_dir();
            let psql = bin
                .as_ref()
                .map(|dir| dir.join("psql"))
                .filter(|p| p.exists())
                .unwrap_or_else(|| PathBuf::from("psql"));
            let force_local = std::env::var_os("OPENHANDS_TEST_PG_LOCAL").is_some();
            if !force_local && answers(5432) {
                let machine = Server {
                    port: 5432,
                    psql: psql.clone(),
                };
                if machine.psql("SELECT 1").is_ok() {
                    return Ok(machine);
                }
            }
            let bin = bin.ok_or_else(|| {
                PostgresUnavailable(
                    "nothing answers on 127.0.0.1:5432 as user postgres (trust auth) and no \
                     binaries were found under /usr/lib/postgresql/*/bin; install the \
                     `postgresql` package or start a server"
                        .into(),
                )
            })?;
            start_local(&bin, psql).map_err(PostgresUnavailable)
        })
        .clone()
}

fn answers(port: u16) -> bool {
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&address, Duration::from_secs(1)).is_ok()
}

/// The newest `/usr/lib/postgresql/<version>/bin` that has `initdb` and `postgres`.
fn binaries_dir() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            (bin.join("initdb").exists() && bin.join("postgres").exists()).then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// Starts a throw-away server; it lives until this process exits.
fn start_local(bin: &Path, psql: PathBuf) -> Result<Server, String> {
    let root = std::env::temp_dir().join(format!("oh-test-pg-{:016x}", random_u64()));
    let data = root.join("data");
    std::fs::create_dir_all(&root).map_err(|e| format!("creating {}: {e}", root.display()))?;
    // PostgreSQL refuses to run as root; run it as the `postgres` account then.
    let as_root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    let wrap = |program: PathBuf| -> Command {
        if as_root {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        }
    };
    if as_root {
        let status = Command::new("chown")
            .args(["-R", "postgres"])
            .arg(&root)
            .status()
            .map_err(|e| format!("chown: {e}"))?;
        if !status.success() {
            return Err("chown of the temporary server directory to `postgres` failed".into());
        }
    }
    let init = wrap(bin.join("initdb"))
        .arg("-D")
        .arg(&data)
        .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("initdb: {e}"))?;
    if !init.status.success() {
        return Err(format!(
            "initdb failed: {}",
            String::from_utf8_lossy(&init.stderr)
        ));
    }
    let port = free_port()?;
    let mut postgres = wrap(bin.join("postgres"));
    postgres
        .arg("-D")
        .arg(&data)
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-k"])
        .arg(&root)
        .args([
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=300",
        ]);
    spawn_with_watchdog(postgres, &root)?;
    let server = Server { port, psql };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if answers(port) && server.psql("SELECT 1").is_ok() {
            return Ok(server);
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the throw-away PostgreSQL on port {port} did not answer within 30 s"
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs `postgres` under a shell that stops it and removes `root` once our end of its stdin
/// closes, which happens when this process exits for any reason.
fn spawn_with_watchdog(postgres: Command, root: &Path) -> Result<(), String> {
    let program = std::iter::once(postgres.get_program())
        .chain(postgres.get_args())
        .map(|part| shell_quote(&part.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ");
    // The signal goes to the postmaster itself (its pid file), not to a `runuser` wrapper,
    // which would not pass SIGINT (fast shutdown) on.
    let script = format!(
        "{program} >{log} 2>&1 </dev/null & pid=$!; cat >/dev/null; \
         kill -INT \"$(head -n 1 {pid_file})\" $pid 2>/dev/null; wait $pid; rm -rf {root}",
        log = shell_quote(&root.join("server.log").to_string_lossy()),
        pid_file = shell_quote(&root.join("data").join("postmaster.pid").to_string_lossy()),
        root = shell_quote(&root.to_string_lossy()),
    );
    let child: Child = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting postgres: {e}"))?;
    // Keep the write end open for the life of the process; it is closed by the OS at exit.
    static WATCHDOG: OnceLock<std::sync::Mutex<Child>> = OnceLock::new();
    let _ = WATCHDOG.set(std::sync::Mutex::new(child));
    if let Some(child) = WATCHDOG.get() {
        let mut child = child.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(stdin) = child.stdin.as_mut() {
            let _ = stdin.flush();
        }
    }
    Ok(())
}

pub(crate) fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

pub(crate) fn free_port() -> Result<u16, String> {
    let listener =
        TcpListener::bind(("127.0.0.1", 0)).map_err(|e| format!("finding a free port: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("finding a free port: {e}"))
}

/// 64 random bits from the standard library's randomly seeded hasher.
pub(crate) fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    hasher.write_u32(std::process::id());
    hasher.finish()
}
