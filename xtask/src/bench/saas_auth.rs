//! SaaS figures of issue 5: authenticated `GET /api/settings`, by the session cookie and by
//! an API key, with the release server in SaaS mode on PostgreSQL.
//!
//! The data comes from the `auth_bench_seed` example of `openhands-oidc-auth` (release
//! build), for the reason `store` runs `store_bench`: what touches the database, the
//! cookie sealing and the API keys stays next to that code, and xtask stays a thin
//! orchestrator without a database driver. The seed makes a fresh database (a user with a
//! personal org, LLM settings, an API key), seals a session cookie under a key it draws,
//! prints all of it as one JSON line and keeps the database until its stdin closes.
//!
//! This module starts the seed, starts the server on the seed's database and key, checks
//! that each credential reads the seeded settings (a 401 means seed and server disagree,
//! and no figure is worth reporting then), loads both scenarios, and closes the seed,
//! which drops the database.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use anyhow::{Context, Result, bail, ensure};
use hyper::StatusCode;
use serde::{Deserialize, Serialize};

use super::super::cargo;
use super::client::{HttpConn, Reply};
use super::load::{self, LoadConfig};
use super::report::ScenarioResult;
use super::scenarios::{self, Scenario};
use super::server::{self, ServerConfig, ServerProcess};
use super::{READY_POLL, READY_TIMEOUT, recreate_dir, scenario_result};

/// Extra environment of the SaaS server, after the SaaS settings below (so it overrides
/// them). `ServerProcess` already switches the per-IP limit off.
pub const EXTRA_SERVER_ENV: &[(&str, &str)] = &[
    // The Redis limiter stays on (one Lua call per request, as in production) with a
    // per-user limit far above what the bench sends, so it is measured but never refuses.
    ("OPENHANDS_USER_RATE_LIMIT", "1000000/s"),
];

/// An issuer nothing listens on: discovery is lazy and only a refresh would need it, and
/// the seeded session's access token does not expire during a bench.
const UNUSED_ISSUER: &str = "http://127.0.0.1:9/unused";
const CLIENT_ID: &str = "bench";
/// The Redis the SaaS server counts rate limits and keeps conversation leases in (the
/// cluster replicas' too).
pub(super) const MACHINE_REDIS: &str = "redis://127.0.0.1:6379/0";
/// The model `auth_bench_seed` stores, which a 200 must show.
const SEEDED_MODEL: &str = "openai/gpt-4o";

/// What the SaaS scenarios measured.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SaasResults {
    pub database: String,
    /// `GET /api/settings` with the `keycloak_auth` session cookie.
    pub cookie: ScenarioResult,
    /// `GET /api/settings` with `Authorization: Bearer <API key>`.
    pub api_key: ScenarioResult,
}

/// The seed's line: where the data is and the credentials to present.
#[derive(Deserialize)]
pub(super) struct Seed {
    pub(super) database_url: String,
    /// `OPENHANDS_SECRETS_KEYS` for the server: `bench:<base64 key>`.
    pub(super) secrets_keys: String,
    /// The sealed session, the `keycloak_auth` cookie's value.
    cookie: String,
    api_key: String,
}

/// Runs the seed, the SaaS server on its database and both scenarios; `base` provides the
/// binary and the log file, `data_dir` becomes the server's (fresh) data dir.
pub async fn measure(
    base: &ServerConfig,
    data_dir: PathBuf,
    load: LoadConfig,
) -> Result<SaasResults> {
    recreate_dir(&data_dir)?;
    eprintln!("==> SaaS: seeding PostgreSQL (auth_bench_seed, release build)");
    let mut seed = SeedProcess::start()?;
    let line = seed.first_line().await?;
    let seeded = parse_seed(&line)?;
    let measured = measure_seeded(base, data_dir, load, &seeded).await;
    let finished = seed.finish();
    let results = measured?;
    finished?;
    Ok(results)
}

