//! A real OpenID Connect provider per test, and a browserless login against it.
//!
//! The server's OIDC login must be tested against a real, standards-conformant provider, not
//! a mock: [`OidcProvider::start`] runs the OpenID Certified `oidc-provider` package on Node
//! (`oidc/provider.mjs` in this crate, versions pinned by `oidc/package-lock.json`) on a free
//! port of `127.0.0.1`, with one confidential client and the test accounts of an
//! [`OidcConfig`]. Its login page takes a username and no password, and
//! [`OidcProvider::login`] submits the login and consent forms with plain HTTP requests, so a
//! test can log in as a user without a browser.
//!
//! * The Node packages are installed with `npm ci` into `oidc/node_modules` the first time
//!   they are needed on a machine (again when the lock file changes); a lock file stops
//!   concurrent test processes from installing at the same time.
//! * The provider process is killed when the [`OidcProvider`] is dropped; it also exits by
//!   itself when the test process dies, as it watches its stdin.
//! * Everything the provider keeps (sessions, grants, tokens) is in its memory and lost with
//!   it. Each provider gets a fresh signing key.
//!
//! Needs `node` (>= 20.19) and `npm` on `PATH`; without them [`OidcProvider::start`] returns
//! [`OidcUnavailable`] saying what to install.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, ErrorKind, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant, SystemTime};

/// How long `npm ci` may take, and how long to wait for another process's install.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(300);
/// How long the provider may take to print `READY`.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// The limit for each HTTP request of [`OidcProvider::login`].
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Written into `node_modules` after a successful `npm ci`: a copy of the lock file installed.
const INSTALLED_MARKER: &str = ".openhands-installed";

/// The password of the `admin` user of the provider's stand-in for Keycloak's admin API
/// (`provider.mjs` documents the slice it speaks); point `auth.keycloak_server_url` at the
/// provider's issuer and set `auth.keycloak_admin_password` to this to use it.
pub const KEYCLOAK_ADMIN_PASSWORD: &str = "openhands-test-admin";

/// Why no provider could be started. The message says what to install or what failed.
#[derive(Debug, Clone)]
pub struct OidcUnavailable(pub String);

impl std::fmt::Display for OidcUnavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "no OIDC provider for tests: {}", self.0)
    }
}

impl std::error::Error for OidcUnavailable {}

/// Why [`OidcProvider::login`] did not reach the client's redirect URI.
#[derive(Debug, Clone)]
pub struct OidcLoginError(pub String);

impl std::fmt::Display for OidcLoginError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OIDC login failed: {}", self.0)
    }
}

impl std::error::Error for OidcLoginError {}

/// An account that may log in. Its fields become the ID token's and userinfo's claims.
#[derive(Debug, Clone)]
pub struct OidcUser {
    /// The subject, and the username typed into the login form.
    pub sub: String,
    pub email: String,
    pub email_verified: bool,
    /// The `name` claim (scope `profile`), when set.
    pub name: Option<String>,
}

impl OidcUser {
    /// A user `<sub>` with the email `<sub>@example.com`.
    pub fn new(sub: &str, email_verified: bool) -> Self {
        Self {
            sub: sub.to_owned(),
            email: format!("{sub}@example.com"),
            email_verified,
            name: None,
        }
    }

    fn to_json(&self) -> serde_json::Value {
        let mut claims = serde_json::json!({
            "sub": self.sub,
            "email": self.email,
            "email_verified": self.email_verified,
            "preferred_username": self.sub,
        });
        if let (Some(name), Some(map)) = (&self.name, claims.as_object_mut()) {
            map.insert("name".into(), name.clone().into());
        }
        claims
    }
}

/// The provider's one confidential client, its accounts and its token lifetimes.
#[derive(Debug, Clone)]
pub struct OidcConfig {
    pub client_id: String,
    /// For `client_secret_basic` (or `client_secret_post`) at the token endpoint.
    pub client_secret: String,
    /// Exact redirect URIs the client may use.
    pub redirect_uris: Vec<String>,
    /// Where RP-initiated logout may return to.
    pub post_logout_redirect_uris: Vec<String>,
    pub users: Vec<OidcUser>,
    /// Short for refresh tests (whole seconds, at least one).
    pub access_token_ttl: Duration,
    pub id_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
}

