//! What the egress policy decided about a request, for code (a stable reason) and for
//! people (a sentence).
//!
//! The proxy sends the sentence back to the sandbox, where an agent or the person reading
//! its transcript sees why a request failed; the codes go to the logs. Keeping both next
//! to each other keeps them from drifting apart.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

/// Why a request was let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllowReason {
    /// An ordinary public address.
    Public,
    /// The host name is in `allow`.
    AllowedHost,
    /// The address is in an `allow` network.
    AllowedNetwork,
}

impl AllowReason {
    /// A stable, machine-readable name (for logs and metrics).
    pub fn code(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::AllowedHost => "allowed_host",
            Self::AllowedNetwork => "allowed_network",
        }
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalReason {
    Loopback,
    Unspecified,
    /// 0.0.0.0/8 other than 0.0.0.0 itself.
    ThisNetwork,
    /// RFC 1918 networks (and IPv6 site-local).
    Private,
    /// 100.64.0.0/10, carrier-grade NAT.
    SharedAddressSpace,
    LinkLocal,
    /// 169.254.169.254, fd00:ec2::254.
    CloudMetadata,
    /// fc00::/7.
    UniqueLocal,
    Multicast,
    Broadcast,
    /// Documentation, benchmarking, IETF and future-use ranges.
    Reserved,
    /// The host name is in `deny`.
    DeniedHost,
    /// The address is in a `deny` network.
    DeniedNetwork,
    /// `ports` is set and does not list the port.
    PortNotAllowed,
}

impl RefusalReason {
    /// A stable, machine-readable name (for logs, metrics and the refusal body).
    pub fn code(self) -> &'static str {
        match self {
            Self::Loopback => "loopback",
            Self::Unspecified => "unspecified",
            Self::ThisNetwork => "this_network",
            Self::Private => "private",
            Self::SharedAddressSpace => "shared_address_space",
            Self::LinkLocal => "link_local",
            Self::CloudMetadata => "cloud_metadata",
            Self::UniqueLocal => "unique_local",
            Self::Multicast => "multicast",
            Self::Broadcast => "broadcast",
            Self::Reserved => "reserved",
            Self::DeniedHost => "denied_host",
            Self::DeniedNetwork => "denied_network",
            Self::PortNotAllowed => "port_not_allowed",
        }
    }

    /// Whether a host allowed by name may resolve into this range. Loopback, "this
    /// network" and metadata addresses need an explicit address or network entry.
    pub fn reopened_by_host_name(self) -> bool {
        !matches!(
            self,
            Self::Loopback | Self::Unspecified | Self::ThisNetwork | Self::CloudMetadata
        )
    }

    fn describe(self) -> &'static str {
        match self {
            Self::Loopback => "a loopback address",
            Self::Unspecified => "the unspecified address",
            Self::ThisNetwork => "in 0.0.0.0/8 (this host on this network)",
            Self::Private => "a private-network address",
            Self::SharedAddressSpace => "a carrier-grade NAT (shared) address",
            Self::LinkLocal => "a link-local address",
            Self::CloudMetadata => "a cloud metadata service address",
            Self::UniqueLocal => "a unique-local (private) IPv6 address",
            Self::Multicast => "a multicast address",
            Self::Broadcast => "the broadcast address",
            Self::Reserved => "a reserved address",
            Self::DeniedHost => "denied by the sandbox network policy",
            Self::DeniedNetwork => "in a network the sandbox network policy denies",
            Self::PortNotAllowed => "not an allowed port",
        }
    }
}

/// A refused request: the reason and what it was about. `Display` is the sentence the
/// proxy sends back to the sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: RefusalReason,
    /// The host as requested.
    pub host: String,
    pub port: u16,
    /// The resolved address that was refused, for address rules.
    pub address: Option<IpAddr>,
    /// The IPv4 address embedded in `address` that was refused, when it was that one.
    pub embedded: Option<Ipv4Addr>,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let describe = self.reason.describe();
        if self.reason == RefusalReason::PortNotAllowed {
            return write!(f, "port {} is {describe}", self.port);
        }
        let Some(address) = self.address else {
            return write!(f, "{} is {describe}", self.host);
        };
        let literal = self.host.trim_start_matches('[').trim_end_matches(']');
        let resolved = literal != address.to_string();
        match (resolved, self.embedded) {
            (false, None) => write!(f, "{address} is {describe}")?,
            (true, None) => write!(f, "{} resolves to {address}, {describe}", self.host)?,
            (false, Some(v4)) => write!(f, "{address} embeds {v4}, {describe}")?,
            (true, Some(v4)) => write!(
                f,
                "{} resolves to {address}, which embeds {v4}, {describe}",
                self.host
            )?,
        }
        f.write_str("; sandboxes cannot reach it")
    }
}
