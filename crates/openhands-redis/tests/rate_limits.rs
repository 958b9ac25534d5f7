//! `saas.redis_rate_limit` through the real server, against a real Redis.
//!
//! Most tests use the machine's Redis (or one throw-away server per test process) with a key
//! prefix of their own; the tests that stop Redis start a `redis-server` of their own. The
//! user comes from `X-Test-User` (`test.header_user` from `openhands-test-support`), so the per-user
//! limit can be tested with several users.

use openhands_core::config::{
    Config, RateLimitFailMode, RateLimitSetting, RedisConfig, UserRateLimitSetting,
};
use openhands_core::registry::{ConfigClass, Slot};
use openhands_core::secret::Secret;
use openhands_redis::{RedisPool, redis};
use openhands_test_support::TestServer;
use openhands_test_support::redis::{TestRedis, redis_for_test};
use serde_json::{Value, json};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

// Linked by name so their registrations are in this test binary.
use openhands_redis as _;
use openhands_server as _;
use openhands_test_support::header_user::HEADER_USER_AUTH;

/// A route that needs a logged-in user and does nothing else.
const USER_ROUTE: &str = "/api/options/agents";

fn windows(text: &str) -> UserRateLimitSetting {
    UserRateLimitSetting::Windows(text.parse().expect("windows"))
}

/// A server counting in Redis at `url` under `prefix`, after `adjust`.
async fn server(url: &str, prefix: &str, adjust: impl FnOnce(&mut Config)) -> TestServer {
    let (url, prefix) = (url.to_owned(), prefix.to_owned());
    TestServer::spawn_with(move |c| {
        c.plugins.rate_limiter = Some("saas.redis_rate_limit".into());
        c.plugins.user_auth = Some(HEADER_USER_AUTH.into());
        c.redis.url = Some(Secret::new(url));
        c.redis.key_prefix = prefix;
        adjust(c);
    })
    .await
}

async fn get_as(server: &TestServer, user: &str, path: &str) -> reqwest::Response {
    server
        .client
        .get(server.url(path))
        .header("X-Test-User", user)
        .send()
        .await
        .expect("request")
}

fn header(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn number(res: &reqwest::Response, name: &str) -> u64 {
    header(res, name)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("`{name}` missing or not a number: {:?}", res.headers()))
}

fn epoch_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

async fn body(res: reqwest::Response) -> Value {
    let text = res.text().await.expect("body");
    serde_json::from_str(&text).unwrap_or(Value::String(text))
}

/// Sends `send` until it answers 429 (at most `tries` times); the 429, if any.
async fn until_limited<F, Fut>(tries: usize, mut send: F) -> Option<reqwest::Response>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = reqwest::Response>,
{
    for _ in 0..tries {
        let res = send().await;
        match res.status().as_u16() {
            429 => return Some(res),
            200 => {}
            other => panic!("unexpected status {other}: {}", body(res).await),
        }
    }
    None
}

/// The keys under `prefix`, through the crate's own pool.
async fn keys(url: &str, prefix: &str) -> Vec<String> {
    let pool = RedisPool::new(&RedisConfig {
        url: Some(Secret::new(url)),
        command_timeout_ms: 5_000,
        ..RedisConfig::default()
    })
    .expect("pool");
    let pattern = format!("{prefix}*");
    let mut keys: Vec<String> = pool
        .run(|mut connection| async move {
            redis::cmd("KEYS")
                .arg(pattern)
                .query_async(&mut connection)
                .await
        })
        .await
        .expect("KEYS");
    keys.sort();
    keys
}

#[test]
fn saas_mode_selects_the_redis_limiter() {
    let saas = ConfigClass::find("saas").expect("saas class linked");
    assert_eq!(
        saas.default_for(Slot::RateLimiter),
        Some("saas.redis_rate_limit")
    );
    let names: Vec<_> = Slot::RateLimiter
        .registered()
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert!(names.contains(&"saas.redis_rate_limit"), "{names:?}");
}

#[tokio::test]
async fn ip_limit_answers_429_with_retry_after_and_rate_limit_headers() {
    let redis = redis_for_test().expect("Redis for tests");
    // 1 per second: 2 per second (burst) and 60 per minute.
    let server = server(redis.url(), redis.key_prefix(), |c| {
        c.rate_limit = RateLimitSetting::PerSecond(1);
    })
    .await;

    let first = server.get("/alive").await;
    assert_eq!(first.status(), 200);
    assert_eq!(number(&first, "x-ratelimit-limit"), 2);
    assert_eq!(number(&first, "x-ratelimit-remaining"), 1);
    assert!(number(&first, "x-ratelimit-reset") >= epoch_now());

    let refused = until_limited(80, || server.get("/alive"))
        .await
        .expect("the IP limit refuses within the minute window");
    let limit = number(&refused, "x-ratelimit-limit");
    assert!(limit == 2 || limit == 60, "{limit}");
    assert_eq!(number(&refused, "x-ratelimit-remaining"), 0);
    let retry_after = number(&refused, "retry-after");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert!(number(&refused, "x-ratelimit-reset") >= epoch_now());
    assert_eq!(body(refused).await, json!({"message": "Too many requests"}));

    let prefix = redis.key_prefix();
    assert_eq!(
        keys(redis.url(), prefix).await,
        [
            format!("{prefix}rl:ip:{{127.0.0.1}}:1min"),
            format!("{prefix}rl:ip:{{127.0.0.1}}:1s"),
        ],
        "one counter per window, named by kind, id and period"
    );
}

