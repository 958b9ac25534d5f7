//! Limits and lifetime of bubblewrap sandboxes, with the real `bwrap` and tool server: a
//! fork bomb, a memory hog and a big file are stopped, processes that left their session
//! die with the sandbox, and nothing is left on the host after it. Skipped like
//! `bwrap.rs`.

#[path = "bwrap_support.rs"]
mod support;

/// In a module so that `cargo test -p openhands-sandbox bwrap` selects these tests.
mod bwrap {
    use super::support::*;
    use openhands_core::sandbox_config::{NetworkMode, SandboxLimits};
    use openhands_core::tool_protocol::ToolCallError;
    use openhands_sandbox::bwrap::Cgroups;
    use std::path::{Path, PathBuf};
    use std::time::{Duration, Instant};

    #[tokio::test]
    async fn a_fork_bomb_is_stopped_by_the_process_limit() {
        if !bwrap_available() {
            return;
        }
        let sandbox = start_with(
            host(),
            SandboxLimits {
                processes: 64,
                ..limits()
            },
            NetworkMode::None,
        )
        .await;
        // The bomb runs in the background; `sleep` keeps the command (and the bomb) going
        // until the 2 s timeout.
        let bomb = sandbox.try_run(":(){ :|:& };:; sleep 10", 2000).await;
        eprintln!("fork bomb: {bomb:?}");
        let mut attempts = Vec::new();
        for _ in 0..20 {
            let attempt = sandbox.try_run("echo alive", 5000).await;
            if attempt
                .as_ref()
                .is_ok_and(|out| out.output.contains("alive"))
            {
                break;
            }
            attempts.push(attempt);
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        assert!(
            attempts.len() < 20,
            "the sandbox no longer answers: {attempts:?}"
        );
        if !matches!(sandbox.launcher.cgroups(), Cgroups::None) {
            let reason = sandbox.resources.exit_reason().unwrap_or_default();
            assert!(reason.contains("64 processes"), "{reason}");
            let pid = sandbox.child.id().expect("running");
            eprintln!("processes left in the sandbox: {}", process_tree(pid).len());
        }
    }

    #[tokio::test]
    async fn a_memory_hog_is_stopped_by_the_memory_limit() {
        if !bwrap_available() {
            return;
        }
        let sandbox = start_with(
            host(),
            SandboxLimits {
                memory_bytes: 128 << 20,
                ..limits()
            },
            NetworkMode::None,
        )
        .await;
        let hog = sandbox
            .try_run(
                "python3 -c 'b = bytearray(300 << 20); print(len(b))'",
                30_000,
            )
            .await;
        eprintln!("memory hog: {hog:?}");
        match hog {
            Ok(out) => assert!(
                !out.output.contains("314572800") && out.exit_code != 0,
                "{out:?}"
            ),
            Err(ToolCallError::Disconnected(why)) => assert!(why.contains("memory"), "{why}"),
            Err(e) => panic!("{e}"),
        }
        if !matches!(sandbox.launcher.cgroups(), Cgroups::None) {
            let reason = sandbox.resources.exit_reason().unwrap_or_default();
            assert!(reason.contains("memory limit of 128 MiB"), "{reason}");
        }
        let after = sandbox.try_run("echo alive", 5000).await;
        // The OOM killer picks the biggest process (the hog), not the tool server.
        assert!(
            after.as_ref().is_ok_and(|o| o.output.contains("alive")),
            "after the hog: {after:?}"
        );
    }

    #[tokio::test]
    async fn a_big_file_is_stopped_by_the_file_size_limit() {
        if !bwrap_available() {
            return;
        }
        let sandbox = start_with(
            host(),
            SandboxLimits {
                file_size_bytes: 1 << 20,
                ..limits()
            },
            NetworkMode::None,
        )
        .await;
        let out = sandbox
            .run("head -c 5000000 /dev/zero > big; echo status=$?")
            .await;
        eprintln!("big file: {out:?}");
        let size = std::fs::metadata(sandbox.host.workspace.join("big"))
            .map(|m| m.len())
            .unwrap_or(0);
        assert!(size <= 1 << 20, "the file grew to {size} bytes");
        assert!(!out.output.contains("status=0"), "{}", out.output);
    }

    #[tokio::test]
    async fn processes_that_left_their_session_die_with_kill_all() {
        if !bwrap_available() {
            return;
        }
        let sandbox = start().await;
        let marker = format!("{}", 900_000 + std::process::id() % 10_000);
        sandbox
            .run(&format!("setsid sleep {marker}1 & nohup sleep {marker}2 >/dev/null 2>&1 & disown -a; echo started"))
            .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let before = host_processes_with(&format!("sleep {marker}"));
        assert_eq!(before.len(), 2, "the sleeps did not start: {before:?}");
        sandbox.resources.kill_all();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !host_processes_with(&format!("sleep {marker}")).is_empty()
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            host_processes_with(&format!("sleep {marker}")).is_empty(),
            "a sleep survived"
        );
        let mut child = sandbox.child;
        let status = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
        assert!(status.is_ok(), "bwrap did not end");
    }

