//! `oss.file_secrets`: custom secrets and provider tokens in `secrets.json`, values sealed.

use super::layout::{UserCache, check_writable, parse_json, user_dir};
use crate::crypto::Cipher;
use crate::error::StoreError;
use crate::extension::SecretsStore;
use crate::fs_atomic::{read_optional, remove_stale_temp_files_async, write_atomic_async};
use crate::scope::UserScope;
use crate::secrets::{
    CustomSecretChange, ProviderToken, ProviderTokenChange, ProviderType, UserSecrets,
};
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// File-backed secrets with a write-through memory cache. Every change is
/// read-modify-write under one lock, so concurrent requests never lose each other's changes.
pub struct FileSecretsStore {
    root: PathBuf,
    cipher: Arc<Cipher>,
    /// Decrypted secrets per user (`None` = known to be absent).
    cache: UserCache<UserSecrets>,
    write_lock: tokio::sync::Mutex<()>,
}

impl FileSecretsStore {
    pub fn new(root: PathBuf, cipher: Arc<Cipher>) -> Self {
        Self {
            root,
            cipher,
            cache: UserCache::default(),
            write_lock: tokio::sync::Mutex::new(()),
        }
    }

    async fn load_from_disk(&self, scope: &UserScope) -> Result<Option<UserSecrets>, StoreError> {
        let path = self.path(scope)?;
        let Some(bytes) = read_optional(&path).await? else {
            return Ok(None);
        };
        let value = parse_json(&bytes, &path)?;
        UserSecrets::from_stored(&value, &self.cipher, &path.display().to_string()).map(Some)
    }

    fn path(&self, scope: &UserScope) -> Result<PathBuf, StoreError> {
        Ok(user_dir(&self.root, scope)?.join("secrets.json"))
    }

    async fn write(&self, scope: &UserScope, secrets: &UserSecrets) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec_pretty(&secrets.to_stored(&self.cipher)?)
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        write_atomic_async(self.path(scope)?, bytes).await?;
        self.cache.put(scope, Some(secrets.clone()));
        Ok(())
    }
}

#[async_trait]
impl SecretsStore for FileSecretsStore {
    async fn load(&self, scope: &UserScope) -> Result<Option<UserSecrets>, StoreError> {
        if let Some(hit) = self.cache.get(scope) {
            return Ok(hit);
        }
        // First use of this user's directory since start-up.
        remove_stale_temp_files_async(user_dir(&self.root, scope)?).await;
        let loaded = self.load_from_disk(scope).await?;
        self.cache.put(scope, loaded.clone());
        Ok(loaded)
    }

    async fn store(&self, scope: &UserScope, secrets: UserSecrets) -> Result<(), StoreError> {
        let _guard = self.write_lock.lock().await;
        self.write(scope, &secrets).await
    }

    async fn change_custom_secret(
        &self,
        scope: &UserScope,
        change: CustomSecretChange,
    ) -> Result<(), StoreError> {
        let _guard = self.write_lock.lock().await;
        let mut secrets = self.load(scope).await?.unwrap_or_default();
        change.apply(&mut secrets)?;
        self.write(scope, &secrets).await
    }

    async fn replace_provider_tokens(
        &self,
        scope: &UserScope,
        tokens: BTreeMap<ProviderType, ProviderToken>,
    ) -> Result<(), StoreError> {
        let _guard = self.write_lock.lock().await;
        let mut secrets = self.load(scope).await?.unwrap_or_default();
        secrets.replace_provider_tokens(tokens);
        self.write(scope, &secrets).await
    }

    async fn change_provider_token(
        &self,
        scope: &UserScope,
        provider: ProviderType,
        change: ProviderTokenChange,
    ) -> Result<bool, StoreError> {
        let _guard = self.write_lock.lock().await;
        let mut secrets = self.load(scope).await?.unwrap_or_default();
        if !change.apply(provider, &mut secrets)? {
            return Ok(false);
        }
        self.write(scope, &secrets).await?;
        Ok(true)
    }

    async fn health(&self) -> Result<(), StoreError> {
        check_writable(&self.root).await
    }
}

crate::register_plugin!(
    crate::extension::SecretsStore,
    "oss.file_secrets",
    "Custom secrets and git tokens in <data dir>/secrets.json, values sealed",
    |ctx| Ok(Arc::new(FileSecretsStore::new(
        ctx.data_dir.clone(),
        ctx.cipher.clone()
    )))
);
