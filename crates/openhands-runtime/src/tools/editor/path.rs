//! Confinement of editor paths to the workspace: a security boundary.
//!
//! A path is resolved like the kernel would: the deepest ancestor that exists is
//! canonicalized (following symlinks and `..`), and the not-yet-existing rest is appended
//! lexically (it contains no symlinks, so `..` there is a plain parent step). The result must
//! lie under the canonical workspace root. This refuses `../x`, absolute paths elsewhere,
//! symlinks (files or directories) pointing outside, and dangling symlinks, whose target
//! cannot be checked.

use crate::tools::ToolError;
use std::path::{Component, Path, PathBuf};

/// Resolves `input` (absolute, or relative to `root`) to a canonical path inside `root`.
pub(crate) fn resolve_in_workspace(root: &Path, input: &str) -> Result<PathBuf, ToolError> {
    if input.trim().is_empty() {
        return Err(ToolError::InvalidArgument("`path` is empty".into()));
    }
    let root_canonical = root.canonicalize().map_err(|e| ToolError::io(root, e))?;
    let candidate = if Path::new(input).is_absolute() {
        PathBuf::from(input)
    } else {
        root.join(input)
    };
    let components: Vec<Component<'_>> = candidate.components().collect();
    let mut existing_len = components.len();
    while existing_len > 0 {
        let prefix: PathBuf = components[..existing_len].iter().collect();
        if std::fs::symlink_metadata(&prefix).is_ok() {
            break;
        }
        existing_len -= 1;
    }
    let existing: PathBuf = components[..existing_len].iter().collect();
    let mut resolved = existing
        .canonicalize()
        .map_err(|e| ToolError::InvalidPath {
            path: input.to_owned(),
            reason: format!(
                "{} cannot be resolved ({e}); dangling symlink?",
                existing.display()
            ),
        })?;
    for component in &components[existing_len..] {
        match component {
            Component::Normal(name) => resolved.push(name),
            Component::ParentDir => {
                resolved.pop();
            }
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
        }
    }
    if resolved.starts_with(&root_canonical) {
        Ok(resolved)
    } else {
        Err(ToolError::OutsideWorkspace {
            path: input.to_owned(),
            workspace: root.display().to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::tempdir().expect("temp dir");
        let ws = tmp.path().join("ws");
        std::fs::create_dir_all(ws.join("src")).expect("mkdir");
        std::fs::write(tmp.path().join("secret.txt"), "s").expect("write");
        (tmp, ws)
    }

    #[test]
    fn relative_and_absolute_paths_inside_resolve() {
        let (_tmp, ws) = setup();
        let canonical = ws.canonicalize().expect("canon");
        assert_eq!(
            resolve_in_workspace(&ws, "src/new/a.rs").expect("inside"),
            canonical.join("src/new/a.rs")
        );
        let absolute = ws.join("src/../b.txt").display().to_string();
        assert_eq!(
            resolve_in_workspace(&ws, &absolute).expect("inside"),
            canonical.join("b.txt")
        );
        assert_eq!(
            resolve_in_workspace(&ws, "missing/../c.txt").expect("inside"),
            canonical.join("c.txt")
        );
    }

    #[test]
    fn escapes_are_refused() {
        let (tmp, ws) = setup();
        for path in [
            "../secret.txt".to_owned(),
            "src/../../secret.txt".to_owned(),
            "missing/../../secret.txt".to_owned(),
            tmp.path().join("secret.txt").display().to_string(),
            "/etc/passwd".to_owned(),
        ] {
            assert!(
                matches!(
                    resolve_in_workspace(&ws, &path),
                    Err(ToolError::OutsideWorkspace { .. })
                ),
                "{path} must be refused"
            );
        }
    }

    #[test]
    fn symlinks_pointing_outside_are_refused() {
        let (tmp, ws) = setup();
        std::os::unix::fs::symlink(tmp.path().join("secret.txt"), ws.join("link.txt"))
            .expect("symlink");
        std::os::unix::fs::symlink(tmp.path(), ws.join("outdir")).expect("symlink");
        std::os::unix::fs::symlink(tmp.path().join("nope"), ws.join("dangling")).expect("symlink");
        for path in ["link.txt", "outdir/secret.txt", "outdir/new.txt"] {
            assert!(
                matches!(
                    resolve_in_workspace(&ws, path),
                    Err(ToolError::OutsideWorkspace { .. })
                ),
                "{path} must be refused"
            );
        }
        assert!(matches!(
            resolve_in_workspace(&ws, "dangling"),
            Err(ToolError::InvalidPath { .. })
        ));
    }
}
