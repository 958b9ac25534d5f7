//! `[sandbox.network]` as the egress proxy applies it: built-in refusals, allow, deny,
//! ports, and configuration errors.

use std::net::IpAddr;

use openhands_core::sandbox_config::NetworkPolicy;
use openhands_sandbox::egress::{AllowReason, CompiledPolicy, Host, Refusal, RefusalReason};

fn policy(allow: &[&str], deny: &[&str], ports: &[u16]) -> CompiledPolicy {
    CompiledPolicy::compile(&NetworkPolicy {
        allow: allow.iter().map(|s| s.to_string()).collect(),
        deny: deny.iter().map(|s| s.to_string()).collect(),
        ports: ports.to_vec(),
        ..NetworkPolicy::default()
    })
    .expect("valid policy")
}

fn ip(text: &str) -> IpAddr {
    text.parse().expect("test address")
}

fn name(text: &str) -> Host {
    Host::parse(text).expect("test host")
}

/// The decision for a literal address under `policy`.
fn literal(policy: &CompiledPolicy, addr: &str) -> Result<AllowReason, Refusal> {
    policy.check_address(&Host::Ip(ip(addr)), 443, ip(addr))
}

fn refusal(result: Result<AllowReason, Refusal>) -> Refusal {
    match result {
        Err(refusal) => refusal,
        Ok(allowed) => panic!("expected a refusal, got {allowed:?}"),
    }
}

#[test]
fn every_builtin_range_is_refused_with_its_reason() {
    use RefusalReason as R;
    let cases = [
        ("127.0.0.1", R::Loopback),
        ("127.255.255.254", R::Loopback),
        ("::1", R::Loopback),
        ("0.0.0.0", R::Unspecified),
        ("::", R::Unspecified),
        ("0.1.2.3", R::ThisNetwork),
        ("10.0.0.1", R::Private),
        ("10.255.255.255", R::Private),
        ("172.16.0.1", R::Private),
        ("172.31.255.255", R::Private),
        ("192.168.1.1", R::Private),
        ("fec0::1", R::Private),
        ("100.64.0.1", R::SharedAddressSpace),
        ("100.127.255.255", R::SharedAddressSpace),
        ("169.254.1.1", R::LinkLocal),
        ("fe80::1", R::LinkLocal),
        ("febf::1", R::LinkLocal),
        ("169.254.169.254", R::CloudMetadata),
        ("fd00:ec2::254", R::CloudMetadata),
        ("fc00::1", R::UniqueLocal),
        ("fd12:3456::1", R::UniqueLocal),
        ("224.0.0.1", R::Multicast),
        ("239.255.255.250", R::Multicast),
        ("ff02::1", R::Multicast),
        ("255.255.255.255", R::Broadcast),
        ("240.0.0.1", R::Reserved),
        ("192.0.0.192", R::Reserved),
        ("2001:db8::1", R::Reserved),
    ];
    let default = policy(&[], &[], &[]);
    for (addr, reason) in cases {
        let refused = refusal(literal(&default, addr));
        assert_eq!(refused.reason, reason, "{addr}");
        assert_eq!(refused.address, Some(ip(addr)), "{addr}");
    }
}

#[test]
fn addresses_next_to_the_ranges_are_public() {
    let default = policy(&[], &[], &[]);
    for addr in [
        "8.8.8.8",
        "9.255.255.255",
        "11.0.0.0",
        "126.255.255.255",
        "128.0.0.1",
        "172.15.255.255",
        "172.32.0.0",
        "100.63.255.255",
        "100.128.0.0",
        "169.253.255.255",
        "192.169.0.1",
        "223.255.255.255",
        "2606:4700:4700::1111",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
    ] {
        assert_eq!(literal(&default, addr), Ok(AllowReason::Public), "{addr}");
    }
}

#[test]
fn ipv6_forms_embedding_a_refused_ipv4_are_refused() {
    use RefusalReason as R;
    let default = policy(&[], &[], &[]);
    let cases = [
        ("::ffff:127.0.0.1", R::Loopback, "127.0.0.1"),
        ("::ffff:0:127.0.0.1", R::Loopback, "127.0.0.1"),
        ("::127.0.0.1", R::Loopback, "127.0.0.1"),
        (
            "::ffff:169.254.169.254",
            R::CloudMetadata,
            "169.254.169.254",
        ),
        ("::ffff:10.0.0.1", R::Private, "10.0.0.1"),
        ("64:ff9b::a00:1", R::Private, "10.0.0.1"),
        ("2002:c0a8:101::1", R::Private, "192.168.1.1"),
        (
            "2001:0:4136:e378:8000:63bf:80ff:fffe",
            R::Loopback,
            "127.0.0.1",
        ),
    ];
    for (addr, reason, embedded) in cases {
        let refused = refusal(literal(&default, addr));
        assert_eq!(refused.reason, reason, "{addr}");
        assert_eq!(
            refused.embedded.map(IpAddr::V4),
            Some(ip(embedded)),
            "{addr}"
        );
    }
}

