//! The server's Redis pool: built from `[redis]`, shared through `SharedResources`.
//!
//! [`RedisPool`] wraps a `deadpool-redis` pool of multiplexed connections. Short commands go
//! through [`RedisPool::run`], which hands out a clone of one multiplexed connection held
//! from the pool (many requests share its socket, so a command is one round trip, without
//! the pool's per-checkout `PING`), bounds the whole call (connecting included) by
//! `redis.command_timeout_ms`, and drops the held connection after any failure so the next
//! call connects afresh (that is how a restarted Redis is picked up). Commands that need a
//! connection of their own (transactions with `WATCH`, blocking reads, pub/sub) take one
//! from [`RedisPool::pool`].

use deadpool_redis::redis::aio::MultiplexedConnection;
use deadpool_redis::redis::{self, AsyncConnectionConfig, IntoConnectionInfo};
use deadpool_redis::{Manager, Pool, Runtime};
use openhands_core::config::RedisConfig;
use openhands_core::registry::{PluginContext, PluginError};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The key under which the pool is kept in `SharedResources`.
const SHARED_KEY: &str = "redis";

/// What went wrong with Redis. Messages name the server (`host:port/db`), never a password.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    #[error("invalid Redis configuration: {0}")]
    Config(String),
    #[error("no Redis connection to {address}: {message}")]
    Connect { address: String, message: String },
    #[error("Redis command failed on {address}: {source}")]
    Command {
        address: String,
        #[source]
        source: redis::RedisError,
    },
    #[error("Redis at {address} did not answer within {timeout_ms} ms")]
    Timeout { address: String, timeout_ms: u128 },
    #[error("unexpected Redis reply from {address}: {message}")]
    Reply { address: String, message: String },
}

impl From<RedisError> for PluginError {
    fn from(err: RedisError) -> Self {
        PluginError(err.to_string())
    }
}

struct Inner {
    pool: Pool,
    timeout: Duration,
    key_prefix: String,
    address: String,
    /// Opens connections of their own (blocking reads, pub/sub), outside the pool.
    client: redis::Client,
    /// The connection [`RedisPool::run`] multiplexes over, taken from `pool` on first use
    /// (it stays counted in the pool and goes back to it when dropped).
    held: Mutex<Option<deadpool_redis::Connection>>,
}

/// The pool of one server; cheap to clone.
#[derive(Clone)]
pub struct RedisPool {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RedisPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisPool")
            .field("address", &self.inner.address)
            .field("key_prefix", &self.inner.key_prefix)
            .finish_non_exhaustive()
    }
}

/// The connection settings of `[redis]`: `url` when set, else host, port, password and db.
fn connection_info(config: &RedisConfig) -> Result<redis::ConnectionInfo, RedisError> {
    match config.url.as_ref().filter(|u| !u.is_blank()) {
        Some(url) => url.expose().trim().into_connection_info().map_err(|_| {
            RedisError::Config(
                "`redis.url` is not a Redis URL (expected `redis://[:password@]host:port/db`; \
                 the value is not shown)"
                    .into(),
            )
        }),
        None => {
            let host = config.host.trim();
            if host.is_empty() {
                return Err(RedisError::Config(
                    "`redis.host` (`REDIS_HOST`) is empty".into(),
                ));
            }
            let mut settings = redis::RedisConnectionInfo::default().set_db(i64::from(config.db));
            if let Some(password) = config.password.as_ref().filter(|p| !p.is_blank()) {
                settings = settings.set_password(password.expose());
            }
            redis::ConnectionAddr::Tcp(host.to_owned(), config.port)
                .into_connection_info()
                .map(|info| info.set_redis_settings(settings))
                .map_err(|e| RedisError::Config(format!("`redis.host` = `{host}`: {e}")))
        }
    }
}

