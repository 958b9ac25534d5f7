//! The isolated sandbox's network, end to end: `saas.bwrap`'s launcher with its egress proxy
//! behind the server's `ToolServerSandbox`, and a test host in a network namespace of its
//! own (a veth pair from the host), serving HTTP as a site on another machine would.
//!
//! Needs root (`ip netns`), `bwrap` and `python3` (the test host's HTTP server); skipped
//! with a reason where they are missing, unless `SANDBOX_TESTS_REQUIRE_BWRAP` is set.

#[path = "bwrap_support.rs"]
mod support;

use openhands_core::UserScope;
use openhands_core::extension::{Sandbox, SandboxSpec};
use openhands_core::sandbox_config::{NetworkMode, NetworkPolicy, SandboxConfig};
use openhands_core::sandbox_host::ToolServerSandbox;
use openhands_core::tool_protocol::{CommandOutput, Request};
use openhands_sandbox::IsolatedLauncher;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const PAGE: &str = "hello from the test host";

/// A host in its own network namespace, at `address`, serving `/page.txt` on port 8080.
struct TestHost {
    namespace: String,
    address: String,
    server: Child,
    _root: tempfile::TempDir,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl TestHost {
    fn start(tag: u8) -> Result<Self, String> {
        let id = format!("{}{tag}", std::process::id() % 10_000);
        let namespace = format!("oh-net-{id}");
        let (host_end, ns_end) = (format!("ohh{id}"), format!("ohn{id}"));
        let subnet = format!("10.231.{}", (std::process::id() % 60) * 4 + u32::from(tag));
        let address = format!("{subnet}.2");
        let _ = ip(&["netns", "del", &namespace]);
        ip(&["netns", "add", &namespace])?;
        let in_ns = |args: &[&str]| {
            let mut all = vec!["netns", "exec", namespace.as_str(), "ip"];
            all.extend_from_slice(args);
            ip(&all)
        };
        let setup = || -> Result<(), String> {
            ip(&[
                "link", "add", &host_end, "type", "veth", "peer", "name", &ns_end,
            ])?;
            ip(&["link", "set", &ns_end, "netns", &namespace])?;
            ip(&["addr", "add", &format!("{subnet}.1/30"), "dev", &host_end])?;
            ip(&["link", "set", &host_end, "up"])?;
            in_ns(&["addr", "add", &format!("{address}/30"), "dev", &ns_end])?;
            in_ns(&["link", "set", &ns_end, "up"])?;
            in_ns(&["link", "set", "lo", "up"])
        };
        if let Err(e) = setup() {
            let _ = ip(&["netns", "del", &namespace]);
            return Err(e);
        }
        let root = tempfile::tempdir().map_err(|e| e.to_string())?;
        std::fs::write(root.path().join("page.txt"), PAGE).map_err(|e| e.to_string())?;
        let python = which("python3").ok_or("python3 is missing")?;
        let server = Command::new("ip")
            .args(["netns", "exec", &namespace])
            .arg(python)
            .args([
                "-m",
                "http.server",
                "8080",
                "--bind",
                &address,
                "--directory",
            ])
            .arg(root.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?;
        let host = Self {
            namespace,
            address,
            server,
            _root: root,
        };
        host.wait_until_serving()?;
        Ok(host)
    }

    fn wait_until_serving(&self) -> Result<(), String> {
        let target = format!("{}:8080", self.address);
        for _ in 0..100 {
            if std::net::TcpStream::connect(&target).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!("the test host never served on {target}"))
    }

    fn url(&self) -> String {
        format!("http://{}:8080/page.txt", self.address)
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
        // Deleting the namespace deletes the veth pair with it.
        let _ = ip(&["netns", "del", &self.namespace]);
    }
}

fn which(program: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|path| path.is_file())
    })
}

/// A test host, or `None` (with the reason printed) where this machine cannot make one.
fn test_host(tag: u8) -> Option<TestHost> {
    if !support::bwrap_available() {
        return None;
    }
    match TestHost::start(tag) {
        Ok(host) => Some(host),
        Err(reason) => {
            assert!(
                std::env::var_os("SANDBOX_TESTS_REQUIRE_BWRAP").is_none(),
                "cannot make a test host in a network namespace: {reason}"
            );
            eprintln!("skipped: cannot make a test host in a network namespace: {reason}");
            None
        }
    }
}

