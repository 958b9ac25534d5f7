//! Telling the other replicas that a user's settings or secrets changed.
//!
//! Replicas cache what every request reads (the settings page of a user and org). A write
//! on one replica invalidates its own cache directly; the [`ChangeFeed`] carries the news
//! to the others, which drop their copy. A feed that may have lost notices (a dropped
//! connection) says so with [`ChangeNotice::All`], and the receiver forgets everything:
//! a cache is never trusted across a gap. The OSS default is one process, so its feed
//! publishes nowhere and never announces anything.

use crate::scope::UserScope;
use async_trait::async_trait;
use tokio::sync::broadcast;

/// What another replica announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeNotice {
    /// The settings or secrets of this user and org changed.
    Scope(UserScope),
    /// Notices may have been missed: forget everything cached.
    All,
}

/// Why a notice could not be published.
#[derive(Debug, thiserror::Error)]
#[error("publishing a change notice: {0}")]
pub struct ChangeFeedError(pub String);

/// Carries change notices between the replicas of one deployment.
#[async_trait]
pub trait ChangeFeed: Send + Sync {
    /// Announces to the *other* replicas that `scope`'s settings or secrets changed.
    async fn publish(&self, scope: &UserScope) -> Result<(), ChangeFeedError>;

    /// Notices from other replicas, from now on. A receiver that lags behind must treat
    /// it as [`ChangeNotice::All`].
    fn subscribe(&self) -> broadcast::Receiver<ChangeNotice>;
}
