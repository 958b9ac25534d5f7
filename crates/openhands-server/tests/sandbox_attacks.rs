//! A malicious tenant against the whole server: every attack that once worked from an
//! agent's shell in the unisolated sandbox, replayed through the real API with an agent
//! scripted to run the attacker's commands, against `saas.bwrap`.
//!
//! The launcher's own tests (`openhands-sandbox/tests/bwrap*.rs`) prove the policy on a
//! bare sandbox; these prove that the server wires it in: that the sandbox the server
//! starts for a conversation (and for its file routes) gets no server secret, sees no other
//! conversation, reaches no loopback service, is bounded, dies with its conversation, and
//! that what the agent plants in its workspace acts only inside it. Each attack asserts an
//! outcome the unisolated sandbox fails (`support` says how to run them against it; the
//! limit attacks must not be). The last test checks that SaaS mode refuses to run
//! without isolation unless told to.
//!
//! Skipped, with a printed reason, only when `/usr/bin/bwrap` is missing and
//! `SANDBOX_TESTS_REQUIRE_BWRAP` is not set; CI sets it.

#[path = "sandbox_attacks/support.rs"]
mod support;

use openhands_core::config::{Config, NetworkMode};
use openhands_test_support::{TestServer, json_body};
use std::time::Duration;
use support::*;

const CANARY: &str = "SANDBOX_ATTACKS_CANARY";
const CANARY_VALUE: &str = "canary-0b6f4e2a-server-environment";

/// Runs the test `name` again in a child process with the canary in its environment (the
/// server's environment is this process's, and `set_var` is unsafe), and checks it passed.
fn rerun_with_canary(name: &str) {
    let exe = std::env::current_exe().expect("test binary path");
    let out = std::process::Command::new(exe)
        .args(["--exact", name, "--nocapture"])
        .env(CANARY, CANARY_VALUE)
        .output()
        .expect("re-runs itself");
    let report = String::from_utf8_lossy(&out.stdout);
    let errors = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && report.contains("1 passed"),
        "the test failed with the canary in the environment:\n{report}\n{errors}"
    );
}

#[tokio::test]
async fn the_servers_environment_and_keys_never_reach_the_agent() {
    if !sandbox_available() {
        return;
    }
    if std::env::var(CANARY).as_deref() != Ok(CANARY_VALUE) {
        rerun_with_canary("the_servers_environment_and_keys_never_reach_the_agent");
        return;
    }
    let attack = Attack::start(|_| {}).await;
    let res = attack
        .server
        .post_json(
            "/api/secrets",
            &serde_json::json!({"name": "TENANT_TOKEN", "value": "tenant-token-93d1"}),
        )
        .await;
    assert_eq!(res.status(), 201, "storing a custom secret");
    let data = attack.server.data_dir();
    let key_file = data.join(openhands_server::KEY_FILE);
    let key = std::fs::read_to_string(&key_file).expect("the server's key file");
    let key = key.trim();
    assert!(key.len() > 20, "a real key: {key:?}");
    let read_key = format!(
        "cat {} ../{name} ../../{name}",
        key_file.display(),
        name = openhands_server::KEY_FILE
    );
    let ran = attack
        .run(vec![
            bash("env"),
            bash("cat /proc/1/environ | tr '\\0' '\\n'"),
            bash("cat /proc/$PPID/environ | tr '\\0' '\\n'"),
            bash("cat /proc/*/environ | tr '\\0' '\\n'"),
            bash(&read_key),
        ])
        .await;
    let text = ran.text();
    for leak in [CANARY_VALUE, CANARY, key, LLM_KEY, "tenant-token-93d1"] {
        assert!(!text.contains(leak), "`{leak}` reached the events: {text}");
    }
    // What the sandbox should get, it gets (masked in what is stored).
    let env = ran.printed("env");
    assert!(env.contains("TENANT_TOKEN=<secret_hidden>"), "{env}");
}

