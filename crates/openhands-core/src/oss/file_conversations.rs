//! `oss.file_conversations`: metadata in `sessions/<id>/metadata.json`, listed from an index.
//!
//! The index (all metadata, ordered by `created_at` descending) is built once at start-up
//! and kept in step with every write, so listing never scans the directory: OpenHands reads
//! every metadata file on each list request.

use super::layout::{check_writable, conversation_dir, parse_json, sessions_dir};
use crate::conversation::{ConversationMetadata, ConversationPage, ConversationQuery};
use crate::error::StoreError;
use crate::extension::ConversationStore;
use crate::fs_atomic::write_atomic_async;
use crate::scope::UserScope;
use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

type OrderKey = (Reverse<DateTime<Utc>>, String);

#[derive(Default)]
struct Index {
    by_id: HashMap<String, ConversationMetadata>,
    order: BTreeSet<OrderKey>,
}

impl Index {
    fn insert(&mut self, meta: ConversationMetadata) {
        if let Some(old) = self.by_id.remove(&meta.conversation_id) {
            self.order
                .remove(&(Reverse(old.created_at), old.conversation_id));
        }
        self.order
            .insert((Reverse(meta.created_at), meta.conversation_id.clone()));
        self.by_id.insert(meta.conversation_id.clone(), meta);
    }

    fn remove(&mut self, id: &str) -> Option<ConversationMetadata> {
        let old = self.by_id.remove(id)?;
        self.order
            .remove(&(Reverse(old.created_at), old.conversation_id.clone()));
        Some(old)
    }
}

/// File-backed conversation metadata with an in-memory index.
pub struct FileConversationStore {
    root: PathBuf,
    index: RwLock<Index>,
    write_lock: tokio::sync::Mutex<()>,
}

fn owned_by(meta: &ConversationMetadata, scope: &UserScope) -> bool {
    meta.user_id == scope.user_id && (scope.org_id.is_none() || meta.org_id == scope.org_id)
}

fn encode_cursor(key: &OrderKey) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}|{}", key.0.0.to_rfc3339(), key.1))
}

fn decode_cursor(cursor: &str) -> Result<OrderKey, StoreError> {
    let invalid = || StoreError::Invalid(format!("page_id `{cursor}` is not a valid cursor"));
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let (at, id) = text.split_once('|').ok_or_else(invalid)?;
    let at = DateTime::parse_from_rfc3339(at).map_err(|_| invalid())?;
    Ok((Reverse(at.with_timezone(&Utc)), id.to_owned()))
}

impl FileConversationStore {
    /// Opens the store, indexing every readable `sessions/*/metadata.json`.
    pub async fn open(root: PathBuf) -> Result<Self, StoreError> {
        let sessions = sessions_dir(&root);
        let index = tokio::task::spawn_blocking(move || build_index(&sessions))
            .await
            .map_err(|e| StoreError::Backend(format!("index task failed: {e}")))??;
        Ok(Self {
            root,
            index: RwLock::new(index),
            write_lock: tokio::sync::Mutex::new(()),
        })
    }

    fn metadata_path(&self, id: &str) -> Result<PathBuf, StoreError> {
        Ok(conversation_dir(&self.root, id)?.join("metadata.json"))
    }

    fn read_index(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        self.index.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_index(&self) -> std::sync::RwLockWriteGuard<'_, Index> {
        self.index.write().unwrap_or_else(|p| p.into_inner())
    }
}

fn build_index(sessions: &std::path::Path) -> Result<Index, StoreError> {
    let mut index = Index::default();
    let entries = match std::fs::read_dir(sessions) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(index),
        Err(e) => return Err(StoreError::io(sessions, e)),
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        // Start-up is this directory's first use: clear what a killed writer left.
        crate::fs_atomic::remove_stale_temp_files(&entry.path());
        let path = entry.path().join("metadata.json");
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        match parse_json(&bytes, &path).and_then(|v| {
            serde_json::from_value::<ConversationMetadata>(v).map_err(|e| StoreError::Corrupt {
                path: path.display().to_string(),
                reason: e.to_string(),
            })
        }) {
            Ok(meta) if meta.conversation_id == name => index.insert(meta),
            Ok(_) => {
                tracing::warn!(path = %path.display(), "metadata id does not match its directory; skipped")
            }
            Err(e) => tracing::warn!(error = %e, "unreadable conversation metadata; skipped"),
        }
    }
    Ok(index)
}

