//! The load generator: N keep-alive connections, each sending one request after
//! another for a warm-up and then a measured window.
//!
//! Closed-loop (a worker sends its next request when the previous answer is
//! read), which is what "N concurrent clients" means and keeps the generator from
//! queueing requests the server never saw. Each worker keeps its own latency
//! vector so the hot loop shares nothing; vectors are merged once at the end.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::task::JoinSet;

use super::client::{HttpConn, RequestSpec};

/// How hard and how long to load one scenario.
#[derive(Debug, Clone, Copy)]
pub struct LoadConfig {
    pub connections: usize,
    pub warmup: Duration,
    pub duration: Duration,
}

/// What one scenario measured.
#[derive(Debug, Default)]
pub struct LoadOutcome {
    /// Responses received in the measured window (any status).
    pub requests: u64,
    /// Unsuccessful responses (non-2xx, or not the request's expected status) plus
    /// transport failures in the measured window.
    pub errors: u64,
    /// Latency of every response received in the window, microseconds, unsorted.
    pub latencies_us: Vec<u32>,
}

/// The phase boundaries every worker shares.
#[derive(Debug, Clone, Copy)]
struct Window {
    measure_from: Instant,
    end: Instant,
}

impl Window {
    /// Whether a request started at `started` and done at `done` is measured.
    fn counts(&self, started: Instant, done: Instant) -> bool {
        started >= self.measure_from && done <= self.end
    }
}

/// Loads `addr` with `request` on `config.connections` connections.
pub async fn run(
    addr: SocketAddr,
    request: &RequestSpec,
    config: LoadConfig,
) -> Result<LoadOutcome> {
    let start = Instant::now();
    let window = Window {
        measure_from: start + config.warmup,
        end: start + config.warmup + config.duration,
    };
    let mut workers = JoinSet::new();
    for _ in 0..config.connections {
        let request = request.clone();
        workers.spawn(async move { worker(addr, request, window).await });
    }
    let mut total = LoadOutcome::default();
    while let Some(joined) = workers.join_next().await {
        let outcome = joined.context("load worker panicked")??;
        total.requests += outcome.requests;
        total.errors += outcome.errors;
        total.latencies_us.extend(outcome.latencies_us);
    }
    Ok(total)
}

async fn worker(addr: SocketAddr, request: RequestSpec, window: Window) -> Result<LoadOutcome> {
    let mut conn = HttpConn::connect(addr).await.context("load worker")?;
    let mut outcome = LoadOutcome {
        latencies_us: Vec::with_capacity(64 * 1024),
        ..LoadOutcome::default()
    };
    loop {
        let started = Instant::now();
        if started >= window.end {
            return Ok(outcome);
        }
        let result = conn.send(&request).await;
        let done = Instant::now();
        let measured = window.counts(started, done);
        match result {
            Ok(reply) => {
                if measured {
                    outcome.requests += 1;
                    outcome.latencies_us.push(as_micros(done - started));
                    if !request.succeeded(reply.status) {
                        outcome.errors += 1;
                    }
                }
            }
            Err(_) => {
                // The connection is unusable after a transport error: count it
                // and open a new one (a refused reconnect ends the scenario).
                if measured {
                    outcome.errors += 1;
                }
                conn = HttpConn::connect(addr)
                    .await
                    .context("load worker reconnecting after a transport error")?;
            }
        }
    }
}

/// Saturates at `u32::MAX` µs (71 minutes): no single request takes that long.
fn as_micros(elapsed: Duration) -> u32 {
    u32::try_from(elapsed.as_micros()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_requests_inside_the_window_count() {
        let t0 = Instant::now();
        let window = Window {
            measure_from: t0 + Duration::from_secs(1),
            end: t0 + Duration::from_secs(2),
        };
        let at = |ms| t0 + Duration::from_millis(ms);
        assert!(!window.counts(at(900), at(1100)), "started in warm-up");
        assert!(window.counts(at(1000), at(1500)));
        assert!(window.counts(at(1500), at(2000)));
        assert!(!window.counts(at(1900), at(2100)), "finished after the end");
    }

    fn config() -> LoadConfig {
        LoadConfig {
            connections: 4,
            warmup: Duration::from_millis(50),
            duration: Duration::from_millis(200),
        }
    }

    #[tokio::test]
    async fn counts_responses_over_keep_alive_connections() -> Result<()> {
        let addr = super::super::fake_server::spawn("200 OK").await?;
        let request = RequestSpec::post_json("/api/settings", r#"{"a":1}"#);
        let outcome = run(addr, &request, config()).await?;
        assert!(outcome.requests > 0);
        assert_eq!(outcome.errors, 0);
        assert_eq!(outcome.latencies_us.len() as u64, outcome.requests);
        Ok(())
    }

    #[tokio::test]
    async fn non_2xx_responses_are_errors() -> Result<()> {
        let addr = super::super::fake_server::spawn("404 Not Found").await?;
        let outcome = run(addr, &RequestSpec::get("/missing"), config()).await?;
        assert!(outcome.requests > 0);
        assert_eq!(outcome.errors, outcome.requests);
        Ok(())
    }

    #[tokio::test]
    async fn another_2xx_than_the_expected_status_is_an_error() -> Result<()> {
        let addr = super::super::fake_server::spawn("200 OK").await?;
        let request = RequestSpec::post_json("/hook", "{}").expecting(hyper::StatusCode::ACCEPTED);
        let outcome = run(addr, &request, config()).await?;
        assert!(outcome.requests > 0);
        assert_eq!(outcome.errors, outcome.requests);
        Ok(())
    }

    #[tokio::test]
    async fn unreachable_server_fails_the_scenario() -> Result<()> {
        // Bind and drop to get a port nothing listens on.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        assert!(
            run(addr, &RequestSpec::get("/alive"), config())
                .await
                .is_err()
        );
        Ok(())
    }

    #[test]
    fn micros_saturate() {
        assert_eq!(as_micros(Duration::from_micros(1500)), 1500);
        assert_eq!(as_micros(Duration::from_secs(10_000)), u32::MAX);
    }
}
