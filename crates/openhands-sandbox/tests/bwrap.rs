//! The attacks that once worked against unisolated sandboxes, replayed against the real
//! `bwrap` and the real tool server: each test asserts an outcome that an unisolated
//! sandbox would fail. Limits and the sandbox's lifetime are in `bwrap_limits.rs`.
//!
//! Skipped (with a printed reason) only when `/usr/bin/bwrap` is missing and
//! `SANDBOX_TESTS_REQUIRE_BWRAP` is not set; CI sets it. The tool server is taken from
//! `OPENHANDS_TEST_TOOL_SERVER`, else next to the test binary (built on demand).

#[path = "bwrap_support.rs"]
mod support;

/// In a module so that `cargo test -p openhands-sandbox bwrap` selects these tests.
mod bwrap {
    use super::support::*;
    use openhands_core::sandbox_config::{NetworkMode, SandboxConfig};
    use openhands_sandbox::bwrap::BwrapLauncher;
    use std::time::Duration;

    const CANARY: &str = "OPENHANDS_TEST_CANARY";
    const CANARY_VALUE: &str = "canary-5e3b1d7f-server-secret";

    #[tokio::test]
    async fn the_servers_environment_never_reaches_the_sandbox() {
        if !bwrap_available() {
            return;
        }
        // The canary must be in the *test process's* environment: re-run this test with it.
        if std::env::var(CANARY).as_deref() != Ok(CANARY_VALUE) {
            let out = std::process::Command::new(std::env::current_exe().expect("exe"))
                .args([
                    "--exact",
                    "bwrap::the_servers_environment_never_reaches_the_sandbox",
                    "--nocapture",
                ])
                .env(CANARY, CANARY_VALUE)
                .env("OPENHANDS_TEST_TOOL_SERVER", tool_server())
                .output()
                .expect("re-runs itself");
            let report = String::from_utf8_lossy(&out.stdout);
            let errors = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success() && report.contains("1 passed"),
                "the test failed with the canary set:\n{report}\n{errors}"
            );
            return;
        }
        let sandbox = start().await;
        for command in [
            "env",
            "cat /proc/1/environ | tr '\\0' '\\n'",
            "cat /proc/*/environ | tr '\\0' '\\n'",
            "cat /proc/$PPID/environ | tr '\\0' '\\n'",
        ] {
            let out = sandbox.run(command).await;
            assert!(
                !out.output.contains(CANARY_VALUE),
                "{command} shows the canary"
            );
            assert!(!out.output.contains(CANARY), "{command}: {}", out.output);
        }
        let names = sandbox.run("cat /proc/1/environ | wc -c").await;
        assert_eq!(names.output.trim(), "0", "bwrap (pid 1) has an environment");
    }

    #[tokio::test]
    async fn proc_shows_only_the_sandboxs_few_processes() {
        if !bwrap_available() {
            return;
        }
        let sandbox = start().await;
        let out = sandbox.run("ls /proc | grep -E '^[0-9]+$'").await;
        let pids: Vec<&str> = out.output.lines().collect();
        assert!(pids.len() < 10, "too many processes visible: {pids:?}");
        let server = std::process::id().to_string();
        let own = sandbox.run(&format!("cat /proc/{server}/cmdline")).await;
        assert_ne!(
            own.exit_code, 0,
            "the server's pid is visible: {}",
            own.output
        );
    }

    #[tokio::test]
    async fn the_host_data_dir_and_other_tenants_are_invisible() {
        if !bwrap_available() {
            return;
        }
        let sandbox = start().await;
        let data = sandbox.host.data.path().display().to_string();
        let secret = sandbox.host.secret.display().to_string();
        for command in [
            format!("ls {data}"),
            format!("cat {secret}"),
            "ls /root".into(),
            "ls /home/*/".into(),
            "ls /var/lib".into(),
            "ls /srv/*".into(),
            "cat /etc/shadow".into(),
            "ls /etc/ssl/private".into(),
            "cat /usr/lib/ssl/private/ssl-cert-snakeoil.key".into(),
        ] {
            let out = sandbox.run(&command).await;
            assert_ne!(out.exit_code, 0, "`{command}` worked: {}", out.output);
            assert!(!out.output.contains("tenant-b-secret"), "{}", out.output);
        }
        let found = sandbox
            .run("find / -path /proc -prune -o \\( -name 'tenant-*' -o -name secret.txt \\) -print 2>/dev/null")
            .await;
        assert_eq!(found.output.trim(), "", "the secret is reachable");
        let users = sandbox.run("cut -d: -f1 /etc/passwd").await;
        assert_eq!(
            users.output.split_whitespace().collect::<Vec<_>>(),
            ["root", "sandbox", "nobody"]
        );
    }

    #[tokio::test]
    async fn the_sandbox_user_has_no_privileges() {
        if !bwrap_available() {
            return;
        }
        let sandbox = start().await;
        let status = sandbox
            .run("grep -E '^(Uid|CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status")
            .await;
        let field = |name: &str| {
            status
                .output
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.split_whitespace().next().unwrap_or("").to_owned())
                .unwrap_or_default()
        };
        assert_eq!(field("Uid:"), "1000", "{}", status.output);
        assert_eq!(field("CapEff:"), "0000000000000000", "{}", status.output);
        assert_eq!(field("CapBnd:"), "0000000000000000", "{}", status.output);
        assert_eq!(field("NoNewPrivs:"), "1", "{}", status.output);
        assert_eq!(
            field("Seccomp:"),
            "2",
            "no seccomp filter: {}",
            status.output
        );
        let userns = sandbox.run("unshare -U true").await;
        assert_ne!(userns.exit_code, 0, "nested user namespaces work");
        for path in ["/usr/bin/x", "/etc/x", "/x", "/opt/openhands/x"] {
            let out = sandbox.run(&format!("touch {path}")).await;
            assert_ne!(out.exit_code, 0, "{path} is writable");
        }
    }

    #[tokio::test]
    async fn host_loopback_services_are_unreachable() {
        if !bwrap_available() {
            return;
        }
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
        let port = listener.local_addr().expect("addr").port();
        let mut ports = vec![port];
        for well_known in [5432u16, 6379] {
            if std::net::TcpStream::connect(("127.0.0.1", well_known)).is_ok() {
                ports.push(well_known);
            }
        }
        eprintln!("host loopback ports probed from the sandbox: {ports:?}");
        for mode in [NetworkMode::Proxy, NetworkMode::None] {
            let sandbox = start_with(host(), limits(), mode).await;
            for port in &ports {
                let out = sandbox
                    .run(&format!(
                        "timeout 3 bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port}'"
                    ))
                    .await;
                assert_ne!(out.exit_code, 0, "{mode:?}: 127.0.0.1:{port} answered");
            }
        }
    }

    #[tokio::test]
    async fn only_stdio_reaches_the_sandbox_even_when_the_server_leaks_a_descriptor() {
        if !bwrap_available() {
            return;
        }
        let h = host();
        // A descriptor without close-on-exec, as a careless library in the server might leave.
        let leaked = std::fs::File::open(&h.secret).expect("open secret");
        rustix::io::fcntl_setfd(&leaked, rustix::io::FdFlags::empty()).expect("clear CLOEXEC");
        let sandbox = start_with(h, limits(), NetworkMode::None).await;
        let own = sandbox
            .run("python3 -c 'import os; print(sorted(int(f) for f in os.listdir(\"/proc/self/fd\")))'")
            .await;
        assert_eq!(
            own.output.trim(),
            "[0, 1, 2, 3]",
            "the shell's command has more fds"
        );
        let all = sandbox
            .run("for p in /proc/[0-9]*; do for f in $p/fd/*; do echo \"${p#/proc/} ${f##*/} $(readlink $f)\"; done; done")
            .await;
        eprintln!(
            "descriptors in the sandbox (pid fd target):\n{}",
            all.output
        );
        let secret = sandbox.host.secret.display().to_string();
        assert!(
            !all.output.contains(&secret),
            "the leaked fd reached the sandbox"
        );
        // Every descriptor is anonymous (pipes, sockets, epoll, ...) or a sandbox path.
        for line in all.output.lines() {
            let target = line.splitn(3, ' ').nth(2).unwrap_or_default();
            let sandbox_path = ["/dev/", "/proc/", "/workspace", "/tmp/"]
                .iter()
                .any(|p| target.starts_with(p));
            assert!(!target.starts_with('/') || sandbox_path, "{line}");
        }
        let tool_server = sandbox
            .run("for p in /proc/[0-9]*; do [ \"$(readlink $p/exe)\" = /opt/openhands/tool-server ] && ls $p/fd; done")
            .await;
        let mut fds: Vec<u32> = tool_server
            .output
            .split_whitespace()
            .filter_map(|f| f.parse().ok())
            .collect();
        fds.sort_unstable();
        eprintln!("tool server fds: {fds:?}");
        assert!(fds.starts_with(&[0, 1, 2]), "{fds:?}");
        drop(leaked);
    }

    #[tokio::test]
    async fn the_workspace_is_the_writable_host_directory() {
        if !bwrap_available() {
            return;
        }
        let sandbox = start().await;
        let out = sandbox
            .run("pwd; echo hello > note.txt; mkdir -p d && touch d/x; touch /tmp/t && echo tmp-ok")
            .await;
        assert!(out.output.starts_with("/workspace"), "{}", out.output);
        assert!(out.output.contains("tmp-ok"), "{}", out.output);
        let note = sandbox.host.workspace.join("note.txt");
        assert_eq!(
            std::fs::read_to_string(&note).expect("note on the host"),
            "hello\n"
        );
        use std::os::unix::fs::MetadataExt;
        let owner = std::fs::metadata(&note).expect("metadata").uid();
        eprintln!("files created in the sandbox belong to host uid {owner}");
        assert_eq!(
            owner,
            rustix::process::getuid().as_raw(),
            "owner is not the server's user"
        );
    }

    #[tokio::test]
    async fn the_proxy_socket_is_reachable_but_read_only() {
        if !bwrap_available() {
            return;
        }
        let h = host();
        let launcher = launcher(&h, limits(), NetworkMode::Proxy);
        let id = conversation_id();
        let socket = launcher.prepare_proxy_socket(&id).expect("socket dir");
        let listener = tokio::net::UnixListener::bind(&socket).expect("bind proxy socket");
        drop(launcher);
        let sandbox = start_named(id, h, limits(), NetworkMode::Proxy).await;
        let env = sandbox.run("echo $HTTPS_PROXY").await;
        assert_eq!(env.output.trim(), "http://127.0.0.1:3128");
        let connect = sandbox
            .run("python3 -c 'import socket; s = socket.socket(socket.AF_UNIX); s.connect(\"/run/openhands/proxy.sock\"); print(\"connected\")'")
            .await;
        assert!(connect.output.contains("connected"), "{}", connect.output);
        let accepted = tokio::time::timeout(Duration::from_secs(5), listener.accept()).await;
        assert!(accepted.is_ok(), "the host side saw no connection");
        let rm = sandbox
            .run("rm -f /run/openhands/proxy.sock; ln -s /x /run/openhands/y")
            .await;
        assert_ne!(rm.exit_code, 0, "the socket directory is writable");
        assert!(socket.exists());
    }

    #[test]
    fn preflight_names_the_missing_package_and_binary() {
        let runtime = tempfile::tempdir().expect("runtime");
        let config = SandboxConfig {
            bwrap_path: "/nonexistent/bwrap".into(),
            ..SandboxConfig::default()
        };
        let err = BwrapLauncher::new(&config, "/bin/true".into(), runtime.path().into())
            .expect_err("no bwrap")
            .to_string();
        assert!(err.contains("`bubblewrap`"), "{err}");
        if !bwrap_available() {
            return;
        }
        let config = SandboxConfig {
            bwrap_path: BWRAP.into(),
            ..SandboxConfig::default()
        };
        let err = BwrapLauncher::new(
            &config,
            "/nonexistent/tool-server".into(),
            runtime.path().into(),
        )
        .expect_err("no tool server")
        .to_string();
        assert!(err.contains("/nonexistent/tool-server"), "{err}");
    }

    #[test]
    fn preflight_explains_a_kernel_that_refuses_user_namespaces() {
        let dir = tempfile::tempdir().expect("dir");
        // A `bwrap` that fails the way it does when user namespaces are restricted.
        let fake = dir.path().join("bwrap");
        std::fs::write(
            &fake,
            "#!/bin/sh\n[ \"$1\" = --help ] && exit 0\n\
             echo 'bwrap: setting up uid map: Permission denied' >&2\nexit 1\n",
        )
        .expect("fake bwrap");
        std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
        let config = SandboxConfig {
            bwrap_path: fake.display().to_string(),
            ..SandboxConfig::default()
        };
        // Another test forking while the script was open for writing can make its first
        // exec fail with ETXTBSY; that is not what is tested here.
        let mut err = String::new();
        for _ in 0..5 {
            err = BwrapLauncher::new(&config, "/bin/true".into(), dir.path().join("rt"))
                .expect_err("refused")
                .to_string();
            if !err.contains("Text file busy") {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        for needle in [
            "setting up uid map: Permission denied",
            "user.max_user_namespaces",
            "kernel.unprivileged_userns_clone",
            "kernel.apparmor_restrict_unprivileged_userns",
        ] {
            assert!(err.contains(needle), "{needle} missing from: {err}");
        }
    }
}
