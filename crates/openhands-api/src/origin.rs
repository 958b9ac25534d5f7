//! Refuses state-changing requests sent by other sites' pages (cross-site request forgery),
//! in every mode.
//!
//! A page on any site can make the user's browser send a "simple" request to
//! `localhost:3000` (a form post, a `text/plain` fetch, a `DELETE` through a preflight that
//! CORS only fails to answer) and can open a WebSocket to it: CORS hides the answer from
//! the page, but the change is made. In OSS mode that meant any site the user visited could
//! point `llm_base_url` at itself and collect the key, or start a conversation whose agent
//! runs commands on the user's machine (issue 25). Browsers say where such a request comes
//! from in `Origin`, which a page cannot forge, so [`OriginCheck`] lets a `POST`, `PUT`,
//! `PATCH`, `DELETE` (any method but `GET`, `HEAD`, `OPTIONS`, `TRACE`) or a WebSocket
//! upgrade through only when `Origin` is
//!
//! - the server's own origin: its host and port equal the request's `Host`, so the web
//!   app works under any name it is served on (and behind a proxy that keeps `Host`);
//! - the configured public URL (`web_host`, `auth.public_url`);
//! - one of `permitted_cors_origins`;
//!
//! or when there is no `Origin` at all: every browser sends one on such requests, so its
//! absence means a program (the CLI, a script, a test, a webhook sender), which CSRF cannot
//! drive. `Origin: null` (sandboxed frames, `file:` pages) is refused. Refusals are 403
//! `{"detail", "code": "csrf_rejected"}`, the shape and code of the SaaS login's own check.
//!
//! The localhost rule of CORS (any `localhost` origin may read when
//! `permitted_cors_origins` is empty) is deliberately not a rule here: other local pages,
//! such as an app the agent serves on another port, may read but not change anything.
//!
//! The check runs as a [`Gate`] (no boxed future per request) whose `GET` path is a method
//! comparison and one header lookup.

use crate::gate::{Gate, GateMiddleware};
use actix_web::HttpResponse;
use actix_web::dev::ServiceRequest;
use actix_web::http::header::{self, HeaderMap};
use actix_web::http::{Method, StatusCode};
use openhands_core::config::Config;

/// The machine-readable code of a refusal.
pub const CSRF_CODE: &str = "csrf_rejected";

/// The origins allowed besides the request's own.
#[derive(Debug, Clone, Default)]
pub struct OriginPolicy {
    /// Full origins (`scheme://host[:port]`), without a trailing slash.
    origins: Vec<String>,
    /// Hosts (`host[:port]`) allowed under any scheme: `web_host`.
    hosts: Vec<String>,
}

impl OriginPolicy {
    pub fn from_config(config: &Config) -> Self {
        let origins = config
            .permitted_cors_origins
            .iter()
            .map(String::as_str)
            .chain(config.auth.public_url.as_deref())
            .filter_map(origin_of_url)
            .collect();
        let hosts = config
            .web_host
            .iter()
            .map(|h| {
                let h = h.trim();
                let h = h.split_once("://").map_or(h, |(_, rest)| rest);
                h.split('/').next().unwrap_or_default().to_owned()
            })
            .filter(|h| !h.is_empty())
            .collect();
        Self { origins, hosts }
    }

    /// Whether a request from `origin` to `host` (its `Host` header) may change state.
    pub fn allows(&self, origin: &str, host: Option<&str>) -> bool {
        let Some((_, authority)) = origin.split_once("://") else {
            return false;
        };
        if authority.is_empty() || authority.contains(['/', '@', '?', '#']) {
            return false;
        }
        host.is_some_and(|h| h.eq_ignore_ascii_case(authority))
            || self.hosts.iter().any(|h| h.eq_ignore_ascii_case(authority))
            || self.origins.iter().any(|o| o.eq_ignore_ascii_case(origin))
    }
}

/// `scheme://authority` of a configured origin or URL (path and trailing slash dropped).
fn origin_of_url(url: &str) -> Option<String> {
    let url = url.trim();
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    (!scheme.is_empty() && !authority.is_empty()).then(|| format!("{scheme}://{authority}"))
}

/// Methods that change nothing (and need no check unless they upgrade to a WebSocket).
fn is_safe(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `Origin` names a site that is not allowed (or is `null`).
    ForeignOrigin,
    /// No `Origin`, but `Sec-Fetch-Site` says a browser sent it from another site.
    CrossSiteFetch,
}

/// The verdict on one request: `Ok` to serve it.
pub fn check(
    policy: &OriginPolicy,
    method: &Method,
    headers: &HeaderMap,
    uri_host: Option<&str>,
) -> Result<(), Refusal> {
    if is_safe(method) && !headers.contains_key(header::UPGRADE) {
        return Ok(());
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        let fetch_site = headers.get("sec-fetch-site").map(|v| v.as_bytes());
        return match fetch_site {
            Some(b"cross-site" | b"same-site") => Err(Refusal::CrossSiteFetch),
            _ => Ok(()),
        };
    };
    let origin = origin.to_str().map_err(|_| Refusal::ForeignOrigin)?;
    let origin = origin.strip_suffix('/').unwrap_or(origin);
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or(uri_host);
    if policy.allows(origin, host) {
        Ok(())
    } else {
        Err(Refusal::ForeignOrigin)
    }
}