#[tokio::test]
async fn user_limit_answers_429_in_openhands_shape_and_counts_users_apart() {
    let redis = redis_for_test().expect("Redis for tests");
    let server = server(redis.url(), redis.key_prefix(), |c| {
        c.user_rate_limit = windows("3/min");
    })
    .await;

    for n in 0..3 {
        let res = get_as(&server, "alice", USER_ROUTE).await;
        assert_eq!(res.status(), 200, "request {n} is within the limit");
    }
    let refused = get_as(&server, "alice", USER_ROUTE).await;
    assert_eq!(refused.status(), 429);
    assert_eq!(number(&refused, "x-ratelimit-limit"), 3);
    assert_eq!(number(&refused, "x-ratelimit-remaining"), 0);
    assert!((1..=60).contains(&number(&refused, "retry-after")));
    let reset = number(&refused, "x-ratelimit-reset");
    assert!((epoch_now()..=epoch_now() + 61).contains(&reset), "{reset}");
    assert_eq!(
        body(refused).await,
        json!({"error": "Rate limit exceeded: 3 per 1 minute"})
    );

    assert_eq!(
        get_as(&server, "bob", USER_ROUTE).await.status(),
        200,
        "bob has his own counter"
    );
    assert_eq!(
        server.get(USER_ROUTE).await.status(),
        401,
        "the user limit applies after a successful login only"
    );
    assert_eq!(
        server.get("/alive").await.status(),
        200,
        "routes without login are not counted per user"
    );
    // The event socket authenticates by itself; it counts against the same limit.
    let socket = get_as(
        &server,
        "alice",
        "/api/conversations/0123456789abcdef0123456789abcdef/events/socket",
    )
    .await;
    assert_eq!(socket.status(), 429);
}

#[tokio::test]
async fn two_servers_on_one_redis_share_the_count() {
    let redis = redis_for_test().expect("Redis for tests");
    let limit = |c: &mut Config| c.user_rate_limit = windows("4/min");
    let a = server(redis.url(), redis.key_prefix(), limit).await;
    let b = server(redis.url(), redis.key_prefix(), limit).await;

    for server in [&a, &b, &a, &b] {
        assert_eq!(get_as(server, "carol", USER_ROUTE).await.status(), 200);
    }
    assert_eq!(get_as(&a, "carol", USER_ROUTE).await.status(), 429);
    assert_eq!(get_as(&b, "carol", USER_ROUTE).await.status(), 429);
}

#[tokio::test]
async fn a_window_lets_requests_through_again_once_it_ends() {
    let redis = redis_for_test().expect("Redis for tests");
    let server = server(redis.url(), redis.key_prefix(), |c| {
        c.user_rate_limit = windows("2/2s");
    })
    .await;

    let refused = until_limited(20, || get_as(&server, "dave", USER_ROUTE))
        .await
        .expect("limited within the window");
    let wait = number(&refused, "retry-after");
    assert!((1..=2).contains(&wait), "{wait}");
    tokio::time::sleep(Duration::from_secs(wait) + Duration::from_millis(100)).await;
    assert_eq!(get_as(&server, "dave", USER_ROUTE).await.status(), 200);
}

#[tokio::test]
async fn redis_stopped_mid_test_fails_open_and_limiting_resumes_after_restart() {
    let mut redis = TestRedis::start().expect("redis-server");
    let server = server(&redis.url(), "t:", |c| {
        c.user_rate_limit = windows("2/min");
    })
    .await;
    let alice = || get_as(&server, "alice", USER_ROUTE);
    assert_eq!(alice().await.status(), 200);
    assert_eq!(alice().await.status(), 200);
    assert_eq!(alice().await.status(), 429);

    redis.stop();
    for n in 0..5 {
        let res = alice().await;
        assert_eq!(res.status(), 200, "request {n} is served without Redis");
        assert!(header(&res, "x-ratelimit-limit").is_none());
    }

    redis.restart().expect("restart");
    let mut statuses = Vec::new();
    for _ in 0..60 {
        let status = alice().await.status().as_u16();
        statuses.push(status);
        if status == 429 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        statuses.last(),
        Some(&429),
        "limiting resumes once Redis is back: {statuses:?}"
    );
}

#[tokio::test]
async fn redis_stopped_in_fail_closed_mode_answers_503_never_500() {
    let mut redis = TestRedis::start().expect("redis-server");
    let closed = |c: &mut Config| {
        c.rate_limit_fail_mode = RateLimitFailMode::Closed;
        c.user_rate_limit = windows("100/min");
    };
    let per_user = server(&redis.url(), "t:", closed).await;
    let per_ip = server(&redis.url(), "t:", |c| {
        closed(c);
        c.rate_limit = RateLimitSetting::PerSecond(100);
    })
    .await;
    assert_eq!(get_as(&per_user, "erin", USER_ROUTE).await.status(), 200);
    assert_eq!(per_ip.get("/alive").await.status(), 200);

    redis.stop();
    let refused = get_as(&per_user, "erin", USER_ROUTE).await;
    assert_eq!(refused.status(), 503);
    assert_eq!(number(&refused, "retry-after"), 1);
    assert_eq!(
        body(refused).await,
        json!({"error": "Rate limiting is temporarily unavailable; retry shortly"})
    );
    assert_eq!(
        per_user.get("/alive").await.status(),
        200,
        "requests without login and without an IP limit never ask Redis"
    );
    let refused = per_ip.get("/alive").await;
    assert_eq!(refused.status(), 503);
    assert_eq!(number(&refused, "retry-after"), 1);
    assert_eq!(
        body(refused).await,
        json!({"message": "Rate limiting is temporarily unavailable; retry shortly"})
    );

    redis.restart().expect("restart");
    let mut last = 0;
    for _ in 0..60 {
        last = get_as(&per_user, "erin", USER_ROUTE)
            .await
            .status()
            .as_u16();
        if last == 200 {
            break;
        }
        assert_eq!(last, 503);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(last, 200, "served again once Redis is back");
}
