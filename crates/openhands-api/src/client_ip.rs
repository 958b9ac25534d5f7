//! The client's address, decided in one place for the audit log and the per-IP rate limit.
//!
//! `X-Forwarded-For` and `Forwarded` are written by whoever sends the request, so they are
//! only evidence when the peer that sent them is a proxy we run. The rule: the client is
//! the TCP peer, unless the peer is listed in `trusted_proxies`; then we walk the forwarded
//! chain from the right (the hop our proxy added) past every trusted proxy, and the first
//! address that is not one of ours is the client. With the default (no trusted proxies) a
//! forwarding header changes nothing, so a client can neither hide its address in the audit
//! log nor pick a fresh rate-limit bucket per request.

use crate::state::AppState;
use actix_web::HttpRequest;
use actix_web::http::header::HeaderMap;
use actix_web::web::Data;
use std::net::{IpAddr, SocketAddr};
use std::sync::Once;

/// One `trusted_proxies` entry: an address, or a network in CIDR notation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    /// `10.0.0.1`, `10.0.0.0/8`, `::1` or `fd00::/8`; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix.parse::<u8>().ok()?)),
            None => (text, None),
        };
        let addr = addr.parse::<IpAddr>().ok()?.to_canonical();
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Self { addr, prefix })
    }

    /// Whether `ip` is in this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => same_prefix(
                u128::from(u32::from(net)),
                u128::from(u32::from(ip)),
                32,
                self.prefix,
            ),
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                same_prefix(u128::from(net), u128::from(ip), 128, self.prefix)
            }
            _ => false,
        }
    }
}

fn same_prefix(a: u128, b: u128, bits: u8, prefix: u8) -> bool {
    let shift = u32::from(bits.saturating_sub(prefix));
    a.checked_shr(shift).unwrap_or(0) == b.checked_shr(shift).unwrap_or(0)
}

/// The parsed `trusted_proxies` setting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Network>);

impl TrustedProxies {
    /// Parses every entry; the entries that are not addresses or networks are returned
    /// apart (they trust nothing).
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> (Self, Vec<String>) {
        let mut invalid = Vec::new();
        let networks = entries
            .iter()
            .filter_map(|entry| {
                let parsed = Network::parse(entry.as_ref());
                if parsed.is_none() {
                    invalid.push(entry.as_ref().to_owned());
                }
                parsed
            })
            .collect();
        (Self(networks), invalid)
    }

    /// Whether `ip` is one of our proxies.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(ip))
    }
}

/// The client's address: the peer, or (when the peer is a trusted proxy) the right-most
/// address of the forwarded chain that is not a trusted proxy. `X-Forwarded-For` is read
/// when present, else `Forwarded`'s `for=`. Should the chain hold something that is not an
/// address (`unknown`, an obfuscated name), the walk stops at the last trusted hop: nothing
/// to the left of it can be believed.
pub fn resolve(
    peer: Option<IpAddr>,
    headers: &HeaderMap,
    trusted: &TrustedProxies,
) -> Option<IpAddr> {
    let mut client = peer?.to_canonical();
    if !trusted.contains(client) {
        return Some(client);
    }
    for hop in forwarded_chain(headers).iter().rev() {
        let Some(ip) = parse_hop(hop) else {
            break;
        };
        client = ip;
        if !trusted.contains(ip) {
            break;
        }
    }
    Some(client)
}

/// The addresses of `X-Forwarded-For` (every such header, in order), or else the `for=`
/// parameters of `Forwarded`, left (the original client) to right (the last proxy).
fn forwarded_chain(headers: &HeaderMap) -> Vec<String> {
    let values = |name: &str| -> Vec<String> {
        headers
            .get_all(name)
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|part| part.trim().to_owned())
            .filter(|part| !part.is_empty())
            .collect()
    };
    let xff = values("x-forwarded-for");
    if !xff.is_empty() {
        return xff;
    }
    values("forwarded")
        .iter()
        .filter_map(|element| {
            element.split(';').find_map(|pair| {
                let (key, value) = pair.split_once('=')?;
                key.trim()
                    .eq_ignore_ascii_case("for")
                    .then(|| value.trim().to_owned())
            })
        })
        .collect()
}

/// One hop: `1.2.3.4`, `1.2.3.4:80`, `"[2001:db8::1]:443"`, `2001:db8::1`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim().trim_matches('"');
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Ok(socket) = hop.parse::<SocketAddr>() {
        return Some(socket.ip().to_canonical());
    }
    let bracketed = hop.strip_prefix('[')?.split(']').next()?;
    bracketed.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

