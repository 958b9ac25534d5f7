//! Issue 7's webhook figure: signed GitHub deliveries verified, recorded and enqueued per
//! second, jobs not run, with the release server in SaaS mode on PostgreSQL.
//!
//! Each request is what GitHub sends for an `issue_comment` event: the documented payload
//! (the GitHub crate's test fixture), GitHub's headers, a delivery id of its own
//! (`X-GitHub-Delivery`, UUID-shaped, never repeated) and `X-Hub-Signature-256` computed here
//! with `ring` under a webhook secret drawn for the run. The server verifies the signature in
//! constant time, checks the installation id, inserts the delivery into `webhook_deliveries`
//! as `queued` and answers 202; only a 202 counts (a 200 "duplicate" would mean the delivery
//! was not recorded).
//!
//! "Jobs not run": the server runs with `webhook_worker = false`, the deployment switch for
//! receiving replicas, so no worker takes the rows; the figure is the receiving path alone
//! (what the provider's delivery deadline depends on). After the load the log is counted with
//! `psql`: every accepted delivery must be there, and still `queued`.
//!
//! The database comes from `auth_bench_seed` (see [`super::saas_auth`]): a fresh PostgreSQL
//! database, dropped when the seed's stdin closes. The server applies the integrations'
//! migration at start (`database.migrate_on_start`). The App's private key is generated with
//! `openssl` (the route never uses it: nothing is sent to GitHub while receiving).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail, ensure};
use hyper::StatusCode;
use hyper::header::{HeaderName, HeaderValue, USER_AGENT};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use serde::Serialize;

use super::client::{HttpConn, Reply, RequestSpec};
use super::load::{self, LoadConfig};
use super::psql;
use super::report::ScenarioResult;
use super::saas_auth::{self, Seed, SeedProcess};
use super::scenarios::Scenario;
use super::server::{self, ServerConfig, ServerProcess};
use super::{READY_POLL, READY_TIMEOUT, recreate_dir, scenario_result};

/// The route GitHub delivers to.
pub const GITHUB_EVENTS: &str = "/integration/github/events";
/// The scenario's name in the report and the targets.
pub const SCENARIO: &str = "POST /integration/github/events (signed, worker off)";
/// GitHub's documented `issue_comment` (`created`) payload, with an installation.
const PAYLOAD: &str =
    include_str!("../../../crates/openhands-github/tests/fixtures/issue_comment_created.json");
const EVENT: &str = "issue_comment";
/// An API base nothing listens on: receiving never calls GitHub.
const UNUSED_API: &str = "http://127.0.0.1:9";
const CLIENT_ID: &str = "Iv23benchapp";

/// What the webhook scenario measured.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WebhookResults {
    pub database: String,
    /// Bytes of each delivery's body.
    pub payload_bytes: usize,
    /// The load, counting only 202 answers as successes.
    pub deliveries: ScenarioResult,
    /// Rows in `webhook_deliveries` after the run (the checks, warm-up and measured window).
    pub rows_recorded: u64,
    /// How many of them are still `queued` (all of them: no job ran).
    pub rows_queued: u64,
}

impl WebhookResults {
    /// The figures count: no error, something measured, every accepted delivery recorded,
    /// and none of them processed.
    pub fn clean(&self) -> bool {
        self.deliveries.errors == 0
            && self.deliveries.requests > 0
            && self.rows_recorded >= self.deliveries.requests
            && self.rows_queued == self.rows_recorded
    }
}

/// Runs the seed, the SaaS server with the GitHub App on its database (worker off) and the
/// signed deliveries; `base` provides the binary and the log file, `data_dir` becomes the
/// server's (fresh) data dir.
pub async fn measure(
    base: &ServerConfig,
    data_dir: PathBuf,
    load: LoadConfig,
    seed_binary: Option<&Path>,
) -> Result<WebhookResults> {
    recreate_dir(&data_dir)?;
    let private_key = generate_private_key()?;
    let secret = random_secret()?;
    eprintln!("==> webhooks: seeding PostgreSQL (auth_bench_seed, release build)");
    let mut seed = SeedProcess::start_binary(seed_binary)?;
    let line = seed.first_line().await?;
    let seeded = saas_auth::parse_seed(&line)?;
    let app = App {
        private_key,
        secret,
    };
    let measured = measure_seeded(base, data_dir, load, &seeded, &app).await;
    let finished = seed.finish();
    let results = measured?;
    finished?;
    Ok(results)
}

/// The GitHub App the server is configured with.
struct App {
    private_key: String,
    secret: String,
}

