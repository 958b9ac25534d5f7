//! The `GET /api/settings` body of each user and org, kept in memory between writes.
//!
//! Every page of the web app reads the settings, and in SaaS mode that is two database
//! reads (settings, and the secrets for the `provider_tokens_set` flags) plus decryption.
//! What is cached is the response body: it carries no secret value, only `*_set` flags, so
//! the cache holds nothing that a memory dump could leak beyond what the user sees.
//!
//! Invalidation: the selected settings and secrets stores are wrapped in
//! [`NotifyingSettingsStore`] and [`NotifyingSecretsStore`], so every write, whichever route
//! or background job makes it, drops the scope's entry here and is announced to the other
//! replicas through the [`ChangeFeed`]; [`SettingsViews::follow`] applies their notices.
//! The epoch of [`TtlCache`] keeps a body loaded before a write from being cached after
//! it. The TTL (`settings_cache_seconds`) only bounds staleness when a notice is lost, and
//! a feed that may have lost notices says so, which clears the whole cache.

use crate::cache::TtlCache;
use crate::error::StoreError;
use crate::extension::{ChangeFeed, ChangeNotice, SecretsStore, SettingsStore};
use crate::scope::UserScope;
use crate::secrets::{
    CustomSecretChange, ProviderToken, ProviderTokenChange, ProviderType, UserSecrets,
};
use crate::settings::Settings;
use async_trait::async_trait;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

/// Scopes kept before the cache starts over.
const CAPACITY: usize = 100_000;

/// Cached settings bodies of this replica, and the feed that keeps them current.
pub struct SettingsViews {
    bodies: TtlCache<UserScope, Bytes>,
    feed: Arc<dyn ChangeFeed>,
}

impl std::fmt::Debug for SettingsViews {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SettingsViews").finish_non_exhaustive()
    }
}

impl SettingsViews {
    /// A cache whose entries live for `ttl` (zero: nothing is cached).
    pub fn new(ttl: Duration, feed: Arc<dyn ChangeFeed>) -> Arc<Self> {
        Arc::new(Self {
            bodies: TtlCache::new(ttl, CAPACITY),
            feed,
        })
    }

    /// The cached body of `scope`.
    pub fn get(&self, scope: &UserScope) -> Option<Bytes> {
        self.bodies.get(scope)
    }

    /// Note this before loading a body to [`Self::remember`].
    pub fn epoch(&self) -> u64 {
        self.bodies.epoch()
    }

    /// Caches `body`, unless a change came in since `epoch`.
    pub fn remember(&self, scope: &UserScope, body: Bytes, epoch: u64) {
        self.bodies.insert_if_unchanged(scope.clone(), body, epoch);
    }

    /// `scope` changed (or may have: a failed write may still have committed): drop it
    /// here and tell the other replicas. A notice that cannot be sent is logged; the other
    /// replicas' TTL bounds how long they show the old page.
    pub async fn changed(&self, scope: &UserScope) {
        self.bodies.invalidate(scope);
        if let Err(err) = self.feed.publish(scope).await {
            tracing::warn!(error = %err, "other replicas may show old settings until their cache expires");
        }
    }

    /// Applies the other replicas' notices until this cache is dropped. Subscribes before
    /// returning, so no notice published after this call is missed.
    pub fn follow(self: &Arc<Self>) {
        let mut notices = self.feed.subscribe();
        let views: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let notice = notices.recv().await;
                let Some(views) = views.upgrade() else { return };
                match notice {
                    Ok(ChangeNotice::Scope(scope)) => views.bodies.invalidate(&scope),
                    Ok(ChangeNotice::All) | Err(RecvError::Lagged(_)) => views.bodies.clear(),
                    Err(RecvError::Closed) => {
                        views.bodies.clear();
                        return;
                    }
                }
            }
        });
    }
}

/// A settings store that reports every write to [`SettingsViews`].
pub struct NotifyingSettingsStore {
    inner: Arc<dyn SettingsStore>,
    views: Arc<SettingsViews>,
}

impl NotifyingSettingsStore {
    pub fn new(inner: Arc<dyn SettingsStore>, views: Arc<SettingsViews>) -> Self {
        Self { inner, views }
    }
}

#[async_trait]
impl SettingsStore for NotifyingSettingsStore {
    async fn load(&self, scope: &UserScope) -> Result<Option<Settings>, StoreError> {
        self.inner.load(scope).await
    }

    async fn store_merged(
        &self,
        scope: &UserScope,
        incoming: Settings,
    ) -> Result<Settings, StoreError> {
        let stored = self.inner.store_merged(scope, incoming).await;
        self.views.changed(scope).await;
        stored
    }

    async fn health(&self) -> Result<(), StoreError> {
        self.inner.health().await
    }
}

/// A secrets store that reports every write to [`SettingsViews`] (the settings page shows
/// which provider tokens are set).
pub struct NotifyingSecretsStore {
    inner: Arc<dyn SecretsStore>,
    views: Arc<SettingsViews>,
}