#[test]
fn refusals_explain_themselves() {
    let default = policy(&[], &[], &[]);
    let direct = refusal(literal(&default, "127.0.0.1"));
    assert_eq!(
        direct.to_string(),
        "127.0.0.1 is a loopback address; sandboxes cannot reach it"
    );
    let by_name = refusal(default.check_address(&name("localhost"), 80, ip("127.0.0.1")));
    assert_eq!(
        by_name.to_string(),
        "localhost resolves to 127.0.0.1, a loopback address; sandboxes cannot reach it"
    );
    let mapped = refusal(literal(&default, "::ffff:127.0.0.1"));
    assert!(
        mapped
            .to_string()
            .contains("embeds 127.0.0.1, a loopback address"),
        "{mapped}"
    );
    assert_eq!(direct.reason.code(), "loopback");
}

#[test]
fn allow_reopens_a_private_network_and_nothing_else() {
    let p = policy(&["10.1.0.0/16", "fd00:1::/32"], &[], &[]);
    assert_eq!(literal(&p, "10.1.2.3"), Ok(AllowReason::AllowedNetwork));
    assert_eq!(
        literal(&p, "::ffff:10.1.2.3"),
        Ok(AllowReason::AllowedNetwork)
    );
    assert_eq!(literal(&p, "fd00:1::5"), Ok(AllowReason::AllowedNetwork));
    assert_eq!(
        refusal(literal(&p, "10.2.0.1")).reason,
        RefusalReason::Private
    );
    assert_eq!(
        refusal(literal(&p, "127.0.0.1")).reason,
        RefusalReason::Loopback
    );
    assert_eq!(
        refusal(literal(&p, "fd00:2::5")).reason,
        RefusalReason::UniqueLocal
    );
}

#[test]
fn allow_by_name_reopens_that_host_only() {
    let p = policy(&["mirror.internal"], &[], &[]);
    let mirror = p.check_address(&name("Mirror.Internal."), 443, ip("10.9.9.9"));
    assert_eq!(mirror, Ok(AllowReason::AllowedHost));
    let other = p.check_address(&name("other.internal"), 443, ip("10.9.9.9"));
    assert_eq!(refusal(other).reason, RefusalReason::Private);
    // Naming the address does not count as naming the host.
    assert_eq!(
        refusal(literal(&p, "10.9.9.9")).reason,
        RefusalReason::Private
    );
}

#[test]
fn a_name_in_allow_never_reaches_loopback_or_metadata() {
    let p = policy(&["localhost", "*.corp.example"], &[], &[]);
    let check = |host: &str, addr: &str| p.check_address(&name(host), 443, ip(addr));
    assert_eq!(
        refusal(check("localhost", "127.0.0.1")).reason,
        RefusalReason::Loopback
    );
    assert_eq!(
        refusal(check("localhost", "::1")).reason,
        RefusalReason::Loopback
    );
    assert_eq!(
        refusal(check("x.corp.example", "::ffff:127.0.0.1")).reason,
        RefusalReason::Loopback
    );
    assert_eq!(
        refusal(check("meta.corp.example", "169.254.169.254")).reason,
        RefusalReason::CloudMetadata
    );
    assert_eq!(
        refusal(check("x.corp.example", "0.0.0.0")).reason,
        RefusalReason::Unspecified
    );
    // Private, link-local and unique-local ranges are what a name in `allow` is for.
    for addr in ["10.0.0.1", "169.254.3.4", "fd00::1", "100.64.0.1"] {
        assert_eq!(
            check("x.corp.example", addr),
            Ok(AllowReason::AllowedHost),
            "{addr}"
        );
    }
    // An address entry does re-open loopback.
    let p = policy(&["127.0.0.1"], &[], &[]);
    let local = p.check_address(&name("localhost"), 443, ip("127.0.0.1"));
    assert_eq!(local, Ok(AllowReason::AllowedNetwork));
}

#[test]
fn an_ipv4_allow_does_not_reopen_ipv6_loopback() {
    let p = policy(&["0.0.0.0/0"], &[], &[]);
    assert_eq!(literal(&p, "127.0.0.1"), Ok(AllowReason::AllowedNetwork));
    assert_eq!(refusal(literal(&p, "::1")).reason, RefusalReason::Loopback);
    assert_eq!(
        refusal(literal(&p, "::")).reason,
        RefusalReason::Unspecified
    );
}

#[test]
fn wildcards_match_subdomains_not_the_name_itself() {
    let p = policy(&["*.corp.example"], &[], &[]);
    let check = |host: &str| p.check_address(&name(host), 443, ip("10.0.0.7"));
    assert_eq!(check("a.corp.example"), Ok(AllowReason::AllowedHost));
    assert_eq!(check("a.b.corp.example"), Ok(AllowReason::AllowedHost));
    assert!(check("corp.example").is_err());
    assert!(check("evilcorp.example").is_err());
    assert!(check("corp.example.evil.test").is_err());
}

