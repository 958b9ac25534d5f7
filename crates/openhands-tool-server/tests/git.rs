//! Git status, diff and clone through the real binary, with hostile repositories and
//! credentials that must not leak.

mod common;

use base64::Engine;
use common::{Server, git, repo_with, start};
use openhands_core::tool_protocol::{
    CloneReply, Done, FailureCode, GitChange, GitCredentials, GitDiff, Request, ToolCallError,
};
use std::path::Path;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn change(status: &str, path: &str) -> GitChange {
    GitChange {
        status: status.into(),
        path: path.into(),
    }
}

#[tokio::test]
async fn changes_and_diffs_follow_git() {
    let server = start(&[]).await;
    let ws = &server.ws;
    assert_eq!(
        server.failure(Request::GitChanges).await.0,
        FailureCode::NotARepository
    );
    repo_with(
        ws,
        &[
            ("a.txt", "old a\n"),
            ("b.txt", "b\n"),
            ("c file.txt", "c\n"),
        ],
    );
    std::fs::write(ws.join("a.txt"), "new a\n").expect("write");
    std::fs::remove_file(ws.join("b.txt")).expect("rm");
    git(ws, &["mv", "c file.txt", "d file.txt"]);
    std::fs::create_dir(ws.join("new")).expect("mkdir");
    std::fs::write(ws.join("new/n.txt"), "n\n").expect("write");

    let mut changes: Vec<GitChange> = server.call(Request::GitChanges).await.expect("changes");
    changes.sort_by(|a, b| a.path.cmp(&b.path));
    assert_eq!(
        changes,
        [
            change("M", "a.txt"),
            change("D", "b.txt"),
            change("R", "d file.txt"),
            change("A", "new/n.txt"),
        ]
    );
    let diff: GitDiff = server
        .call(Request::GitDiff {
            path: "a.txt".into(),
        })
        .await
        .expect("diff");
    assert_eq!(
        (diff.modified.as_str(), diff.original.as_str()),
        ("new a\n", "old a\n")
    );
    let deleted: GitDiff = server
        .call(Request::GitDiff {
            path: "b.txt".into(),
        })
        .await
        .expect("diff of a deleted file");
    assert_eq!(
        (deleted.modified.as_str(), deleted.original.as_str()),
        ("", "b\n")
    );
}

/// Checks that a plain `git status` in `ws` runs what `planted` names (it touches
/// `marker`), so the tool server not running it means something; then calls the routes
/// that run git and checks `marker` stays absent.
async fn planted_command_is_not_run(server: &Server, marker: &Path, planted: &str) {
    std::process::Command::new("git")
        .args(["status", "--short"])
        .current_dir(&server.ws)
        .output()
        .expect("git status");
    assert!(
        marker.exists(),
        "precondition: plain git runs the {planted}"
    );
    std::fs::remove_file(marker).expect("rm marker");

    let changes: Vec<GitChange> = server.call(Request::GitChanges).await.expect("changes");
    assert_eq!(changes, [change("M", "a.txt")]);
    let _: Vec<String> = server
        .call(Request::ListFiles { path: "".into() })
        .await
        .expect("list");
    let _: GitDiff = server
        .call(Request::GitDiff {
            path: "a.txt".into(),
        })
        .await
        .expect("diff");
    assert!(!marker.exists(), "the tool server's git ran the {planted}");
}

#[tokio::test]
async fn a_hostile_fsmonitor_in_git_config_is_not_run() {
    let server = start(&[]).await;
    let ws = &server.ws;
    repo_with(ws, &[("a.txt", "a\n"), (".gitignore", "*.log\n")]);
    std::fs::write(ws.join("a.txt"), "changed\n").expect("write");
    let marker = server.outside.join("fsmonitor-ran");
    let hook = server.outside.join("fsmonitor.sh");
    std::fs::write(&hook, format!("#!/bin/sh\ntouch '{}'\n", marker.display())).expect("hook");
    std::process::Command::new("chmod")
        .args(["+x"])
        .arg(&hook)
        .status()
        .expect("chmod");
    git(
        ws,
        &["config", "core.fsmonitor", &hook.display().to_string()],
    );
    planted_command_is_not_run(&server, &marker, "fsmonitor hook").await;
}

#[tokio::test]
async fn hostile_filter_drivers_in_git_config_are_not_run() {
    let server = start(&[]).await;
    let ws = &server.ws;
    repo_with(
        ws,
        &[("a.txt", "a\n"), (".gitattributes", "*.txt filter=evil\n")],
    );
    // Same size, same second as the index: git must hash the content, through the filter.
    std::fs::write(ws.join("a.txt"), "b\n").expect("write");
    let marker = server.outside.join("filter-ran");
    let command = format!("touch '{}'; cat", marker.display());
    git(ws, &["config", "filter.evil.clean", &command]);
    git(ws, &["config", "filter.evil.smudge", &command]);
    git(ws, &["config", "filter.evil.required", "true"]);
    planted_command_is_not_run(&server, &marker, "clean filter").await;
}

/// A bare repository with one commit, as a `file://` URL.
fn bare_repo(dir: &Path) -> String {
    let source = dir.join("source");
    std::fs::create_dir(&source).expect("mkdir");
    repo_with(&source, &[("README.md", "cloned\n")]);
    git(dir, &["clone", "-q", "--bare", "source", "repo.git"]);
    format!("file://{}", dir.join("repo.git").display())
}

fn clone_request(url: &str, credentials: Option<GitCredentials>) -> Request {
    Request::Clone {
        url: url.into(),
        branch: None,
        credentials,
        timeout_ms: 30_000,
    }
}