impl Default for OidcConfig {
    /// Client `openhands-test`, redirect URI `http://127.0.0.1/callback`, users `alice`
    /// (email verified) and `bob` (not verified), five-minute access tokens.
    fn default() -> Self {
        Self {
            client_id: "openhands-test".into(),
            client_secret: "openhands-test-secret".into(),
            redirect_uris: vec!["http://127.0.0.1/callback".into()],
            post_logout_redirect_uris: Vec::new(),
            users: vec![OidcUser::new("alice", true), OidcUser::new("bob", false)],
            access_token_ttl: Duration::from_secs(300),
            id_token_ttl: Duration::from_secs(300),
            refresh_token_ttl: Duration::from_secs(86_400),
        }
    }
}

/// A running `oidc-provider` process; killed on drop.
#[derive(Debug)]
pub struct OidcProvider {
    issuer: String,
    config: OidcConfig,
    child: Child,
    /// Held open: the provider exits when it closes.
    _stdin: Option<ChildStdin>,
    stderr: Arc<Mutex<String>>,
}

impl OidcProvider {
    /// Installs the Node packages if needed, starts the provider on a free port and waits
    /// until it answers. Blocks (up to minutes the first time, for `npm ci`).
    pub fn start(config: OidcConfig) -> Result<Self, OidcUnavailable> {
        let dir = provider_dir();
        check_tool("node")?;
        ensure_installed(&dir)?;

        let users = serde_json::Value::Array(config.users.iter().map(OidcUser::to_json).collect());
        let mut child = Command::new("node")
            .arg("provider.mjs")
            .arg("0")
            .current_dir(&dir)
            .env("OIDC_CLIENT_ID", &config.client_id)
            .env("OIDC_CLIENT_SECRET", &config.client_secret)
            .env("OIDC_REDIRECT_URIS", config.redirect_uris.join(","))
            .env(
                "OIDC_POST_LOGOUT_REDIRECT_URIS",
                config.post_logout_redirect_uris.join(","),
            )
            .env("OIDC_USERS", users.to_string())
            .env("OIDC_ACCESS_TOKEN_TTL", secs(config.access_token_ttl))
            .env("OIDC_ID_TOKEN_TTL", secs(config.id_token_ttl))
            .env("OIDC_REFRESH_TOKEN_TTL", secs(config.refresh_token_ttl))
            .env("OIDC_EXIT_ON_STDIN_CLOSE", "1")
            .env("OIDC_ADMIN_PASSWORD", KEYCLOAK_ADMIN_PASSWORD)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| OidcUnavailable(format!("cannot run `node provider.mjs`: {e}")))?;