    #[tokio::test]
    async fn dropping_the_launch_removes_its_cgroups_and_runtime_dir() {
        if !bwrap_available() {
            return;
        }
        let sandbox = start_with(host(), limits(), NetworkMode::Proxy).await;
        let socket = sandbox
            .launcher
            .proxy_socket_path(&sandbox.id)
            .expect("socket path");
        let sandbox_dir = socket
            .parent()
            .and_then(Path::parent)
            .expect("sandbox dir")
            .to_owned();
        assert!(sandbox_dir.exists());
        let pid = sandbox.child.id().expect("running");
        let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("cgroup");
        eprintln!("bwrap's cgroups:\n{cgroup}");
        let bases: Vec<PathBuf> = match sandbox.launcher.cgroups() {
            Cgroups::V2 { base } => vec![base.clone()],
            Cgroups::V1 { memory, pids, cpu } => {
                [memory, pids, cpu].into_iter().flatten().cloned().collect()
            }
            Cgroups::None => Vec::new(),
        };
        let suffix = format!("-{}", sandbox.id);
        let ours = |base: &Path| {
            std::fs::read_dir(base)
                .map(|d| {
                    d.flatten()
                        .filter(|e| e.file_name().to_string_lossy().ends_with(&suffix))
                        .count()
                })
                .unwrap_or(0)
        };
        for base in &bases {
            assert_eq!(ours(base), 1, "no sandbox cgroup under {}", base.display());
        }
        let Sandbox {
            client,
            child,
            resources,
            launcher,
            host,
            ..
        } = sandbox;
        drop((client, child));
        drop(resources);
        for base in &bases {
            assert_eq!(ours(base), 0, "the cgroup under {} is left", base.display());
        }
        assert!(!sandbox_dir.exists(), "the runtime dir is left");
        drop((launcher, host));
    }

    #[tokio::test]
    async fn launch_time_and_idle_memory() {
        if !bwrap_available() {
            return;
        }
        let mut times = Vec::new();
        for _ in 0..3 {
            let sandbox = start().await;
            times.push(sandbox.startup);
            let pid = sandbox.child.id().expect("running");
            let idle: u64 = process_tree(pid).into_iter().map(rss_kib).sum();
            sandbox.run("true").await;
            let tree = process_tree(pid);
            let with_shell: u64 = tree.iter().copied().map(rss_kib).sum();
            let each: Vec<String> = tree
                .iter()
                .map(|p| {
                    let comm =
                        std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
                    format!("{} {} KiB", comm.trim(), rss_kib(*p))
                })
                .collect();
            eprintln!(
                "launch to hello {:?}; RSS idle {idle} KiB, after a command {with_shell} KiB \
                 ({each:?})",
                sandbox.startup,
            );
        }
        let preflight = Instant::now();
        let warnings = launcher(&host(), limits(), NetworkMode::Proxy).preflight_warnings();
        eprintln!(
            "BwrapLauncher::new (preflight) took {:?}; warnings: {warnings:#?}",
            preflight.elapsed()
        );
        assert!(
            times.iter().all(|t| *t < Duration::from_secs(5)),
            "{times:?}"
        );
    }
}
