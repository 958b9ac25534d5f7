//! Spawns the real application for tests (feature `app`, on by default).
//!
//! [`TestServer::spawn`] builds the same state and `App` as `main` (through
//! `openhands_server::build_state` / `create_app`) on `127.0.0.1:0`, in its own thread with
//! its own actix system, over a temporary data dir, and hands back a base URL and a
//! `reqwest` client. Dropping it stops the server as a crash would (its runtime and tasks
//! end, the conversation manager's `shutdown` never runs); [`TestServer::shut_down`] stops
//! it as `main` does, `shutdown` included; [`TestServer::restart`] starts a new one on the
//! same data dir, to prove that state survives.
//!
//! A server in SaaS mode needs Redis (its conversation manager, `saas.clustered`, keeps
//! leases and event streams there). Unless the test chose a key prefix, the server gets one
//! of its own and, unless the test chose a Redis, the URL of [`redis_for_test`]: servers of
//! concurrent tests would otherwise share `openhands:` keys and take over each other's
//! conversations. Replicas of one test set the same prefix explicitly.

use crate::redis::{RedisForTest, redis_for_test};
use openhands_core::config::{Config, RateLimitSetting, RedisConfig, UserRateLimitSetting};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A running server and its data directory.
pub struct TestServer {
    pub address: SocketAddr,
    pub client: reqwest::Client,
    config: Config,
    handle: Option<actix_web::dev::ServerHandle>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Fired by [`TestServer::shut_down`]: the server thread then shuts down as `main`
    /// does at a signal.
    graceful: Option<tokio::sync::oneshot::Sender<()>>,
    /// Kept so the directory lives as long as the server (and across restarts).
    data_dir: Arc<tempfile::TempDir>,
    /// The scripted LLM of [`TestServer::store_default_settings`], kept alive with the server.
    llm: std::sync::Mutex<Option<openhands_runtime::testing::ScriptedLlm>>,
    /// The Redis key prefix given to a SaaS-mode server (its keys are deleted when the last
    /// holder drops it), kept across restarts.
    redis: Option<Arc<RedisForTest>>,
}

/// A config for tests: fresh data dir, rate limits (per IP and per user) off, no web app
/// directory, and the LLM client allowed to reach loopback, where tests' scripted LLMs
/// listen (SaaS mode refuses internal LLM addresses otherwise; tests of that refusal clear
/// `llm_egress_allow`).
pub fn test_config(data_dir: &Path) -> Config {
    Config {
        file_store_path: data_dir.display().to_string(),
        port: 0,
        rate_limit: RateLimitSetting::Off,
        user_rate_limit: UserRateLimitSetting::Off,
        web_dir: data_dir.join("no-web-dist").display().to_string(),
        llm_egress_allow: vec!["127.0.0.1".into()],
        ..Config::default()
    }
}

impl TestServer {
    /// Spawns with the default test config.
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// Spawns after letting `adjust` change the test config.
    pub async fn spawn_with(adjust: impl FnOnce(&mut Config)) -> Self {
        let data_dir = Arc::new(tempfile::tempdir().expect("temp data dir"));
        let mut config = test_config(data_dir.path());
        adjust(&mut config);
        let redis = own_redis(&mut config).unwrap_or_else(|e| panic!("{e}"));
        Self::start(config, data_dir, redis).await
    }

    /// Like [`TestServer::spawn_with`] but returns the start-up error instead of panicking.
    pub async fn try_spawn_with(adjust: impl FnOnce(&mut Config)) -> Result<Self, String> {
        let data_dir = Arc::new(tempfile::tempdir().map_err(|e| e.to_string())?);
        let mut config = test_config(data_dir.path());
        adjust(&mut config);
        let redis = own_redis(&mut config).map_err(|e| e.to_string())?;
        Self::try_start(config, data_dir, redis).await
    }

    async fn start(
        config: Config,
        data_dir: Arc<tempfile::TempDir>,
        redis: Option<Arc<RedisForTest>>,
    ) -> Self {
        match Self::try_start(config, data_dir, redis).await {
            Ok(server) => server,
            Err(err) => panic!("test server failed to start: {err}"),
        }
    }

