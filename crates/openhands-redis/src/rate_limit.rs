//! `saas.redis_rate_limit`: fixed-window counters in Redis, shared by every server.
//!
//! Each kind of key has its windows: per client IP the `rate_limit` setting (`n` per second
//! becomes `2n/s,60n/min`, the memory limiter's burst and steady rate), per user
//! `user_rate_limit` (`auto` is OpenHands SaaS's `10/s,100/min`). One request is one Lua
//! script call covering all of its windows: the request is served only if every window has
//! room, and then counted in each (`INCR`, plus `PEXPIRE` when the counter is new, so a
//! window starts with its first request and its key vanishes when it ends). Refused
//! requests are not counted. Keys look like `openhands:rl:user:{<user id>}:1s`: the
//! configured prefix, the kind, the id in a hash tag (all windows of one id in one cluster
//! slot) and the window's period.
//!
//! When Redis fails (down, too slow, an error), the limiter answers without it for a second
//! before trying again: fail open (serve, the default) or closed (503), as
//! `rate_limit_fail_mode` says. It warns on the first failure and then at most once a
//! minute with a count, and says when Redis answers again.

use crate::pool::{RedisError, RedisPool, server_pool};
use async_trait::async_trait;
use deadpool_redis::redis;
use openhands_core::config::{RateLimitFailMode, RateWindows};
use openhands_core::extension::{
    RateDecision, RateKey, RateLimiter, WindowState, fixed_window_decision,
};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

/// Served only if every window has room; then counted in each. Returns
/// `{served, used_1, resets_in_ms_1, used_2, resets_in_ms_2, ...}`.
/// `KEYS[i]` is window i's counter, `ARGV[2i-1]` its limit, `ARGV[2i]` its period in ms.
const SCRIPT: &str = r#"
local served = 1
local used = {}
local ttl = {}
for i = 1, #KEYS do
  local period = tonumber(ARGV[2 * i])
  ttl[i] = redis.call('PTTL', KEYS[i])
  if ttl[i] == -1 then
    -- A counter without expiry was not written by this script: start it afresh.
    redis.call('DEL', KEYS[i])
    ttl[i] = -2
  end
  if ttl[i] == -2 then
    used[i] = 0
    ttl[i] = period
  else
    used[i] = tonumber(redis.call('GET', KEYS[i]) or '0')
  end
  if used[i] >= tonumber(ARGV[2 * i - 1]) then
    served = 0
  end
end
local reply = {served}
for i = 1, #KEYS do
  if served == 1 then
    used[i] = redis.call('INCR', KEYS[i])
    if used[i] == 1 then
      redis.call('PEXPIRE', KEYS[i], ARGV[2 * i])
      ttl[i] = tonumber(ARGV[2 * i])
    end
  end
  reply[2 * i] = used[i]
  reply[2 * i + 1] = ttl[i]
end
return reply
"#;

static COUNT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(SCRIPT));

/// After a failure, Redis is left alone this long (answers follow the fail mode meanwhile).
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);
/// While Redis keeps failing, at most one warning per this interval.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// Whether Redis is answering, and what has been logged about it.
#[derive(Default)]
struct Health {
    /// Set while Redis fails: since when, when to try again, the last warning, and the
    /// requests answered without Redis since that warning.
    outage: Option<Outage>,
}

struct Outage {
    since: Instant,
    retry_at: Instant,
    warned_at: Instant,
    without_redis_since_warning: u64,
}

/// Fixed windows per IP and per user, counted in Redis.
pub struct RedisRateLimiter {
    pool: RedisPool,
    ip: Option<RateWindows>,
    user: Option<RateWindows>,
    fail_mode: RateLimitFailMode,
    health: Mutex<Health>,
}

impl RedisRateLimiter {
    /// A limiter counting in `pool`; `None` windows mean no limit for that kind of key.
    pub fn new(
        pool: RedisPool,
        ip: Option<RateWindows>,
        user: Option<RateWindows>,
        fail_mode: RateLimitFailMode,
    ) -> Self {
        Self {
            pool,
            ip,
            user,
            fail_mode,
            health: Mutex::new(Health::default()),
        }
    }

