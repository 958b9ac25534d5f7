//! `[sandbox.network]` compiled into the checks the egress proxy runs on every request.
//!
//! The configuration is a list of strings; parsing it once at start-up turns a typo into
//! an error that names the entry, instead of a rule that silently never matches. A request
//! is checked twice: by name and port before DNS ([`CompiledPolicy::check_target`]), then
//! every address the name resolved to ([`CompiledPolicy::check_address`]); the proxy
//! connects only to an address that passed, so DNS cannot change the answer in between.
//!
//! Order of the rules, for each address: a `deny` network refuses; a host allowed by name
//! or an `allow` network is let through; otherwise the built-in ranges (loopback, private,
//! link-local, metadata, ...) refuse; anything else is public and allowed. A `deny` host
//! refuses by name, before DNS. Deny therefore always wins over allow.
//!
//! One exception: a host allowed by name does not re-open loopback, `0.0.0.0/8`, `::` or
//! cloud metadata addresses; only an address or network entry does. Allowing a name trusts
//! its DNS, and whoever controls that DNS (or `*.` of it) must not thereby reach the
//! server's own PostgreSQL, Redis or credentials.

use std::fmt;
use std::net::IpAddr;

use openhands_core::sandbox_config::NetworkPolicy;

use super::decision::{AllowReason, Refusal, RefusalReason};
use super::ranges::{Net, classify, classify_v6, embedded_v4};

/// An entry of `[sandbox.network]` that is not a host, `*.host` wildcard, address or
/// network.
#[derive(Debug, thiserror::Error)]
#[error("sandbox.network.{list} entry {entry:?}: {problem}")]
pub struct PolicyError {
    /// `allow`, `deny` or `ports`.
    pub list: &'static str,
    pub entry: String,
    pub problem: String,
}

/// A request target that is neither a valid host name nor an IP address.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a valid host name or IP address")]
pub struct InvalidHost(pub String);

/// The host of a request: a normalised DNS name (lower case, no trailing dot) or an
/// address literal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Name(String),
    Ip(IpAddr),
}

