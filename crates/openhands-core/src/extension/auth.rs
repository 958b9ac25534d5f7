//! Who is making a request.

use crate::scope::UserScope;
use async_trait::async_trait;

/// Read access to what auth needs of a request (method, path, headers), so that core stays
/// free of any web framework.
pub trait RequestHeaders: Send + Sync {
    /// The first value of a header (case-insensitive name), if present and valid text.
    fn header(&self, name: &str) -> Option<&str>;
    /// The HTTP method, upper case (`GET`, `POST`, ...).
    fn method(&self) -> &str;
    /// The request path, without the query string.
    fn path(&self) -> &str;

    /// The value of one cookie, if the request carries it.
    fn cookie(&self, name: &str) -> Option<&str> {
        let header = self.header("cookie")?;
        header.split(';').find_map(|pair| {
            let (key, value) = pair.trim().split_once('=')?;
            (key == name).then_some(value)
        })
    }
}

/// How the request proved who it is (OpenHands' `AuthType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthType {
    Cookie,
    Bearer,
}

/// The authenticated caller.
#[derive(Debug, Clone, Default)]
pub struct AuthenticatedUser {
    pub scope: UserScope,
    pub email: Option<String>,
    pub auth_type: Option<AuthType>,
    /// `Set-Cookie` header values the response must carry (a refreshed session cookie).
    pub set_cookies: Vec<String>,
}

/// Why a request was refused.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    /// No or wrong credentials: 401.
    #[error("{0}")]
    Unauthorized(String),
    /// Known caller, but not allowed here: 403 with a machine-readable code.
    #[error("{message}")]
    Forbidden { code: String, message: String },
    /// The session is over (expired, revoked, tampered): 401, and the response carries
    /// `clear_cookie` (a `Set-Cookie` value that deletes the session cookie).
    #[error("{message}")]
    SessionEnded {
        message: String,
        clear_cookie: String,
    },
    /// The auth backend failed: 503.
    #[error("authentication backend unavailable: {0}")]
    Unavailable(String),
}

/// Authenticates requests.
///
/// Guarantees: returns a user only for valid credentials; compares secrets in constant time;
/// never logs credentials.
#[async_trait]
pub trait UserAuth: Send + Sync {
    /// The caller of a request, or why it is refused.
    async fn authenticate(
        &self,
        request: &dyn RequestHeaders,
    ) -> Result<AuthenticatedUser, AuthError>;
}
