//! Wiring only: configuration in, a running server out.
//!
//! [`build_state`] loads the encryption key and resolves every extension point through the
//! registry; [`create_app`] assembles the actix-web `App` (middleware order, routes, web
//! app). `main` and the tests use the same two functions, so tests run the real thing.
//! Provider crates are linked in [`plugins`] behind Cargo features.

pub mod cli;
pub mod plugins;
#[cfg(feature = "saas")]
pub mod saas;
pub mod shutdown;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::middleware::{Compress, Condition, from_fn};
use actix_web::{App, web};
use anyhow::Context;
use openhands_api::body_timeout::BodyReadTimeout;
use openhands_api::host_check::HostCheck;
use openhands_api::origin::OriginCheck;
use openhands_api::{AppState, contribution, methods, middleware, routes, spa};
use openhands_core::config::{Config, RateLimitSetting};
use openhands_core::crypto::Cipher;
use openhands_core::registry::{self, PluginContext};
use openhands_core::sandbox_host::{Isolation, UNISOLATED_WARNING};
use std::sync::Arc;

pub use openhands_core::crypto::KEY_FILE;

/// The cipher for secrets at rest: the configured keys (`secrets_key`, `secrets_keys`), else
/// the key file in the data dir (created on first run).
pub fn load_cipher(config: &Config) -> anyhow::Result<Arc<Cipher>> {
    let data_dir = config.data_dir();
    let cipher = Cipher::from_config(config, &data_dir)
        .context("loading the secrets keys (`secrets_key` / `secrets_keys`)")?;
    Ok(Arc::new(cipher))
}

/// Resolves every extension point and builds the shared state.
pub async fn build_state(config: Config) -> anyhow::Result<web::Data<AppState>> {
    let data_dir = config.data_dir();
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating the data dir {}", data_dir.display()))?;
    let cipher = load_cipher(&config)?;
    let config = Arc::new(config);
    let ctx = PluginContext {
        config: config.clone(),
        data_dir,
        cipher,
        services: None,
        shared: Default::default(),
    };
    let ext = registry::resolve(&ctx).await?;
    check_isolation(&config, ext.app_mode, ext.sandbox.isolation())?;
    for (slot, name) in &ext.selected {
        tracing::debug!(slot = %slot, implementation = %name, "extension point resolved");
    }
    Ok(web::Data::new(AppState::new(config, ext)))
}

/// A multi-user server whose sandbox isolates nothing lets every tenant's agent read the
/// server's keys and the other tenants' data: SaaS mode refuses it unless the deployer
/// said `sandbox.allow_unisolated = true`, and then warns (so does `/ready`).
fn check_isolation(config: &Config, app_mode: &str, isolation: Isolation) -> anyhow::Result<()> {
    if app_mode != "saas" || isolation != Isolation::None {
        return Ok(());
    }
    if !config.sandbox.allow_unisolated {
        anyhow::bail!(
            "SaaS mode needs an isolated sandbox, but the selected one (plugins.sandbox) runs \
             agents as plain processes with this server's rights; select saas.bwrap, or set \
             sandbox.allow_unisolated = true (OPENHANDS_SANDBOX__ALLOW_UNISOLATED=true) for a \
             trusted single-tenant deployment"
        );
    }
    tracing::warn!(
        "{UNISOLATED_WARNING}; every tenant's agent can read this server's keys and the other tenants' data"
    );
    Ok(())
}

/// The application: OpenHands' middleware order (rate limit -> cache control -> CORS ->
/// routes) inside our request log, then the API routes, then the web app as the fallback.
/// Inside CORS, the cross-site check refuses state-changing requests from other sites'
/// pages (so its 403 carries CORS headers), and request bodies get a read timeout.
pub fn create_app(
    state: web::Data<AppState>,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let config = state.config.clone();
    let rate_limited = config.rate_limit != RateLimitSetting::Off;
    let contributions = state.clone();
    App::new()
        .app_data(state)
        .app_data(openhands_api::query_config())
        // Before `routes::configure`: the streamed trajectory answers the route first.
        .configure(routes::configure)
        .configure(move |cfg| {
            let mounted = contribution::configure_enabled(cfg, &contributions);
            tracing::debug!(?mounted, "route contributions mounted");
        })
        // After every route: the web app, and OPTIONS's `Allow` (see `methods`).
        .service(methods::fallback())
        .default_service(web::to(spa::fallback))
        // Innermost, so the router serves HEAD as GET.
        .wrap(from_fn(methods::head_and_options))
        .wrap(BodyReadTimeout::new(
            config.body_read_timeout_ms,
            config.body_min_bytes_per_second,
        ))
        .wrap(from_fn(middleware::session_cookies))
        .wrap(OriginCheck::from_config(&config))
        .wrap(HostCheck::from_config(&config))
        .wrap(middleware::cors(&config.permitted_cors_origins))
        .wrap(from_fn(middleware::cache_control))
        .wrap(from_fn(middleware::security_headers))
        .wrap(Condition::new(
            rate_limited,
            from_fn(middleware::rate_limit),
        ))
        .wrap(Compress::default())
        .wrap(from_fn(middleware::request_log))
}