    /// The Redis key of `key`'s counter for a window of `period_label`.
    pub fn counter_key(&self, key: RateKey<'_>, period_label: &str) -> String {
        format!(
            "{}rl:{}:{{{}}}:{period_label}",
            self.pool.key_prefix(),
            key.kind(),
            key.id()
        )
    }

    fn health(&self) -> std::sync::MutexGuard<'_, Health> {
        self.health.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The answer while Redis cannot be asked.
    fn without_redis(&self) -> RateDecision {
        if let Some(outage) = self.health().outage.as_mut() {
            outage.without_redis_since_warning += 1;
        }
        match self.fail_mode {
            RateLimitFailMode::Open => RateDecision::Unlimited,
            RateLimitFailMode::Closed => RateDecision::Unavailable {
                retry_after: RETRY_AFTER_FAILURE,
            },
        }
    }

    /// True while Redis failed less than [`RETRY_AFTER_FAILURE`] ago.
    fn resting(&self, now: Instant) -> bool {
        self.health()
            .outage
            .as_ref()
            .is_some_and(|outage| now < outage.retry_at)
    }

    fn failed(&self, error: &RedisError, now: Instant) {
        let mut health = self.health();
        let what = match self.fail_mode {
            RateLimitFailMode::Open => "served without rate limit",
            RateLimitFailMode::Closed => "refused with 503",
        };
        match health.outage.as_mut() {
            None => {
                tracing::warn!(
                    redis = %self.pool.address(),
                    error = %error,
                    "rate limiting cannot reach Redis; requests are {what} until it answers"
                );
                health.outage = Some(Outage {
                    since: now,
                    retry_at: now + RETRY_AFTER_FAILURE,
                    warned_at: now,
                    without_redis_since_warning: 0,
                });
            }
            Some(outage) => {
                outage.retry_at = now + RETRY_AFTER_FAILURE;
                if now.duration_since(outage.warned_at) >= WARN_EVERY {
                    tracing::warn!(
                        redis = %self.pool.address(),
                        error = %error,
                        down_for_s = now.duration_since(outage.since).as_secs(),
                        requests = outage.without_redis_since_warning,
                        "rate limiting still cannot reach Redis; requests are {what}"
                    );
                    outage.warned_at = now;
                    outage.without_redis_since_warning = 0;
                }
            }
        }
    }

    fn answered(&self, now: Instant) {
        let mut health = self.health();
        if let Some(outage) = health.outage.take() {
            tracing::info!(
                redis = %self.pool.address(),
                down_for_s = now.duration_since(outage.since).as_secs(),
                "Redis answers again; rate limiting resumed"
            );
        }
    }

    /// One script call for all windows of `key`.
    async fn count(
        &self,
        key: RateKey<'_>,
        windows: &RateWindows,
    ) -> Result<RateDecision, RedisError> {
        let mut invocation = COUNT.prepare_invoke();
        for window in windows.windows() {
            let period_ms = u64::try_from(window.period.as_millis()).unwrap_or(u64::MAX);
            invocation
                .key(self.counter_key(key, &window.period_label()))
                .arg(window.limit)
                .arg(period_ms);
        }
        let reply: Vec<i64> = self
            .pool
            .run(|mut connection| async move { invocation.invoke_async(&mut connection).await })
            .await?;
        let windows = windows.windows();
        if reply.len() != 1 + 2 * windows.len() {
            return Err(RedisError::Reply {
                address: self.pool.address().to_owned(),
                message: format!(
                    "the rate-limit script returned {} values for {} windows",
                    reply.len(),
                    windows.len()
                ),
            });
        }
        let states: Vec<WindowState> = windows
            .iter()
            .zip(reply[1..].chunks_exact(2))
            .map(|(window, pair)| WindowState {
                window: *window,
                used: u32::try_from(pair[0].max(0)).unwrap_or(u32::MAX),
                resets_in: Duration::from_millis(u64::try_from(pair[1].max(0)).unwrap_or(0)),
            })
            .collect();
        Ok(fixed_window_decision(&states, reply[0] == 1))
    }
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn check(&self, key: RateKey<'_>) -> RateDecision {
        let windows = match key {
            RateKey::Ip(_) => self.ip.as_ref(),
            RateKey::User(_) => self.user.as_ref(),
        };
        let Some(windows) = windows else {
            return RateDecision::Unlimited;
        };
        if self.resting(Instant::now()) {
            return self.without_redis();
        }
        match self.count(key, windows).await {
            Ok(decision) => {
                self.answered(Instant::now());
                decision
            }
            Err(error) => {
                self.failed(&error, Instant::now());
                self.without_redis()
            }
        }
    }
}

