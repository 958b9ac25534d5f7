//! The two cookies of a browser login, sealed (encrypted and authenticated) with the cookie
//! key ([`crate::cookie_key`]: `auth.cookie_keys`, or derived from the secrets key, never
//! the data key itself).
//!
//! - `keycloak_auth` (OpenHands' name) is the session: the token of its server-side record
//!   ([`crate::session_store`]), who the user is, whether the e-mail is verified and the
//!   terms accepted, when the access token expires, and the refresh token. OpenHands signs
//!   a JWT holding the provider's tokens; we seal instead, because the refresh token is a
//!   credential that should not be readable in the browser. A tampered, truncated or
//!   foreign cookie fails to open and ends the session; so does one whose record is
//!   revoked, expired or missing (a cookie from before the records, without a token).
//! - `openhands_login` lives for the ten minutes between the login redirect and the
//!   callback: the `state` to compare, the nonce the ID token must carry, the PKCE
//!   verifier, and where to land afterwards. It is scoped to `/oauth`.
//!
//! Both are sealed with [`Cipher`] under their own context, so a value sealed for one
//! purpose (the other cookie) never opens as another. Rotating the cookie keys keeps
//! sessions valid as long as the old key stays listed.

use openhands_api::sealed_cookie::{SealError, SealedCookie};
use openhands_core::crypto::Cipher;
use serde::{Deserialize, Serialize};

/// The session cookie's name, as in OpenHands.
pub const SESSION_COOKIE: &str = "keycloak_auth";
/// The login-in-progress cookie.
pub const LOGIN_COOKIE: &str = "openhands_login";
/// Where the login cookie is sent.
pub const LOGIN_COOKIE_PATH: &str = "/oauth";
/// Seconds a started login may take.
pub const LOGIN_TTL_SECONDS: i64 = 600;

const SESSION_CONTEXT: &str = "cookie:keycloak_auth:v1";
const LOGIN_CONTEXT: &str = "cookie:openhands_login:v1";

/// A signed-in browser session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The secret token of the session's server-side record (the database keeps only its
    /// SHA-256). Empty in cookies from before the records: those are ended.
    #[serde(default)]
    pub token: String,
    /// The user id (the provider's subject, as OpenHands uses Keycloak's).
    pub sub: String,
    pub email: Option<String>,
    pub email_verified: bool,
    /// The user accepted the terms of service.
    pub tos: bool,
    /// When the access token expires (unix seconds); after it the session is refreshed.
    pub access_exp: i64,
    /// The provider's refresh token; without one the session ends with the access token.
    pub refresh: Option<String>,
}

/// A login between its redirect and its callback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingLogin {
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
    /// A local path to land on afterwards.
    pub redirect: String,
    /// Unix seconds after which the callback is refused.
    pub expires: i64,
}

/// Why a cookie did not open.
#[derive(Debug, thiserror::Error)]
pub enum CookieError {
    #[error("the cookie is not valid")]
    Invalid,
    #[error("{0}")]
    Seal(#[from] SealError),
}

/// Seals and opens the two cookies and writes their `Set-Cookie` headers.
#[derive(Debug, Clone)]
pub struct CookieJar {
    session: SealedCookie,
    login: SealedCookie,
}

impl CookieJar {
    pub fn new(cipher: std::sync::Arc<Cipher>, secure: bool) -> Self {
        Self {
            session: SealedCookie::new(
                SESSION_COOKIE,
                "/",
                SESSION_CONTEXT,
                cipher.clone(),
                secure,
            ),
            login: SealedCookie::new(
                LOGIN_COOKIE,
                LOGIN_COOKIE_PATH,
                LOGIN_CONTEXT,
                cipher,
                secure,
            ),
        }
    }

    pub fn seal_session(&self, session: &Session) -> Result<String, CookieError> {
        Ok(self.session.seal(session)?)
    }

    pub fn open_session(&self, value: &str) -> Result<Session, CookieError> {
        self.session.open(value).ok_or(CookieError::Invalid)
    }

    /// The session in a `Set-Cookie` value this jar wrote.
    pub fn open_session_header(&self, header: &str) -> Option<Session> {
        self.session.open_header(header)
    }

