//! The hooks' keys for [`Integration::verify`](openhands_core::extension::Integration::verify):
//! an in-memory cache in front of the `gitlab_webhooks` table.
//!
//! Why a cache with a blocking look-up: the framework's `verify` is synchronous (it runs on
//! the webhook route before anything is stored), but a GitLab delivery is verified against
//! its hook's own secret, which lives in the database. So the keys are cached in memory, and
//! a key that is not cached (or is stale) is read through one dedicated thread that owns a
//! small pool on its own runtime; `verify` waits for its answer, at most
//! [`LOOKUP_TIMEOUT`]. Only a miss waits (one primary-key read, about a millisecond), so a
//! hook installed a moment ago, by this replica or another, is verified on its very first
//! delivery, without polling the table. A removed hook stops verifying within
//! [`FOUND_TTL`]; an unknown id is remembered as unknown for [`MISSING_TTL`]. Ids that are
//! not UUIDs are refused before any look-up, the queue to the thread is bounded (a full
//! queue refuses at once), and the cache holds at most [`MAX_ENTRIES`] ids, so a flood of
//! made-up ids costs bounded memory and database reads.
//!
//! The alternative, an `async` verification step in the framework, is the better end state
//! (see `docs/gitlab.md`); this keeps the framework's contract as it is.

use crate::store::HookStore;
use openhands_core::config::Config;
use std::collections::HashMap;
use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a found key is trusted before it is read again.
pub const FOUND_TTL: Duration = Duration::from_secs(30);
/// How long an unknown id stays unknown.
pub const MISSING_TTL: Duration = Duration::from_secs(5);
/// The longest `verify` waits for the database.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);
/// Most ids cached at once.
pub const MAX_ENTRIES: usize = 10_000;
/// Look-ups waiting for the thread at most.
const QUEUE: usize = 64;

/// What verifying a delivery of a hook needs: who installed it and its secret's digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookKey {
    pub user_id: String,
    pub secret_sha256: String,
}

/// Why a key could not be had (the delivery is refused; GitLab shows the 403).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LookupError {
    #[error("too many hook look-ups are waiting")]
    Busy,
    #[error("the hook look-up took longer than {LOOKUP_TIMEOUT:?}")]
    TimedOut,
    #[error("reading the hook failed: {0}")]
    Database(String),
}

struct Cached {
    key: Option<HookKey>,
    at: Instant,
}

impl Cached {
    fn fresh(&self, now: Instant) -> bool {
        let ttl = if self.key.is_some() {
            FOUND_TTL
        } else {
            MISSING_TTL
        };
        now.duration_since(self.at) < ttl
    }
}

type Answer = Result<Option<HookKey>, LookupError>;

struct Lookup {
    webhook_id: String,
    answer: SyncSender<Answer>,
}

/// The keys of the installed hooks (see the module docs).
pub struct HookKeys {
    config: Arc<Config>,
    entries: Mutex<HashMap<String, Cached>>,
    lookups: Mutex<Option<tokio::sync::mpsc::Sender<Lookup>>>,
}

impl HookKeys {
    /// Keys read from `config`'s database.
    pub fn new(config: Arc<Config>) -> Self {
        Self {
            config,
            entries: Mutex::default(),
            lookups: Mutex::default(),
        }
    }

    /// The key of hook `webhook_id`, `None` when no such hook is installed.
    pub fn key(&self, webhook_id: &str) -> Answer {
        let now = Instant::now();
        if let Some(hit) = self
            .entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(webhook_id)
            .filter(|c| c.fresh(now))
        {
            return Ok(hit.key.clone());
        }
        let key = self.look_up(webhook_id)?;
        self.remember(webhook_id, key.clone());
        Ok(key)
    }

    /// Caches `key` for `webhook_id` (e.g. right after installing or removing a hook here).
    pub fn remember(&self, webhook_id: &str, key: Option<HookKey>) {
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, cached| cached.fresh(now));
        }
        if entries.len() < MAX_ENTRIES || entries.contains_key(webhook_id) {
            entries.insert(webhook_id.to_owned(), Cached { key, at: now });
        }
    }

    fn look_up(&self, webhook_id: &str) -> Answer {
        let (answer, answered) = sync_channel(1);
        let request = Lookup {
            webhook_id: webhook_id.to_owned(),
            answer,
        };
        {
            let mut lookups = self.lookups.lock().unwrap_or_else(|p| p.into_inner());
            let sender = lookups.get_or_insert_with(|| spawn(self.config.clone()));
            match sender.try_send(request) {
                Ok(()) => {}
                Err(tokio::sync::mpsc::error::TrySendError::Full(_)) => {
                    return Err(LookupError::Busy);
                }
                Err(tokio::sync::mpsc::error::TrySendError::Closed(request)) => {
                    // The thread is gone (it could not start its runtime): start another.
                    let fresh = spawn(self.config.clone());
                    let sent = fresh.try_send(request).map_err(|_| LookupError::Busy);
                    *lookups = Some(fresh);
                    sent?;
                }
            }
        }
        answered
            .recv_timeout(LOOKUP_TIMEOUT)
            .map_err(|_| LookupError::TimedOut)?
    }
}

/// Starts the look-up thread; it ends when the returned sender (the [`HookKeys`]) is
/// dropped.
fn spawn(config: Arc<Config>) -> tokio::sync::mpsc::Sender<Lookup> {
    let (sender, mut requests) = tokio::sync::mpsc::channel::<Lookup>(QUEUE);
    let started = std::thread::Builder::new()
        .name("gitlab-hook-keys".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(err) => {
                    tracing::error!(error = %err, "gitlab: the hook look-up runtime did not start");
                    return;
                }
            };
            runtime.block_on(async move {
                let mut store: Option<HookStore> = None;
                while let Some(lookup) = requests.recv().await {
                    let answer = read(&config, &mut store, &lookup.webhook_id).await;
                    // The asker may have stopped waiting; then nobody needs the answer.
                    let _ = lookup.answer.try_send(answer);
                }
            });
        });
    if let Err(err) = started {
        tracing::error!(error = %err, "gitlab: the hook look-up thread did not start");
    }
    sender
}

async fn read(config: &Config, store: &mut Option<HookStore>, webhook_id: &str) -> Answer {
    let database = |e: crate::store::HookStoreError| LookupError::Database(e.to_string());
    if store.is_none() {
        *store = Some(HookStore::connect(config).await.map_err(database)?);
    }
    let Some(store) = store.as_ref() else {
        return Err(LookupError::Database("no connection".into()));
    };
    let row = store.find(webhook_id).await.map_err(database)?;
    Ok(row.map(|row| HookKey {
        user_id: row.user_id,
        secret_sha256: row.secret_sha256,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> HookKeys {
        HookKeys::new(Arc::new(Config::default()))
    }

    #[test]
    fn a_remembered_key_is_served_from_memory() {
        let keys = keys();
        let key = HookKey {
            user_id: "u".into(),
            secret_sha256: "d".into(),
        };
        keys.remember("w1", Some(key.clone()));
        keys.remember("w2", None);
        assert_eq!(keys.key("w1"), Ok(Some(key)));
        assert_eq!(keys.key("w2"), Ok(None));
    }

    #[test]
    fn the_cache_stays_bounded() {
        let keys = keys();
        for n in 0..MAX_ENTRIES + 50 {
            keys.remember(&format!("w{n}"), None);
        }
        let held = keys.entries.lock().map(|e| e.len()).unwrap_or_default();
        assert_eq!(held, MAX_ENTRIES);
    }
}
