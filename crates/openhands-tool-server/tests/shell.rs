//! Shells through the real binary: state, concurrency, interrupts, limits and the filter.

mod common;

use common::{Server, start};
use openhands_core::tool_protocol::{
    CommandOutput, Done, EditorCommand, FailureCode, Request, WriteReply,
};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[tokio::test]
async fn shell_state_persists_between_requests_and_sessions_are_separate() {
    let server = start(&["--shown-as", "/workspace"]).await;
    assert_eq!(server.client.workspace(), "/workspace");
    let out = server
        .bash("mkdir -p sub && cd sub && export FOO=bar")
        .await;
    assert_eq!(out.exit_code, 0, "{}", out.output);
    assert_eq!(out.working_dir, "/workspace/sub", "shown under --shown-as");
    let out = server.bash("echo $FOO; pwd; echo $HOME").await;
    let ws = server.ws.display().to_string();
    assert_eq!(out.output, format!("bar\n{ws}/sub\n{ws}\n"));
    let other = server.bash_in("other", "echo ${FOO:-unset}; pwd").await;
    assert_eq!(other.output, format!("unset\n{ws}\n"));
}

#[tokio::test]
async fn configured_variables_reach_shells_started_afterwards() {
    let server = start(&[]).await;
    let configure = |env: Vec<(&str, &str)>| Request::Configure {
        env: env
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        git_user_name: Some("Agent".into()),
        git_user_email: None,
    };
    let _: Done = server
        .call(configure(vec![
            ("MY_SECRET", "s3cr3t"),
            ("HTTP_PROXY", "http://old"),
        ]))
        .await
        .expect("configure");
    // A later call sets what it names and keeps the rest.
    let _: Done = server
        .call(configure(vec![("HTTP_PROXY", "http://127.0.0.1:3128")]))
        .await
        .expect("configure again");
    let _: Done = server
        .call(configure(vec![]))
        .await
        .expect("configure the identity only");
    assert_eq!(
        server.bash("echo $MY_SECRET $HTTP_PROXY").await.output,
        "s3cr3t http://127.0.0.1:3128\n"
    );
    let (code, _) = server.failure(configure(vec![("BAD=NAME", "x")])).await;
    assert_eq!(code, FailureCode::InvalidArgument);
}

#[tokio::test]
async fn an_interrupt_reaches_a_running_command_while_other_sessions_keep_working() {
    let server = Arc::new(start(&[]).await);
    let long = tokio::spawn({
        let server = server.clone();
        async move {
            server
                .call::<CommandOutput>(Request::BashRun {
                    session: "main".into(),
                    command: "sleep 30; echo finished".into(),
                    timeout_ms: 60_000,
                })
                .await
        }
    });
    let started = Instant::now();
    // Another session answers while `main` is busy.
    assert_eq!(server.bash_in("other", "echo hi").await.output, "hi\n");
    while !long.is_finished() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "not interrupted"
        );
        let _: Done = server
            .call(Request::BashInterrupt {
                session: "main".into(),
            })
            .await
            .expect("interrupt");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let out = long.await.expect("joins").expect("answers");
    assert_eq!(out.exit_code, 130, "{}", out.output);
    assert!(!out.output.contains("finished"), "{}", out.output);
    assert!(out.output.contains("interrupted"), "{}", out.output);
    assert_eq!(server.bash("echo again").await.output, "again\n");
}

#[tokio::test]
async fn closing_a_session_ends_its_background_processes() {
    let server = start(&[]).await;
    let pid: u32 = server
        .bash("sleep 300 >/dev/null 2>&1 & echo $!")
        .await
        .output
        .trim()
        .parse()
        .expect("a pid");
    assert!(!common::is_gone(pid));
    let _: Done = server
        .call(Request::BashClose {
            session: "main".into(),
        })
        .await
        .expect("close");
    wait_until_gone(pid).await;
    assert_eq!(server.bash("echo fresh").await.output, "fresh\n");
}