impl NotifyingSecretsStore {
    pub fn new(inner: Arc<dyn SecretsStore>, views: Arc<SettingsViews>) -> Self {
        Self { inner, views }
    }
}

#[async_trait]
impl SecretsStore for NotifyingSecretsStore {
    async fn load(&self, scope: &UserScope) -> Result<Option<UserSecrets>, StoreError> {
        self.inner.load(scope).await
    }

    async fn store(&self, scope: &UserScope, secrets: UserSecrets) -> Result<(), StoreError> {
        let stored = self.inner.store(scope, secrets).await;
        self.views.changed(scope).await;
        stored
    }

    async fn change_custom_secret(
        &self,
        scope: &UserScope,
        change: CustomSecretChange,
    ) -> Result<(), StoreError> {
        let changed = self.inner.change_custom_secret(scope, change).await;
        self.views.changed(scope).await;
        changed
    }

    async fn replace_provider_tokens(
        &self,
        scope: &UserScope,
        tokens: BTreeMap<ProviderType, ProviderToken>,
    ) -> Result<(), StoreError> {
        let replaced = self.inner.replace_provider_tokens(scope, tokens).await;
        self.views.changed(scope).await;
        replaced
    }

    async fn change_provider_token(
        &self,
        scope: &UserScope,
        provider: ProviderType,
        change: ProviderTokenChange,
    ) -> Result<bool, StoreError> {
        let changed = self
            .inner
            .change_provider_token(scope, provider, change)
            .await;
        // A refresh that changed nothing visible still goes through here; only a change
        // that did something (or may have) is worth a notice.
        if !matches!(changed, Ok(false)) {
            self.views.changed(scope).await;
        }
        changed
    }

    async fn health(&self) -> Result<(), StoreError> {
        self.inner.health().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extension::ChangeFeedError;
    use std::sync::Mutex;
    use tokio::sync::broadcast;

    /// A feed that records what is published and lets the test announce notices.
    #[derive(Default)]
    struct RecordingFeed {
        published: Mutex<Vec<UserScope>>,
        notices: Mutex<Option<broadcast::Sender<ChangeNotice>>>,
    }

    impl RecordingFeed {
        fn announce(&self, notice: ChangeNotice) {
            let sender = self.notices.lock().expect("test setup");
            sender
                .as_ref()
                .expect("test setup")
                .send(notice)
                .expect("test setup");
        }
    }

    #[async_trait]
    impl ChangeFeed for RecordingFeed {
        async fn publish(&self, scope: &UserScope) -> Result<(), ChangeFeedError> {
            self.published
                .lock()
                .expect("test setup")
                .push(scope.clone());
            Ok(())
        }

        fn subscribe(&self) -> broadcast::Receiver<ChangeNotice> {
            let mut sender = self.notices.lock().expect("test setup");
            sender
                .get_or_insert_with(|| broadcast::channel(4).0)
                .subscribe()
        }
    }

    fn views(feed: &Arc<RecordingFeed>) -> Arc<SettingsViews> {
        SettingsViews::new(Duration::from_secs(60), feed.clone())
    }

    async fn eventually(check: impl Fn() -> bool) {
        for _ in 0..200 {
            if check() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("condition not reached");
    }

    #[tokio::test]
    async fn a_write_drops_the_scope_and_is_announced() {
        let feed = Arc::new(RecordingFeed::default());
        let views = views(&feed);
        let alice = UserScope::user("alice");
        let bob = UserScope::user("bob");
        views.remember(&alice, Bytes::from_static(b"a"), views.epoch());
        views.remember(&bob, Bytes::from_static(b"b"), views.epoch());

        let dir = tempfile::tempdir().expect("test setup");
        let cipher = crate::crypto::Cipher::new(vec![("k1".into(), [7; crate::crypto::KEY_LEN])])
            .expect("test setup");
        let store = NotifyingSettingsStore::new(
            Arc::new(crate::oss::FileSettingsStore::new(
                dir.path().to_path_buf(),
                Arc::new(cipher),
            )),
            views.clone(),
        );
        store
            .store_merged(&alice, Settings::default())
            .await
            .expect("test setup");

        assert_eq!(views.get(&alice), None);
        assert_eq!(views.get(&bob), Some(Bytes::from_static(b"b")));
        assert_eq!(*feed.published.lock().expect("test setup"), vec![alice]);
    }

    #[tokio::test]
    async fn notices_from_other_replicas_are_applied() {
        let feed = Arc::new(RecordingFeed::default());
        let views = views(&feed);
        views.follow();
        let alice = UserScope::user("alice");
        let bob = UserScope::user("bob");
        views.remember(&alice, Bytes::from_static(b"a"), views.epoch());
        views.remember(&bob, Bytes::from_static(b"b"), views.epoch());

        feed.announce(ChangeNotice::Scope(alice.clone()));
        eventually(|| views.get(&alice).is_none()).await;
        assert!(views.get(&bob).is_some(), "only the named scope is dropped");

        feed.announce(ChangeNotice::All);
        eventually(|| views.get(&bob).is_none()).await;
    }
}
