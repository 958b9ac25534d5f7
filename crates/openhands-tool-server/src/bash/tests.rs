use super::*;

fn dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

fn spec(dir: &Path) -> ShellSpec {
    ShellSpec {
        workdir: dir.to_owned(),
        env: vec![("MY_TOKEN".into(), "tok-123".into())],
        cpu_seconds: 0,
    }
}

async fn session(dir: &Path) -> BashSession {
    BashSession::start(spec(dir), Arc::default())
        .await
        .expect("bash starts")
}

const T: Duration = Duration::from_secs(10);

#[tokio::test]
async fn state_persists_between_commands() {
    let tmp = dir();
    std::fs::create_dir(tmp.path().join("sub")).expect("mkdir");
    let mut bash = session(tmp.path()).await;
    let out = bash.run("cd sub && export FOO=bar", T).await.expect("run");
    assert_eq!(out.exit_code, 0);
    assert!(out.working_dir.ends_with("/sub"), "{}", out.working_dir);
    let out = bash
        .run("echo $FOO-$MY_TOKEN; pwd; echo $HOME", T)
        .await
        .expect("run");
    let lines: Vec<&str> = out.output.lines().collect();
    assert_eq!(lines[0], "bar-tok-123");
    assert!(lines[1].ends_with("/sub"));
    assert_eq!(lines[2], tmp.path().display().to_string());
    bash.close().await;
}

#[tokio::test]
async fn exit_codes_stderr_and_stdin_are_handled() {
    let tmp = dir();
    let mut bash = session(tmp.path()).await;
    let out = bash
        .run("echo out; echo err >&2; (exit 3)", T)
        .await
        .expect("run");
    assert_eq!(out.exit_code, 3);
    assert_eq!(out.output, "out\nerr\n");
    assert!(!out.timed_out);
    // A command reading stdin sees end-of-file instead of eating the protocol.
    let out = bash.run("cat; echo after", T).await.expect("run");
    assert_eq!((out.output.as_str(), out.exit_code), ("after\n", 0));
    let out = bash
        .run("cat <<'EOF'\nline 1\nline 2\nEOF", T)
        .await
        .expect("run");
    assert_eq!(out.output, "line 1\nline 2\n");
    let out = bash.run("printf 'no newline'", T).await.expect("run");
    assert_eq!(out.output, "no newline");
}

#[tokio::test]
async fn timeout_interrupts_and_session_survives() {
    let tmp = dir();
    let mut bash = session(tmp.path()).await;
    bash.run("export KEEP=yes", T).await.expect("run");
    let started = std::time::Instant::now();
    let out = bash
        .run("echo before; sleep 100", Duration::from_millis(500))
        .await
        .expect("run");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(out.timed_out);
    assert_eq!(out.exit_code, -1);
    assert!(out.output.starts_with("before"), "{}", out.output);
    assert!(out.output.contains("timed out"), "{}", out.output);
    let out = bash.run("echo $KEEP", T).await.expect("run after timeout");
    assert_eq!(out.output, "yes\n", "the same shell kept its variables");
}

#[tokio::test]
async fn a_loop_is_interrupted_as_a_whole() {
    let tmp = dir();
    let mut bash = session(tmp.path()).await;
    let out = bash
        .run(
            "for i in 1 2 3; do sleep 30; done; echo finished",
            Duration::from_millis(300),
        )
        .await
        .expect("run");
    assert!(out.timed_out);
    assert!(!out.output.contains("finished"));
    assert_eq!(bash.run("echo ok", T).await.expect("run").output, "ok\n");
}

#[tokio::test]
async fn a_command_ignoring_sigint_gets_the_shell_restarted() {
    let tmp = dir();
    let mut bash = session(tmp.path()).await;
    bash.run("mkdir d && cd d", T).await.expect("run");
    let out = bash
        .run("trap '' INT; sleep 100", Duration::from_millis(300))
        .await
        .expect("run");
    assert!(out.timed_out);
    assert!(out.output.contains("new one started"), "{}", out.output);
    let out = bash.run("pwd", T).await.expect("run after restart");
    assert!(
        out.output.ends_with("/d\n"),
        "restarted in the last cwd: {}",
        out.output
    );
}

#[tokio::test]
async fn exit_restarts_the_shell() {
    let tmp = dir();
    let mut bash = session(tmp.path()).await;
    let out = bash.run("echo bye; exit 4", T).await.expect("run");
    assert_eq!(out.exit_code, 4);
    assert!(out.output.starts_with("bye"));
    assert_eq!(
        bash.run("echo again", T).await.expect("run").output,
        "again\n"
    );
}

#[tokio::test]
async fn long_output_is_cut_in_the_middle() {
    let tmp = dir();
    let mut bash = session(tmp.path()).await;
    let out = bash
        .run("echo START; seq 1 20000; echo END", T)
        .await
        .expect("run");
    assert!(out.truncated);
    assert!(out.output.starts_with("START\n1\n"));
    assert!(out.output.ends_with("20000\nEND\n"));
    assert!(out.output.contains("characters cut ...]"), "note present");
    assert!(out.output.chars().count() < crate::output::MAX_OUTPUT_CHARS + 100);
}

#[tokio::test]
async fn an_interrupt_from_another_task_stops_the_running_command() {
    let tmp = dir();
    let control = Arc::new(ShellControl::default());
    let mut bash = BashSession::start(spec(tmp.path()), control.clone())
        .await
        .expect("bash starts");
    control.interrupt();
    assert!(
        !control.interrupted.load(Ordering::SeqCst),
        "an idle shell is not interrupted"
    );
    let interrupter = tokio::spawn(async move {
        while !control.running.load(Ordering::SeqCst) {
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        control.interrupt();
    });
    let started = std::time::Instant::now();
    let out = bash.run("sleep 30; echo finished", T).await.expect("run");
    interrupter.await.expect("joins");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(out.exit_code, 130);
    assert!(!out.timed_out);
    assert!(!out.output.contains("finished"), "{}", out.output);
    assert!(
        out.output.contains("interrupted (SIGINT)"),
        "{}",
        out.output
    );
    assert_eq!(bash.run("echo ok", T).await.expect("run").output, "ok\n");
}

#[tokio::test]
async fn a_closed_session_is_not_restarted() {
    let tmp = dir();
    let control = Arc::new(ShellControl::default());
    let mut bash = BashSession::start(spec(tmp.path()), control.clone())
        .await
        .expect("bash starts");
    let closer = tokio::spawn(async move {
        while !control.running.load(Ordering::SeqCst) {
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        control.close();
    });
    let out = bash.run("sleep 30", T).await.expect("run");
    closer.await.expect("joins");
    assert!(
        out.output.contains("The shell was closed"),
        "{}",
        out.output
    );
    assert_eq!(out.exit_code, 137, "killed by SIGKILL");
}

#[tokio::test]
async fn the_cpu_limit_applies_to_each_command() {
    let tmp = dir();
    let mut spec = spec(tmp.path());
    spec.cpu_seconds = 1;
    let mut bash = BashSession::start(spec, Arc::default())
        .await
        .expect("bash starts");
    let out = bash
        .run("ulimit -S -t; ulimit -H -t", T)
        .await
        .expect("run");
    assert_eq!(out.output, "1\n2\n");
}
