//! `saas.redis_changes`: settings and secrets change notices between replicas, over Redis
//! pub/sub.
//!
//! Pub/sub fits: a notice only matters to replicas running now (a replica that starts has
//! an empty cache), and losing one is detectable, because it can only be lost while the
//! subscription is down. So a replica whose subscription (re)starts announces
//! [`ChangeNotice::All`] to its own cache, which drops everything it may have missed. A
//! publish that fails is the writer's to log; the receivers' TTL bounds the damage.
//!
//! Channel: `{redis.key_prefix}settings-changes`; payload: JSON
//! `{"from": <replica>, "user_id": .., "org_id": ..}`. A replica ignores its own notices
//! (it invalidated directly).

use crate::pool::{RedisPool, server_pool};
use async_trait::async_trait;
use deadpool_redis::redis;
use futures_util::StreamExt;
use openhands_core::extension::{ChangeFeed, ChangeFeedError, ChangeNotice};
use openhands_core::scope::UserScope;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::broadcast;

/// Notices buffered for the local followers (one: the settings cache).
const LOCAL_BUFFER: usize = 1024;
/// Wait before subscribing again after a failure.
const RESUBSCRIBE_AFTER: Duration = Duration::from_millis(500);

#[derive(Debug, Serialize, Deserialize)]
struct Wire {
    from: String,
    user_id: Option<String>,
    org_id: Option<String>,
}

/// Publishes to and listens on one Redis channel.
pub struct RedisChangeFeed {
    pool: RedisPool,
    channel: String,
    replica: String,
    local: broadcast::Sender<ChangeNotice>,
}

impl RedisChangeFeed {
    /// A feed on `pool`, listening until it is dropped; returns once the first
    /// subscription holds or the first attempt failed (it keeps trying then).
    pub async fn start(pool: RedisPool) -> Arc<Self> {
        let feed = Arc::new(Self {
            channel: format!("{}settings-changes", pool.key_prefix()),
            replica: uuid::Uuid::new_v4().to_string(),
            local: broadcast::channel(LOCAL_BUFFER).0,
            pool,
        });
        let (first, first_done) = tokio::sync::oneshot::channel();
        tokio::spawn(listen(Arc::downgrade(&feed), first));
        let _ = first_done.await;
        feed
    }
}

#[async_trait]
impl ChangeFeed for RedisChangeFeed {
    async fn publish(&self, scope: &UserScope) -> Result<(), ChangeFeedError> {
        let payload = serde_json::to_string(&Wire {
            from: self.replica.clone(),
            user_id: scope.user_id.clone(),
            org_id: scope.org_id.clone(),
        })
        .map_err(|e| ChangeFeedError(e.to_string()))?;
        let channel = self.channel.clone();
        self.pool
            .run(|mut connection| async move {
                redis::cmd("PUBLISH")
                    .arg(channel)
                    .arg(payload)
                    .query_async::<i64>(&mut connection)
                    .await
            })
            .await
            .map(drop)
            .map_err(|e| ChangeFeedError(e.to_string()))
    }

    fn subscribe(&self) -> broadcast::Receiver<ChangeNotice> {
        self.local.subscribe()
    }
}

/// Subscribes, forwards other replicas' notices, and after every (re)subscription tells
/// the local followers to forget everything. Ends when the feed is dropped.
async fn listen(feed: Weak<RedisChangeFeed>, first: tokio::sync::oneshot::Sender<()>) {
    let mut first = Some(first);
    loop {
        let Some((pool, channel)) = feed.upgrade().map(|f| (f.pool.clone(), f.channel.clone()))
        else {
            return;
        };
        let subscribed = match pool.pubsub().await {
            Ok(mut pubsub) => match pubsub.subscribe(&channel).await {
                Ok(()) => Ok(pubsub),
                Err(e) => Err(e.to_string()),
            },
            Err(e) => Err(e.to_string()),
        };
        if let Some(first) = first.take() {
            let _ = first.send(());
        }
        let pubsub = match subscribed {
            Ok(pubsub) => pubsub,
            Err(error) => {
                tracing::warn!(%error, "settings change notices: no subscription; retrying");
                tokio::time::sleep(RESUBSCRIBE_AFTER).await;
                continue;
            }
        };
        // Anything published while we were not subscribed is lost: start over.
        match feed.upgrade() {
            Some(f) => {
                let _ = f.local.send(ChangeNotice::All);
            }
            None => return,
        }
        let mut messages = pubsub.into_on_message();
        while let Some(message) = messages.next().await {
            let Some(f) = feed.upgrade() else { return };
            let Ok(payload) = message.get_payload::<String>() else {
                continue;
            };
            match serde_json::from_str::<Wire>(&payload) {
                Ok(wire) if wire.from == f.replica => {}
                Ok(wire) => {
                    let _ = f.local.send(ChangeNotice::Scope(UserScope {
                        user_id: wire.user_id,
                        org_id: wire.org_id,
                    }));
                }
                Err(error) => tracing::warn!(%error, "unreadable settings change notice"),
            }
        }
        if feed.strong_count() == 0 {
            return;
        }
        tracing::warn!("settings change notices: lost the subscription; subscribing again");
        tokio::time::sleep(RESUBSCRIBE_AFTER).await;
    }
}

openhands_core::register_plugin!(
    openhands_core::extension::ChangeFeed,
    "saas.redis_changes",
    "Settings and secrets changes announced to the other replicas over Redis pub/sub",
    |ctx| {
        let pool = server_pool(ctx).await?;
        Ok(RedisChangeFeed::start(pool).await)
    }
);