/// The client's address for `req`, with the server's `trusted_proxies`.
pub fn client_ip(req: &HttpRequest) -> Option<IpAddr> {
    let peer = req.peer_addr().map(|a| a.ip());
    let Some(state) = req.app_data::<Data<AppState>>() else {
        return peer.map(|ip| ip.to_canonical());
    };
    let (trusted, invalid) = TrustedProxies::parse(&state.config.trusted_proxies);
    if !invalid.is_empty() {
        static WARNED: Once = Once::new();
        WARNED.call_once(|| {
            tracing::warn!(entries = ?invalid,
                "trusted_proxies: entries that are not addresses or CIDR networks trust nothing");
        });
    }
    resolve(peer, req.headers(), &trusted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).expect("name"),
                HeaderValue::from_str(value).expect("value"),
            );
        }
        map
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    fn trusted(entries: &[&str]) -> TrustedProxies {
        let (trusted, invalid) = TrustedProxies::parse(entries);
        assert!(invalid.is_empty(), "{invalid:?}");
        trusted
    }

    #[test]
    fn networks_parse_and_match() {
        let net = Network::parse("10.0.0.0/8").expect("cidr");
        assert!(net.contains(ip("10.200.1.1")));
        assert!(!net.contains(ip("11.0.0.1")));
        assert!(
            Network::parse("::ffff:127.0.0.1")
                .expect("mapped")
                .contains(ip("127.0.0.1"))
        );
        assert!(
            Network::parse("fd00::/8")
                .expect("v6")
                .contains(ip("fd12::1"))
        );
        assert!(
            Network::parse("0.0.0.0/0")
                .expect("all")
                .contains(ip("8.8.8.8"))
        );
        for bad in ["", "10.0.0.0/33", "proxy.local", "10.0.0.0/x", "::/129"] {
            assert_eq!(Network::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn forwarding_headers_from_an_untrusted_peer_are_ignored() {
        let spoofed = headers(&[("x-forwarded-for", "1.2.3.4"), ("forwarded", "for=5.6.7.8")]);
        let peer = Some(ip("203.0.113.9"));
        assert_eq!(resolve(peer, &spoofed, &TrustedProxies::default()), peer);
        assert_eq!(resolve(peer, &spoofed, &trusted(&["127.0.0.1"])), peer);
    }

    #[test]
    fn a_trusted_peer_yields_the_right_most_untrusted_hop() {
        let proxies = trusted(&["127.0.0.1", "10.0.0.0/8"]);
        let peer = Some(ip("127.0.0.1"));
        // The client wrote "6.6.6.6" itself; our proxies appended the rest.
        let chain = headers(&[
            ("x-forwarded-for", "6.6.6.6, 198.51.100.7"),
            ("x-forwarded-for", "10.1.2.3"),
        ]);
        assert_eq!(resolve(peer, &chain, &proxies), Some(ip("198.51.100.7")));
        let forwarded = headers(&[(
            "forwarded",
            r#"for=6.6.6.6, for="[2001:db8::7]:4711";proto=https"#,
        )]);
        assert_eq!(resolve(peer, &forwarded, &proxies), Some(ip("2001:db8::7")));
        // Only proxies in the chain: the left-most one.
        let internal = headers(&[("x-forwarded-for", "10.0.0.5, 10.0.0.6")]);
        assert_eq!(resolve(peer, &internal, &proxies), Some(ip("10.0.0.5")));
        // No header: the proxy itself.
        assert_eq!(resolve(peer, &HeaderMap::new(), &proxies), peer);
        // Garbage stops the walk at the last trusted hop.
        let garbage = headers(&[("x-forwarded-for", "6.6.6.6, unknown, 10.0.0.9")]);
        assert_eq!(resolve(peer, &garbage, &proxies), Some(ip("10.0.0.9")));
        let with_port = headers(&[("x-forwarded-for", "198.51.100.8:5555")]);
        assert_eq!(
            resolve(peer, &with_port, &proxies),
            Some(ip("198.51.100.8"))
        );
    }

    #[test]
    fn invalid_entries_are_reported_and_trust_nothing() {
        let (proxies, invalid) = TrustedProxies::parse(&["proxy.internal", "127.0.0.1"]);
        assert_eq!(invalid, ["proxy.internal"]);
        assert!(proxies.contains(ip("127.0.0.1")));
        assert!(!proxies.contains(ip("127.0.0.2")));
    }
}