async fn measure_seeded(
    base: &ServerConfig,
    data_dir: PathBuf,
    load: LoadConfig,
    seed: &Seed,
) -> Result<SaasResults> {
    let port = server::free_port()?;
    let config = ServerConfig {
        data_dir,
        env: server_env(seed, port),
        ..base.clone()
    };
    let mut server = ServerProcess::spawn_on(&config, port)?;
    server
        .wait_alive(READY_POLL, READY_TIMEOUT)
        .await
        .context("starting the server in SaaS mode")?;
    let by_cookie = scenarios::saas_settings_by_cookie(&seed.cookie)?;
    let by_key = scenarios::saas_settings_by_api_key(&seed.api_key)?;
    let mut measured = Vec::with_capacity(2);
    for scenario in [&by_cookie, &by_key] {
        let reply = HttpConn::connect(server.addr())
            .await?
            .send(&scenario.request)
            .await
            .with_context(|| format!("checking `{}`", scenario.name))?;
        check_settings_reply(scenario, &reply).with_context(|| {
            format!(
                "checking `{}` before loading it (server log: {})",
                scenario.name,
                config.log_file.display()
            )
        })?;
        eprintln!("==> load: {}", scenario.name);
        let outcome = load::run(server.addr(), &scenario.request, load)
            .await
            .with_context(|| format!("scenario `{}`", scenario.name))?;
        measured.push(scenario_result(scenario, outcome, load.duration));
    }
    server
        .stop()
        .await
        .context("stopping the server of the SaaS scenarios")?;
    let mut measured = measured.into_iter();
    match (measured.next(), measured.next()) {
        (Some(cookie), Some(api_key)) => Ok(SaasResults {
            database: "postgresql".to_owned(),
            cookie,
            api_key,
        }),
        _ => bail!("the SaaS scenarios produced fewer results than they ran"),
    }
}

/// The SaaS server's environment: SaaS mode on the seed's database and key, login through
/// an issuer that is never contacted, the public URL on `port`, the machine's Redis (the
/// `saas` class runs conversations on `saas.clustered`, which keeps its leases there) under
/// a key prefix of this run, then [`EXTRA_SERVER_ENV`].
pub(super) fn server_env(seed: &Seed, port: u16) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("OPENHANDS_REDIS__URL", MACHINE_REDIS.to_owned()),
        (
            "OPENHANDS_REDIS__KEY_PREFIX",
            format!("oh_bench_{}_{port}:", std::process::id()),
        ),
        ("OPENHANDS_CONFIG_CLS", "saas".to_owned()),
        ("DATABASE_URL", seed.database_url.clone()),
        ("OPENHANDS_SECRETS_KEYS", seed.secrets_keys.clone()),
        ("OIDC_ISSUER_URL", UNUSED_ISSUER.to_owned()),
        ("OIDC_CLIENT_ID", CLIENT_ID.to_owned()),
        (
            "OPENHANDS_AUTH__PUBLIC_URL",
            format!("http://127.0.0.1:{port}"),
        ),
    ];
    env.extend(
        EXTRA_SERVER_ENV
            .iter()
            .map(|(key, value)| (*key, (*value).to_owned())),
    );
    env
}

/// The seed's JSON line.
pub(super) fn parse_seed(line: &str) -> Result<Seed> {
    let seed: Seed = serde_json::from_str(line.trim())
        .context("the auth bench seed printed an unexpected line (expected one JSON object)")?;
    for (field, value) in [
        ("database_url", &seed.database_url),
        ("secrets_keys", &seed.secrets_keys),
        ("cookie", &seed.cookie),
        ("api_key", &seed.api_key),
    ] {
        ensure!(
            !value.trim().is_empty(),
            "the auth bench seed printed an empty `{field}`"
        );
    }
    Ok(seed)
}

