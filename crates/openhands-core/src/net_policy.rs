//! Which IP addresses a server-side HTTP client may reach for a user.
//!
//! On a multi-user server some URLs are user input (the LLM base URL in settings). Without a
//! check, a user can point the server at its own loopback, the private network or the cloud
//! metadata service and read the answers back (SSRF). Callers resolve the name first and ask
//! [`refusal`] about every address, so a public name that resolves to `10.0.0.5` is refused
//! like the literal. IPv6 forms that carry an IPv4 address (mapped, compatible, NAT64, 6to4,
//! Teredo) are unpacked, so `::ffff:127.0.0.1` is as refused as `127.0.0.1`. An operator can
//! let chosen hosts or networks through with an [`AllowList`].
//!
//! The sandbox's egress proxy (`openhands-sandbox`'s `egress::ranges`) classifies with the
//! same tables ([`classify_v4`], [`classify_v6`], [`embedded_v4`]).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

fn mask32(prefix: u8) -> u32 {
    u32::MAX
        .checked_shl(32 - u32::from(prefix.min(32)))
        .unwrap_or(0)
}

fn mask128(prefix: u8) -> u128 {
    u128::MAX
        .checked_shl(128 - u32::from(prefix.min(128)))
        .unwrap_or(0)
}

fn in4(a: Ipv4Addr, net: [u8; 4], prefix: u8) -> bool {
    let m = mask32(prefix);
    u32::from(a) & m == u32::from(Ipv4Addr::from(net)) & m
}

fn in6(a: Ipv6Addr, net: u128, prefix: u8) -> bool {
    let m = mask128(prefix);
    u128::from(a) & m == net & m
}

/// Why an address is internal: the ranges a server or sandbox must not reach by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressKind {
    Unspecified,
    ThisNetwork,
    Loopback,
    Private,
    SharedAddressSpace,
    CloudMetadata,
    LinkLocal,
    SiteLocal,
    UniqueLocal,
    Multicast,
    Broadcast,
    Reserved,
}

impl AddressKind {
    /// The kind in words (`"loopback"`, `"cloud metadata"`, ...).
    pub fn describe(self) -> &'static str {
        match self {
            Self::Unspecified => "unspecified",
            Self::ThisNetwork => "this-network",
            Self::Loopback => "loopback",
            Self::Private => "private",
            Self::SharedAddressSpace => "shared (CGNAT)",
            Self::CloudMetadata => "cloud metadata",
            Self::LinkLocal => "link-local",
            Self::SiteLocal => "site-local",
            Self::UniqueLocal => "unique-local",
            Self::Multicast => "multicast",
            Self::Broadcast => "broadcast",
            Self::Reserved => "reserved",
        }
    }
}

/// The kind of an internal IPv4 address, or `None` for an ordinary public one.
pub fn classify_v4(a: Ipv4Addr) -> Option<AddressKind> {
    use AddressKind as K;
    const TABLE: &[([u8; 4], u8, AddressKind)] = &[
        ([0, 0, 0, 0], 32, K::Unspecified),
        ([0, 0, 0, 0], 8, K::ThisNetwork),
        ([127, 0, 0, 0], 8, K::Loopback),
        ([10, 0, 0, 0], 8, K::Private),
        ([172, 16, 0, 0], 12, K::Private),
        ([192, 168, 0, 0], 16, K::Private),
        ([100, 64, 0, 0], 10, K::SharedAddressSpace),
        ([169, 254, 169, 254], 32, K::CloudMetadata),
        ([169, 254, 0, 0], 16, K::LinkLocal),
        // IETF protocol assignments (192.0.0.192 is Oracle Cloud's metadata service).
        ([192, 0, 0, 0], 24, K::Reserved),
        ([192, 0, 2, 0], 24, K::Reserved),
        ([198, 18, 0, 0], 15, K::Reserved),
        ([198, 51, 100, 0], 24, K::Reserved),
        ([203, 0, 113, 0], 24, K::Reserved),
        ([224, 0, 0, 0], 4, K::Multicast),
        ([255, 255, 255, 255], 32, K::Broadcast),
        ([240, 0, 0, 0], 4, K::Reserved),
    ];
    TABLE
        .iter()
        .find(|(net, prefix, _)| in4(a, *net, *prefix))
        .map(|(_, _, kind)| *kind)
}