async fn measure_seeded(
    base: &ServerConfig,
    data_dir: PathBuf,
    load: LoadConfig,
    seed: &Seed,
    app: &App,
) -> Result<WebhookResults> {
    let port = server::free_port()?;
    let config = ServerConfig {
        data_dir,
        env: server_env(seed, port, app),
        ..base.clone()
    };
    let mut server = ServerProcess::spawn_on(&config, port)?;
    server
        .wait_alive(READY_POLL, READY_TIMEOUT)
        .await
        .context("starting the server with the GitHub App")?;
    let payload = compact(PAYLOAD)?;
    let scenario = delivery_scenario(&payload, app.secret.as_bytes())?;
    check_route(server.addr(), &payload, app.secret.as_bytes())
        .await
        .with_context(|| {
            format!(
                "checking {GITHUB_EVENTS} before loading it (server log: {})",
                config.log_file.display()
            )
        })?;
    eprintln!("==> load: {}", scenario.name);
    let outcome = load::run(server.addr(), &scenario.request, load)
        .await
        .with_context(|| format!("scenario `{}`", scenario.name))?;
    let deliveries = scenario_result(&scenario, outcome, load.duration);
    server
        .stop()
        .await
        .context("stopping the server of the webhook scenario")?;
    let counts = count_rows(&seed.database_url)?;
    let rows_recorded = counts.iter().map(|(_, n)| n).sum();
    let rows_queued = counts
        .iter()
        .filter(|(status, _)| status == "queued")
        .map(|(_, n)| n)
        .sum();
    Ok(WebhookResults {
        database: "postgresql".to_owned(),
        payload_bytes: payload.len(),
        deliveries,
        rows_recorded,
        rows_queued,
    })
}

/// The SaaS server's environment ([`saas_auth::server_env`]) plus the GitHub App, the
/// integrations' migration applied at start, and no webhook worker.
fn server_env(seed: &Seed, port: u16, app: &App) -> Vec<(&'static str, String)> {
    let mut env = saas_auth::server_env(seed, port);
    env.extend([
        ("OPENHANDS_DATABASE__MIGRATE_ON_START", "true".to_owned()),
        ("OPENHANDS_WEBHOOK_WORKER", "false".to_owned()),
        ("GITHUB_APP_CLIENT_ID", CLIENT_ID.to_owned()),
        ("GITHUB_APP_PRIVATE_KEY", app.private_key.clone()),
        ("GITHUB_APP_WEBHOOK_SECRET", app.secret.clone()),
        ("GITHUB_API_URL", UNUSED_API.to_owned()),
        ("GITHUB_WEBHOOKS_ENABLED", "true".to_owned()),
    ]);
    env
}

/// The payload as GitHub sends it: compact JSON.
fn compact(pretty: &str) -> Result<String> {
    let value: serde_json::Value =
        serde_json::from_str(pretty).context("the webhook fixture is not JSON")?;
    ensure!(
        value["installation"]["id"].is_u64(),
        "the webhook fixture has no installation id"
    );
    Ok(value.to_string())
}