fn describe(windows: &Option<RateWindows>) -> String {
    windows
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_else(|| "off".to_owned())
}

openhands_core::register_plugin!(
    openhands_core::extension::RateLimiter,
    "saas.redis_rate_limit",
    "Fixed windows per IP and per user in Redis (REDIS_HOST...), shared by all servers; fails open by default",
    |ctx| {
        let config = &ctx.config;
        let app_mode = openhands_core::registry::select_class(config)
            .map(|class| class.app_mode)
            .unwrap_or("saas");
        let ip = config.rate_limit.fixed_windows();
        let user = config.user_rate_limit.effective(app_mode);
        let pool = server_pool(ctx).await?;
        tracing::info!(
            redis = %pool.address(),
            ip = %describe(&ip),
            user = %describe(&user),
            fail_mode = ?config.rate_limit_fail_mode,
            "rate limits counted in Redis"
        );
        if (ip.is_some() || user.is_some())
            && let Err(error) = pool.ping().await
        {
            tracing::warn!(
                redis = %pool.address(),
                error = %error,
                "Redis does not answer at start-up; rate limiting follows `rate_limit_fail_mode` until it does"
            );
        }
        Ok(Arc::new(RedisRateLimiter::new(
            pool,
            ip,
            user,
            config.rate_limit_fail_mode,
        )))
    }
);

#[cfg(test)]
mod tests {
    use super::*;
    use openhands_core::config::RedisConfig;
    use std::io::Write;

    /// A pool on a loopback port where nothing listens.
    fn unreachable_pool() -> RedisPool {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        RedisPool::new(&RedisConfig {
            port,
            ..RedisConfig::default()
        })
        .expect("pool")
    }

    /// Log lines written while the guard lives.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
        }
    }

    #[tokio::test]
    async fn without_redis_it_fails_open_with_one_warning_not_one_per_request() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let user = "5/s".parse().ok();
        let limiter =
            RedisRateLimiter::new(unreachable_pool(), None, user, RateLimitFailMode::Open);
        for _ in 0..50 {
            assert_eq!(
                limiter.check(RateKey::User("u")).await,
                RateDecision::Unlimited
            );
        }
        let log = captured.text();
        assert_eq!(log.matches("WARN").count(), 1, "{log}");
        assert!(log.contains("cannot reach Redis"), "{log}");
    }

    #[tokio::test]
    async fn without_redis_it_fails_closed_when_told_to() {
        let user = "5/s".parse().ok();
        let limiter =
            RedisRateLimiter::new(unreachable_pool(), None, user, RateLimitFailMode::Closed);
        assert_eq!(
            limiter.check(RateKey::User("u")).await,
            RateDecision::Unavailable {
                retry_after: Duration::from_secs(1)
            }
        );
        assert_eq!(
            limiter.check(RateKey::Ip("127.0.0.1")).await,
            RateDecision::Unlimited,
            "no IP limit configured: Redis is not needed"
        );
    }

    #[test]
    fn keys_carry_prefix_kind_hash_tagged_id_and_period() {
        let pool = RedisPool::new(&RedisConfig::default()).expect("pool");
        let limiter = RedisRateLimiter::new(pool, None, None, RateLimitFailMode::Open);
        assert_eq!(
            limiter.counter_key(RateKey::User("u-1"), "1s"),
            "openhands:rl:user:{u-1}:1s"
        );
        assert_eq!(
            limiter.counter_key(RateKey::Ip("::1"), "1min"),
            "openhands:rl:ip:{::1}:1min"
        );
    }
}
