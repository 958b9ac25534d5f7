//! SaaS mode's Redis: one connection pool per server, and the rate limiter that counts in it.
//!
//! Several servers behind a load balancer must agree on how many requests a user or an IP
//! has made, so their counters live in Redis rather than in each process
//! (`saas.redis_rate_limit`, see [`rate_limit`]). The same Redis will carry what clustered
//! conversation managers share, so the connection pool is not owned by the limiter: it is a
//! per-server resource in [`SharedResources`](openhands_core::shared::SharedResources), got
//! through [`server_pool`]. Any plugin that needs Redis calls `server_pool(ctx)` in its
//! constructor and receives the same pool; nothing opens a second one.
//!
//! Redis is never on the critical path of correctness: every call is bounded by
//! `redis.command_timeout_ms`, and a failed call is the caller's to absorb (the limiter fails
//! open or closed as configured, never with a 500). Connections are opened lazily, so a
//! server starts while Redis is down and uses it as soon as it answers.

pub mod change_feed;
pub mod pool;
pub mod rate_limit;

pub use change_feed::RedisChangeFeed;
pub use pool::{RedisError, RedisPool, server_pool};
pub use rate_limit::RedisRateLimiter;

/// The `redis` crate as this crate uses it (for callers that run their own commands).
pub use deadpool_redis::redis;
