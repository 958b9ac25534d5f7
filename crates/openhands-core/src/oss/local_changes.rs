//! `oss.local_changes`: the change feed of a deployment with one replica.
//!
//! There is nobody to tell: the replica that writes invalidates its own cache directly.

use crate::extension::{ChangeFeed, ChangeFeedError, ChangeNotice};
use crate::scope::UserScope;
use async_trait::async_trait;
use std::sync::Arc;
use tokio::sync::broadcast;

/// Publishes nowhere; its subscribers never hear anything.
#[derive(Debug)]
pub struct LocalChangeFeed {
    // Kept so that receivers wait instead of seeing a closed channel.
    silent: broadcast::Sender<ChangeNotice>,
}

impl Default for LocalChangeFeed {
    fn default() -> Self {
        Self {
            silent: broadcast::channel(1).0,
        }
    }
}

#[async_trait]
impl ChangeFeed for LocalChangeFeed {
    async fn publish(&self, _scope: &UserScope) -> Result<(), ChangeFeedError> {
        Ok(())
    }

    fn subscribe(&self) -> broadcast::Receiver<ChangeNotice> {
        self.silent.subscribe()
    }
}

crate::register_plugin!(
    crate::extension::ChangeFeed,
    "oss.local_changes",
    "One replica: settings and secrets changes need no announcing",
    |ctx| Ok(Arc::new(LocalChangeFeed::default()))
);