#[tokio::test]
async fn proc_shows_only_the_sandbox_and_no_other_conversations_shell() {
    if !sandbox_available() {
        return;
    }
    let attack = Attack::start(|_| {}).await;
    let mark = marker(61);
    attack
        .run(vec![bash(&format!("nohup sleep {mark} >/dev/null 2>&1 &"))])
        .await;
    assert!(
        !host_processes_with(&format!("sleep {mark}")).is_empty(),
        "the first conversation's sleep is not running"
    );
    let count = "ls /proc | grep -cE '^[0-9]+$'";
    let cmdlines = "cat /proc/*/cmdline | tr '\\0' ' '";
    let ran = attack.run(vec![bash(count), bash(cmdlines)]).await;
    let pids: usize = ran
        .printed(count)
        .lines()
        .rev()
        .find_map(|l| l.trim().parse().ok())
        .expect("a count");
    assert!(pids < 10, "{pids} processes visible");
    let seen = ran.printed(cmdlines);
    assert!(!seen.contains(&format!("sleep {mark}")), "{seen}");
    let server = std::env::current_exe().expect("test binary path");
    let server = server.display().to_string();
    assert!(!seen.contains(&server), "the server's command line: {seen}");
}

#[tokio::test]
async fn another_conversations_files_and_shell_are_out_of_reach() {
    if !sandbox_available() {
        return;
    }
    let (file_secret, env_secret) = ("file-secret-of-a-51e2", "env-secret-of-a-0f7c");
    let attack = Attack::start(|_| {}).await;
    let mark = marker(62);
    let a = attack
        .run(vec![bash(&format!(
            "echo {file_secret} > secret.txt && (A_TOKEN={env_secret} nohup sleep {mark} \
             >/dev/null 2>&1 &)"
        ))])
        .await;
    let a_workspace = attack.workspace(&a.id);
    let planted = std::fs::read_to_string(a_workspace.join("secret.txt")).expect("A's file");
    assert!(planted.contains(file_secret));
    assert!(!host_processes_with(&format!("sleep {mark}")).is_empty());

    let (a_ws, data) = (a_workspace.display(), attack.server.data_dir());
    let data = data.display();
    let b = attack
        .run(vec![
            bash("ls -a ..; ls -a /"),
            bash("timeout 20 find / -path /proc -prune -o -name 'secret*' -print 2>/dev/null"),
            bash(&format!("cat {a_ws}/secret.txt")),
            bash(&format!("cat {data}/workspaces/*/secret.txt; ls -R {data}")),
            bash("cat ../*/secret.txt /proc/*/cwd/secret.txt 2>&1"),
            bash(&format!("cat /proc/*/root{a_ws}/secret.txt 2>&1")),
            bash("cat /proc/*/environ | tr '\\0' '\\n' | grep A_TOKEN"),
        ])
        .await;
    let text = b.text();
    assert!(!text.contains(file_secret), "A's file reached B: {text}");
    assert!(!text.contains(env_secret), "A's shell reached B: {text}");
}

/// Probes, from the agent's shell, each host loopback service that really listens.
async fn host_loopback_is_closed(mode: NetworkMode) {
    let attack = Attack::start(|c| c.sandbox.network.mode = mode).await;
    let port = attack.server.address.port();
    let targets: Vec<(String, String)> = [
        ("127.0.0.1".to_owned(), port),
        ("127.0.0.1".to_owned(), 5432),
        ("127.0.0.1".to_owned(), 6379),
        ("::1".to_owned(), 6379),
    ]
    .into_iter()
    .filter(|(host, port)| {
        let address = match host.contains(':') {
            true => format!("[{host}]:{port}"),
            false => format!("{host}:{port}"),
        };
        host_listens(&address)
    })
    .map(|(host, port)| {
        let probe =
            format!("(exec 3<>/dev/tcp/{host}/{port}) 2>/dev/null && echo OPEN || echo CLOSED");
        (format!("{host} port {port}"), probe)
    })
    .collect();
    assert!(!targets.is_empty(), "the server's own port listens");
    eprintln!(
        "probing {:?}",
        targets.iter().map(|t| &t.0).collect::<Vec<_>>()
    );
    let ran = attack
        .run(targets.iter().map(|(_, probe)| bash(probe)).collect())
        .await;
    for (target, probe) in &targets {
        let answer = ran.printed(probe);
        assert_eq!(answer.trim(), "CLOSED", "{target} is reachable");
    }
}

#[tokio::test]
async fn host_loopback_services_are_closed_in_proxy_mode() {
    if sandbox_available() {
        host_loopback_is_closed(NetworkMode::Proxy).await;
    }
}