    async fn try_start(
        config: Config,
        data_dir: Arc<tempfile::TempDir>,
        redis: Option<Arc<RedisForTest>>,
    ) -> Result<Self, String> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let thread_config = config.clone();
        // `port` 0 (the test default) picks a free port; tests that must know the address
        // beforehand (an OIDC redirect URI) reserve one and set it.
        let port = config.port;
        let (graceful, shut_down) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let state = match openhands_server::build_state(thread_config).await {
                    Ok(state) => state,
                    Err(err) => {
                        let _ = tx.send(Err(format!("{err:#}")));
                        return;
                    }
                };
                let app_state = state.clone();
                let server = actix_web::HttpServer::new(move || {
                    openhands_server::create_app(app_state.clone())
                })
                .workers(2)
                .tcp_nodelay(true)
                .disable_signals()
                .bind(("127.0.0.1", port));
                let server = match server {
                    Ok(server) => server,
                    Err(err) => {
                        let _ = tx.send(Err(err.to_string()));
                        return;
                    }
                };
                let address = server.addrs()[0];
                let running = server.run();
                let handle = running.handle();
                let _ = tx.send(Ok((address, handle.clone())));
                let mut running = actix_web::rt::spawn(running);
                tokio::select! {
                    _ = &mut running => {}
                    Ok(()) = shut_down => {
                        // As `main` does at a signal.
                        let conversations = tokio::runtime::Handle::current();
                        openhands_server::shutdown::shut_down(&state, &conversations).await;
                        handle.stop(true).await;
                        let _ = running.await;
                    }
                }
            });
        });
        let (address, handle) = rx
            .await
            .map_err(|_| "server thread ended before starting".to_owned())??;
        Ok(Self {
            address,
            // A stalled request fails the test instead of hanging it.
            client: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(60))
                .build()
                .map_err(|e| e.to_string())?,
            config,
            handle: Some(handle),
            thread: Some(thread),
            graceful: Some(graceful),
            data_dir,
            llm: std::sync::Mutex::new(None),
            redis,
        })
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.address, path)
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.path().to_path_buf()
    }

    /// Stops the server and waits for it.
    pub async fn stop(&mut self) {
        if let Some(handle) = self.handle.take() {
            handle.stop(true).await;
        }
        if let Some(thread) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }

    /// Stops the server as `main` does at a signal (see `openhands_server::shutdown`):
    /// conversations drained and handed over, WebSockets closed with 1012, then the HTTP
    /// server; waits for all of it.
    pub async fn shut_down(&mut self) {
        let signalled = self.graceful.take().is_some_and(|g| g.send(()).is_ok());
        if !signalled {
            return self.stop().await;
        }
        self.handle.take();
        if let Some(thread) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }

    /// Stops this server and starts a new one on the same data dir and config.
    pub async fn restart(mut self) -> Self {
        self.stop().await;
        let config = self.config.clone();
        let data_dir = self.data_dir.clone();
        let mut restarted = Self::start(config, data_dir, self.redis.clone()).await;
        restarted.llm =
            std::sync::Mutex::new(self.llm.lock().unwrap_or_else(|p| p.into_inner()).take());
        restarted
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("GET request")
    }

    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("POST request")
    }

    /// Stores settings with an LLM key, so conversations can be created. The LLM is a
    /// scripted OpenAI-compatible server that answers every call with `finish`, so agents
    /// started by these tests end at once without any network.
    pub async fn store_default_settings(&self) {
        let llm = openhands_runtime::testing::ScriptedLlm::start(Vec::new())
            .await
            .expect("scripted LLM");
        let res = self
            .post_json(
                "/api/settings",
                &serde_json::json!({"llm_model": "openai/gpt-4o", "llm_api_key": "sk-test-key",
                                    "llm_base_url": llm.base_url()}),
            )
            .await;
        assert_eq!(res.status(), 200, "storing settings");
        *self.llm.lock().unwrap_or_else(|p| p.into_inner()) = Some(llm);
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            // Ask the server to stop; the thread ends on its own.
            drop(handle.stop(false));
        }
    }
}

/// True when the server keeps state in Redis that concurrent tests must not share: SaaS
/// mode, or the clustered manager chosen by name.
fn uses_shared_redis(config: &Config) -> bool {
    config.config_class == "saas"
        || config.plugins.conversation_manager.as_deref() == Some("saas.clustered")
}

