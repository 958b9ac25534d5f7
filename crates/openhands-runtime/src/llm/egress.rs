//! Where the LLM client may connect: anywhere (OSS, local models) or public addresses only
//! (SaaS, where the base URL is user input and an internal address would be SSRF).
//!
//! The check runs after DNS, in a [`reqwest::dns::Resolve`] that refuses a name when any of
//! its addresses is internal (so a second lookup cannot swap in one). reqwest does not ask the
//! resolver about IP literals, so [`check_url`] looks at those before any request. Addresses
//! are classified by [`openhands_core::net_policy`].

use openhands_core::net_policy::AllowList;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, SocketAddr};

/// Which addresses an [`crate::llm::LlmClient`] may connect to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum LlmEgress {
    /// Any address (the single-user server, whose user runs models on localhost).
    #[default]
    Any,
    /// Public addresses, plus the hosts and networks of the list (the multi-user server).
    Public(AllowList),
}

/// A host the client refused to reach; no URL (it may carry credentials), only the host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{host} is an internal address ({reason})")]
pub struct Refused {
    pub host: String,
    pub reason: &'static str,
}

/// Refuses an IP-literal host of `url` that `allow` does not let through (names are left to
/// [`CheckedResolver`]); `Ok` for URLs reqwest will reject itself.
pub(crate) fn check_url(url: &str, allow: &AllowList) -> Result<(), Refused> {
    let Ok(url) = reqwest::Url::parse(url) else {
        return Ok(());
    };
    let Some(host) = url.host_str() else {
        return Ok(());
    };
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    match literal.parse::<IpAddr>() {
        Ok(ip) => match allow.refusal(ip) {
            Some(reason) => Err(Refused {
                host: host.to_owned(),
                reason,
            }),
            None => Ok(()),
        },
        Err(_) => Ok(()),
    }
}

/// The first address of `addrs` that `allow` refuses.
fn first_refused(host: &str, addrs: &[SocketAddr], allow: &AllowList) -> Option<Refused> {
    if allow.allows_host(host) {
        return None;
    }
    addrs.iter().find_map(|a| {
        allow.refusal(a.ip()).map(|reason| Refused {
            host: host.to_owned(),
            reason,
        })
    })
}

/// The system resolver, refusing a name when any address it resolves to is refused.
#[derive(Debug)]
pub(crate) struct CheckedResolver {
    pub(crate) allow: AllowList,
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow = self.allow.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if let Some(refused) = first_refused(&host, &addrs, &allow) {
                return Err(refused.into());
            }
            let addrs: Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// The [`Refused`] somewhere in `error`'s cause chain.
pub(crate) fn refused_in(error: &reqwest::Error) -> Option<Refused> {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(refused) = cause.downcast_ref::<Refused>() {
            return Some(refused.clone());
        }
        source = cause.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allow(entries: &[&str]) -> AllowList {
        AllowList::parse(entries).expect("valid")
    }

    #[test]
    fn ip_literals_are_checked() {
        let none = allow(&[]);
        let refused = check_url("http://169.254.169.254/latest", &none).expect_err("metadata");
        assert_eq!(refused.reason, "cloud metadata");
        assert!(check_url("http://[::ffff:127.0.0.1]:8080/v1", &none).is_err());
        assert!(check_url("http://0x7f000001/v1", &none).is_err());
        assert!(check_url("http://127.1/v1", &none).is_err());
        assert!(check_url("https://8.8.8.8/v1", &none).is_ok());
        assert!(check_url("https://api.openai.com/v1", &none).is_ok());
        assert!(check_url("http://127.0.0.1:4000/v1", &allow(&["127.0.0.1"])).is_ok());
    }

    #[test]
    fn names_are_refused_when_any_address_is_internal() {
        let public: SocketAddr = "8.8.8.8:0".parse().expect("addr");
        let private: SocketAddr = "10.0.0.1:0".parse().expect("addr");
        let none = allow(&[]);
        assert!(first_refused("a.example", &[public], &none).is_none());
        let refused = first_refused("a.example", &[public, private], &none).expect("refused");
        assert_eq!(
            refused.to_string(),
            "a.example is an internal address (private)"
        );
        assert!(first_refused("a.example", &[private], &allow(&["a.example"])).is_none());
        assert!(first_refused("a.example", &[private], &allow(&["10.0.0.0/8"])).is_none());
    }
}
