//! `oss.local_user`: the single local user of OSS mode (OpenHands' `DefaultUserAuth`).
//!
//! No login. When `SESSION_API_KEY` is configured, every guarded request must carry the same
//! value in `X-Session-API-Key` (compared in constant time), else it gets 401.

use crate::extension::{AuthError, AuthenticatedUser, RequestHeaders, UserAuth};
use crate::scope::UserScope;
use crate::secret::Secret;
use async_trait::async_trait;
use std::sync::Arc;

/// The header that carries the session key.
pub const SESSION_API_KEY_HEADER: &str = "x-session-api-key";

/// One local user, optionally guarded by a session key.
pub struct LocalUserAuth {
    session_api_key: Option<Secret>,
}

impl LocalUserAuth {
    pub fn new(session_api_key: Option<Secret>) -> Self {
        Self { session_api_key }
    }
}

#[async_trait]
impl UserAuth for LocalUserAuth {
    async fn authenticate(
        &self,
        request: &dyn RequestHeaders,
    ) -> Result<AuthenticatedUser, AuthError> {
        if let Some(expected) = &self.session_api_key {
            let given = request.header(SESSION_API_KEY_HEADER).unwrap_or_default();
            if !crate::secret::constant_time_eq(given, expected.expose()) {
                return Err(AuthError::Unauthorized("Unauthorized".into()));
            }
        }
        Ok(AuthenticatedUser {
            scope: UserScope::local(),
            email: None,
            auth_type: None,
            set_cookies: Vec::new(),
        })
    }
}

crate::register_plugin!(
    crate::extension::UserAuth,
    "oss.local_user",
    "One local user, no login; SESSION_API_KEY guards the API when set",
    |ctx| Ok(Arc::new(LocalUserAuth::new(
        ctx.config.session_api_key.clone()
    )))
);