/// Gives a SaaS-mode server a key prefix of its own and, when the test named no Redis, the
/// test Redis (see the module doc). A prefix the test set is kept, so replicas can share one.
fn own_redis(
    config: &mut Config,
) -> Result<Option<Arc<RedisForTest>>, crate::redis::RedisUnavailable> {
    let defaults = RedisConfig::default();
    if !uses_shared_redis(config) || config.redis.key_prefix != defaults.key_prefix {
        return Ok(None);
    }
    let redis = redis_for_test()?;
    let unnamed = config.redis.url.is_none()
        && config.redis.host == defaults.host
        && config.redis.port == defaults.port;
    if unnamed {
        config.redis.url = Some(openhands_core::secret::Secret::new(redis.url().to_owned()));
    }
    config.redis.key_prefix = redis.key_prefix().to_owned();
    Ok(Some(Arc::new(redis)))
}

/// The JSON body of a response (panics with the body text when it is not JSON).
pub async fn json_body(res: reqwest::Response) -> serde_json::Value {
    let text = res.text().await.expect("response body");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

impl TestServer {
    /// Every stored event of a conversation (through `/trajectory`).
    pub async fn all_events(&self, conversation_id: &str) -> Vec<serde_json::Value> {
        let res = self
            .get(&format!("/api/conversations/{conversation_id}/trajectory"))
            .await;
        assert_eq!(res.status(), 200, "trajectory of {conversation_id}");
        let body = json_body(res).await;
        body["trajectory"].as_array().cloned().unwrap_or_default()
    }

    /// Polls until an `agent_state_changed` event with `state` is stored after event id
    /// `after` (use -1 for any); panics with the events seen after `timeout`.
    pub async fn wait_for_agent_state(
        &self,
        conversation_id: &str,
        state: &str,
        after: i64,
        timeout: std::time::Duration,
    ) -> Vec<serde_json::Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let events = self.all_events(conversation_id).await;
            let reached = events.iter().any(|e| {
                e["observation"] == "agent_state_changed"
                    && e["extras"]["agent_state"] == state
                    && e["id"].as_i64().unwrap_or(-1) > after
            });
            if reached {
                return events;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("agent state `{state}` not reached; events: {events:#?}");
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// The conversation's status as listed by the API.
    pub async fn status_of(&self, conversation_id: &str) -> String {
        let info = json_body(
            self.get(&format!("/api/conversations/{conversation_id}"))
                .await,
        )
        .await;
        info["status"].as_str().unwrap_or_default().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saas() -> Config {
        Config {
            config_class: "saas".into(),
            ..Config::default()
        }
    }

    #[test]
    fn each_saas_server_gets_a_key_prefix_and_the_test_redis() {
        let (mut one, mut two) = (saas(), saas());
        let held = own_redis(&mut one).expect("redis").expect("given");
        let _other = own_redis(&mut two).expect("redis").expect("given");
        assert_eq!(one.redis.key_prefix, held.key_prefix());
        assert_ne!(one.redis.key_prefix, two.redis.key_prefix);
        assert_eq!(
            one.redis.url.as_ref().map(|u| u.expose().to_owned()),
            Some(held.url().to_owned())
        );
    }

    #[test]
    fn a_prefix_the_test_chose_is_kept_and_oss_servers_are_left_alone() {
        let mut replica = saas();
        replica.redis.key_prefix = "shared_by_replicas:".into();
        assert!(own_redis(&mut replica).expect("redis").is_none());
        assert_eq!(replica.redis.key_prefix, "shared_by_replicas:");
        assert!(replica.redis.url.is_none());

        let mut oss = Config::default();
        assert!(own_redis(&mut oss).expect("redis").is_none());
        assert_eq!(oss.redis.key_prefix, RedisConfig::default().key_prefix);
    }

    #[test]
    fn a_redis_the_test_named_is_kept_with_a_prefix_of_its_own() {
        let mut named = saas();
        named.redis.url = Some(openhands_core::secret::Secret::new(
            "redis://10.0.0.9:6380/2".to_owned(),
        ));
        let held = own_redis(&mut named).expect("redis").expect("given");
        assert_eq!(
            named
                .redis
                .url
                .as_ref()
                .map(|u| u.expose().to_owned())
                .as_deref(),
            Some("redis://10.0.0.9:6380/2")
        );
        assert_eq!(named.redis.key_prefix, held.key_prefix());
    }
}