        // Drain both pipes for the process's whole life, so it never blocks on a full pipe;
        // stderr is kept for error messages.
        let stderr = Arc::new(Mutex::new(String::new()));
        if let Some(pipe) = child.stderr.take() {
            let stderr = Arc::clone(&stderr);
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if let Ok(mut buf) = stderr.lock() {
                        buf.push_str(&line);
                        buf.push('\n');
                    }
                }
            });
        }
        let (ready_tx, ready_rx) = mpsc::channel();
        if let Some(pipe) = child.stdout.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if let Some(issuer) = line.strip_prefix("READY ") {
                        let _ = ready_tx.send(issuer.trim().to_owned());
                    }
                }
            });
        }
        let stdin = child.stdin.take();
        let mut provider = Self {
            issuer: String::new(),
            config,
            child,
            _stdin: stdin,
            stderr,
        };

        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match ready_rx.recv_timeout(Duration::from_millis(100)) {
                Ok(issuer) => {
                    provider.issuer = issuer;
                    return Ok(provider);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    // stdout closed without READY: the process is exiting.
                    std::thread::sleep(Duration::from_millis(200));
                    return Err(provider.failure("exited before it was ready"));
                }
            }
            if let Ok(Some(status)) = provider.child.try_wait() {
                return Err(provider.failure(&format!("exited with {status} before it was ready")));
            }
            if Instant::now() > deadline {
                return Err(provider.failure("not ready after 30 s"));
            }
        }
    }

    /// `http://127.0.0.1:<port>`, also the base of every endpoint
    /// (`/.well-known/openid-configuration`, `/auth`, `/token`, `/jwks`, `/me`, ...).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The configuration it was started with (client id and secret, users).
    pub fn config(&self) -> &OidcConfig {
        &self.config
    }

    /// Logs `username` in without a browser: from `authorization_url` (the provider's
    /// authorization endpoint with the client's parameters) follows the redirects, submits
    /// the login form and then the consent form, and returns the first redirect that leaves
    /// the provider, normally `<redirect_uri>?code=..&state=..&iss=..` (or `?error=..`).
    ///
    /// Each call is a fresh browser: no provider session is reused. Use [`OidcBrowser`] to
    /// keep one across logins.
    pub async fn login(
        &self,
        authorization_url: &str,
        username: &str,
    ) -> Result<reqwest::Url, OidcLoginError> {
        OidcBrowser::new(&self.issuer)?
            .login(authorization_url, username)
            .await
    }

    fn failure(&mut self, what: &str) -> OidcUnavailable {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let stderr = self.stderr.lock().map(|s| s.clone()).unwrap_or_default();
        OidcUnavailable(format!(
            "`node provider.mjs` {what}; Node.js >= 20.19 is needed. stderr:\n{stderr}"
        ))
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A cookie-keeping HTTP client that logs in at one provider through its HTML forms.
///
/// Keeps the provider's cookies (its session) between calls, so a second login in the same
/// browser skips the forms the provider no longer needs.
#[derive(Debug, Clone)]
pub struct OidcBrowser {
    issuer: reqwest::Url,
    http: reqwest::Client,
    cookies: BTreeMap<String, String>,
}

impl OidcBrowser {
    /// A browser with no cookies for the provider at `issuer`.
    pub fn new(issuer: &str) -> Result<Self, OidcLoginError> {
        let issuer = reqwest::Url::parse(issuer)
            .map_err(|e| OidcLoginError(format!("bad issuer {issuer:?}: {e}")))?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| OidcLoginError(format!("HTTP client: {e}")))?;
        Ok(Self {
            issuer,
            http,
            cookies: BTreeMap::new(),
        })
    }

    /// See [`OidcProvider::login`].
    pub async fn login(
        &mut self,
        authorization_url: &str,
        username: &str,
    ) -> Result<reqwest::Url, OidcLoginError> {
        let mut url = reqwest::Url::parse(authorization_url)
            .map_err(|e| OidcLoginError(format!("bad authorization URL: {e}")))?;
        let mut form: Option<Vec<(String, String)>> = None;
        for _ in 0..20 {
            if url.origin() != self.issuer.origin() {
                return Ok(url);
            }
            let request = match form.take() {
                Some(fields) => self.http.post(url.clone()).form(&fields),
                None => self.http.get(url.clone()),
            };
            let response = self
                .with_cookies(request)
                .send()
                .await
                .map_err(|e| OidcLoginError(format!("{url}: {e}")))?;
            self.keep_cookies(&response);
            let status = response.status();
            if status.is_redirection() {
                let location = response
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| OidcLoginError(format!("{url}: {status} without Location")))?;
                url = url
                    .join(location)
                    .map_err(|e| OidcLoginError(format!("bad Location {location:?}: {e}")))?;
                continue;
            }
            let body = response
                .text()
                .await
                .map_err(|e| OidcLoginError(format!("{url}: {e}")))?;
            if !status.is_success() {
                return Err(OidcLoginError(format!("{url}: {status}: {body}")));
            }
            // One of the provider's pages: submit its login form, or else its consent form.
            let (action, fields) = if body.contains("name=\"login\"") {
                (form_action(&body, "/login"), vec![("login", username)])
            } else {
                (form_action(&body, "/confirm"), Vec::new())
            };
            let action = action.ok_or_else(|| {
                OidcLoginError(format!("{url}: no login or consent form: {body}"))
            })?;
            url = url
                .join(&action)
                .map_err(|e| OidcLoginError(format!("bad form action {action:?}: {e}")))?;
            form = Some(
                fields
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect(),
            );
        }
        Err(OidcLoginError(format!(
            "more than 20 steps from {authorization_url}"
        )))
    }

    fn with_cookies(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        if self.cookies.is_empty() {
            return request;
        }
        let header = self
            .cookies
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ");
        request.header(reqwest::header::COOKIE, header)
    }

    /// A minimal cookie jar: the provider is one origin and its cookie names are distinct,
    /// so paths are ignored; a cookie set empty or already expired is removed.
    fn keep_cookies(&mut self, response: &reqwest::Response) {
        for header in response.headers().get_all(reqwest::header::SET_COOKIE) {
            let Ok(header) = header.to_str() else {
                continue;
            };
            let mut parts = header.split(';');
            let Some((name, value)) = parts.next().and_then(|pair| pair.split_once('=')) else {
                continue;
            };
            let expired = parts.any(|attr| {
                let attr = attr.trim().to_ascii_lowercase();
                attr.starts_with("expires=thu, 01 jan 1970") || attr == "max-age=0"
            });
            if value.is_empty() || expired {
                self.cookies.remove(name.trim());
            } else {
                self.cookies
                    .insert(name.trim().to_owned(), value.trim().to_owned());
            }
        }
    }
}

