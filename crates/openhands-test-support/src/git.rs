//! Git repositories on disk for tests that clone: a conversation's `repository` may be a
//! `file://` URL, so clone paths run against a real `git` without a network.

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
    dir.join("repo.git")
}
