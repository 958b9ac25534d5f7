//! Where each OSS file lives under the data directory.

use crate::error::StoreError;
use crate::scope::UserScope;
use std::path::{Path, PathBuf};

/// The directory holding one user's files: the root for the local user, else `users/<id>`.
pub fn user_dir(root: &Path, scope: &UserScope) -> Result<PathBuf, StoreError> {
    match &scope.user_id {
        None => Ok(root.to_path_buf()),
        Some(id) => {
            crate::conversation::validate_conversation_id(id)
                .map_err(|e| StoreError::Invalid(format!("user id: {e}")))?;
            Ok(root.join("users").join(id))
        }
    }
}

/// `sessions/` under the root.
pub fn sessions_dir(root: &Path) -> PathBuf {
    root.join("sessions")
}

/// `sessions/<id>/`; the id must already be validated.
pub fn conversation_dir(root: &Path, conversation_id: &str) -> Result<PathBuf, StoreError> {
    crate::conversation::validate_conversation_id(conversation_id)
        .map_err(|e| StoreError::Invalid(e.to_string()))?;
    Ok(sessions_dir(root).join(conversation_id))
}

/// Checks that `dir` exists and is writable, for `/ready`. Each probe uses its own file
/// name, so concurrent checks of the same directory do not trip over each other.
pub async fn check_writable(dir: &Path) -> Result<(), StoreError> {
    static PROBES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = PROBES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let probe = dir.join(format!(".ready-probe-{}-{n}", std::process::id()));
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|e| StoreError::io(dir, e))?;
    tokio::fs::write(&probe, b"ok")
        .await
        .map_err(|e| StoreError::io(&probe, e))?;
    tokio::fs::remove_file(&probe)
        .await
        .map_err(|e| StoreError::io(&probe, e))
}

/// Parses JSON read from `path`, naming the file when it is corrupt.
pub fn parse_json(bytes: &[u8], path: &Path) -> Result<serde_json::Value, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// Per-user values loaded from disk, kept in step with every write. `Some(None)` means the
/// user is known to have nothing stored.
pub struct UserCache<T> {
    map: std::sync::RwLock<std::collections::HashMap<Option<String>, Option<T>>>,
}

impl<T> Default for UserCache<T> {
    fn default() -> Self {
        Self {
            map: std::sync::RwLock::new(std::collections::HashMap::new()),
        }
    }
}

impl<T: Clone> UserCache<T> {
    /// The cached value of `scope`'s user, if loaded.
    pub fn get(&self, scope: &UserScope) -> Option<Option<T>> {
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        map.get(&scope.user_id).cloned()
    }

    /// Records what is now stored for `scope`'s user.
    pub fn put(&self, scope: &UserScope, value: Option<T>) {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        map.insert(scope.user_id.clone(), value);
    }
}