#[async_trait]
impl ConversationStore for FileConversationStore {
    async fn save(
        &self,
        scope: &UserScope,
        metadata: &ConversationMetadata,
    ) -> Result<(), StoreError> {
        if !owned_by(metadata, scope) {
            return Err(StoreError::Invalid(
                "metadata user does not match the caller".into(),
            ));
        }
        let _guard = self.write_lock.lock().await;
        let taken_by_other = self
            .read_index()
            .by_id
            .get(&metadata.conversation_id)
            .is_some_and(|existing| !owned_by(existing, scope));
        if taken_by_other {
            return Err(StoreError::AlreadyExists(format!(
                "Conversation {}",
                metadata.conversation_id
            )));
        }
        let bytes =
            serde_json::to_vec_pretty(metadata).map_err(|e| StoreError::Backend(e.to_string()))?;
        write_atomic_async(self.metadata_path(&metadata.conversation_id)?, bytes).await?;
        self.write_index().insert(metadata.clone());
        Ok(())
    }

    async fn get(
        &self,
        scope: &UserScope,
        conversation_id: &str,
    ) -> Result<Option<ConversationMetadata>, StoreError> {
        Ok(self
            .read_index()
            .by_id
            .get(conversation_id)
            .filter(|m| owned_by(m, scope))
            .cloned())
    }

    async fn delete(&self, scope: &UserScope, conversation_id: &str) -> Result<bool, StoreError> {
        let _guard = self.write_lock.lock().await;
        let owned = self
            .read_index()
            .by_id
            .get(conversation_id)
            .is_some_and(|m| owned_by(m, scope));
        if !owned {
            return Ok(false);
        }
        let dir = conversation_dir(&self.root, conversation_id)?;
        match tokio::fs::remove_dir_all(&dir).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::io(&dir, e)),
        }
        self.write_index().remove(conversation_id);
        Ok(true)
    }

    async fn search(
        &self,
        scope: &UserScope,
        query: &ConversationQuery,
    ) -> Result<ConversationPage, StoreError> {
        let start = query.page_id.as_deref().map(decode_cursor).transpose()?;
        let index = self.read_index();
        let candidates: Box<dyn Iterator<Item = &OrderKey>> = match &start {
            Some(after) => Box::new(index.order.range((
                std::ops::Bound::Excluded(after.clone()),
                std::ops::Bound::Unbounded,
            ))),
            None => Box::new(index.order.iter()),
        };
        let mut results = Vec::with_capacity(query.limit.min(100));
        let mut last_key = None;
        let mut more = false;
        for key in candidates {
            if query.created_after.is_some_and(|min| key.0.0 < min) {
                break;
            }
            let Some(meta) = index.by_id.get(&key.1) else {
                continue;
            };
            let wanted = owned_by(meta, scope)
                && query
                    .selected_repository
                    .as_ref()
                    .is_none_or(|r| meta.selected_repository.as_ref() == Some(r))
                && query.trigger.is_none_or(|t| meta.trigger == Some(t));
            if !wanted {
                continue;
            }
            if results.len() == query.limit {
                more = true;
                break;
            }
            results.push(meta.clone());
            last_key = Some(key);
        }
        Ok(ConversationPage {
            next_page_id: if more {
                last_key.map(encode_cursor)
            } else {
                None
            },
            results,
        })
    }

    async fn health(&self) -> Result<(), StoreError> {
        check_writable(&sessions_dir(&self.root)).await
    }
}

crate::register_plugin!(
    crate::extension::ConversationStore,
    "oss.file_conversations",
    "Conversation metadata in <data dir>/sessions/<id>/metadata.json with an in-memory index",
    |ctx| Ok(Arc::new(
        FileConversationStore::open(ctx.data_dir.clone()).await?
    ))
);