/// `sha256=<hex HMAC-SHA256 of body under secret>`, GitHub's `X-Hub-Signature-256`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let tag = hmac::sign(&key, body);
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256=");
    for byte in tag.as_ref() {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

fn header(name: &'static str) -> HeaderName {
    HeaderName::from_static(name)
}

/// A delivery of `payload` signed under `secret`, without its delivery id.
fn signed_delivery(payload: &str, secret: &[u8]) -> Result<RequestSpec> {
    let signed = HeaderValue::from_str(&signature(secret, payload.as_bytes()))
        .context("building the signature header")?;
    Ok(RequestSpec::post_json(GITHUB_EVENTS, payload.to_owned())
        .with_header(
            USER_AGENT,
            HeaderValue::from_static("GitHub-Hookshot/bench"),
        )
        .with_header(header("x-github-event"), HeaderValue::from_static(EVENT))
        .with_header(
            header("x-github-hook-id"),
            HeaderValue::from_static("292430182"),
        )
        .with_header(
            header("x-github-hook-installation-target-type"),
            HeaderValue::from_static("integration"),
        )
        .with_header(
            header("x-github-hook-installation-target-id"),
            HeaderValue::from_static("79929171"),
        )
        .with_header(header("x-hub-signature-256"), signed))
}

/// The measured request: a new delivery id on every send, success only on 202.
pub fn delivery_scenario(payload: &str, secret: &[u8]) -> Result<Scenario> {
    Ok(Scenario {
        name: SCENARIO.to_owned(),
        request: signed_delivery(payload, secret)?
            .with_unique_header(header("x-github-delivery"))
            .expecting(StatusCode::ACCEPTED),
    })
}

/// Before loading: a new delivery is accepted (202), the same delivery id again is a
/// duplicate (200), and a wrong signature is refused (403). Otherwise the server does not
/// record what the bench sends, and no figure is worth reporting.
async fn check_route(addr: std::net::SocketAddr, payload: &str, secret: &[u8]) -> Result<()> {
    let once = signed_delivery(payload, secret)?.with_header(
        header("x-github-delivery"),
        HeaderValue::from_static("bench-check-delivery"),
    );
    let mut conn = HttpConn::connect(addr).await?;
    let first = conn.send(&once).await?;
    check_reply(&first, StatusCode::ACCEPTED, "accepted")?;
    let again = conn.send(&once).await?;
    check_reply(&again, StatusCode::OK, "duplicate delivery ignored")
        .context("the same delivery id again")?;
    let forged = signed_delivery(payload, b"not-the-secret")?.with_header(
        header("x-github-delivery"),
        HeaderValue::from_static("bench-check-forged"),
    );
    let refused = conn.send(&forged).await?;
    ensure!(
        refused.status == StatusCode::FORBIDDEN,
        "a delivery with a wrong signature answered {} (expected 403): {}",
        refused.status,
        excerpt(&refused)
    );
    Ok(())
}

/// Fails unless `reply` has `status` and the JSON `message`.
fn check_reply(reply: &Reply, status: StatusCode, message: &str) -> Result<()> {
    if reply.status == StatusCode::NOT_FOUND {
        bail!(
            "{GITHUB_EVENTS} answered 404: the route or the GitHub integration is not mounted \
             (SaaS mode, GITHUB_APP_* settings): {}",
            excerpt(reply)
        );
    }
    ensure!(
        reply.status == status,
        "{GITHUB_EVENTS} answered {} (expected {status}): {}",
        reply.status,
        excerpt(reply)
    );
    let body: serde_json::Value = serde_json::from_slice(&reply.body)
        .with_context(|| format!("{GITHUB_EVENTS} answered without JSON: {}", excerpt(reply)))?;
    ensure!(
        body["message"] == message,
        "{GITHUB_EVENTS} answered {status} without the message `{message}`: {}",
        excerpt(reply)
    );
    Ok(())
}

fn excerpt(reply: &Reply) -> String {
    String::from_utf8_lossy(&reply.body)
        .chars()
        .take(300)
        .collect()
}

/// `(status, rows)` of `webhook_deliveries`, read with `psql`.
fn count_rows(database_url: &str) -> Result<Vec<(String, u64)>> {
    let counts = psql::run(
        database_url,
        "SELECT status, count(*) FROM webhook_deliveries GROUP BY status",
        "count the recorded deliveries",
    )?;
    parse_counts(&counts)
}

/// `psql -A -t` lines, `status|count`.
fn parse_counts(text: &str) -> Result<Vec<(String, u64)>> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(|line| {
            let (status, count) = line
                .split_once('|')
                .with_context(|| format!("unexpected `psql` line `{line}`"))?;
            let count = count
                .trim()
                .parse()
                .with_context(|| format!("unexpected count in `psql` line `{line}`"))?;
            Ok((status.trim().to_owned(), count))
        })
        .collect()
}

/// A PKCS#1 PEM RSA key for the App (`openssl genrsa -traditional`, as the GitHub crate's
/// tests make theirs): the server refuses to start the App without a valid one.
fn generate_private_key() -> Result<String> {
    let output = Command::new("openssl")
        .args(["genrsa", "-traditional", "2048"])
        .stdin(Stdio::null())
        .output()
        .context("the webhook bench needs `openssl` on PATH to make the App's key")?;
    ensure!(
        output.status.success(),
        "`openssl genrsa` failed: {}",
        String::from_utf8_lossy(&output.stderr).trim()
    );
    let pem = String::from_utf8(output.stdout).context("`openssl genrsa` printed no PEM")?;
    ensure!(
        pem.contains("-----BEGIN RSA PRIVATE KEY-----"),
        "`openssl genrsa -traditional` did not print a PKCS#1 key"
    );
    Ok(pem)
}

