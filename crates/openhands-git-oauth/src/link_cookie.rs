//! The `openhands_git_oauth` cookie: a link in progress, between the redirect to the
//! provider and its callback (ten minutes at most).
//!
//! It holds the `state` to compare, the PKCE verifier, where to land afterwards and who
//! started the link, sealed (encrypted and authenticated) with the server's [`Cipher`] under
//! its own context, as `openhands-oidc-auth` seals its login cookie: a cookie sealed for
//! another purpose never opens as this one, and the browser cannot read the verifier. It is
//! sent only to `/api/git-oauth`.

use openhands_api::sealed_cookie::SealedCookie;
use openhands_core::crypto::Cipher;
use openhands_core::secrets::ProviderType;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The cookie's name.
pub const LINK_COOKIE: &str = "openhands_git_oauth";
/// Where the cookie is sent.
pub const LINK_COOKIE_PATH: &str = "/api/git-oauth";
/// Seconds a started link may take.
pub const LINK_TTL_SECONDS: i64 = 600;

const CONTEXT: &str = "cookie:openhands_git_oauth:v1";

/// A link between its redirect and its callback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingLink {
    pub provider: ProviderType,
    pub state: String,
    pub pkce_verifier: Option<String>,
    /// A local path to land on afterwards.
    pub redirect: String,
    /// The user who started it; the callback must come from the same user.
    pub user_id: String,
    /// Unix seconds after which the callback is refused.
    pub expires: i64,
}

/// Seals and opens the cookie and writes its `Set-Cookie` headers.
#[derive(Debug, Clone)]
pub struct LinkCookies {
    cookie: SealedCookie,
}

impl LinkCookies {
    pub fn new(cipher: Arc<Cipher>, secure: bool) -> Self {
        Self {
            cookie: SealedCookie::new(LINK_COOKIE, LINK_COOKIE_PATH, CONTEXT, cipher, secure),
        }
    }

    /// `Set-Cookie` for a pending link.
    pub fn header(&self, link: &PendingLink) -> Result<String, String> {
        self.cookie
            .header(link, Some(LINK_TTL_SECONDS))
            .map_err(|e| e.to_string())
    }

    /// `Set-Cookie` that deletes the cookie.
    pub fn clear_header(&self) -> String {
        self.cookie.clear_header()
    }

    /// The pending link in a cookie value, when it opens and has not expired.
    pub fn open(&self, value: &str, now: i64) -> Option<PendingLink> {
        self.cookie
            .open::<PendingLink>(value)
            .filter(|link| link.expires > now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cookies(key: u8) -> LinkCookies {
        let cipher = Cipher::new(vec![("k1".into(), [key; 32])]).expect("cipher");
        LinkCookies::new(Arc::new(cipher), true)
    }

    fn link() -> PendingLink {
        PendingLink {
            provider: ProviderType::Gitlab,
            state: "state-1".into(),
            pkce_verifier: Some("verifier-secret".into()),
            redirect: "/settings".into(),
            user_id: "alice".into(),
            expires: 2_000,
        }
    }

    fn value(header: &str) -> &str {
        header
            .strip_prefix("openhands_git_oauth=")
            .and_then(|rest| rest.split(';').next())
            .expect("value")
    }

    #[test]
    fn a_link_round_trips_sealed_and_expires() {
        let jar = cookies(3);
        let header = jar.header(&link()).expect("seal");
        for attribute in [
            "Path=/api/git-oauth",
            "HttpOnly",
            "SameSite=Lax",
            "Max-Age=600",
            "Secure",
        ] {
            assert!(header.contains(attribute), "{attribute} in {header}");
        }
        assert!(!header.contains("verifier-secret") && !header.contains("alice"));
        assert_eq!(jar.open(value(&header), 1_000), Some(link()));
        assert_eq!(jar.open(value(&header), 2_000), None, "expired");
        assert_eq!(cookies(4).open(value(&header), 1_000), None, "another key");
        assert_eq!(jar.open("garbage", 1_000), None);
        assert!(jar.clear_header().contains("Max-Age=0"));
    }
}