/// The kind of an internal IPv6 address, or `None` for an ordinary public one. Does not
/// look at embedded IPv4 addresses; [`embedded_v4`] does.
pub fn classify_v6(a: Ipv6Addr) -> Option<AddressKind> {
    use AddressKind as K;
    const TABLE: &[(u128, u8, AddressKind)] = &[
        (0, 128, K::Unspecified),
        (1, 128, K::Loopback),
        // fd00:ec2::254, AWS's IPv6 metadata service (inside the unique-local range).
        (
            0xfd00_0ec2_0000_0000_0000_0000_0000_0254,
            128,
            K::CloudMetadata,
        ),
        (0xfe80 << 112, 10, K::LinkLocal),
        (0xfec0 << 112, 10, K::SiteLocal),
        (0xfc00 << 112, 7, K::UniqueLocal),
        (0xff00 << 112, 8, K::Multicast),
        (0x0100 << 112, 64, K::Reserved),          // discard-only
        (0x2001_0db8 << 96, 32, K::Reserved),      // documentation
        (0x0064_ff9b_0001 << 80, 48, K::Reserved), // local-use NAT64
    ];
    TABLE
        .iter()
        .find(|(net, prefix, _)| in6(a, *net, *prefix))
        .map(|(_, _, kind)| *kind)
}

/// The IPv4 address an IPv6 address stands for or routes to, if it embeds one:
/// IPv4-mapped (`::ffff:a.b.c.d`), IPv4-translated (`::ffff:0:a.b.c.d`), IPv4-compatible
/// (`::a.b.c.d`), well-known NAT64 (`64:ff9b::a.b.c.d`), 6to4 (`2002:aabb:ccdd::`) and
/// Teredo (the client address, stored inverted).
pub fn embedded_v4(a: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = u128::from(a);
    let low32 = Ipv4Addr::from((bits & 0xffff_ffff) as u32);
    if in6(a, 0xffff << 32, 96)
        || in6(a, 0xffff << 48, 96)
        || in6(a, 0, 96)
        || in6(a, 0x0064_ff9b << 96, 96)
    {
        return Some(low32);
    }
    if in6(a, 0x2002 << 112, 16) {
        return Some(Ipv4Addr::from(((bits >> 80) & 0xffff_ffff) as u32));
    }
    if in6(a, 0x2001_0000 << 96, 32) {
        return Some(Ipv4Addr::from(!((bits & 0xffff_ffff) as u32)));
    }
    None
}

/// Why `ip` must not be reached by default (`"loopback"`, `"private"`, `"cloud metadata"`,
/// ...), or `None` for an ordinary public address.
pub fn refusal(ip: IpAddr) -> Option<&'static str> {
    let kind = match ip {
        IpAddr::V4(a) => classify_v4(a),
        IpAddr::V6(a) => classify_v6(a).or_else(|| embedded_v4(a).and_then(classify_v4)),
    };
    kind.map(AddressKind::describe)
}

/// A network: `addr/prefix`, or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Net {
    addr: IpAddr,
    prefix: u8,
}

impl Net {
    /// Whether `ip` lies in this network; an IPv4-mapped IPv6 address counts as its IPv4.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(n), IpAddr::V4(a)) => in4(a, n.octets(), self.prefix),
            (IpAddr::V6(n), IpAddr::V6(a)) => in6(a, u128::from(n), self.prefix),
            _ => false,
        }
    }
}

/// Why an allow-list entry is not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a host name, an IP address or a network such as 10.0.0.0/8")]
pub struct InvalidEntry(pub String);

impl FromStr for Net {
    type Err = InvalidEntry;

    /// `10.0.0.0/8`, `fd00::/8`, `127.0.0.1` or `[::1]` (host bits must be clear).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || InvalidEntry(s.to_owned());
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix.parse::<u8>().map_err(|_| bad())?)),
            None => (s, None),
        };
        let addr = addr.trim_start_matches('[').trim_end_matches(']');
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        let net = Self { addr, prefix };
        if prefix > max || net.network() != addr {
            return Err(bad());
        }
        Ok(net)
    }
}

impl Net {
    fn network(&self) -> IpAddr {
        match self.addr {
            IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask32(self.prefix))),
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask128(self.prefix))),
        }
    }
}

/// Hosts and networks an operator lets through although [`refusal`] names them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    /// Lower-case host names without a trailing dot; any address they resolve to passes.
    hosts: Vec<String>,
    nets: Vec<Net>,
}

impl AllowList {
    /// Entries are host names (`ollama.internal`), addresses (`127.0.0.1`, `[::1]`) or
    /// networks (`10.0.0.0/8`); blank entries are skipped.
    pub fn parse<S: AsRef<str>>(
        entries: impl IntoIterator<Item = S>,
    ) -> Result<Self, InvalidEntry> {
        let mut list = Self::default();
        for entry in entries {
            let entry = entry.as_ref().trim();
            if entry.is_empty() {
                continue;
            }
            if let Ok(net) = entry.parse::<Net>() {
                list.nets.push(net);
                continue;
            }
            let host = entry.trim_end_matches('.').to_ascii_lowercase();
            let valid = !host.is_empty()
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
                && !host.chars().all(|c| c.is_ascii_digit() || c == '.');
            if !valid {
                return Err(InvalidEntry(entry.to_owned()));
            }
            list.hosts.push(host);
        }
        Ok(list)
    }