/// 32 random bytes as hex: the run's webhook secret.
fn random_secret() -> Result<String> {
    let mut raw = [0_u8; 32];
    SystemRandom::new()
        .fill(&mut raw)
        .map_err(|_| anyhow::anyhow!("the system's secure random generator failed"))?;
    Ok(raw.iter().map(|byte| format!("{byte:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_githubs_published_example() {
        // https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries
        assert_eq!(
            signature(b"It's a Secret to Everybody", b"Hello, World!"),
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
    }

    #[test]
    fn the_fixture_compacts_with_its_installation() -> Result<()> {
        let payload = compact(PAYLOAD)?;
        assert!(payload.len() < PAYLOAD.len());
        assert!(!payload.contains('\n'));
        let value: serde_json::Value = serde_json::from_str(&payload)?;
        assert!(value["installation"]["id"].is_u64());
        assert!(compact(r#"{"action":"created"}"#).is_err());
        Ok(())
    }

    #[test]
    fn the_scenario_is_signed_and_needs_a_202_with_a_new_delivery_id() -> Result<()> {
        let scenario = delivery_scenario(r#"{"installation":{"id":1}}"#, b"s3cret")?;
        let request = &scenario.request;
        assert_eq!(request.path, GITHUB_EVENTS);
        let get = |name: &str| {
            request
                .headers
                .iter()
                .find(|(n, _)| n.as_str() == name)
                .and_then(|(_, v)| v.to_str().ok())
        };
        assert_eq!(
            get("x-hub-signature-256").map(str::to_owned),
            Some(signature(b"s3cret", br#"{"installation":{"id":1}}"#))
        );
        assert_eq!(get("x-github-event"), Some(EVENT));
        assert_eq!(get("x-github-delivery"), None, "set per send");
        assert_eq!(
            request.unique_header.as_ref().map(HeaderName::as_str),
            Some("x-github-delivery")
        );
        assert!(request.succeeded(StatusCode::ACCEPTED));
        assert!(
            !request.succeeded(StatusCode::OK),
            "a duplicate is no delivery"
        );
        Ok(())
    }

    #[test]
    fn the_server_gets_the_app_the_migration_and_no_worker() -> Result<()> {
        let seed = saas_auth::parse_seed(
            r#"{"database_url":"postgres://postgres@127.0.0.1:5432/oh_test_1","secrets_keys":"bench:AAAA","cookie":"c","api_key":"k"}"#,
        )?;
        let app = App {
            private_key: "-----BEGIN RSA PRIVATE KEY-----\nx\n".to_owned(),
            secret: "abc".to_owned(),
        };
        let env = server_env(&seed, 4321, &app);
        let get = |key: &str| crate::bench::server::env_value(&env, key);
        assert_eq!(get("OPENHANDS_CONFIG_CLS"), Some("saas"));
        assert_eq!(
            get("DATABASE_URL"),
            Some("postgres://postgres@127.0.0.1:5432/oh_test_1")
        );
        assert_eq!(get("OPENHANDS_WEBHOOK_WORKER"), Some("false"));
        assert_eq!(get("OPENHANDS_DATABASE__MIGRATE_ON_START"), Some("true"));
        assert_eq!(get("GITHUB_APP_WEBHOOK_SECRET"), Some("abc"));
        assert_eq!(get("GITHUB_API_URL"), Some(UNUSED_API));
        assert_eq!(get("GITHUB_APP_CLIENT_ID"), Some(CLIENT_ID));
        Ok(())
    }

    #[test]
    fn psql_counts_parse_and_junk_is_refused() -> Result<()> {
        assert_eq!(
            parse_counts("queued|12345\n\n")?,
            vec![("queued".to_owned(), 12_345)]
        );
        assert_eq!(parse_counts("")?, Vec::new());
        assert!(parse_counts("queued 12").is_err());
        assert!(parse_counts("queued|many").is_err());
        Ok(())
    }

    fn results(errors: u64, requests: u64, recorded: u64, queued: u64) -> WebhookResults {
        WebhookResults {
            database: "postgresql".to_owned(),
            payload_bytes: 4000,
            deliveries: ScenarioResult {
                name: SCENARIO.to_owned(),
                method: "POST".to_owned(),
                path: GITHUB_EVENTS.to_owned(),
                requests,
                errors,
                req_per_s: 1.0,
                p50_ms: 1.0,
                p99_ms: 2.0,
            },
            rows_recorded: recorded,
            rows_queued: queued,
        }
    }

    #[test]
    fn only_recorded_unprocessed_error_free_runs_are_clean() {
        assert!(results(0, 100, 103, 103).clean());
        assert!(!results(1, 100, 103, 103).clean(), "an error");
        assert!(!results(0, 0, 3, 3).clean(), "nothing measured");
        assert!(!results(0, 100, 99, 99).clean(), "not all recorded");
        assert!(!results(0, 100, 103, 100).clean(), "some were processed");
    }

    #[tokio::test]
    async fn unique_headers_differ_per_send_and_per_connection() -> Result<()> {
        let addr = super::super::fake_server::spawn("202 Accepted").await?;
        let spec = RequestSpec::get("/")
            .with_unique_header(header("x-github-delivery"))
            .expecting(StatusCode::ACCEPTED);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..2 {
            let mut conn = HttpConn::connect(addr).await?;
            for _ in 0..3 {
                let value = conn.next_unique()?;
                assert_eq!(value.len(), 36, "UUID-shaped: {value:?}");
                assert!(seen.insert(value), "repeated");
            }
            let reply = conn.send(&spec).await?;
            assert!(spec.succeeded(reply.status));
        }
        Ok(())
    }
}