#[tokio::test]
async fn host_loopback_services_are_closed_in_none_mode() {
    if sandbox_available() {
        host_loopback_is_closed(NetworkMode::None).await;
    }
}

#[tokio::test]
async fn the_egress_proxy_refuses_the_servers_own_port() {
    if !sandbox_available() {
        return;
    }
    let attack = Attack::start(|c| c.sandbox.network.mode = NetworkMode::Proxy).await;
    let port = attack.server.address.port();
    let curl = "curl -s -o /dev/null -w '%{http_code}' --max-time 10";
    // The same host spelled as the proxy might not expect.
    let through_proxy: Vec<String> = [
        "127.0.0.1",
        "localhost",
        "127.1",
        "2130706433",
        "0.0.0.0",
        "[::1]",
        "[::ffff:127.0.0.1]",
    ]
    .iter()
    .map(|host| format!("{curl} --noproxy '' -x \"$HTTP_PROXY\" http://{host}:{port}/alive"))
    .collect();
    let tunnel = format!("{curl} --noproxy '' -p -x \"$HTTP_PROXY\" http://127.0.0.1:{port}/alive");
    let direct = format!("{curl} http://localhost:{port}/alive");
    let mut script: Vec<_> = through_proxy.iter().map(|c| bash(c)).collect();
    script.extend([bash(&tunnel), bash(&direct)]);
    let ran = attack.run(script).await;
    for command in &through_proxy {
        assert_eq!(ran.printed(command).trim(), "403", "{command}");
    }
    for command in [&tunnel, &direct] {
        let code = ran.printed(command);
        assert!(!code.trim().starts_with('2'), "{command}: {code}");
    }
}

/// Small limits, so that the attacks below reach them fast.
fn small_limits(config: &mut Config) {
    config.sandbox.limits.memory_bytes = 128 << 20;
    config.sandbox.limits.processes = 64;
    config.sandbox.limits.file_size_bytes = 1 << 20;
    config.sandbox.network.mode = NetworkMode::None;
}

const NEXT: &str = "echo next-command-$((6*7))";

/// Runs `command` (with `timeout` seconds) and then [`NEXT`] while watching `/alive`:
/// the server answers throughout and the next command works.
async fn stopped_and_the_agent_goes_on(command: &str, timeout: u64) -> (Attack, Ran) {
    let attack = Attack::start(small_limits).await;
    let (stop, watcher) = watch_alive(&attack.server);
    let ran = attack
        .run(vec![bash_for(command, timeout), bash(NEXT)])
        .await;
    let _ = stop.send(());
    let (failures, slowest) = watcher.await.expect("the watcher");
    // Each ask gives up after 5 s: a server starved by the attack shows up as failures.
    assert!(failures.is_empty(), "/alive failed: {failures:?}");
    eprintln!("slowest /alive during `{command}`: {slowest:?}");
    let next = ran.printed(NEXT);
    assert!(next.contains("next-command-42"), "after the attack: {next}");
    (attack, ran)
}

#[tokio::test]
async fn a_fork_bomb_is_stopped_and_the_server_keeps_answering() {
    if !sandbox_available() {
        return;
    }
    let bomb = ":(){ :|:& };:; sleep 30";
    let (_attack, ran) = stopped_and_the_agent_goes_on(bomb, 5).await;
    let said = ran.printed(bomb);
    assert!(
        said.contains("Resource temporarily unavailable") && said.contains("timed out"),
        "{said}"
    );
}

#[tokio::test]
async fn a_memory_hog_is_stopped_and_the_server_keeps_answering() {
    if !sandbox_available() {
        return;
    }
    let hog = "python3 -c 'b = bytearray(400 << 20); print(len(b))'";
    let (_attack, ran) = stopped_and_the_agent_goes_on(hog, 30).await;
    let said = ran.printed(hog);
    assert_eq!(ran.exit_code(hog), 137, "{said}");
    assert!(
        said.contains("memory") && !said.contains("419430400"),
        "{said}"
    );
}

