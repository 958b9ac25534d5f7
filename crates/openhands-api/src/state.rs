//! What every handler can reach.

use openhands_core::config::Config;
use openhands_core::registry::Extensions;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Shared application state, one per server process.
pub struct AppState {
    pub config: Arc<Config>,
    pub ext: Extensions,
    pub started: Instant,
    /// Milliseconds since `started` of the last request, for `/server_info`'s idle time.
    last_request_ms: AtomicU64,
    /// The OpenAPI document, rendered once.
    pub openapi_json: Vec<u8>,
    pub cpu_sampler: crate::system_stats::CpuSampler,
    /// Draining and closing at shutdown (see [`crate::lifecycle`]).
    pub lifecycle: Arc<crate::lifecycle::Lifecycle>,
    /// The linked providers' services behind `/api/user/*`, one per provider.
    pub git_services: Vec<Arc<dyn openhands_core::extension::GitService>>,
    /// Users' repository listings, for [`crate::routes::git::LIST_TTL`].
    pub repository_lists: crate::routes::git::ListCache,
}

impl AppState {
    pub fn new(config: Arc<Config>, ext: Extensions) -> Self {
        let git_services = openhands_core::extension::GitServiceRegistration::available(&config);
        let mut state = Self {
            config,
            ext,
            started: Instant::now(),
            last_request_ms: AtomicU64::new(0),
            openapi_json: Vec::new(),
            cpu_sampler: crate::system_stats::CpuSampler::default(),
            lifecycle: Arc::default(),
            git_services,
            repository_lists: crate::routes::git::ListCache::new(
                crate::routes::git::LIST_TTL,
                10_000,
            ),
        };
        state.openapi_json = crate::openapi::render(&state);
        state
    }

    /// Records that a request arrived now.
    pub fn touch(&self) {
        let ms = self.started.elapsed().as_millis() as u64;
        self.last_request_ms.store(ms, Ordering::Relaxed);
    }

    /// Seconds since the last request other than the current one.
    pub fn idle_seconds(&self) -> f64 {
        let last = self.last_request_ms.load(Ordering::Relaxed) as f64 / 1000.0;
        (self.started.elapsed().as_secs_f64() - last).max(0.0)
    }
}
