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
//!
//! A writer killed between creating its temporary file and the rename (`kill -9`, OOM)
//! leaves that file behind, and nothing else would ever remove it. The temporary name
//! records the writing process (`.<name>.tmp-<pid>-<nonce>-<n>`, the nonce telling this
//! process from an earlier one with the same pid), so [`remove_stale_temp_files`] can
//! remove exactly the ones no running write will rename: a dead process's, or any older
//! than [`STALE_AFTER`]. The file stores call it the first time they use a directory after
//! start-up.

use crate::error::StoreError;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A temporary file older than this belongs to no running write, whoever wrote it.
pub const STALE_AFTER: Duration = Duration::from_secs(60);

/// Marks the temporary files of this process, apart from an earlier one with its pid.
fn nonce() -> &'static str {
    static NONCE: OnceLock<String> = OnceLock::new();
    NONCE.get_or_init(|| uuid::Uuid::new_v4().simple().to_string()[..8].to_owned())
}

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
    path.with_file_name(format!(
        ".{name}.tmp-{}-{}-{n}",
        std::process::id(),
        nonce()
    ))
}

/// The writer of a temporary file: its pid, and its nonce (absent in the older
/// `.<name>.tmp-<pid>-<n>` form). `None` when `name` is not a temporary file of ours.
fn temp_writer(name: &str) -> Option<(u32, Option<&str>)> {
    let (_, suffix) = name.strip_prefix('.')?.rsplit_once(".tmp-")?;
    let parts: Vec<&str> = suffix.split('-').collect();
    let (pid, nonce, n) = match parts.as_slice() {
        [pid, n] => (pid, None, n),
        [pid, nonce, n] if !nonce.is_empty() => (pid, Some(*nonce), n),
        _ => return None,
    };
    n.parse::<u64>().ok()?;
    Some((pid.parse().ok()?, nonce))
}

/// Whether the process `pid` is known to have ended (only where `/proc` says so).
fn process_gone(pid: u32) -> bool {
    Path::new("/proc/self").exists() && !Path::new(&format!("/proc/{pid}")).exists()
}

/// Whether the temporary file `name`, last modified at `modified`, is one no running write
/// will rename: older than [`STALE_AFTER`], or written by another process that is gone
/// (an earlier process with this pid counts as gone).
fn is_stale_temp(name: &str, modified: SystemTime) -> bool {
    let Some((pid, nonce)) = temp_writer(name) else {
        return false;
    };
    let old = modified.elapsed().is_ok_and(|age| age > STALE_AFTER);
    let ours = pid == std::process::id() && nonce == Some(self::nonce());
    old || (!ours && (pid == std::process::id() || process_gone(pid)))
}

/// Removes the stale temporary files ([`is_stale_temp`]) directly in `dir` and returns how
/// many; a missing or unreadable directory removes nothing. Blocking.
pub fn remove_stale_temp_files(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        let stale = temp_writer(name).is_some()
            && entry
                .metadata()
                .ok()
                .filter(std::fs::Metadata::is_file)
                .and_then(|m| m.modified().ok())
                .is_some_and(|modified| is_stale_temp(name, modified));
        if stale && std::fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    if removed > 0 {
        tracing::info!(dir = %dir.display(), removed, "removed temporary files a killed writer left");
    }
    removed
}

/// Runs [`remove_stale_temp_files`] on the blocking pool.
pub async fn remove_stale_temp_files_async(dir: PathBuf) -> usize {
    tokio::task::spawn_blocking(move || remove_stale_temp_files(&dir))
        .await
        .unwrap_or(0)
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

    #[test]
    fn temp_names_record_their_writer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tmp = temp_path(&dir.path().join("settings.json"));
        let name = tmp.file_name().and_then(|n| n.to_str()).expect("name");
        assert_eq!(temp_writer(name), Some((std::process::id(), Some(nonce()))));
        assert_eq!(temp_writer(".3.json.tmp-42-7"), Some((42, None)));
        for other in [
            "settings.json",
            ".tmp-1-2",
            ".a.tmp-x-1",
            ".a.tmp-1-2-3-4",
            "3.json",
        ] {
            assert_eq!(temp_writer(other), None, "{other}");
        }
    }

    #[test]
    fn only_stale_temp_files_are_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let plant = |name: &str, age: Duration| {
            let path = dir.path().join(name);
            std::fs::write(&path, b"x").expect("write");
            let file = std::fs::File::options()
                .write(true)
                .open(&path)
                .expect("open");
            file.set_modified(SystemTime::now() - age).expect("mtime");
            path
        };
        let me = std::process::id();
        let fresh = Duration::ZERO;
        let old = STALE_AFTER + Duration::from_secs(5);
        let dead = u32::MAX - 3;
        let removed = [
            plant(&format!(".a.json.tmp-{dead}-0"), fresh),
            plant(&format!(".b.json.tmp-{dead}-abcd1234-0"), fresh),
            plant(&format!(".c.json.tmp-{me}-0"), fresh),
            plant(&format!(".d.json.tmp-{me}-{}-0", nonce()), old),
            plant(".e.json.tmp-1-0", old),
        ];
        let kept = [
            plant(&format!(".f.json.tmp-{me}-{}-0", nonce()), fresh),
            plant(".g.json.tmp-1-0", fresh),
            plant("settings.json", old),
            plant(".hidden", old),
        ];
        assert_eq!(remove_stale_temp_files(dir.path()), removed.len());
        for path in removed {
            assert!(!path.exists(), "{} removed", path.display());
        }
        for path in kept {
            assert!(path.exists(), "{} kept", path.display());
        }
        assert_eq!(remove_stale_temp_files(&dir.path().join("missing")), 0);
    }
}