#[test]
fn deny_wins_over_allow() {
    let p = policy(
        &["10.0.0.0/8", "db.internal", "*.example.com"],
        &["10.0.0.5", "db.internal", "secret.example.com"],
        &[],
    );
    assert_eq!(
        refusal(literal(&p, "10.0.0.5")).reason,
        RefusalReason::DeniedNetwork
    );
    assert_eq!(
        refusal(literal(&p, "::ffff:10.0.0.5")).reason,
        RefusalReason::DeniedNetwork
    );
    assert_eq!(literal(&p, "10.0.0.6"), Ok(AllowReason::AllowedNetwork));
    let denied = p
        .check_target(&name("DB.internal"), 5432)
        .expect_err("denied host");
    assert_eq!(denied.reason, RefusalReason::DeniedHost);
    let secret = p.check_target(&name("secret.example.com"), 443);
    assert_eq!(secret.map_err(|r| r.reason), Err(RefusalReason::DeniedHost));
    assert!(p.check_target(&name("www.example.com"), 443).is_ok());

    // A host allowed by name still cannot resolve into a denied network.
    let p = policy(&["db.internal"], &["10.0.0.0/8"], &[]);
    let result = p.check_address(&name("db.internal"), 5432, ip("10.1.1.1"));
    assert_eq!(refusal(result).reason, RefusalReason::DeniedNetwork);
}

#[test]
fn deny_can_refuse_public_hosts_and_networks() {
    let p = policy(&[], &["*.example.com", "93.184.0.0/16"], &[]);
    let by_name = p.check_target(&name("WWW.Example.COM."), 443);
    assert_eq!(
        by_name.map_err(|r| r.reason),
        Err(RefusalReason::DeniedHost)
    );
    assert_eq!(
        refusal(literal(&p, "93.184.216.34")).reason,
        RefusalReason::DeniedNetwork
    );
    assert_eq!(literal(&p, "93.185.0.1"), Ok(AllowReason::Public));
}

#[test]
fn ports_restrict_when_listed() {
    let p = policy(&[], &[], &[80, 443]);
    assert!(p.check_target(&name("example.com"), 443).is_ok());
    let refused = p
        .check_target(&name("example.com"), 22)
        .expect_err("port 22");
    assert_eq!(refused.reason, RefusalReason::PortNotAllowed);
    assert_eq!(refused.to_string(), "port 22 is not an allowed port");
    let any = policy(&[], &[], &[]);
    assert!(any.check_target(&name("example.com"), 22).is_ok());
}

#[test]
fn one_refused_address_refuses_the_whole_name() {
    let default = policy(&[], &[], &[]);
    let addrs = [ip("93.184.216.34"), ip("127.0.0.1")];
    let result = default.check_resolved(&name("rebind.test"), 443, &addrs);
    assert_eq!(result.map_err(|r| r.reason), Err(RefusalReason::Loopback));
    let ok = default.check_resolved(&name("example.com"), 443, &addrs[..1]);
    assert_eq!(ok, Ok(vec![AllowReason::Public]));
}

#[test]
fn bad_entries_are_errors_that_name_them() {
    let bad = [
        "",
        "*",
        "*.",
        "10.0.0.0/33",
        "10.1.2.3/16",
        "10.0.0.0/x",
        "nonsense/8",
        "http://example.com",
        "example.com:443",
        "foo*.com",
        "a..b",
        "256.1.1.1",
        "exa mple.com",
    ];
    for entry in bad {
        for list in ["allow", "deny"] {
            let mut config = NetworkPolicy::default();
            match list {
                "allow" => config.allow = vec![entry.to_owned()],
                _ => config.deny = vec![entry.to_owned()],
            }
            let error = CompiledPolicy::compile(&config).expect_err(entry);
            let text = error.to_string();
            assert!(text.contains(&format!("sandbox.network.{list}")), "{text}");
            assert!(text.contains(&format!("{entry:?}")), "{text}");
        }
    }
    let zero = NetworkPolicy {
        ports: vec![0],
        ..NetworkPolicy::default()
    };
    let error = CompiledPolicy::compile(&zero).expect_err("port 0");
    assert_eq!(error.list, "ports");
}

#[test]
fn good_entries_compile() {
    let p = policy(
        &[
            "example.com",
            "*.example.com",
            "10.0.0.1",
            "[::1]",
            "fd00::/8",
            " pypi.org ",
        ],
        &["0.0.0.0/0"],
        &[443],
    );
    assert_eq!(
        refusal(literal(&p, "8.8.8.8")).reason,
        RefusalReason::DeniedNetwork
    );
}

#[test]
fn hosts_are_normalised_and_checked() {
    assert_eq!(
        Host::parse("EXAMPLE.com."),
        Ok(Host::Name("example.com".into()))
    );
    assert_eq!(Host::parse("[::1]"), Ok(Host::Ip(ip("::1"))));
    assert_eq!(Host::parse("127.0.0.1"), Ok(Host::Ip(ip("127.0.0.1"))));
    for bad in [
        "",
        "a b",
        "a/b",
        "[::1",
        "[example.com]",
        "a..b",
        "ex\u{e4}mple.com",
    ] {
        assert!(Host::parse(bad).is_err(), "{bad:?}");
    }
}