    pub fn seal_login(&self, login: &PendingLogin) -> Result<String, CookieError> {
        Ok(self.login.seal(login)?)
    }

    pub fn open_login(&self, value: &str) -> Result<PendingLogin, CookieError> {
        self.login.open(value).ok_or(CookieError::Invalid)
    }

    /// `Set-Cookie` for a session that lives `max_age` more seconds (the rest of its
    /// record's absolute lifetime; the server enforces it either way).
    pub fn session_header(&self, session: &Session, max_age: i64) -> Result<String, CookieError> {
        Ok(self.session.header(session, Some(max_age.max(0)))?)
    }

    /// `Set-Cookie` that deletes the session cookie.
    pub fn clear_session_header(&self) -> String {
        self.session.clear_header()
    }

    pub fn login_header(&self, login: &PendingLogin) -> Result<String, CookieError> {
        Ok(self.login.header(login, Some(LOGIN_TTL_SECONDS))?)
    }

    pub fn clear_login_header(&self) -> String {
        self.login.clear_header()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jar_with(key_byte: u8) -> CookieJar {
        let cipher = Cipher::new(vec![("k1".into(), [key_byte; 32])]).expect("cipher");
        CookieJar::new(std::sync::Arc::new(cipher), true)
    }

    fn session() -> Session {
        Session {
            token: "session-token".into(),
            sub: "user-1".into(),
            email: Some("alice@example.com".into()),
            email_verified: true,
            tos: false,
            access_exp: 1_900_000_000,
            refresh: Some("refresh-token-value".into()),
        }
    }

    #[test]
    fn a_session_round_trips_and_hides_its_refresh_token() {
        let jar = jar_with(7);
        let sealed = jar.seal_session(&session()).expect("seal");
        assert!(!sealed.contains("refresh-token-value"));
        assert!(!sealed.contains("alice"));
        assert_eq!(jar.open_session(&sealed).expect("open"), session());
    }

    #[test]
    fn a_cookie_from_before_the_session_records_opens_without_a_token() {
        let jar = jar_with(7);
        let old = serde_json::json!({
            "sub": "user-1", "email": null, "email_verified": true, "tos": true,
            "access_exp": 1, "refresh": null
        });
        let sealed = jar.session.seal(&old).expect("seal");
        assert_eq!(jar.open_session(&sealed).expect("open").token, "");
    }

    #[test]
    fn tampered_truncated_and_foreign_cookies_do_not_open() {
        let jar = jar_with(7);
        let sealed = jar.seal_session(&session()).expect("seal");
        let mut tampered = sealed.clone().into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).expect("ascii");
        assert!(jar.open_session(&tampered).is_err());
        assert!(jar.open_session(&sealed[..sealed.len() - 4]).is_err());
        assert!(jar.open_session("").is_err());
        assert!(jar_with(8).open_session(&sealed).is_err(), "another key");
        // A login cookie is not a session, even under the same key.
        let login = PendingLogin {
            state: "s".into(),
            nonce: "n".into(),
            pkce_verifier: "v".into(),
            redirect: "/".into(),
            expires: 0,
        };
        let sealed_login = jar.seal_login(&login).expect("seal");
        assert!(jar.open_session(&sealed_login).is_err());
        // Nor is an unsigned JWT (`alg: none`).
        let none_jwt = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1c2VyLTEifQ.";
        assert!(jar.open_session(none_jwt).is_err());
    }

    #[test]
    fn headers_carry_the_cookie_attributes() {
        let header = jar_with(7)
            .session_header(&session(), 3600)
            .expect("header");
        assert!(header.starts_with("keycloak_auth="));
        for attribute in [
            "Path=/",
            "HttpOnly",
            "SameSite=Lax",
            "Secure",
            "Max-Age=3600",
        ] {
            assert!(header.contains(attribute), "{attribute} in {header}");
        }
        let local = CookieJar::new(
            std::sync::Arc::new(Cipher::new(vec![("k1".into(), [1; 32])]).expect("cipher")),
            false,
        );
        assert!(!local.clear_session_header().contains("Secure"));
        assert!(local.clear_session_header().contains("Max-Age=0"));
    }
}
