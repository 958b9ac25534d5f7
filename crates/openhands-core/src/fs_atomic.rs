//! Crash-safe file writes for the file-backed stores.
//!
//! A write goes to a temporary file in the same directory, is flushed to disk, then renamed
//! over the target and the directory is synced. Readers therefore see the old content or the
//! new content, never a torn mix, even if the process dies half-way.
//!
//! [`Durability::ProcessCrash`] skips the two `fsync`s: the rename still makes the write
//! atomic and a process crash loses nothing (the data is in the page cache), but a power loss
//! may lose the most recent writes. The event log uses it, because an `fsync` per event
//! would cap a conversation at a few hundred events per second; settings, secrets and
//! metadata stay fully synced.

use crate::error::StoreError;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// How far a write must have reached before it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// On disk, surviving a power loss (file and directory synced).
    PowerLoss,
    /// In the page cache, surviving a process crash.
    ProcessCrash,
}

/// Atomically replaces `path` with `contents`, synced to disk (blocking; call from
/// `spawn_blocking`).
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), StoreError> {
    write_atomic_with(path, contents, Durability::PowerLoss)
}

/// Atomically replaces `path` with `contents` with the given durability (blocking).
pub fn write_atomic_with(
    path: &Path,
    contents: &[u8],
    durability: Durability,
) -> Result<(), StoreError> {
    let synced = durability == Durability::PowerLoss;
    let parent = path
        .parent()
        .ok_or_else(|| StoreError::Invalid(format!("{} has no parent", path.display())))?;
    std::fs::create_dir_all(parent).map_err(|e| StoreError::io(parent, e))?;
    let tmp = temp_path(path);
    let result = (|| {
        let mut file = std::fs::File::create(&tmp).map_err(|e| StoreError::io(&tmp, e))?;
        file.write_all(contents)
            .map_err(|e| StoreError::io(&tmp, e))?;
        if synced {
            file.sync_all().map_err(|e| StoreError::io(&tmp, e))?;
        }
        std::fs::rename(&tmp, path).map_err(|e| StoreError::io(path, e))?;
        if synced { sync_dir(parent) } else { Ok(()) }
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Runs [`write_atomic`] on the blocking pool.
pub async fn write_atomic_async(path: PathBuf, contents: Vec<u8>) -> Result<(), StoreError> {
    write_atomic_async_with(path, contents, Durability::PowerLoss).await
}

/// Runs [`write_atomic_with`] on the blocking pool.
pub async fn write_atomic_async_with(
    path: PathBuf,
    contents: Vec<u8>,
    durability: Durability,
) -> Result<(), StoreError> {
    tokio::task::spawn_blocking(move || write_atomic_with(&path, &contents, durability))
        .await
        .map_err(|e| StoreError::Backend(format!("write task failed: {e}")))?
}

/// Reads a whole file, `Ok(None)` when it does not exist.
pub async fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, StoreError> {
    match tokio::fs::read(path).await {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StoreError::io(path, e)),
    }
}

fn temp_path(path: &Path) -> PathBuf {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}-{n}", std::process::id()))
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    #[cfg(unix)]
    {
        let handle = std::fs::File::open(dir).map_err(|e| StoreError::io(dir, e))?;
        handle.sync_all().map_err(|e| StoreError::io(dir, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_content_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("nested/settings.json");
        write_atomic(&target, b"one").expect("first write");
        write_atomic(&target, b"two").expect("second write");
        assert_eq!(std::fs::read(&target).expect("read"), b"two");
        let entries: Vec<_> = std::fs::read_dir(target.parent().expect("parent"))
            .expect("list")
            .collect();
        assert_eq!(entries.len(), 1, "temp files must not remain");
    }
}
