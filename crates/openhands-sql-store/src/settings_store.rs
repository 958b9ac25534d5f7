//! `saas.sql_settings`: one settings document per user and organization.
//!
//! The document is `Settings::to_stored` (secret fields sealed) as JSON text in
//! `user_settings.settings`. `store_merged` reads, merges and writes in one transaction
//! that holds the scope's write lock, so concurrent writers of one user never lose each
//! other's kept fields.

use crate::database::{Database, lock_key};
use crate::entity::user_settings::{ActiveModel, Column, Entity};
use crate::error::{backend, corrupt, retry_read};
use crate::scope::ScopeKey;
use async_trait::async_trait;
use openhands_core::crypto::Cipher;
use openhands_core::extension::SettingsStore;
use openhands_core::settings::Settings;
use openhands_core::{StoreError, UserScope};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ConnectionTrait, EntityTrait, QuerySelect};
use std::sync::Arc;

const WHAT: &str = "user_settings";
/// Namespace of the per-scope write lock; key rotation takes it too.
pub(crate) const LOCK_NAMESPACE: &str = WHAT;

/// Settings in SQL.
pub struct SqlSettingsStore {
    db: Database,
    cipher: Arc<Cipher>,
}

impl SqlSettingsStore {
    pub fn new(db: Database, cipher: Arc<Cipher>) -> Self {
        Self { db, cipher }
    }

    async fn read<C: ConnectionTrait>(
        &self,
        conn: &C,
        key: &ScopeKey,
        for_update: bool,
    ) -> Result<Option<Settings>, StoreError> {
        let query = || {
            let query = Entity::find_by_id((key.user_id.clone(), key.org_id.clone()));
            if for_update {
                query.lock_exclusive()
            } else {
                query
            }
        };
        let row = if for_update {
            // Inside the write transaction: its connection cannot be swapped for another.
            query().one(conn).await
        } else {
            retry_read(|| query().one(conn)).await
        };
        let Some(row) = row.map_err(backend)? else {
            return Ok(None);
        };
        let value = serde_json::from_str(&row.settings).map_err(|e| corrupt(WHAT, e))?;
        Settings::from_stored(value, &self.cipher, WHAT).map(Some)
    }
}

#[async_trait]
impl SettingsStore for SqlSettingsStore {
    async fn load(&self, scope: &UserScope) -> Result<Option<Settings>, StoreError> {
        self.read(self.db.connection(), &ScopeKey::of(scope), false)
            .await
    }

    async fn store_merged(
        &self,
        scope: &UserScope,
        incoming: Settings,
    ) -> Result<Settings, StoreError> {
        let key = ScopeKey::of(scope);
        let txn = self.db.begin_write().await.map_err(backend)?;
        lock_key(&txn, &key.lock_name(WHAT))
            .await
            .map_err(backend)?;
        let stored = self.read(&txn, &key, true).await?;
        let merged = incoming.merged_over(stored.as_ref());
        let document = serde_json::to_string(&merged.to_stored(&self.cipher)?)
            .map_err(|e| StoreError::Backend(format!("settings serialization: {e}")))?;
        let row = ActiveModel {
            user_id: Set(key.user_id),
            org_id: Set(key.org_id),
            settings: Set(document),
            updated_at: Set(chrono::Utc::now()),
        };
        Entity::insert(row)
            .on_conflict(
                OnConflict::columns([Column::UserId, Column::OrgId])
                    .update_columns([Column::Settings, Column::UpdatedAt])
                    .to_owned(),
            )
            .exec_without_returning(&txn)
            .await
            .map_err(backend)?;
        txn.commit().await.map_err(backend)?;
        Ok(merged)
    }

    async fn health(&self) -> Result<(), StoreError> {
        self.db.ping().await.map_err(backend)
    }
}