#[tokio::test]
async fn a_big_file_is_stopped_and_the_server_keeps_answering() {
    if !sandbox_available() {
        return;
    }
    let big = "head -c 5000000 /dev/zero > big";
    let (attack, ran) = stopped_and_the_agent_goes_on(big, 30).await;
    let said = ran.printed(big);
    assert_ne!(ran.exit_code(big), 0, "{said}");
    assert!(said.contains("File size limit exceeded"), "{said}");
    let size = std::fs::metadata(attack.workspace(&ran.id).join("big")).map_or(0, |m| m.len());
    assert!(size <= 1 << 20, "the file grew to {size} bytes");
}

/// How a conversation ends in [`session_leavers_die`].
enum End {
    Delete,
    Stop,
}

/// `setsid` and `nohup` processes are gone from the host soon after the conversation ends.
async fn session_leavers_die(end: End, base: u32) {
    let attack = Attack::start(|_| {}).await;
    let (setsid, nohup) = (marker(base), marker(base + 1));
    let ran = attack
        .run(vec![bash(&format!(
            "setsid sleep {setsid} >/dev/null 2>&1 & nohup sleep {nohup} >/dev/null 2>&1 & \
             disown -a; echo started"
        ))])
        .await;
    for mark in [&setsid, &nohup] {
        let running = survivors(&format!("sleep {mark}"), Duration::ZERO).await;
        assert!(!running.is_empty(), "`sleep {mark}` did not start");
    }
    match end {
        End::Delete => assert_eq!(attack.delete(&ran.id).await, 200),
        End::Stop => {
            let stop = format!("/api/conversations/{}/stop", ran.id);
            let res = attack.server.post_json(&stop, &serde_json::json!({})).await;
            assert_eq!(res.status(), 200);
        }
    }
    for mark in [&setsid, &nohup] {
        let left = survivors(&format!("sleep {mark}"), Duration::from_secs(5)).await;
        assert!(left.is_empty(), "`sleep {mark}` survived: pids {left:?}");
    }
}

#[tokio::test]
async fn session_leavers_die_when_the_conversation_is_deleted() {
    if sandbox_available() {
        session_leavers_die(End::Delete, 4321).await;
    }
}

#[tokio::test]
async fn session_leavers_die_when_the_conversation_is_stopped() {
    if sandbox_available() {
        session_leavers_die(End::Stop, 4323).await;
    }
}