async fn wait_until_gone(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !common::is_gone(pid) {
        assert!(Instant::now() < deadline, "process {pid} survived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_end_of_input_kills_the_shells_and_ends_the_process() {
    let mut server: Server = start(&[]).await;
    let pid: u32 = server
        .bash("sleep 300 >/dev/null 2>&1 & echo $!")
        .await
        .output
        .trim()
        .parse()
        .expect("a pid");
    drop(server.client);
    let status = tokio::time::timeout(Duration::from_secs(5), server.child.wait())
        .await
        .expect("the tool server ends")
        .expect("status");
    assert!(status.success(), "{status:?}");
    wait_until_gone(pid).await;
}

#[tokio::test]
async fn the_file_size_limit_stops_a_command_with_a_note_and_spares_the_server() {
    let server = start(&["--rlimit-fsize", "1000000"]).await;
    let out = server.bash("head -c 2000000 /dev/zero > big").await;
    assert_eq!(out.exit_code, 153, "{}", out.output);
    assert!(
        out.output.contains("File size limit exceeded") && out.output.contains("1000000 bytes"),
        "{}",
        out.output
    );
    let size = std::fs::metadata(server.ws.join("big")).expect("big").len();
    assert_eq!(size, 1_000_000);
    let (code, _) = server
        .failure(Request::WriteFile {
            name: "upload.bin".into(),
            data: vec![0; 1_500_000],
        })
        .await;
    assert_eq!(code, FailureCode::TooLarge);
    let _: Done = server.call(Request::Ping).await.expect("still alive");
}

#[tokio::test]
async fn a_full_workspace_gets_a_note_and_refuses_writes_until_files_are_deleted() {
    let server = start(&["--max-workspace-bytes", "200000"]).await;
    let small = server.bash("head -c 1000 /dev/urandom > small").await;
    assert!(!small.output.contains("the limit"), "{}", small.output);
    let out = server.bash("head -c 500000 /dev/urandom > blob").await;
    assert!(
        out.output
            .contains("workspace uses more than 200000 bytes, the limit; delete files to continue"),
        "{}",
        out.output
    );
    let upload = Request::WriteFile {
        name: "notes.txt".into(),
        data: b"hi".to_vec(),
    };
    assert_eq!(
        server.failure(upload.clone()).await.0,
        FailureCode::TooLarge
    );
    let create = Request::Edit {
        command: EditorCommand::Create {
            path: "new.txt".into(),
            file_text: "x".into(),
        },
    };
    assert_eq!(server.failure(create).await.0, FailureCode::TooLarge);
    let out = server.bash("rm blob").await;
    assert!(!out.output.contains("the limit"), "{}", out.output);
    let written: WriteReply = server.call(upload).await.expect("written again");
    assert!(written.path.ends_with("/notes.txt"));
}

#[tokio::test]
async fn the_cpu_limit_stops_a_busy_command_with_a_note() {
    let server = start(&["--rlimit-cpu", "1"]).await;
    let out = server.bash("sh -c 'while :; do :; done'").await;
    assert_eq!(out.exit_code, 152, "{}", out.output);
    assert!(
        out.output.contains("CPU time limit exceeded") && out.output.contains("1 CPU seconds"),
        "{}",
        out.output
    );
    assert_eq!(server.bash("echo alive").await.output, "alive\n");
}

/// Whether unprivileged user namespaces work here at all (else that check proves nothing).
fn user_namespaces_work() -> bool {
    std::process::Command::new("unshare")
        .args(["--user", "true"])
        .status()
        .is_ok_and(|s| s.success())
}

#[tokio::test]
async fn seccomp_refuses_namespaces_and_ptrace_but_not_ordinary_work() {
    let server = start(&["--seccomp"]).await;
    let status = server
        .bash("grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status")
        .await;
    assert!(status.output.contains("Seccomp:\t2"), "{}", status.output);
    assert!(
        status.output.contains("NoNewPrivs:\t1"),
        "{}",
        status.output
    );
    if user_namespaces_work() {
        let out = server.bash("unshare --user true").await;
        assert_ne!(out.exit_code, 0, "{}", out.output);
        assert!(
            out.output.contains("Operation not permitted"),
            "{}",
            out.output
        );
    } else {
        eprintln!("user namespaces do not work here; the unshare check is skipped");
    }
    if server
        .bash("command -v strace >/dev/null && echo yes")
        .await
        .output
        == "yes\n"
    {
        let out = server.bash("strace -o /dev/null true").await;
        assert_ne!(out.exit_code, 0, "ptrace must fail: {}", out.output);
    }
    let out = server
        .bash("ls >/dev/null && git init -q r && git -C r status --short && echo ok")
        .await;
    assert_eq!((out.exit_code, out.output.as_str()), (0, "ok\n"));
    let python = server
        .bash("if command -v python3 >/dev/null; then python3 -c 'print(1)'; else echo 1; fi")
        .await;
    assert_eq!(python.output, "1\n", "{}", python.output);
}
