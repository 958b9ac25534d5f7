//! What a signed-in caller must pass besides a valid session: a verified e-mail, accepted
//! terms of service, the allowlist, and, for cookie sessions, a same-site origin on every
//! request that changes state.
//!
//! Each gate answers 403 with a stable code the web app acts on (`email_not_verified`
//! shows the "check your inbox" screen, `tos_not_accepted` the terms page, `not_allowed`
//! the waitlist page, `csrf_rejected` a reload). Paths that must stay reachable to get past
//! a gate are exempt from it, as in OpenHands.

use openhands_core::extension::AuthError;
use std::collections::HashSet;
use std::path::Path;

/// Paths an unverified user may still call (OpenHands' list).
fn exempt_from_email_gate(path: &str) -> bool {
    path.starts_with("/api/email")
        || path == "/api/settings"
        || path == "/api/logout"
        || path == "/api/authenticate"
        || path == "/api/accept_tos"
}

/// The one path a user who has not accepted the terms may call to accept them.
fn exempt_from_tos_gate(path: &str) -> bool {
    path == "/api/accept_tos" || path == "/api/logout"
}

/// The e-mail gate: 403 `email_not_verified` unless verified or on an exempt path.
pub fn check_email(required: bool, verified: bool, path: &str) -> Result<(), AuthError> {
    if !required || verified || exempt_from_email_gate(path) {
        return Ok(());
    }
    Err(AuthError::Forbidden {
        code: "email_not_verified".into(),
        message: "Verify your e-mail address to continue; check your inbox for the link".into(),
    })
}

/// The terms gate: 403 `tos_not_accepted` until `POST /api/accept_tos`.
pub fn check_tos(required: bool, accepted: bool, path: &str) -> Result<(), AuthError> {
    if !required || accepted || exempt_from_tos_gate(path) {
        return Ok(());
    }
    Err(AuthError::Forbidden {
        code: "tos_not_accepted".into(),
        message: "Accept the terms of service to continue (POST /api/accept_tos)".into(),
    })
}

/// The allowlist (OpenHands' waitlist): user names or e-mails, case-insensitive.
#[derive(Debug, Clone, Default)]
pub struct Allowlist {
    entries: Option<HashSet<String>>,
}

impl Allowlist {
    /// Everyone may log in.
    pub fn open() -> Self {
        Self { entries: None }
    }

    /// Reads one entry per line; blank lines and `#` comments are skipped. A missing file
    /// is an error (at start-up, as in OpenHands), not an empty list.
    pub fn from_file(path: &Path) -> std::io::Result<Self> {
        let text = std::fs::read_to_string(path)?;
        Ok(Self::from_entries(text.lines()))
    }

    pub fn from_entries<'a>(lines: impl IntoIterator<Item = &'a str>) -> Self {
        let entries = lines
            .into_iter()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_lowercase)
            .collect();
        Self {
            entries: Some(entries),
        }
    }

    /// Whether a user with this name and e-mail may log in.
    pub fn allows(&self, username: Option<&str>, email: Option<&str>) -> bool {
        let Some(entries) = &self.entries else {
            return true;
        };
        [username, email]
            .into_iter()
            .flatten()
            .any(|id| entries.contains(&id.trim().to_lowercase()))
    }
}

/// Methods that change nothing and need no CSRF check.
fn is_safe_method(method: &str) -> bool {
    matches!(method, "GET" | "HEAD" | "OPTIONS")
}

/// The scheme, host and port of a URL, as browsers send in `Origin`.
pub fn origin_of(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    match parsed.origin() {
        url::Origin::Tuple(..) => Some(parsed.origin().ascii_serialization()),
        url::Origin::Opaque(_) => None,
    }
}

/// What a cookie-authenticated request that changes state must show to prove it comes
/// from our own pages.
#[derive(Debug, Clone)]
pub struct CsrfCheck<'a> {
    pub method: &'a str,
    /// `Origin`, or failing that the origin of `Referer`.
    pub origin: Option<String>,
    /// The request's `Host` header (the request's own origin is always allowed).
    pub host: Option<&'a str>,
    /// A WebSocket upgrade (a GET that browsers send cross-site with cookies).
    pub websocket: bool,
}