/// `GET` of a conversation's route, as status and body.
async fn fetch(server: &TestServer, id: &str, route: &str) -> (u16, Vec<u8>) {
    let res = server
        .get(&format!("/api/conversations/{id}/{route}"))
        .await;
    let status = res.status().as_u16();
    let body = res.bytes().await.expect("body").to_vec();
    (status, body)
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn planted_symlinks_never_reach_host_files() {
    if !sandbox_available() {
        return;
    }
    let host = tempfile::tempdir().expect("host dir");
    let content = "host-only-content-8a4f1c";
    let host_file = host.path().join("host-secret.txt");
    std::fs::write(&host_file, content).expect("host file");
    let target = host.path().join("planted-through-a-link");
    let attack = Attack::start(|_| {}).await;
    let link = format!(
        "ln -s {} host_link && ln -s {} dangling && ln -s {} dir_link && echo linked",
        host_file.display(),
        target.display(),
        host.path().display()
    );
    let ran = attack
        .run(vec![
            bash(&link),
            bash("cat host_link dir_link/host-secret.txt"),
            bash("echo written-by-the-agent > dangling"),
        ])
        .await;
    assert!(ran.printed(&link).contains("linked"));
    assert!(!ran.text().contains(content), "{}", ran.text());
    assert!(!target.exists(), "the agent wrote through its link");

    let server = &attack.server;
    for file in ["host_link", "dir_link/host-secret.txt"] {
        let (status, body) = fetch(server, &ran.id, &format!("select-file?file={file}")).await;
        assert!(!contains(&body, content), "select-file {file}: {status}");
    }
    let part = reqwest::multipart::Part::bytes(b"uploaded".to_vec()).file_name("dangling");
    let form = reqwest::multipart::Form::new().part("files", part);
    let res = server
        .client
        .post(server.url(&format!("/api/conversations/{}/upload-files", ran.id)))
        .multipart(form)
        .send()
        .await
        .expect("upload");
    let status = res.status();
    let answer = res.text().await.expect("upload answer");
    assert!(
        !target.exists(),
        "the upload went through the link: {answer}"
    );
    let in_workspace = attack.workspace(&ran.id).join("dangling");
    let kept = std::fs::symlink_metadata(&in_workspace).expect("the name still exists");
    assert!(
        kept.file_type().is_symlink()
            || std::fs::read(&in_workspace).is_ok_and(|b| b == b"uploaded"),
        "upload {status}: {answer}"
    );
    let (status, archive) = fetch(server, &ran.id, "zip-directory").await;
    assert_eq!(status, 200);
    // Entry names are stored as they are: a followed link would be an entry of its name.
    for name in ["host_link", "host-secret.txt", content] {
        assert!(!contains(&archive, name), "the archive holds `{name}`");
    }
}

/// Every way a repository's config can name a command (fsmonitor, hooks, filter drivers,
/// textconv, external diff, pager) is planted, then every file route is called. The tool
/// server's own git blanks fsmonitor, hooks and filters (its `tests/git.rs` checks that
/// without a sandbox); here the sandbox is the second wall that keeps any of them off the
/// host.
#[tokio::test]
async fn a_hostile_git_config_never_runs_on_the_host() {
    if !sandbox_available() {
        return;
    }
    let host = tempfile::tempdir().expect("host dir");
    let m = host.path().join("ran").display().to_string();
    let attack = Attack::start(|_| {}).await;
    let repository = "git init -q && git config user.email a@example.com && git config \
                      user.name a && echo one > tracked.txt && git add tracked.txt && git \
                      commit -qm one && echo committed";
    let hooks = format!(
        "mkdir -p hooks && for h in post-index-change pre-commit post-checkout \
         reference-transaction; do printf '#!/bin/sh\\ntouch {m}.hook\\n' > hooks/$h; \
         done && chmod +x hooks/* && echo hooks"
    );
    let config = format!(
        "git config core.fsmonitor 'touch {m}.fsmonitor; false' && \
         git config core.hooksPath \"$PWD/hooks\" && \
         git config filter.evil.clean 'touch {m}.clean; cat' && \
         git config filter.evil.smudge 'touch {m}.smudge; cat' && \
         git config filter.evil.process 'touch {m}.process' && \
         git config diff.evil.textconv 'touch {m}.textconv; cat' && \
         git config diff.external 'touch {m}.external; true' && \
         git config core.pager 'touch {m}.pager; cat' && \
         printf '* filter=evil diff=evil\\n' > .gitattributes && \
         echo two > tracked.txt && echo planted"
    );
    let ran = attack
        .run(vec![bash(repository), bash(&hooks), bash(&config)])
        .await;
    for step in [repository, hooks.as_str(), config.as_str()] {
        assert_eq!(ran.exit_code(step), 0, "{step}: {}", ran.printed(step));
    }
    for route in [
        "git/changes",
        "git/diff?path=tracked.txt",
        "list-files",
        "select-file?file=tracked.txt",
        "zip-directory",
    ] {
        let (status, _) = fetch(&attack.server, &ran.id, route).await;
        eprintln!("{route}: {status}");
    }
    let ran_on_host: Vec<String> = std::fs::read_dir(host.path())
        .expect("host dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(ran_on_host.is_empty(), "ran on the host: {ran_on_host:?}");
}

/// A SaaS-mode server on SQLite with the unisolated sandbox.
fn saas_with_process_sandbox(config: &mut Config) {
    config.config_class = "saas".into();
    config.plugins.user_auth = Some("oss.local_user".into());
    config.database.migrate_on_start = true;
    config.plugins.sandbox = Some("oss.process".into());
}

#[tokio::test]
async fn saas_mode_refuses_an_unisolated_sandbox_unless_allowed() {
    match TestServer::try_spawn_with(saas_with_process_sandbox).await {
        Ok(_) => panic!("a SaaS server started with oss.process"),
        Err(err) => assert!(err.contains("allow_unisolated"), "{err}"),
    }
    let server = TestServer::spawn_with(|config| {
        saas_with_process_sandbox(config);
        config.sandbox.allow_unisolated = true;
    })
    .await;
    let ready = json_body(server.get("/ready").await).await;
    let warnings = ready["warnings"].as_array().cloned().unwrap_or_default();
    assert!(
        warnings
            .iter()
            .any(|w| w.as_str().is_some_and(|w| w.contains("allow_unisolated"))),
        "{ready}"
    );
}
