//! SaaS login: the `saas.oidc` [`UserAuth`] and its routes.
//!
//! A browser logs in through any OpenID Connect provider (Keycloak, as OpenHands deploys it,
//! or another one by issuer URL) with the authorization-code flow, PKCE, `state` and a
//! nonce; the callback leaves a sealed session cookie (`keycloak_auth`) that later requests
//! present. Programs present an API key instead. Both end up as the same
//! [`AuthenticatedUser`]: the user (the provider's subject) in their current organization.
//!
//! Pieces, each with one job:
//! - [`provider`]: discovery, code exchange, ID token verification, refresh, revocation
//!   (the `openidconnect` crate does the protocol).
//! - [`session`]: the two cookies, sealed with the server's secrets key.
//! - [`gates`]: verified e-mail, accepted terms, allowlist, CSRF origin check.
//! - [`service`]: the `UserAuth` that ties them together per request.
//! - [`routes`]: login, callback, logout, authenticate, accept_tos.
//! - [`users`]: the `users` rows logins create.
//!
//! [`UserAuth`]: openhands_core::extension::UserAuth
//! [`AuthenticatedUser`]: openhands_core::extension::AuthenticatedUser

pub mod gates;
pub mod provider;
pub mod routes;
pub mod service;
pub mod session;
pub mod users;

pub use service::{OidcAuth, SetupError};

use openhands_core::registry::PluginError;
use std::sync::Arc;

openhands_core::register_plugin!(
    openhands_core::extension::UserAuth,
    "saas.oidc",
    "OIDC login (Keycloak or any provider) with session cookies, API keys and sign-in gates",
    |ctx| {
        let db = openhands_sql_store::plugin_database(ctx).await?;
        let auth = Arc::new(
            OidcAuth::from_config(&ctx.config, ctx.cipher.clone(), db)
                .map_err(|e| PluginError(e.to_string()))?,
        );
        let shared = auth.clone();
        ctx.shared
            .get_or_try_init::<Arc<OidcAuth>, PluginError, _, _>(routes::SERVICE_KEY, || async {
                Ok(shared)
            })
            .await?;
        Ok(auth)
    }
);
