//! The address ranges a sandbox may never reach unless the operator allows them.
//!
//! This is the proxy's main defence against a hostile agent: whatever name it asks for,
//! the proxy connects only to addresses that pass [`classify`], so the host's loopback
//! (PostgreSQL, Redis, the server itself), cloud metadata and private networks stay out of
//! reach. IPv6 forms that carry an IPv4 address (mapped, compatible, NAT64, 6to4, Teredo)
//! are unpacked and their IPv4 address is classified too, so `::ffff:127.0.0.1` is as
//! refused as `127.0.0.1`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::decision::RefusalReason;
use openhands_core::net_policy;

/// A network: an address and a prefix length, with no host bits set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Net {
    addr: IpAddr,
    prefix: u8,
}

impl Net {
    /// `addr/prefix`; `None` when the prefix is too long or host bits are set.
    pub(crate) fn new(addr: IpAddr, prefix: u8) -> Option<Self> {
        let net = Self { addr, prefix };
        match addr {
            IpAddr::V4(_) if prefix > 32 => None,
            IpAddr::V6(_) if prefix > 128 => None,
            _ if net.network() != addr => None,
            _ => Some(net),
        }
    }

    /// One address (`/32` or `/128`).
    pub(crate) fn host(addr: IpAddr) -> Self {
        let prefix = if addr.is_ipv4() { 32 } else { 128 };
        Self { addr, prefix }
    }

    /// The network address (the address with host bits cleared).
    fn network(&self) -> IpAddr {
        match self.addr {
            IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask32(self.prefix))),
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask128(self.prefix))),
        }
    }

    /// Whether `ip` lies in this network (never across address families).
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let m = mask32(self.prefix);
                u32::from(n) & m == u32::from(a) & m
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let m = mask128(self.prefix);
                u128::from(n) & m == u128::from(a) & m
            }
            _ => false,
        }
    }
}

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

/// Why an IPv4 address is refused by default, or `None` for an ordinary public address
/// (core's table, shared with the server's own egress checks).
pub(crate) fn classify_v4(a: Ipv4Addr) -> Option<RefusalReason> {
    net_policy::classify_v4(a).map(RefusalReason::from)
}

/// Why an IPv6 address is refused by default, or `None` for an ordinary public address.
/// Does not look at embedded IPv4 addresses; [`embedded_v4`] does.
pub(crate) fn classify_v6(a: Ipv6Addr) -> Option<RefusalReason> {
    net_policy::classify_v6(a).map(RefusalReason::from)
}

pub(crate) use net_policy::embedded_v4;

impl From<net_policy::AddressKind> for RefusalReason {
    fn from(kind: net_policy::AddressKind) -> Self {
        use net_policy::AddressKind as K;
        match kind {
            K::Unspecified => Self::Unspecified,
            K::ThisNetwork => Self::ThisNetwork,
            K::Loopback => Self::Loopback,
            K::Private | K::SiteLocal => Self::Private,
            K::SharedAddressSpace => Self::SharedAddressSpace,
            K::CloudMetadata => Self::CloudMetadata,
            K::LinkLocal => Self::LinkLocal,
            K::UniqueLocal => Self::UniqueLocal,
            K::Multicast => Self::Multicast,
            K::Broadcast => Self::Broadcast,
            K::Reserved => Self::Reserved,
        }
    }
}

/// Why `ip` is refused by default, and the embedded IPv4 address that made it so (if it
/// was that address rather than `ip` itself); `None` for an ordinary public address.
pub(crate) fn classify(ip: IpAddr) -> Option<(RefusalReason, Option<Ipv4Addr>)> {
    match ip {
        IpAddr::V4(a) => classify_v4(a).map(|r| (r, None)),
        IpAddr::V6(a) => {
            if let Some(reason) = classify_v6(a) {
                return Some((reason, None));
            }
            let v4 = embedded_v4(a)?;
            classify_v4(v4).map(|r| (r, Some(v4)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v6(s: &str) -> Ipv6Addr {
        s.parse().expect("test address")
    }

    #[test]
    fn embedded_forms_are_unpacked() {
        let local = Ipv4Addr::new(127, 0, 0, 1);
        assert_eq!(embedded_v4(v6("::ffff:127.0.0.1")), Some(local));
        assert_eq!(embedded_v4(v6("::ffff:0:127.0.0.1")), Some(local));
        assert_eq!(embedded_v4(v6("::127.0.0.1")), Some(local));
        assert_eq!(embedded_v4(v6("64:ff9b::127.0.0.1")), Some(local));
        assert_eq!(embedded_v4(v6("2002:7f00:1::")), Some(local));
        assert_eq!(
            embedded_v4(v6("2001:0:4136:e378:8000:63bf:80ff:fffe")),
            Some(local)
        );
        assert_eq!(embedded_v4(v6("2606:4700::1111")), None);
    }

    #[test]
    fn net_rejects_host_bits_and_long_prefixes() {
        let a: IpAddr = "10.1.2.3".parse().expect("test address");
        assert!(Net::new(a, 16).is_none());
        assert!(Net::new(a, 33).is_none());
        assert!(Net::new(a, 32).is_some());
        let n = Net::new("10.1.0.0".parse().expect("test address"), 16).expect("net");
        assert!(n.contains(a));
        assert!(!n.contains("10.2.0.1".parse().expect("test address")));
        assert!(!n.contains("::ffff:10.1.2.3".parse().expect("test address")));
    }

    #[test]
    fn zero_prefix_contains_everything_of_its_family() {
        let all = Net::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0).expect("net");
        assert!(all.contains("203.0.113.9".parse().expect("test address")));
        assert!(!all.contains("::1".parse().expect("test address")));
    }
}
