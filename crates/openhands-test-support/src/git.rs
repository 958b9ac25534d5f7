//! Git repositories for tests that clone, with a real `git` and no network beyond this
//! machine: on disk (a single-user server clones `file://` URLs and paths), and served
//! over plain HTTP by [`GitHttpServer`] for servers whose sandboxes clone only from
//! allowed hosts, through their egress proxy.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs `git args` in `dir`, panicking with git's stderr when it fails.
fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Creates `<dir>/repo.git`, a bare repository whose `main` holds one commit with a
/// `README.md` of `# repo\n` (made in `<dir>/work`); returns the bare repository's path.
pub fn bare_repository(dir: &Path) -> PathBuf {
    let work = dir.join("work");
    std::fs::create_dir_all(&work).expect("creating the work tree");
    git(&work, &["init", "-q", "-b", "main"]);
    std::fs::write(work.join("README.md"), "# repo\n").expect("writing README.md");
    git(&work, &["add", "."]);
    git(
        &work,
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.com",
            "commit",
            "-qm",
            "init",
        ],
    );
    git(dir, &["clone", "-q", "--bare", "work", "repo.git"]);
    let bare = dir.join("repo.git");
    // The files git's "dumb" HTTP protocol reads, for `GitHttpServer`.
    git(&bare, &["update-server-info"]);
    bare
}

/// The loopback address [`GitHttpServer`] listens on: the host's, but not `127.0.0.1`, so
/// from inside a sandbox (whose own loopback is `127.0.0.1` and bypasses the proxy) it is
/// reachable only through the egress proxy, as a real git host would be.
pub const GIT_HTTP_ADDRESS: &str = "127.0.0.2";

/// A read-only static HTTP server for a directory of bare repositories (git's "dumb" HTTP
/// protocol). Stops when dropped.
pub struct GitHttpServer {
    origin: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for GitHttpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl GitHttpServer {
    /// Serves the files under `root` (e.g. `<root>/repo.git/...` from [`bare_repository`]).
    pub async fn serve(root: &Path) -> Self {
        let listener = tokio::net::TcpListener::bind((GIT_HTTP_ADDRESS, 0))
            .await
            .expect("binding the git HTTP server");
        let port = listener.local_addr().expect("local address").port();
        let root = root.to_owned();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve_file(stream, root.clone()));
            }
        });
        Self {
            origin: format!("http://{GIT_HTTP_ADDRESS}:{port}"),
            task,
        }
    }

    /// `http://127.0.0.2:<port>`.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The clone URL of `path` under the served directory (e.g. `repo.git`).
    pub fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.origin)
    }

    /// Lets a SaaS server's conversations clone from here: the origin is an allowed clone
    /// host and its address passes the egress proxy.
    pub fn allow_in(&self, config: &mut openhands_core::config::Config) {
        config.sandbox.clone_hosts.push(self.origin.clone());
        config
            .sandbox
            .network
            .allow
            .push(GIT_HTTP_ADDRESS.to_owned());
    }
}

async fn serve_file(mut stream: tokio::net::TcpStream, root: PathBuf) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut head = Vec::new();
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&chunk[..n]),
        }
    }
    let head = String::from_utf8_lossy(&head);
    let target = head
        .lines()
        .next()
        .and_then(|line| line.strip_prefix("GET "))
        .and_then(|rest| rest.split(' ').next())
        .map(|t| t.split('?').next().unwrap_or(t))
        .unwrap_or_default();
    let safe = !target.is_empty() && !target.split('/').any(|s| s == "..");
    let body = if safe {
        tokio::fs::read(root.join(target.trim_start_matches('/')))
            .await
            .ok()
    } else {
        None
    };
    let response = match body {
        Some(body) => {
            let mut r = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n",
                body.len()
            )
            .into_bytes();
            r.extend_from_slice(&body);
            r
        }
        None => {
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec()
        }
    };
    let _ = stream.write_all(&response).await;
    let _ = stream.shutdown().await;
}