/// Fails unless `reply` is a 200 with the seeded settings; a 401 is explained (the server
/// does not accept what the seed made, so the two disagree on the database or the key).
fn check_settings_reply(scenario: &Scenario, reply: &Reply) -> Result<()> {
    let body = String::from_utf8_lossy(&reply.body);
    let excerpt: String = body.chars().take(300).collect();
    if reply.status == StatusCode::UNAUTHORIZED {
        bail!(
            "{} answered 401: the server does not accept the seed's credential, so the seed and \
             the server disagree (database or secrets key): {excerpt}",
            scenario.name
        );
    }
    ensure!(
        reply.status == StatusCode::OK,
        "{} answered {} (expected 200): {excerpt}",
        scenario.name,
        reply.status
    );
    let settings: serde_json::Value = serde_json::from_slice(&reply.body)
        .with_context(|| format!("{} answered 200 without JSON: {excerpt}", scenario.name))?;
    ensure!(
        settings["llm_model"] == SEEDED_MODEL && settings["llm_api_key_set"] == true,
        "{} answered 200 but not with the seeded settings (model {SEEDED_MODEL}, API key \
         set): {excerpt}",
        scenario.name
    );
    Ok(())
}

/// The running seed. Dropping it closes its stdin and waits: the seed then drops its
/// database and exits, so no path leaves a database behind.
pub(super) struct SeedProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Option<ChildStdout>,
}

impl SeedProcess {
    /// `cargo run --release` of the example, stdin and stdout piped, stderr shown.
    pub(super) fn start() -> Result<Self> {
        Self::start_binary(None)
    }

    /// Like [`SeedProcess::start`], or runs `binary` (a seed built before) without cargo.
    pub(super) fn start_binary(binary: Option<&std::path::Path>) -> Result<Self> {
        let mut cmd: Command = match binary {
            Some(binary) => Command::new(binary),
            None => {
                let mut cmd = cargo::cargo();
                cmd.args([
                    "run",
                    "--quiet",
                    "--release",
                    "-p",
                    "openhands-oidc-auth",
                    "--example",
                    "auth_bench_seed",
                ]);
                cmd
            }
        };
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
        let mut child = cmd
            .spawn()
            .with_context(|| format!("could not start `{}`", cargo::display(&cmd)))?;
        Ok(Self {
            stdin: child.stdin.take(),
            stdout: child.stdout.take(),
            child,
        })
    }

    /// The first line the seed prints (it builds first, so this may take minutes).
    pub(super) async fn first_line(&mut self) -> Result<String> {
        let stdout = self
            .stdout
            .take()
            .context("the seed's stdout was already read")?;
        let line = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            BufReader::new(stdout)
                .read_line(&mut line)
                .map(|_| line)
                .context("reading the auth bench seed's output")
        })
        .await
        .context("the seed reader panicked")??;
        if line.trim().is_empty() {
            drop(self.stdin.take());
            let status = self
                .child
                .wait()
                .context("waiting for the auth bench seed")?;
            bail!(
                "the auth bench seed exited with {status} before printing its line (its errors are above)"
            );
        }
        Ok(line)
    }

    /// Closes stdin (the seed drops its database) and waits for a clean exit.
    pub(super) fn finish(mut self) -> Result<()> {
        drop(self.stdin.take());
        let status = self
            .child
            .wait()
            .context("waiting for the auth bench seed")?;
        ensure!(status.success(), "the auth bench seed exited with {status}");
        Ok(())
    }
}

