//! `test.header_user`: a `UserAuth` for tests where the user is whoever `X-Test-User` names
//! (401 without it), so a test can act as several users without a login flow. Registered
//! in every test binary that links this crate; only selected by tests that ask for it.

use async_trait::async_trait;
use openhands_core::extension::{AuthError, AuthenticatedUser, RequestHeaders, UserAuth};
use openhands_core::scope::UserScope;
use std::sync::Arc;

/// The plugin name to put in `plugins.user_auth`.
pub const HEADER_USER_AUTH: &str = "test.header_user";
/// The header naming the user.
pub const USER_HEADER: &str = "x-test-user";

/// The user named by [`USER_HEADER`].
pub struct HeaderUserAuth;

#[async_trait]
impl UserAuth for HeaderUserAuth {
    async fn authenticate(
        &self,
        request: &dyn RequestHeaders,
    ) -> Result<AuthenticatedUser, AuthError> {
        let user = request
            .header(USER_HEADER)
            .ok_or_else(|| AuthError::Unauthorized("X-Test-User missing".into()))?;
        Ok(AuthenticatedUser {
            scope: UserScope {
                user_id: Some(user.to_owned()),
                org_id: None,
            },
            email: None,
            auth_type: None,
            set_cookies: Vec::new(),
        })
    }
}

openhands_core::register_plugin!(
    openhands_core::extension::UserAuth,
    HEADER_USER_AUTH,
    "Test only: the user named by X-Test-User",
    |ctx| Ok(Arc::new(HeaderUserAuth))
);
