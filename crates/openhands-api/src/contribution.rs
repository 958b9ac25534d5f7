//! Routes contributed by provider crates (SaaS routes, integrations).
//!
//! A provider crate adds HTTP routes without edits to this crate or the server: it submits a
//! [`RouteContribution`] with `inventory::submit!`, and [`configure_enabled`] mounts every
//! linked contribution whose `enabled` says yes for the running server (SaaS mode only, or
//! only when the provider's flags are set, as OpenHands mounts its GitHub routes only when
//! `GITHUB_APP_CLIENT_ID` is set). Contributions are mounted after the open API's routes and
//! before the web-app fallback, in name order, so the result does not depend on link order.

use crate::state::AppState;
use actix_web::web;

/// Routes a provider crate adds.
pub struct RouteContribution {
    /// Stable dotted name, e.g. `saas.orgs`.
    pub name: &'static str,
    pub description: &'static str,
    /// Whether to mount them on this server.
    pub enabled: fn(&AppState) -> bool,
    pub configure: fn(&mut web::ServiceConfig),
}

inventory::collect!(RouteContribution);

/// The OpenAPI description of routes a provider crate adds, merged into `/openapi.json`
/// whenever `enabled` says the routes are mounted, so the document describes the server
/// that serves it. A crate submits one next to its [`RouteContribution`], usually with the
/// same `enabled`, and `document` built from its handlers' `#[utoipa::path]` annotations
/// (`<ItsApiDoc as utoipa::OpenApi>::openapi`).
pub struct OpenApiContribution {
    /// Stable dotted name, e.g. `saas.orgs`.
    pub name: &'static str,
    pub enabled: fn(&AppState) -> bool,
    pub document: fn() -> utoipa::openapi::OpenApi,
}

inventory::collect!(OpenApiContribution);

impl OpenApiContribution {
    /// Every linked contribution, sorted by name.
    pub fn registered() -> Vec<&'static OpenApiContribution> {
        let mut all: Vec<_> = inventory::iter::<OpenApiContribution>.into_iter().collect();
        all.sort_unstable_by_key(|c| c.name);
        all
    }
}

impl RouteContribution {
    /// Every linked contribution, sorted by name.
    pub fn registered() -> Vec<&'static RouteContribution> {
        let mut all: Vec<_> = inventory::iter::<RouteContribution>.into_iter().collect();
        all.sort_unstable_by_key(|c| c.name);
        all
    }
}

/// True when the selected config class is SaaS mode (`APP_MODE` `saas`).
pub fn saas_mode(state: &AppState) -> bool {
    state.ext.app_mode == "saas"
}

/// Mounts every enabled contribution; returns the names mounted.
pub fn configure_enabled(cfg: &mut web::ServiceConfig, state: &AppState) -> Vec<&'static str> {
    let mut mounted = Vec::new();
    for contribution in RouteContribution::registered() {
        if (contribution.enabled)(state) {
            (contribution.configure)(cfg);
            mounted.push(contribution.name);
        }
    }
    mounted
}