fn refusal_response(req: &ServiceRequest, refusal: Refusal) -> HttpResponse {
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .map(|o| String::from_utf8_lossy(o.as_bytes()).into_owned());
    tracing::warn!(
        method = %req.method(),
        path = %req.path(),
        origin = ?origin,
        ?refusal,
        "cross-site request refused"
    );
    let message = match refusal {
        Refusal::ForeignOrigin => {
            "Cross-site request refused: this origin may not change anything here (a \
             deployment served under another name lists it in permitted_cors_origins or \
             web_host)"
        }
        Refusal::CrossSiteFetch => "Cross-site request refused: sent by another site's page",
    };
    HttpResponse::build(StatusCode::FORBIDDEN)
        .json(serde_json::json!({"detail": message, "code": CSRF_CODE}))
}

/// The middleware; see the module docs.
pub type OriginCheck = GateMiddleware<OriginGate>;

/// The [`Gate`] of [`OriginCheck`].
#[derive(Debug)]
pub struct OriginGate {
    policy: OriginPolicy,
}

impl OriginCheck {
    pub fn from_config(config: &Config) -> Self {
        GateMiddleware::new(OriginGate {
            policy: OriginPolicy::from_config(config),
        })
    }
}

impl Gate for OriginGate {
    fn verdict(&self, req: &ServiceRequest) -> Option<HttpResponse> {
        let refusal = check(
            &self.policy,
            req.method(),
            req.headers(),
            req.uri().authority().map(|a| a.as_str()),
        )
        .err()?;
        Some(refusal_response(req, refusal))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        map
    }

    fn policy() -> OriginPolicy {
        OriginPolicy::from_config(&Config {
            permitted_cors_origins: vec!["https://app.example/".into()],
            web_host: Some("openhands.example".into()),
            ..Config::default()
        })
    }

    #[test]
    fn safe_requests_pass_whatever_their_origin() {
        let cross = headers(&[
            ("origin", "https://evil.example"),
            ("host", "localhost:3000"),
        ]);
        assert_eq!(check(&policy(), &Method::GET, &cross, None), Ok(()));
        assert_eq!(check(&policy(), &Method::OPTIONS, &cross, None), Ok(()));
        assert_eq!(
            check(&policy(), &Method::POST, &cross, None),
            Err(Refusal::ForeignOrigin)
        );
    }

    #[test]
    fn own_configured_and_absent_origins_may_change_state() {
        let p = policy();
        for origin in [
            "http://localhost:3000",
            "HTTP://LOCALHOST:3000/",
            "https://app.example",
            "https://openhands.example",
            "http://openhands.example",
        ] {
            assert!(
                p.allows(origin.trim_end_matches('/'), Some("localhost:3000")),
                "{origin}"
            );
        }
        assert_eq!(
            check(&p, &Method::DELETE, &headers(&[("host", "x")]), None),
            Ok(())
        );
    }

    #[test]
    fn foreign_lookalike_and_null_origins_are_refused() {
        let p = policy();
        for origin in [
            "https://evil.example",
            "http://localhost:3001",
            "http://localhost",
            "null",
            "https://app.example.evil.example",
            "https://evil@localhost:3000",
            "http://localhost:3000/x",
            "localhost:3000",
            "https://",
        ] {
            assert!(!p.allows(origin, Some("localhost:3000")), "{origin}");
        }
        let null = headers(&[("origin", "null"), ("host", "localhost:3000")]);
        assert_eq!(
            check(&p, &Method::POST, &null, None),
            Err(Refusal::ForeignOrigin)
        );
    }

    #[test]
    fn websocket_upgrades_are_checked_like_writes() {
        let p = policy();
        let cross = headers(&[
            ("origin", "https://evil.example"),
            ("host", "localhost:3000"),
            ("upgrade", "websocket"),
        ]);
        assert_eq!(
            check(&p, &Method::GET, &cross, None),
            Err(Refusal::ForeignOrigin)
        );
        let own = headers(&[
            ("origin", "http://localhost:3000"),
            ("host", "localhost:3000"),
            ("upgrade", "websocket"),
        ]);
        assert_eq!(check(&p, &Method::GET, &own, None), Ok(()));
    }

    #[test]
    fn a_browser_fetch_without_origin_is_judged_by_sec_fetch_site() {
        let p = policy();
        for (site, verdict) in [
            ("cross-site", Err(Refusal::CrossSiteFetch)),
            ("same-site", Err(Refusal::CrossSiteFetch)),
            ("same-origin", Ok(())),
            ("none", Ok(())),
        ] {
            let h = headers(&[("sec-fetch-site", site)]);
            assert_eq!(check(&p, &Method::POST, &h, None), verdict, "{site}");
        }
    }

    #[test]
    fn the_request_authority_stands_in_for_a_missing_host() {
        let h = headers(&[("origin", "https://h2.example")]);
        assert_eq!(
            check(&policy(), &Method::PUT, &h, Some("h2.example")),
            Ok(())
        );
    }
}