impl Host {
    /// Parses a host as written in a request (`example.com`, `10.0.0.1`, `[::1]`).
    pub fn parse(text: &str) -> Result<Self, InvalidHost> {
        let bracketed = text.strip_prefix('[').and_then(|t| t.strip_suffix(']'));
        if let Some(inner) = bracketed {
            return match inner.parse::<std::net::Ipv6Addr>() {
                Ok(a) => Ok(Self::Ip(IpAddr::V6(a))),
                Err(_) => Err(InvalidHost(text.to_owned())),
            };
        }
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Ok(Self::Ip(ip));
        }
        normalise_name(text)
            .map(Self::Name)
            .ok_or_else(|| InvalidHost(text.to_owned()))
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Name(name) => f.write_str(name),
            Self::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// Lower-cases `text` and drops one trailing dot; `None` unless it is a syntactically valid
/// DNS name (labels of letters, digits, `-` and `_`, 1 to 63 long, 253 in all).
fn normalise_name(text: &str) -> Option<String> {
    let name = text.strip_suffix('.').unwrap_or(text).to_ascii_lowercase();
    let labels_ok = name.split('.').all(|label| {
        (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    });
    (!name.is_empty() && name.len() <= 253 && labels_ok).then_some(name)
}

/// `example.com`, or `*.example.com` (any subdomain, not the name itself).
#[derive(Debug, Clone)]
enum HostPattern {
    Exact(String),
    /// The suffix with its leading dot: `.example.com`.
    Subdomains(String),
}

impl HostPattern {
    fn matches(&self, name: &str) -> bool {
        match self {
            Self::Exact(exact) => name == exact,
            Self::Subdomains(suffix) => name.ends_with(suffix.as_str()),
        }
    }
}

/// `[sandbox.network]` `allow`, `deny` and `ports`, parsed. `mode` is the caller's
/// business: this only decides what the proxy may reach.
#[derive(Debug, Clone, Default)]
pub struct CompiledPolicy {
    allow_hosts: Vec<HostPattern>,
    allow_nets: Vec<Net>,
    deny_hosts: Vec<HostPattern>,
    deny_nets: Vec<Net>,
    ports: Vec<u16>,
}

impl CompiledPolicy {
    /// Parses every entry; the first bad one is the error.
    pub fn compile(policy: &NetworkPolicy) -> Result<Self, PolicyError> {
        let mut compiled = Self::default();
        for entry in &policy.allow {
            match parse_entry("allow", entry)? {
                Entry::Host(h) => compiled.allow_hosts.push(h),
                Entry::Net(n) => compiled.allow_nets.push(n),
            }
        }
        for entry in &policy.deny {
            match parse_entry("deny", entry)? {
                Entry::Host(h) => compiled.deny_hosts.push(h),
                Entry::Net(n) => compiled.deny_nets.push(n),
            }
        }
        if policy.ports.contains(&0) {
            return Err(PolicyError {
                list: "ports",
                entry: "0".into(),
                problem: "port 0 cannot be connected to".into(),
            });
        }
        compiled.ports = policy.ports.clone();
        Ok(compiled)
    }

    /// The checks that need no DNS: the port filter and `deny` host names.
    pub fn check_target(&self, host: &Host, port: u16) -> Result<(), Refusal> {
        let refuse = |reason| Refusal {
            reason,
            host: host.to_string(),
            port,
            address: None,
            embedded: None,
        };
        if !self.ports.is_empty() && !self.ports.contains(&port) {
            return Err(refuse(RefusalReason::PortNotAllowed));
        }
        if let Host::Name(name) = host
            && self.deny_hosts.iter().any(|p| p.matches(name))
        {
            return Err(refuse(RefusalReason::DeniedHost));
        }
        Ok(())
    }

    /// Whether `addr`, one address `host` resolved to (or `host` itself for a literal), may
    /// be connected to. The caller must also have passed [`Self::check_target`].
    pub fn check_address(
        &self,
        host: &Host,
        port: u16,
        addr: IpAddr,
    ) -> Result<AllowReason, Refusal> {
        let embedded = match addr {
            IpAddr::V6(a) => embedded_v4(a).map(IpAddr::V4),
            IpAddr::V4(_) => None,
        };
        let forms = || std::iter::once(addr).chain(embedded);
        // An IPv6 address refused in its own right (`::1` embeds 0.0.0.1) is re-opened only
        // by an IPv6 network: `allow = ["0.0.0.0/0"]` must not let `::1` through.
        let refused_as_v6 = matches!(addr, IpAddr::V6(a) if classify_v6(a).is_some());
        let allow_forms = || std::iter::once(addr).chain(embedded.filter(|_| !refused_as_v6));
        let refuse = |reason, embedded| Refusal {
            reason,
            host: host.to_string(),
            port,
            address: Some(addr),
            embedded,
        };
        if self
            .deny_nets
            .iter()
            .any(|n| forms().any(|a| n.contains(a)))
        {
            return Err(refuse(RefusalReason::DeniedNetwork, None));
        }
        let builtin = classify(addr);
        let host_allowed = matches!(host, Host::Name(name)
            if self.allow_hosts.iter().any(|p| p.matches(name)));
        if host_allowed && builtin.is_none_or(|(reason, _)| reason.reopened_by_host_name()) {
            return Ok(AllowReason::AllowedHost);
        }
        if self
            .allow_nets
            .iter()
            .any(|n| allow_forms().any(|a| n.contains(a)))
        {
            return Ok(AllowReason::AllowedNetwork);
        }
        match builtin {
            Some((reason, via)) => Err(refuse(reason, via)),
            None => Ok(AllowReason::Public),
        }
    }

    /// [`Self::check_target`], then [`Self::check_address`] on every address: one refused
    /// address refuses the request (a name that also points at loopback is an attack).
    pub fn check_resolved(
        &self,
        host: &Host,
        port: u16,
        addrs: &[IpAddr],
    ) -> Result<Vec<AllowReason>, Refusal> {
        self.check_target(host, port)?;
        addrs
            .iter()
            .map(|a| self.check_address(host, port, *a))
            .collect()
    }
}

enum Entry {
    Host(HostPattern),
    Net(Net),
}

fn parse_entry(list: &'static str, raw: &str) -> Result<Entry, PolicyError> {
    let error = |problem: &str| PolicyError {
        list,
        entry: raw.to_owned(),
        problem: problem.to_owned(),
    };
    let entry = raw.trim();
    if entry.is_empty() {
        return Err(error("empty entry"));
    }
    if let Some((addr, prefix)) = entry.split_once('/') {
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| error("expected a network such as 10.1.0.0/16 or fd00::/8"))?;
        let prefix: u8 = prefix
            .parse()
            .map_err(|_| error("the prefix length must be a number"))?;
        return Net::new(addr, prefix)
            .map(Entry::Net)
            .ok_or_else(|| error("prefix too long, or address bits set past the prefix"));
    }
    let unbracketed = entry
        .strip_prefix('[')
        .and_then(|e| e.strip_suffix(']'))
        .unwrap_or(entry);
    if let Ok(addr) = unbracketed.parse::<IpAddr>() {
        return Ok(Entry::Net(Net::host(addr)));
    }
    if entry.contains("://") {
        return Err(error("a host name without scheme, e.g. example.com"));
    }
    if entry.contains(':') {
        return Err(error(
            "a host without port; list ports in sandbox.network.ports",
        ));
    }
    let (wildcard, name) = match entry.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, entry),
    };
    let name = normalise_name(name)
        .ok_or_else(|| error("not a host name, *.host wildcard, address or network"))?;
    let last_label = name.rsplit('.').next().unwrap_or(&name);
    if last_label.bytes().all(|b| b.is_ascii_digit()) {
        return Err(error("looks like an IP address but is not a valid one"));
    }
    Ok(Entry::Host(if wildcard {
        HostPattern::Subdomains(format!(".{name}"))
    } else {
        HostPattern::Exact(name)
    }))
}
