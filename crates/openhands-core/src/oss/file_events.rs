//! `oss.file_events`: one file per event, `sessions/<id>/events/<n>.json`, as OpenHands.
//!
//! Appends to one conversation are serialized by a per-conversation lock, which also holds
//! the next id (found once by scanning the directory, which also removes the temporary
//! files a killed writer left), so ids have no gaps or repeats. An
//! event file is written atomically before `append` returns; it survives a process crash but
//! is not `fsync`ed (see [`crate::fs_atomic::Durability`]).

use super::layout::{check_writable, conversation_dir, sessions_dir};
use crate::error::StoreError;
use crate::event::{Event, EventPage, EventQuery, NewEvent, event_timestamp_now};
use crate::extension::EventStore;
use crate::fs_atomic::{
    Durability, read_optional, remove_stale_temp_files_async, write_atomic_async_with,
};
use crate::scope::UserScope;
use async_trait::async_trait;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Next id of a conversation, `None` until its directory has been scanned.
type NextId = Arc<tokio::sync::Mutex<Option<u64>>>;

/// File-backed append-only event log.
pub struct FileEventStore {
    root: PathBuf,
    next_ids: Mutex<HashMap<String, NextId>>,
}

impl FileEventStore {
    pub fn new(root: PathBuf) -> Self {
        Self {
            root,
            next_ids: Mutex::new(HashMap::new()),
        }
    }

    fn events_dir(&self, conversation_id: &str) -> Result<PathBuf, StoreError> {
        Ok(conversation_dir(&self.root, conversation_id)?.join("events"))
    }

    fn slot(&self, conversation_id: &str) -> NextId {
        let mut map = self.next_ids.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(conversation_id.to_owned()).or_default().clone()
    }

    /// The next id, scanning the directory on first use.
    async fn next_id(dir: &Path, cached: &mut Option<u64>) -> Result<u64, StoreError> {
        if let Some(id) = *cached {
            return Ok(id);
        }
        // The directory's first use since start-up: clear what a killed writer left.
        remove_stale_temp_files_async(dir.to_owned()).await;
        let mut next = 0;
        match tokio::fs::read_dir(dir).await {
            Ok(mut entries) => {
                while let Some(entry) = entries
                    .next_entry()
                    .await
                    .map_err(|e| StoreError::io(dir, e))?
                {
                    let name = entry.file_name();
                    let id = name
                        .to_str()
                        .and_then(|n| n.strip_suffix(".json"))
                        .and_then(|n| n.parse::<u64>().ok());
                    if let Some(id) = id {
                        next = next.max(id + 1);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::io(dir, e)),
        }
        *cached = Some(next);
        Ok(next)
    }
}

#[async_trait]
impl EventStore for FileEventStore {
    async fn append(
        &self,
        _scope: &UserScope,
        conversation_id: &str,
        event: NewEvent,
    ) -> Result<Event, StoreError> {
        let dir = self.events_dir(conversation_id)?;
        let slot = self.slot(conversation_id);
        let mut next = slot.lock().await;
        let id = Self::next_id(&dir, &mut next).await?;
        let event = Event::from_new(event, id, event_timestamp_now());
        let bytes = serde_json::to_vec(&event).map_err(|e| StoreError::Backend(e.to_string()))?;
        let path = dir.join(format!("{id}.json"));
        write_atomic_async_with(path, bytes, Durability::ProcessCrash).await?;
        *next = Some(id + 1);
        Ok(event)
    }

    async fn read(
        &self,
        _scope: &UserScope,
        conversation_id: &str,
        query: EventQuery,
    ) -> Result<EventPage, StoreError> {
        let dir = self.events_dir(conversation_id)?;
        let end_exclusive = {
            let slot = self.slot(conversation_id);
            let mut next = slot.lock().await;
            Self::next_id(&dir, &mut next).await?
        };
        let last = match query.end_id {
            Some(end) => end.saturating_add(1).min(end_exclusive),
            None => end_exclusive,
        };
        let ids: Box<dyn Iterator<Item = u64> + Send> = if query.start_id >= last {
            Box::new(std::iter::empty())
        } else if query.reverse {
            Box::new((query.start_id..last).rev())
        } else {
            Box::new(query.start_id..last)
        };
        let mut page = EventPage::default();
        for id in ids {
            if page.events.len() == query.limit {
                page.has_more = true;
                break;
            }
            let path = dir.join(format!("{id}.json"));
            let Some(bytes) = read_optional(&path).await? else {
                continue;
            };
            let event: Event = serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
            page.events.push(event);
        }
        Ok(page)
    }

    async fn delete_all(
        &self,
        _scope: &UserScope,
        conversation_id: &str,
    ) -> Result<(), StoreError> {
        let dir = self.events_dir(conversation_id)?;
        let slot = self.slot(conversation_id);
        let mut next = slot.lock().await;
        match tokio::fs::remove_dir_all(&dir).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::io(&dir, e)),
        }
        *next = Some(0);
        Ok(())
    }

    async fn health(&self) -> Result<(), StoreError> {
        check_writable(&sessions_dir(&self.root)).await
    }
}

crate::register_plugin!(
    crate::extension::EventStore,
    "oss.file_events",
    "Append-only events in <data dir>/sessions/<id>/events/<n>.json",
    |ctx| Ok(Arc::new(FileEventStore::new(ctx.data_dir.clone())))
);
