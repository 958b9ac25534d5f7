//! Refuses requests whose `Host` names a site this server does not serve: the defence
//! against DNS rebinding.
//!
//! A page on `evil.example` can have its owner re-point `evil.example` at `127.0.0.1`
//! after it loaded. Its scripts then talk to a server on the user's loopback as their *own*
//! origin: the browser sends no cross-site `Origin`, CORS does not apply, and every answer
//! (settings, secrets' names, events, workspace files) is readable. The one thing such a
//! request cannot hide is `Host: evil.example`. So [`HostCheck`] serves a request only when
//! its `Host` (port aside) is
//!
//! - an IP address: an attacker cannot make a page's origin an IP literal it does not own;
//! - `localhost` or a name under `.localhost`, which browsers resolve to loopback themselves;
//! - `web_host`, the public URL's host, a host of `permitted_cors_origins`, or one of
//!   `allowed_hosts` (a name a deployment is reached under, e.g. a cluster-internal one);
//!
//! or when there is no `Host` at all (HTTP/1.0 programs; browsers always send one).
//! `allowed_hosts = ["*"]` turns the check off. Refusals are 421 Misdirected Request
//! `{"detail", "code": "host_not_allowed"}` naming the setting, in every mode and on every
//! path: a read is as much a leak as a write.

use crate::gate::{Gate, GateMiddleware};
use actix_web::HttpResponse;
use actix_web::dev::ServiceRequest;
use actix_web::http::{StatusCode, header};
use openhands_core::config::Config;
use std::net::IpAddr;

/// The machine-readable code of a refusal.
pub const HOST_CODE: &str = "host_not_allowed";

/// The host names (lower case, no port) served besides IP addresses and `localhost`.
#[derive(Debug, Clone, Default)]
pub struct HostPolicy {
    names: Vec<String>,
    any: bool,
}

impl HostPolicy {
    pub fn from_config(config: &Config) -> Self {
        let any = config.allowed_hosts.iter().any(|h| h.trim() == "*");
        let names = config
            .allowed_hosts
            .iter()
            .chain(config.web_host.iter())
            .chain(config.auth.public_url.iter())
            .chain(config.permitted_cors_origins.iter())
            .filter_map(|entry| host_name_of(entry))
            .collect();
        Self { names, any }
    }

    /// Whether a request with this `Host` header value is served.
    pub fn allows(&self, host: &str) -> bool {
        if self.any {
            return true;
        }
        let Some(name) = host_name_of(host) else {
            return false;
        };
        name.parse::<IpAddr>().is_ok()
            || name == "localhost"
            || name.ends_with(".localhost")
            || self.names.contains(&name)
    }
}

/// The lower-case host name of a `Host` value, a URL or a configured name: scheme, user
/// info, port, path and a trailing dot dropped, IPv6 brackets removed. `None` when nothing
/// host-like is left.
fn host_name_of(value: &str) -> Option<String> {
    let value = value.trim();
    let rest = value.split_once("://").map_or(value, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return None;
    }
    let name = if let Some(bracketed) = authority.strip_prefix('[') {
        bracketed.split(']').next().unwrap_or_default()
    } else {
        match authority.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => authority,
        }
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    (!name.is_empty()).then_some(name)
}

/// The middleware; see the module docs.
pub type HostCheck = GateMiddleware<HostGate>;

/// The [`Gate`] of [`HostCheck`].
#[derive(Debug)]
pub struct HostGate {
    policy: HostPolicy,
}

impl HostCheck {
    pub fn from_config(config: &Config) -> Self {
        GateMiddleware::new(HostGate {
            policy: HostPolicy::from_config(config),
        })
    }
}

impl Gate for HostGate {
    fn verdict(&self, req: &ServiceRequest) -> Option<HttpResponse> {
        let host = req.headers().get(header::HOST)?;
        let allowed = host.to_str().is_ok_and(|h| self.policy.allows(h));
        if allowed {
            return None;
        }
        let shown = String::from_utf8_lossy(host.as_bytes()).into_owned();
        tracing::warn!(host = %shown, path = %req.path(), "request for a host not served refused");
        Some(
            HttpResponse::build(StatusCode::MISDIRECTED_REQUEST).json(serde_json::json!({
                "detail": "This server does not answer to that host name (a deployment \
                           reached under another name lists it in allowed_hosts, \
                           OPENHANDS_ALLOWED_HOSTS)",
                "code": HOST_CODE,
            })),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allowed: &[&str]) -> HostPolicy {
        HostPolicy::from_config(&Config {
            allowed_hosts: allowed.iter().map(|s| s.to_string()).collect(),
            web_host: Some("openhands.example".into()),
            permitted_cors_origins: vec!["https://app.example:8443/".into()],
            ..Config::default()
        })
    }

    #[test]
    fn addresses_loopback_names_and_configured_hosts_are_served() {
        let p = policy(&["internal.svc"]);
        for host in [
            "127.0.0.1:3000",
            "10.1.2.3",
            "[::1]:3000",
            "localhost:3000",
            "LOCALHOST",
            "app.localhost:3000",
            "openhands.example",
            "OpenHands.Example.:443",
            "app.example",
            "internal.svc:3000",
        ] {
            assert!(p.allows(host), "{host}");
        }
    }

    #[test]
    fn rebinding_and_lookalike_hosts_are_refused() {
        let p = policy(&["internal.svc"]);
        for host in [
            "evil.example:3000",
            "localhost.evil.example",
            "127.0.0.1.nip.io",
            "openhands.example.evil.example",
            "user@localhost",
            "",
            ":3000",
            "internal.svc.evil",
        ] {
            assert!(!p.allows(host), "{host}");
        }
    }

    #[test]
    fn a_star_turns_the_check_off() {
        assert!(policy(&["*"]).allows("evil.example"));
        assert!(!policy(&[]).allows("evil.example"));
    }
}