/// The `action` of the page's first form whose action ends with `suffix`.
fn form_action(html: &str, suffix: &str) -> Option<String> {
    html.split("action=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .find(|action| action.ends_with(suffix))
        .map(str::to_owned)
}

/// `oidc/` in this crate's source directory.
fn provider_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("oidc")
}

fn secs(ttl: Duration) -> String {
    ttl.as_secs().max(1).to_string()
}

fn check_tool(tool: &str) -> Result<(), OidcUnavailable> {
    match Command::new(tool).arg("--version").output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(OidcUnavailable(format!(
            "`{tool} --version` failed ({}); install Node.js >= 20.19 and npm \
             (e.g. `apt-get install nodejs npm`)",
            out.status
        ))),
        Err(e) if e.kind() == ErrorKind::NotFound => Err(OidcUnavailable(format!(
            "`{tool}` is not on PATH; install Node.js >= 20.19 and npm \
             (e.g. `apt-get install nodejs npm`)"
        ))),
        Err(e) => Err(OidcUnavailable(format!("cannot run `{tool}`: {e}"))),
    }
}

/// Whether `node_modules` holds what the lock file pins.
fn installed(dir: &Path) -> Result<bool, OidcUnavailable> {
    let lock = fs::read(dir.join("package-lock.json"))
        .map_err(|e| OidcUnavailable(format!("cannot read oidc/package-lock.json: {e}")))?;
    Ok(fs::read(dir.join("node_modules").join(INSTALLED_MARKER)).is_ok_and(|m| m == lock))
}

/// Runs `npm ci` once per machine (and per lock file version), one process at a time.
fn ensure_installed(dir: &Path) -> Result<(), OidcUnavailable> {
    if installed(dir)? {
        return Ok(());
    }
    let _lock = InstallLock::acquire(&dir.join(".npm-ci.lock"))?;
    // Another process may have installed while this one waited.
    if installed(dir)? {
        return Ok(());
    }
    check_tool("npm")?;
    let mut npm = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| OidcUnavailable(format!("cannot run `npm ci`: {e}")))?;
    let mut stderr = String::new();
    let reader = npm.stderr.take().map(|mut pipe| {
        std::thread::spawn(move || {
            let _ = pipe.read_to_string(&mut stderr);
            stderr
        })
    });
    let deadline = Instant::now() + INSTALL_TIMEOUT;
    let status = loop {
        match npm.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            Ok(None) => {
                let _ = npm.kill();
                let _ = npm.wait();
                return Err(OidcUnavailable(
                    "`npm ci` in oidc/ took more than 5 minutes".into(),
                ));
            }
            Err(e) => return Err(OidcUnavailable(format!("waiting for `npm ci`: {e}"))),
        }
    };
    let stderr = reader.and_then(|r| r.join().ok()).unwrap_or_default();
    if !status.success() {
        return Err(OidcUnavailable(format!(
            "`npm ci` in {} failed ({status}); it needs the npm registry:\n{stderr}",
            dir.display()
        )));
    }
    let lock = fs::read(dir.join("package-lock.json"))
        .map_err(|e| OidcUnavailable(format!("cannot read oidc/package-lock.json: {e}")))?;
    fs::write(dir.join("node_modules").join(INSTALLED_MARKER), lock)
        .map_err(|e| OidcUnavailable(format!("cannot write the install marker: {e}")))
}

/// A lock file created exclusively; removed on drop. A lock older than the install timeout
/// is taken to be left by a killed process and removed.
struct InstallLock(PathBuf);

impl InstallLock {
    fn acquire(path: &Path) -> Result<Self, OidcUnavailable> {
        let deadline = Instant::now() + INSTALL_TIMEOUT + Duration::from_secs(30);
        loop {
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
            {
                Ok(_) => return Ok(Self(path.to_owned())),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    let stale = fs::metadata(path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| SystemTime::now().duration_since(t).ok())
                        .is_some_and(|age| age > INSTALL_TIMEOUT);
                    if stale {
                        let _ = fs::remove_file(path);
                    } else if Instant::now() > deadline {
                        return Err(OidcUnavailable(format!(
                            "timed out waiting for {} (another `npm ci`)",
                            path.display()
                        )));
                    } else {
                        std::thread::sleep(Duration::from_millis(200));
                    }
                }
                Err(e) => {
                    return Err(OidcUnavailable(format!(
                        "cannot create {}: {e}",
                        path.display()
                    )));
                }
            }
        }
    }
}

impl Drop for InstallLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}