impl RedisPool {
    /// A pool for `[redis]`. Connects lazily: this succeeds while Redis is down.
    pub fn new(config: &RedisConfig) -> Result<Self, RedisError> {
        let info = connection_info(config)?;
        let address = format!("{}/{}", info.addr(), info.redis_settings().db());
        let timeout = Duration::from_millis(config.command_timeout_ms.max(1));
        let connection = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout));
        let client = redis::Client::open(info.clone())
            .map_err(|e| RedisError::Config(format!("Redis at {address}: {e}")))?;
        let manager = Manager::new_with_config(info, connection)
            .map_err(|e| RedisError::Config(format!("Redis at {address}: {e}")))?;
        let pool = Pool::builder(manager)
            .max_size(config.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(timeout))
            .create_timeout(Some(timeout))
            .recycle_timeout(Some(timeout))
            .build()
            .map_err(|e| RedisError::Config(format!("Redis pool for {address}: {e}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                pool,
                timeout,
                key_prefix: config.key_prefix.clone(),
                address,
                client,
                held: Mutex::new(None),
            }),
        })
    }

    /// The underlying pool, for commands that need a connection of their own.
    pub fn pool(&self) -> &Pool {
        &self.inner.pool
    }

    /// `host:port/db`, for logs and errors (never the password).
    pub fn address(&self) -> &str {
        &self.inner.address
    }

    /// The bound of one call (`redis.command_timeout_ms`).
    pub fn timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// `redis.key_prefix`, to put in front of every key this server writes.
    pub fn key_prefix(&self) -> &str {
        &self.inner.key_prefix
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Option<deadpool_redis::Connection>> {
        self.inner.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A handle on the shared multiplexed connection, opening it on first use.
    async fn connection(&self) -> Result<MultiplexedConnection, RedisError> {
        if let Some(held) = self.held().as_ref() {
            return Ok(MultiplexedConnection::clone(held));
        }
        let fresh = self
            .inner
            .pool
            .get()
            .await
            .map_err(|e| RedisError::Connect {
                address: self.inner.address.clone(),
                message: e.to_string(),
            })?;
        let handle = MultiplexedConnection::clone(&fresh);
        *self.held() = Some(fresh);
        Ok(handle)
    }

    /// Runs `command` on the shared connection, within the timeout. After a failure the
    /// connection is dropped, so the next call connects afresh.
    pub async fn run<T, F, Fut>(&self, command: F) -> Result<T, RedisError>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let attempt = async {
            let connection = self.connection().await?;
            command(connection)
                .await
                .map_err(|source| RedisError::Command {
                    address: self.inner.address.clone(),
                    source,
                })
        };
        let result = match tokio::time::timeout(self.inner.timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(RedisError::Timeout {
                address: self.inner.address.clone(),
                timeout_ms: self.inner.timeout.as_millis(),
            }),
        };
        if result.is_err() {
            self.held().take();
        }
        result
    }

    /// A connection of its own, outside the pool, for commands that block it (`XREAD
    /// BLOCK`): connecting is bounded by the timeout, each answer by `response_timeout`
    /// (which must exceed the longest block asked for).
    pub async fn dedicated(
        &self,
        response_timeout: Duration,
    ) -> Result<MultiplexedConnection, RedisError> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.inner.timeout))
            .set_response_timeout(Some(response_timeout));
        let connect = self
            .inner
            .client
            .get_multiplexed_async_connection_with_config(&config);
        match tokio::time::timeout(self.inner.timeout, connect).await {
            Ok(Ok(connection)) => Ok(connection),
            Ok(Err(e)) => Err(RedisError::Connect {
                address: self.inner.address.clone(),
                message: e.to_string(),
            }),
            Err(_) => Err(RedisError::Timeout {
                address: self.inner.address.clone(),
                timeout_ms: self.inner.timeout.as_millis(),
            }),
        }
    }

    /// A pub/sub connection of its own, connecting within the timeout.
    pub async fn pubsub(&self) -> Result<redis::aio::PubSub, RedisError> {
        match tokio::time::timeout(self.inner.timeout, self.inner.client.get_async_pubsub()).await {
            Ok(Ok(pubsub)) => Ok(pubsub),
            Ok(Err(e)) => Err(RedisError::Connect {
                address: self.inner.address.clone(),
                message: e.to_string(),
            }),
            Err(_) => Err(RedisError::Timeout {
                address: self.inner.address.clone(),
                timeout_ms: self.inner.timeout.as_millis(),
            }),
        }
    }

    /// `PING`, within the timeout.
    pub async fn ping(&self) -> Result<(), RedisError> {
        let reply: String =
            self.run(|mut connection| async move {
                redis::cmd("PING").query_async(&mut connection).await
            })
            .await?;
        if reply == "PONG" {
            Ok(())
        } else {
            Err(RedisError::Reply {
                address: self.inner.address.clone(),
                message: format!("PING answered `{reply}`"),
            })
        }
    }
}

/// The pool of the server being built, created on first use from `ctx.config.redis`. Every
/// plugin of one server gets the same pool (and a restarted server a new one).
///
/// Creating it adds a `redis` readiness check (a `PING`) to the server's
/// [`ReadinessChecks`](openhands_core::readiness::ReadinessChecks), so `/ready` answers 503
/// while Redis does not answer.
pub async fn server_pool(ctx: &PluginContext) -> Result<RedisPool, RedisError> {
    let config = ctx.config.redis.clone();
    // Taken before `get_or_try_init`, which holds the shared resources while it builds.
    let checks = openhands_core::readiness::ReadinessChecks::of(&ctx.shared).await;
    ctx.shared
        .get_or_try_init(SHARED_KEY, || async move {
            let pool = RedisPool::new(&config)?;
            let checked = pool.clone();
            checks.add(
                "redis",
                std::sync::Arc::new(move || {
                    let pool = checked.clone();
                    Box::pin(async move { pool.ping().await.map_err(|e| e.to_string()) })
                }),
            );
            Ok(pool)
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use openhands_core::secret::Secret;

    #[test]
    fn host_port_password_and_db_make_the_connection() {
        let config = RedisConfig {
            host: "redis.internal".into(),
            port: 6380,
            password: Some(Secret::new("p@ss:word")),
            db: 3,
            ..RedisConfig::default()
        };
        let info = connection_info(&config).expect("info");
        assert_eq!(info.addr().to_string(), "redis.internal:6380");
        assert_eq!(info.redis_settings().db(), 3);
        assert_eq!(info.redis_settings().password(), Some("p@ss:word"));
    }

    #[test]
    fn url_wins_and_a_bad_url_is_refused_without_echoing_it() {
        let config = RedisConfig {
            url: Some(Secret::new("redis://:secret-pw@cache.example:6390/5")),
            host: "ignored".into(),
            ..RedisConfig::default()
        };
        let info = connection_info(&config).expect("info");
        assert_eq!(info.addr().to_string(), "cache.example:6390");
        assert_eq!(info.redis_settings().db(), 5);

        let bad = RedisConfig {
            url: Some(Secret::new("http://:secret-pw@nowhere")),
            ..RedisConfig::default()
        };
        let message = connection_info(&bad).expect_err("refused").to_string();
        assert!(message.contains("redis.url"), "{message}");
        assert!(!message.contains("secret-pw"), "{message}");
    }

    #[test]
    fn the_address_in_logs_never_holds_the_password() {
        let config = RedisConfig {
            password: Some(Secret::new("hunter2")),
            ..RedisConfig::default()
        };
        let pool = RedisPool::new(&config).expect("pool");
        assert_eq!(pool.address(), "127.0.0.1:6379/0");
        assert!(!format!("{pool:?}").contains("hunter2"));
    }
}