impl Drop for SeedProcess {
    fn drop(&mut self) {
        // Best effort, and a no-op after `finish`: the child was reaped already.
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::body::Bytes;

    const LINE: &str = r#"{"database_url":"postgres://postgres@127.0.0.1:5432/oh_test_1","secrets_keys":"bench:AAAA","cookie":"bench.sealed","api_key":"ohk_abc"}"#;

    #[test]
    fn the_seed_line_gives_database_key_and_credentials() -> Result<()> {
        let seed = parse_seed(&format!("{LINE}\n"))?;
        assert_eq!(
            seed.database_url,
            "postgres://postgres@127.0.0.1:5432/oh_test_1"
        );
        assert_eq!(seed.secrets_keys, "bench:AAAA");
        assert_eq!(seed.cookie, "bench.sealed");
        assert_eq!(seed.api_key, "ohk_abc");
        Ok(())
    }

    #[test]
    fn a_seed_line_without_a_field_or_with_an_empty_one_is_refused() {
        assert!(
            parse_seed(r#"{"database_url":"postgres://x","cookie":"c","api_key":"k"}"#).is_err()
        );
        assert!(parse_seed(&LINE.replace("ohk_abc", " ")).is_err());
        assert!(parse_seed("error: no PostgreSQL").is_err());
        assert!(parse_seed("").is_err());
    }

    #[test]
    fn the_server_runs_saas_on_the_seeds_database_and_key() -> Result<()> {
        let env = server_env(&parse_seed(LINE)?, 4321);
        let get = |key: &str| crate::bench::server::env_value(&env, key);
        assert_eq!(get("OPENHANDS_CONFIG_CLS"), Some("saas"));
        assert_eq!(
            get("DATABASE_URL"),
            Some("postgres://postgres@127.0.0.1:5432/oh_test_1")
        );
        assert_eq!(get("OPENHANDS_SECRETS_KEYS"), Some("bench:AAAA"));
        assert_eq!(get("OIDC_ISSUER_URL"), Some(UNUSED_ISSUER));
        assert_eq!(get("OIDC_CLIENT_ID"), Some("bench"));
        assert_eq!(get("OPENHANDS_REDIS__URL"), Some(MACHINE_REDIS));
        assert!(
            get("OPENHANDS_REDIS__KEY_PREFIX").is_some_and(|p| p.starts_with("oh_bench_")),
            "a key prefix of its own, away from other servers on the machine's Redis"
        );
        assert_eq!(
            get("OPENHANDS_AUTH__PUBLIC_URL"),
            Some("http://127.0.0.1:4321")
        );
        for (key, value) in EXTRA_SERVER_ENV {
            assert_eq!(get(key), Some(*value), "{key} comes last and wins");
        }
        Ok(())
    }

    fn reply(status: StatusCode, body: &'static str) -> Reply {
        Reply {
            status,
            body: Bytes::from_static(body.as_bytes()),
        }
    }

    #[test]
    fn only_a_200_with_the_seeded_settings_passes_the_check() -> Result<()> {
        let scenario = scenarios::saas_settings_by_cookie("sealed")?;
        let good = r#"{"llm_model":"openai/gpt-4o","llm_api_key":null,"llm_api_key_set":true}"#;
        check_settings_reply(&scenario, &reply(StatusCode::OK, good))?;

        let unauthorized = check_settings_reply(
            &scenario,
            &reply(StatusCode::UNAUTHORIZED, r#"{"error":"Not logged in"}"#),
        );
        let message = format!("{:#}", unauthorized.err().context("401 must fail")?);
        assert!(
            message.contains("seed and the server disagree"),
            "{message}"
        );

        let not_found = reply(StatusCode::NOT_FOUND, r#"{"error":"Settings not found"}"#);
        assert!(check_settings_reply(&scenario, &not_found).is_err());
        let other_model = reply(
            StatusCode::OK,
            r#"{"llm_model":"anthropic/claude","llm_api_key_set":true}"#,
        );
        assert!(check_settings_reply(&scenario, &other_model).is_err());
        let no_key = reply(
            StatusCode::OK,
            r#"{"llm_model":"openai/gpt-4o","llm_api_key_set":false}"#,
        );
        assert!(check_settings_reply(&scenario, &no_key).is_err());
        assert!(check_settings_reply(&scenario, &reply(StatusCode::OK, "ok")).is_err());
        Ok(())
    }
}
