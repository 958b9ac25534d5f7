//! SaaS login: the `saas.oidc` [`UserAuth`] and its routes.
//!
//! A browser logs in through any OpenID Connect provider (Keycloak, as OpenHands deploys it,
//! or another one by issuer URL) with the authorization-code flow, PKCE, `state` and a
//! nonce; the callback creates a server-side session record and leaves a sealed session
//! cookie (`keycloak_auth`) carrying its token, which later requests present. Programs
//! present an API key instead. Both end up as the same [`AuthenticatedUser`]: the user (the
//! provider's subject) in their current organization.
//!
//! Pieces, each with one job:
//! - [`provider`]: discovery, code exchange, ID token verification, refresh, revocation
//!   (the `openidconnect` crate does the protocol).
//! - [`session`]: the two cookies, sealed with the cookie key of [`cookie_key`] (its own
//!   rotation list, or derived from the secrets key; never the data key itself).
//! - [`session_store`] and [`migration`]: the session records (revocation, absolute
//!   lifetime, last use), so that logout and "log out everywhere" really end a session.
//! - [`gates`]: verified e-mail, accepted terms, allowlist, CSRF origin check.
//! - [`service`]: the `UserAuth` that ties them together per request.
//! - [`routes`]: login, callback, logout, authenticate, accept_tos; [`session_routes`]:
//!   listing and revoking sessions, an org admin's revocation of a member's sessions;
//!   [`openapi`]: their description in `/openapi.json`.
//! - [`users`]: the `users` rows logins create.
//!
//! [`UserAuth`]: openhands_core::extension::UserAuth
//! [`AuthenticatedUser`]: openhands_core::extension::AuthenticatedUser

pub mod cookie_key;
pub mod email;
pub mod gates;
pub mod keycloak_admin;
pub mod migration;
pub mod openapi;
pub mod provider;
pub mod routes;
pub mod service;
pub mod session;
pub mod session_routes;
pub mod session_store;
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
        let cookie_cipher = cookie_key::cookie_cipher(&ctx.config, &ctx.data_dir)
            .map_err(|e| PluginError(e.to_string()))?;
        let auth = Arc::new(
            OidcAuth::from_config(&ctx.config, Arc::new(cookie_cipher), db)
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