#[tokio::test]
async fn a_clone_from_a_bare_repository_works_once_and_keeps_no_credentials() {
    let server = start(&[]).await;
    let url = bare_repo(&server.outside);
    let _: Done = server
        .call(Request::Configure {
            env: vec![],
            git_user_name: Some("Agent Smith".into()),
            git_user_email: Some("agent@example.com".into()),
        })
        .await
        .expect("configure");
    let credentials = GitCredentials {
        username: "x-access-token".into(),
        password: "ghp_never_stored".into(),
    };
    let first: CloneReply = server
        .call(clone_request(&url, Some(credentials.clone())))
        .await
        .expect("clone");
    assert!(first.cloned);
    assert_eq!(
        std::fs::read_to_string(server.ws.join("README.md")).expect("cloned file"),
        "cloned\n"
    );
    let second: CloneReply = server
        .call(clone_request(&url, Some(credentials)))
        .await
        .expect("clone again");
    assert!(!second.cloned, "an existing repository is kept");
    let config = std::fs::read_to_string(server.ws.join(".git/config")).expect("config");
    assert!(
        !config.contains("ghp_never_stored") && !config.contains("credential"),
        "{config}"
    );
    assert_eq!(
        git(&server.ws, &["config", "user.name"]).trim(),
        "Agent Smith"
    );
    assert_eq!(
        git(&server.ws, &["config", "user.email"]).trim(),
        "agent@example.com"
    );
}

#[tokio::test]
async fn a_clone_into_a_workspace_with_files_but_no_repository_is_refused() {
    let server = start(&[]).await;
    let url = bare_repo(&server.outside);
    std::fs::write(server.ws.join("mine.txt"), "keep me").expect("write");
    let (code, message) = server.failure(clone_request(&url, None)).await;
    assert_eq!(code, FailureCode::CloneFailed);
    assert!(message.contains("not empty"), "{message}");
    assert!(server.ws.join("mine.txt").exists());
}

/// A smart-HTTP server that wants Basic credentials, records the ones it gets, and then
/// answers with an error that quotes the password back (as a careless server might).
async fn credential_recorder() -> (String, tokio::task::JoinHandle<Vec<String>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/repo.git", listener.local_addr().expect("addr"));
    let server = tokio::spawn(async move {
        let mut seen = Vec::new();
        for _ in 0..4 {
            let Ok((mut stream, _)) = listener.accept().await else {
                break;
            };
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).await.unwrap_or(0) == 1 {
                head.push(byte[0]);
            }
            let head = String::from_utf8_lossy(&head).into_owned();
            let authorization = head.lines().find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("authorization")
                    .then(|| value.trim().to_owned())
            });
            let response = match authorization {
                None => "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"x\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_owned(),
                Some(value) => {
                    let password = base64::engine::general_purpose::STANDARD
                        .decode(value.trim_start_matches("Basic "))
                        .ok()
                        .and_then(|raw| String::from_utf8(raw).ok())
                        .and_then(|pair| pair.split_once(':').map(|(_, p)| p.to_owned()))
                        .unwrap_or_default();
                    seen.push(value);
                    let line = format!("ERR access denied for {password}\n");
                    let body = format!("{:04x}{line}", line.len() + 4);
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/x-git-upload-pack-advertisement\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                }
            };
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
            if !seen.is_empty() {
                break;
            }
        }
        seen
    });
    (url, server)
}

#[tokio::test]
async fn clone_credentials_reach_git_through_the_helper_and_never_the_error() {
    let server = start(&[]).await;
    let (url, recorder) = credential_recorder().await;
    let password = "s3cr3t-Pa55";
    let (code, message) = server
        .failure(clone_request(
            &url,
            Some(GitCredentials {
                username: "oauth2".into(),
                password: password.into(),
            }),
        ))
        .await;
    let seen = recorder.await.expect("recorder");
    let expected = base64::engine::general_purpose::STANDARD.encode(format!("oauth2:{password}"));
    assert_eq!(seen, [format!("Basic {expected}")]);
    assert_eq!(code, FailureCode::CloneFailed);
    assert!(!message.contains(password), "{message}");
    assert!(message.contains("<secret_hidden>"), "{message}");
    let left: Vec<_> = std::fs::read_dir(&server.ws).expect("ws").collect();
    assert!(
        left.is_empty(),
        "a failed clone leaves nothing (no .git/config)"
    );
}

#[tokio::test]
async fn a_clone_that_hangs_stops_at_its_timeout_and_leaves_nothing() {
    let server = start(&[]).await;
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/repo.git", listener.local_addr().expect("addr"));
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let started = std::time::Instant::now();
    let (code, message) = server
        .failure(Request::Clone {
            url,
            branch: None,
            credentials: None,
            timeout_ms: 500,
        })
        .await;
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(code, FailureCode::CloneFailed);
    assert!(
        message.contains("did not finish within 0.5 seconds"),
        "{message}"
    );
    assert_eq!(std::fs::read_dir(&server.ws).expect("ws").count(), 0);
    silent.abort();
}

/// A workspace inside someone else's checkout (a data dir under a git working tree) whose
/// own `.git` is broken must not report the outer repository's files.
#[tokio::test]
async fn a_repository_above_the_workspace_is_never_used() {
    let server = start(&[]).await;
    let root = server.ws.parent().expect("parent").to_owned();
    repo_with(&root, &[("outer.txt", "outer\n")]);
    std::fs::write(root.join("outer.txt"), "changed outside\n").expect("write");
    std::fs::create_dir(server.ws.join(".git")).expect("broken .git");
    let refused = server.call::<Vec<GitChange>>(Request::GitChanges).await;
    match refused {
        Err(ToolCallError::Failed(f)) => assert_eq!(f.code, FailureCode::NotARepository, "{f:?}"),
        other => panic!("expected NotARepository, got {other:?}"),
    }
}
