//! The workspace root and the confinement of every path to it: a security boundary.
//!
//! A path is resolved like the kernel would: the deepest ancestor that exists is
//! canonicalized (following symlinks and `..`), and the not-yet-existing rest is appended
//! lexically (it contains no symlinks, so `..` there is a plain parent step). The result must
//! lie under the canonical workspace root. This refuses `../x`, absolute paths elsewhere,
//! symlinks (files or directories) pointing outside, and dangling symlinks, whose target
//! cannot be checked.
//!
//! The workspace may be shown under another name than its real path (`--shown-as`, e.g.
//! `/workspace`): absolute paths under the shown name (and under OpenHands' `/workspace`)
//! are accepted, and paths are reported under the shown name.

use crate::error::ToolError;
use std::path::{Component, Path, PathBuf};

/// OpenHands' name of the workspace, accepted as a prefix of absolute paths.
const OPENHANDS_WORKSPACE: &str = "/workspace";

/// A workspace: its canonical root and the name the tools show for it.
#[derive(Debug, Clone)]
pub struct Workspace {
    root: PathBuf,
    shown: PathBuf,
}

impl Workspace {
    /// The workspace at `root` (which must exist), shown as `shown` (default: its path).
    pub fn new(root: &Path, shown: Option<&str>) -> Result<Self, ToolError> {
        let root = root.canonicalize().map_err(|e| ToolError::io(root, e))?;
        let shown = shown.map_or_else(|| root.clone(), PathBuf::from);
        Ok(Self { root, shown })
    }

    /// The canonical root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// How `real` (a path under the root) is shown to the tools' users.
    pub fn show(&self, real: &Path) -> String {
        match real.strip_prefix(&self.root) {
            Ok(rest) if rest.as_os_str().is_empty() => self.shown.display().to_string(),
            Ok(rest) => self.shown.join(rest).display().to_string(),
            Err(_) => real.display().to_string(),
        }
    }

    /// The shown name of the root.
    pub fn shown_root(&self) -> String {
        self.shown.display().to_string()
    }

    /// Resolves `input` (relative to the root, or absolute) to a canonical path inside it.
    pub fn resolve(&self, input: &str) -> Result<PathBuf, ToolError> {
        if input.trim().is_empty() {
            return Err(ToolError::InvalidArgument("`path` is empty".into()));
        }
        let given = Path::new(input);
        let candidate = if given.is_absolute() {
            if given.starts_with(&self.root) {
                given.to_path_buf()
            } else if let Ok(rest) = given.strip_prefix(&self.shown) {
                self.root.join(rest)
            } else if let Ok(rest) = given.strip_prefix(OPENHANDS_WORKSPACE) {
                self.root.join(rest)
            } else {
                given.to_path_buf()
            }
        } else {
            self.root.join(given)
        };
        confine(&self.root, &candidate, input, &self.shown_root())
    }

    /// Like [`Self::resolve`], with the empty path meaning the root.
    pub fn resolve_or_root(&self, input: &str) -> Result<PathBuf, ToolError> {
        if input.trim().is_empty() {
            Ok(self.root.clone())
        } else {
            self.resolve(input)
        }
    }

    /// `real` relative to the root (`""` for the root itself).
    pub fn relative(&self, real: &Path) -> String {
        real.strip_prefix(&self.root)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

/// Resolves `candidate` (absolute) and checks it lies under `root` (canonical).
fn confine(root: &Path, candidate: &Path, input: &str, shown: &str) -> Result<PathBuf, ToolError> {
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
            reason: format!("it cannot be resolved ({e}); dangling symlink?"),
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
    if resolved.starts_with(root) {
        Ok(resolved)
    } else {
        Err(ToolError::OutsideWorkspace {
            path: input.to_owned(),
            workspace: shown.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, Workspace) {
        let tmp = tempfile::tempdir().expect("temp dir");
        let ws = tmp.path().join("ws");
        std::fs::create_dir_all(ws.join("src")).expect("mkdir");
        std::fs::write(tmp.path().join("secret.txt"), "s").expect("write");
        let ws = Workspace::new(&ws, None).expect("workspace");
        (tmp, ws)
    }

    #[test]
    fn relative_and_absolute_paths_inside_resolve() {
        let (_tmp, ws) = setup();
        let root = ws.root().to_owned();
        assert_eq!(
            ws.resolve("src/new/a.rs").expect("inside"),
            root.join("src/new/a.rs")
        );
        let absolute = root.join("src/../b.txt").display().to_string();
        assert_eq!(ws.resolve(&absolute).expect("inside"), root.join("b.txt"));
        assert_eq!(
            ws.resolve("missing/../c.txt").expect("inside"),
            root.join("c.txt")
        );
        assert_eq!(
            ws.resolve("/workspace/src").expect("inside"),
            root.join("src")
        );
    }

    #[test]
    fn the_shown_name_maps_to_the_root_both_ways() {
        let (_tmp, ws) = setup();
        let ws = Workspace::new(ws.root(), Some("/home/agent/project")).expect("workspace");
        assert_eq!(
            ws.resolve("/home/agent/project/src/a.rs").expect("inside"),
            ws.root().join("src/a.rs")
        );
        assert_eq!(
            ws.show(&ws.root().join("src/a.rs")),
            "/home/agent/project/src/a.rs"
        );
        assert_eq!(ws.show(ws.root()), "/home/agent/project");
    }

    #[test]
    fn escapes_are_refused() {
        let (tmp, ws) = setup();
        for path in [
            "../secret.txt".to_owned(),
            "src/../../secret.txt".to_owned(),
            "missing/../../secret.txt".to_owned(),
            "/workspace/../secret.txt".to_owned(),
            tmp.path().join("secret.txt").display().to_string(),
            "/etc/passwd".to_owned(),
        ] {
            assert!(
                matches!(ws.resolve(&path), Err(ToolError::OutsideWorkspace { .. })),
                "{path} must be refused"
            );
        }
    }

    #[test]
    fn symlinks_pointing_outside_are_refused() {
        let (tmp, ws) = setup();
        let root = ws.root();
        std::os::unix::fs::symlink(tmp.path().join("secret.txt"), root.join("link.txt"))
            .expect("symlink");
        std::os::unix::fs::symlink(tmp.path(), root.join("outdir")).expect("symlink");
        std::os::unix::fs::symlink(tmp.path().join("nope"), root.join("dangling"))
            .expect("symlink");
        for path in ["link.txt", "outdir/secret.txt", "outdir/new.txt"] {
            assert!(
                matches!(ws.resolve(path), Err(ToolError::OutsideWorkspace { .. })),
                "{path} must be refused"
            );
        }
        assert!(matches!(
            ws.resolve("dangling"),
            Err(ToolError::InvalidPath { .. })
        ));
    }
}