/// Runs `command` in a fresh isolated sandbox with `network`, as the agent would.
async fn run_in_sandbox(network: NetworkPolicy, command: &str) -> CommandOutput {
    let data = tempfile::tempdir().expect("data dir");
    let config = SandboxConfig {
        bwrap_path: support::BWRAP.into(),
        tool_server: Some(support::tool_server().display().to_string()),
        limits: support::limits(),
        network,
        ..SandboxConfig::default()
    };
    let launcher =
        IsolatedLauncher::new(&config, data.path().join("run")).expect("preflight passes");
    let sandbox = ToolServerSandbox::new(
        &data.path().join("workspaces"),
        launcher,
        Duration::from_secs(60),
    );
    let id = support::conversation_id();
    let prepared = sandbox
        .prepare(SandboxSpec {
            scope: UserScope::default(),
            conversation_id: id.clone(),
            clone: None,
            branch: None,
            env: Vec::new(),
            git_user_name: None,
            git_user_email: None,
        })
        .await
        .expect("the sandbox starts");
    let output = prepared
        .tools
        .call(Request::BashRun {
            session: "test".into(),
            command: command.into(),
            timeout_ms: 20_000,
        })
        .await
        .expect("the command runs");
    sandbox.release(&id).await;
    output
}

fn policy(mode: NetworkMode, allow: &[&str]) -> NetworkPolicy {
    NetworkPolicy {
        mode,
        allow: allow.iter().map(|a| (*a).to_owned()).collect(),
        ..NetworkPolicy::default()
    }
}

#[tokio::test]
async fn an_allowed_host_on_another_network_is_reachable_through_the_proxy() {
    let Some(host) = test_host(1) else { return };
    let command = format!("curl -sS -m 10 {}", host.url());
    let out = run_in_sandbox(policy(NetworkMode::Proxy, &[&host.address]), &command).await;
    assert_eq!(out.exit_code, 0, "{}", out.output);
    assert!(out.output.contains(PAGE), "{}", out.output);
}

#[tokio::test]
async fn the_same_host_is_refused_by_default_as_a_private_address() {
    let Some(host) = test_host(2) else { return };
    let command = format!("curl -sS -m 10 -w ' status=%{{http_code}}' {}", host.url());
    let out = run_in_sandbox(policy(NetworkMode::Proxy, &[]), &command).await;
    assert!(out.output.contains("status=403"), "{}", out.output);
    assert!(out.output.contains("private"), "{}", out.output);
    assert!(!out.output.contains(PAGE), "{}", out.output);
}

#[tokio::test]
async fn without_a_network_nothing_is_reachable() {
    let Some(host) = test_host(3) else { return };
    let command = format!(
        "echo proxy=${{HTTP_PROXY:-none}}; curl -sS -m 5 --noproxy '*' {} || echo unreachable",
        host.url()
    );
    let out = run_in_sandbox(policy(NetworkMode::None, &[&host.address]), &command).await;
    assert!(out.output.contains("proxy=none"), "{}", out.output);
    assert!(out.output.contains("unreachable"), "{}", out.output);
    assert!(!out.output.contains(PAGE), "{}", out.output);
}

#[tokio::test]
async fn the_hosts_loopback_stays_refused_when_another_host_is_allowed() {
    let Some(host) = test_host(4) else { return };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("host listener");
    let port = listener.local_addr().expect("address").port();
    // Through the proxy explicitly: the sandbox's own 127.0.0.1 is not the host's.
    let command = format!(
        "curl -sS -m 10 --noproxy '' -x \"$HTTP_PROXY\" -w ' status=%{{http_code}}' http://127.0.0.1:{port}/"
    );
    let out = run_in_sandbox(policy(NetworkMode::Proxy, &[&host.address]), &command).await;
    assert!(out.output.contains("status=403"), "{}", out.output);
    assert!(out.output.contains("loopback"), "{}", out.output);
}
