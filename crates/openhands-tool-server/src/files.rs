//! The file operations of the file routes: list a directory, read a file, upload a file.
//!
//! Ported from the server's former file routes with the same results (hidden entries, the
//! `git check-ignore` filter, directories first), now confined by [`crate::workspace`]. An
//! upload never writes through a symlink: it goes to a fresh temporary file opened with
//! `O_NOFOLLOW | O_EXCL` and is renamed over the name, which replaces a link instead of
//! following it; a name that exists as anything but a regular file is refused.

use crate::error::ToolError;
use crate::git;
use crate::workspace::Workspace;
use openhands_core::tool_protocol::limits::{MAX_LIST_ENTRIES, MAX_UPLOAD_BYTES};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Entries never listed (OpenHands' list).
const HIDDEN_ENTRIES: [&str; 6] = [
    ".git/",
    ".DS_Store",
    "node_modules/",
    "__pycache__/",
    "lost+found/",
    ".vscode/",
];

/// Most directory entries read before filtering (bounds memory on a huge directory).
const MAX_ENTRIES_READ: usize = 4 * MAX_LIST_ENTRIES;

/// Entries of the directory `path` (directories end with `/`), workspace-relative, hidden
/// and git-ignored ones left out, directories first.
pub async fn list(ws: &Workspace, path: &str) -> Result<Vec<String>, ToolError> {
    let dir = ws.resolve_or_root(path)?;
    let shown = ws.show(&dir);
    let meta = tokio::fs::metadata(&dir)
        .await
        .map_err(|e| not_found_or_io(&shown, e))?;
    if !meta.is_dir() {
        return Err(ToolError::InvalidArgument(format!(
            "{shown} is not a directory"
        )));
    }
    let prefix = ws.relative(&dir);
    let mut read = tokio::fs::read_dir(&dir)
        .await
        .map_err(|e| ToolError::io(&shown, e))?;
    let mut entries = Vec::new();
    while let Some(entry) = read
        .next_entry()
        .await
        .map_err(|e| ToolError::io(&shown, e))?
    {
        if entries.len() >= MAX_ENTRIES_READ {
            break;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        // The entry itself, not a symlink's target.
        let is_dir = entry.file_type().await.map(|t| t.is_dir()).unwrap_or(false);
        let listed = if is_dir { format!("{name}/") } else { name };
        if HIDDEN_ENTRIES.contains(&listed.as_str()) {
            continue;
        }
        entries.push(if prefix.is_empty() {
            listed
        } else {
            format!("{prefix}/{listed}")
        });
    }
    let ignored = git::ignored(ws.root(), &entries).await;
    entries.retain(|e| !ignored.contains(e.trim_end_matches('/')));
    entries.sort_by(|a, b| (!a.ends_with('/'), a).cmp(&(!b.ends_with('/'), b)));
    entries.truncate(MAX_LIST_ENTRIES);
    Ok(entries)
}

/// The bytes of the file `path`, refused with `TooLarge` past `max_bytes`.
pub async fn read(ws: &Workspace, path: &str, max_bytes: u64) -> Result<Vec<u8>, ToolError> {
    let file = ws.resolve(path)?;
    let shown = ws.show(&file);
    tokio::task::spawn_blocking(move || read_limited(&file, &shown, max_bytes))
        .await
        .map_err(|e| ToolError::Command(format!("reading failed: {e}")))?
}

/// Reads `file` (not through a symlink) up to `max_bytes`. Blocking.
pub fn read_limited(file: &Path, shown: &str, max_bytes: u64) -> Result<Vec<u8>, ToolError> {
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(file)
        .map_err(|e| not_found_or_io(shown, e))?;
    let meta = opened.metadata().map_err(|e| ToolError::io(shown, e))?;
    if meta.is_dir() {
        return Err(ToolError::IsDirectory {
            path: shown.to_owned(),
        });
    }
    let too_large = || {
        ToolError::TooLarge(format!(
            "{shown} is larger than the limit of {max_bytes} bytes"
        ))
    };
    if meta.len() > max_bytes {
        return Err(too_large());
    }
    let mut data = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    opened
        .take(max_bytes.saturating_add(1))
        .read_to_end(&mut data)
        .map_err(|e| ToolError::io(shown, e))?;
    if data.len() as u64 > max_bytes {
        return Err(too_large());
    }
    Ok(data)
}

/// Writes `data` as the regular file `name` (a plain name) at the workspace root; returns
/// its path as the tools see it.
pub async fn write(ws: &Workspace, name: &str, data: Vec<u8>) -> Result<String, ToolError> {
    let invalid = |reason: &str| ToolError::InvalidPath {
        path: name.to_owned(),
        reason: reason.to_owned(),
    };
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(invalid(
            "an uploaded file needs a plain file name (no directories)",
        ));
    }
    if data.len() as u64 > MAX_UPLOAD_BYTES {
        return Err(ToolError::TooLarge(format!(
            "{name} is larger than the upload limit of {MAX_UPLOAD_BYTES} bytes"
        )));
    }
    if let Some(limit) = crate::limits::file_size_limit()
        && data.len() as u64 > limit
    {
        return Err(ToolError::TooLarge(format!(
            "{name} is larger than the sandbox's file size limit of {limit} bytes"
        )));
    }
    let root = ws.root().to_owned();
    let shown = ws.show(&root.join(name));
    let reply = shown.clone();
    let name = name.to_owned();
    tokio::task::spawn_blocking(move || write_blocking(&root, name, &shown, &data))
        .await
        .map_err(|e| ToolError::Command(format!("writing failed: {e}")))??;
    Ok(reply)
}

/// A number making temporary names unique within this process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

fn write_blocking(root: &Path, name: String, shown: &str, data: &[u8]) -> Result<(), ToolError> {
    let target = root.join(&name);
    match std::fs::symlink_metadata(&target) {
        Ok(meta) if meta.file_type().is_symlink() => {
            return Err(ToolError::InvalidPath {
                path: name,
                reason: "a symlink of that name exists; it is not followed or replaced".into(),
            });
        }
        Ok(meta) if !meta.is_file() => {
            return Err(ToolError::InvalidPath {
                path: name,
                reason: "something other than a regular file has that name".into(),
            });
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(ToolError::io(shown, e)),
    }
    let temp = root.join(format!(
        ".oh-upload-{}-{}",
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&temp)?;
        file.write_all(data)?;
        file.flush()?;
        // `rename` replaces whatever now has the name (even a symlink planted since the
        // check) without following it.
        std::fs::rename(&temp, &target)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&temp);
        return Err(ToolError::io(shown, e));
    }
    Ok(())
}

fn not_found_or_io(shown: &str, e: std::io::Error) -> ToolError {
    if e.kind() == std::io::ErrorKind::NotFound {
        ToolError::NotFound {
            path: shown.to_owned(),
        }
    } else if e.raw_os_error() == Some(libc::ELOOP) {
        ToolError::InvalidPath {
            path: shown.to_owned(),
            reason: "it is a symlink, which is not followed".into(),
        }
    } else {
        ToolError::io(shown, e)
    }
}