    /// Whether the host name `host` is listed (case and a trailing dot ignored).
    pub fn allows_host(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.');
        self.hosts.iter().any(|h| h.eq_ignore_ascii_case(host))
    }

    /// Whether `ip` lies in a listed network.
    pub fn allows_ip(&self, ip: IpAddr) -> bool {
        self.nets.iter().any(|n| n.contains(ip))
    }

    /// Why `ip` is refused under this list, or `None` when it may be reached.
    pub fn refusal(&self, ip: IpAddr) -> Option<&'static str> {
        refusal(ip).filter(|_| !self.allows_ip(ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    #[test]
    fn internal_addresses_are_refused_and_public_ones_pass() {
        for (addr, reason) in [
            ("127.0.0.1", "loopback"),
            ("10.1.2.3", "private"),
            ("172.31.0.1", "private"),
            ("192.168.1.1", "private"),
            ("100.100.100.100", "shared (CGNAT)"),
            ("169.254.169.254", "cloud metadata"),
            ("169.254.1.1", "link-local"),
            ("0.0.0.0", "unspecified"),
            ("224.0.0.1", "multicast"),
            ("::", "unspecified"),
            ("::1", "loopback"),
            ("fd00:ec2::254", "cloud metadata"),
            ("fd12::1", "unique-local"),
            ("fe80::1", "link-local"),
            ("ff02::1", "multicast"),
        ] {
            assert_eq!(refusal(ip(addr)), Some(reason), "{addr}");
        }
        for addr in ["8.8.8.8", "1.1.1.1", "2606:4700::1111", "172.32.0.1"] {
            assert_eq!(refusal(ip(addr)), None, "{addr}");
        }
    }

    #[test]
    fn ipv4_inside_ipv6_is_unpacked() {
        for addr in [
            "::ffff:127.0.0.1",
            "::ffff:0:127.0.0.1",
            "::127.0.0.1",
            "64:ff9b::127.0.0.1",
            "2002:7f00:1::",
            "2001:0:4136:e378:8000:63bf:80ff:fffe",
        ] {
            assert_eq!(refusal(ip(addr)), Some("loopback"), "{addr}");
        }
        assert_eq!(
            refusal(ip("::ffff:169.254.169.254")),
            Some("cloud metadata")
        );
        assert_eq!(refusal(ip("::ffff:10.0.0.1")), Some("private"));
        assert_eq!(refusal(ip("::ffff:8.8.8.8")), None);
    }

    #[test]
    fn allow_list_matches_hosts_addresses_and_networks() {
        let list = AllowList::parse(["127.0.0.1", "10.0.0.0/8", "[::1]", "Ollama.Internal.", " "])
            .expect("valid");
        assert_eq!(list.refusal(ip("127.0.0.1")), None);
        assert_eq!(list.refusal(ip("::ffff:127.0.0.1")), None);
        assert_eq!(list.refusal(ip("127.0.0.2")), Some("loopback"));
        assert_eq!(list.refusal(ip("10.200.0.1")), None);
        assert_eq!(list.refusal(ip("::1")), None);
        assert_eq!(list.refusal(ip("169.254.169.254")), Some("cloud metadata"));
        assert!(list.allows_host("ollama.internal"));
        assert!(list.allows_host("OLLAMA.internal."));
        assert!(!list.allows_host("internal"));
    }

    #[test]
    fn bad_allow_list_entries_are_named() {
        for entry in [
            "10.0.0.1/8",
            "10.0.0.0/33",
            "host:8080",
            "http://x",
            "1.2.3",
        ] {
            assert_eq!(
                AllowList::parse([entry]),
                Err(InvalidEntry(entry.to_owned())),
                "{entry}"
            );
        }
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail closures return figment::Error
    fn config_key_reads_env_and_refuses_bad_entries() {
        use crate::config::Config;
        figment::Jail::expect_with(|jail| {
            let file = jail.directory().join("none.toml");
            jail.set_env(
                "OPENHANDS_LLM_EGRESS_ALLOW",
                "127.0.0.1, ollama.internal,10.0.0.0/8",
            );
            let config = Config::from_figment(Config::figment(&file)).expect("valid");
            assert_eq!(
                config.llm_egress_allow,
                ["127.0.0.1", "ollama.internal", "10.0.0.0/8"]
            );
            jail.set_env("OPENHANDS_LLM_EGRESS_ALLOW", "10.0.0.1/8");
            let err = Config::from_figment(Config::figment(&file)).expect_err("bad entry");
            assert!(err.to_string().contains("10.0.0.1/8"), "{err}");
            Ok(())
        });
    }
}
