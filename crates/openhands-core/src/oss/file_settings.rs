//! `oss.file_settings`: settings in `settings.json`, secret fields sealed.

use super::layout::{UserCache, check_writable, parse_json, user_dir};
use crate::crypto::Cipher;
use crate::error::StoreError;
use crate::extension::SettingsStore;
use crate::fs_atomic::{read_optional, remove_stale_temp_files_async, write_atomic_async};
use crate::scope::UserScope;
use crate::settings::Settings;
use async_trait::async_trait;
use std::path::PathBuf;
use std::sync::Arc;

/// File-backed settings with a write-through memory cache.
pub struct FileSettingsStore {
    root: PathBuf,
    cipher: Arc<Cipher>,
    /// Loaded settings per user (`None` = known to be absent).
    cache: UserCache<Settings>,
    /// Serializes read-merge-write cycles.
    write_lock: tokio::sync::Mutex<()>,
}

impl FileSettingsStore {
    pub fn new(root: PathBuf, cipher: Arc<Cipher>) -> Self {
        Self {
            root,
            cipher,
            cache: UserCache::default(),
            write_lock: tokio::sync::Mutex::new(()),
        }
    }

    fn path(&self, scope: &UserScope) -> Result<PathBuf, StoreError> {
        Ok(user_dir(&self.root, scope)?.join("settings.json"))
    }

    async fn load_from_disk(&self, scope: &UserScope) -> Result<Option<Settings>, StoreError> {
        let path = self.path(scope)?;
        let Some(bytes) = read_optional(&path).await? else {
            return Ok(None);
        };
        let value = parse_json(&bytes, &path)?;
        Settings::from_stored(value, &self.cipher, &path.display().to_string()).map(Some)
    }
}

#[async_trait]
impl SettingsStore for FileSettingsStore {
    async fn load(&self, scope: &UserScope) -> Result<Option<Settings>, StoreError> {
        if let Some(hit) = self.cache.get(scope) {
            return Ok(hit);
        }
        // First use of this user's directory since start-up.
        remove_stale_temp_files_async(user_dir(&self.root, scope)?).await;
        let loaded = self.load_from_disk(scope).await?;
        self.cache.put(scope, loaded.clone());
        Ok(loaded)
    }

    async fn store_merged(
        &self,
        scope: &UserScope,
        incoming: Settings,
    ) -> Result<Settings, StoreError> {
        let _guard = self.write_lock.lock().await;
        let stored = self.load(scope).await?;
        let merged = incoming.merged_over(stored.as_ref());
        let bytes = serde_json::to_vec_pretty(&merged.to_stored(&self.cipher)?)
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        write_atomic_async(self.path(scope)?, bytes).await?;
        self.cache.put(scope, Some(merged.clone()));
        Ok(merged)
    }

    async fn health(&self) -> Result<(), StoreError> {
        check_writable(&self.root).await
    }
}

crate::register_plugin!(
    crate::extension::SettingsStore,
    "oss.file_settings",
    "Settings in <data dir>/settings.json, API keys sealed",
    |ctx| Ok(Arc::new(FileSettingsStore::new(
        ctx.data_dir.clone(),
        ctx.cipher.clone()
    )))
);
