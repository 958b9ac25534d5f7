//! Turning a user-given path into a path inside a conversation's workspace.
//!
//! A security boundary: `..`, absolute paths elsewhere and symlinks that lead outside are
//! refused. Paths are relative to the workspace; an absolute path is accepted when it
//! names the workspace itself (OpenHands' `/workspace` prefix is accepted too).

use std::path::{Component, Path, PathBuf};

/// Why a path was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("path `{0}` is outside the workspace")]
pub struct OutsideWorkspace(pub String);

/// Resolves `user_path` inside `root` (which must exist). The result may not exist yet, but
/// its deepest existing ancestor is inside `root` after following symlinks.
pub fn resolve(root: &Path, user_path: &str) -> Result<PathBuf, OutsideWorkspace> {
    let outside = || OutsideWorkspace(user_path.to_owned());
    let root = root.canonicalize().map_err(|_| outside())?;
    let given = Path::new(user_path);
    let relative: PathBuf = if given.is_absolute() {
        if let Ok(rest) = given.strip_prefix(&root) {
            rest.to_path_buf()
        } else if let Ok(rest) = given.strip_prefix("/workspace") {
            rest.to_path_buf()
        } else {
            return Err(outside());
        }
    } else {
        given.to_path_buf()
    };
    let mut joined = root.clone();
    for component in relative.components() {
        match component {
            Component::Normal(part) => joined.push(part),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(outside());
            }
        }
    }
    let mut existing = joined.as_path();
    while !existing.exists() {
        existing = existing.parent().ok_or_else(outside)?;
    }
    let real = existing.canonicalize().map_err(|_| outside())?;
    if !real.starts_with(&root) {
        return Err(outside());
    }
    Ok(joined)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_the_workspace() {
        let dir = tempfile::tempdir().expect("dir");
        let root = dir.path().canonicalize().expect("canonical");
        std::fs::write(root.join("a.txt"), "x").expect("write");
        assert_eq!(resolve(&root, "a.txt"), Ok(root.join("a.txt")));
        assert_eq!(
            resolve(&root, "new/file.txt"),
            Ok(root.join("new/file.txt"))
        );
        assert_eq!(
            resolve(&root, &root.join("a.txt").display().to_string()),
            Ok(root.join("a.txt"))
        );
        assert_eq!(resolve(&root, "/workspace/a.txt"), Ok(root.join("a.txt")));
        assert!(resolve(&root, "../etc/passwd").is_err());
        assert!(resolve(&root, "a/../../x").is_err());
        assert!(resolve(&root, "/etc/passwd").is_err());
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink("/etc", root.join("link")).expect("symlink");
            assert!(resolve(&root, "link/passwd").is_err());
            assert!(resolve(&root, "link").is_err());
        }
    }
}