/// Refuses a cookie-authenticated, state-changing (or WebSocket) request whose origin is
/// neither the request's own host nor one of `allowed` (403 `csrf_rejected`). Requests
/// without `Origin` and `Referer` are refused too: browsers send one on every such
/// request, so their absence means a client that should use an API key.
pub fn check_csrf(check: &CsrfCheck<'_>, allowed: &[String]) -> Result<(), AuthError> {
    if is_safe_method(check.method) && !check.websocket {
        return Ok(());
    }
    let refused = |why: &str| AuthError::Forbidden {
        code: "csrf_rejected".into(),
        message: format!("Cross-site request refused: {why}"),
    };
    let Some(origin) = check.origin.as_deref() else {
        return Err(refused("no Origin or Referer header"));
    };
    let same_host = check
        .host
        .is_some_and(|host| origin_host(origin).is_some_and(|o| o.eq_ignore_ascii_case(host)));
    if same_host || allowed.iter().any(|a| a.eq_ignore_ascii_case(origin)) {
        Ok(())
    } else {
        Err(refused("origin not allowed"))
    }
}

/// `host[:port]` of an origin such as `https://app.example.com:8443`.
fn origin_host(origin: &str) -> Option<&str> {
    origin.split_once("://").map(|(_, rest)| rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_and_tos_gates_refuse_with_codes_and_spare_their_exits() {
        match check_email(true, false, "/api/conversations") {
            Err(AuthError::Forbidden { code, .. }) => assert_eq!(code, "email_not_verified"),
            other => panic!("{other:?}"),
        }
        assert!(check_email(true, false, "/api/settings").is_ok());
        assert!(check_email(true, false, "/api/email/verify").is_ok());
        assert!(check_email(false, false, "/api/conversations").is_ok());
        assert!(check_email(true, true, "/api/conversations").is_ok());
        match check_tos(true, false, "/api/settings") {
            Err(AuthError::Forbidden { code, .. }) => assert_eq!(code, "tos_not_accepted"),
            other => panic!("{other:?}"),
        }
        assert!(check_tos(true, false, "/api/accept_tos").is_ok());
        assert!(check_tos(false, false, "/api/settings").is_ok());
    }

    #[test]
    fn allowlist_matches_names_or_emails_case_insensitively() {
        let list = Allowlist::from_entries(["# staff", "Alice", "", "bob@example.com"]);
        assert!(list.allows(Some("alice"), None));
        assert!(list.allows(Some("someone"), Some("BOB@example.com")));
        assert!(!list.allows(Some("carol"), Some("carol@example.com")));
        assert!(!list.allows(None, None));
        assert!(Allowlist::open().allows(None, None));
    }

    #[test]
    fn csrf_allows_same_origin_and_listed_origins_only() {
        let allowed = vec!["https://app.example.com".to_owned()];
        let post = |origin: Option<&str>, host: Option<&'static str>| CsrfCheck {
            method: "POST",
            origin: origin.map(str::to_owned),
            host,
            websocket: false,
        };
        assert!(check_csrf(&post(Some("https://app.example.com"), None), &allowed).is_ok());
        assert!(
            check_csrf(
                &post(Some("http://127.0.0.1:3000"), Some("127.0.0.1:3000")),
                &allowed
            )
            .is_ok()
        );
        assert!(
            check_csrf(
                &post(Some("https://evil.example"), Some("app.example.com")),
                &allowed
            )
            .is_err()
        );
        assert!(check_csrf(&post(None, Some("app.example.com")), &allowed).is_err());
        let get = CsrfCheck {
            method: "GET",
            origin: None,
            host: None,
            websocket: false,
        };
        assert!(check_csrf(&get, &allowed).is_ok());
        let socket = CsrfCheck {
            websocket: true,
            origin: Some("https://evil.example".into()),
            ..get
        };
        assert!(check_csrf(&socket, &allowed).is_err());
        assert_eq!(
            origin_of("https://app.example.com/conversations/1?x=2").as_deref(),
            Some("https://app.example.com")
        );
        assert_eq!(origin_of("not a url"), None);
    }
}
