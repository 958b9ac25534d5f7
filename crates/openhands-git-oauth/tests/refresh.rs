//! `fresh_provider_token`: tokens near expiry are refreshed once, the new pair is stored,
//! and failures say what to do. Runs the real client against the fake providers and the
//! real SQL secrets store on SQLite.

mod common;

use async_trait::async_trait;
use common::{FakeGit, use_fake};
use openhands_core::StoreError;
use openhands_core::config::Config;
use openhands_core::crypto::{Cipher, KEY_LEN};
use openhands_core::extension::{ProviderTokenSource, SecretsStore};
use openhands_core::scope::UserScope;
use openhands_core::secret::Secret;
use openhands_core::secrets::{
    CustomSecretChange, ProviderToken, ProviderTokenChange, ProviderType, UserSecrets,
};
use openhands_git_oauth::{GitOAuth, RefreshError};
use openhands_migrations::Migrator;
use openhands_sql_store::{Database, PoolOptions, SqlSecretsStore};
use sea_orm_migration::MigratorTrait;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

fn cipher() -> Arc<Cipher> {
    Arc::new(Cipher::new(vec![("k1".into(), [7; KEY_LEN])]).expect("cipher"))
}

fn scope() -> UserScope {
    UserScope {
        user_id: Some("alice".into()),
        org_id: Some("org-1".into()),
    }
}

/// A migrated SQLite database and its secrets store.
async fn sql_store() -> (
    Arc<SqlSecretsStore>,
    openhands_test_support::sqlite::TestSqlite,
) {
    let sqlite = openhands_test_support::sqlite::fresh_database().expect("sqlite");
    let db = Database::connect(sqlite.url(), PoolOptions::default())
        .await
        .expect("connect");
    Migrator::up(db.connection(), None).await.expect("migrate");
    (Arc::new(SqlSecretsStore::new(db, cipher())), sqlite)
}

fn config(fake: &FakeGit) -> Config {
    let mut config = Config::default();
    use_fake(&mut config, fake.url());
    config
}

/// A linked token that expires in `seconds`, refreshable with `refresh`.
fn linked(access: &str, refresh: &str, seconds: i64) -> ProviderToken {
    ProviderToken {
        token: Some(Secret::new(access)),
        user_id: Some("octocat".into()),
        host: None,
        refresh_token: Some(Secret::new(refresh)),
        expires_at: Some(chrono::Utc::now() + chrono::Duration::seconds(seconds)),
    }
}

async fn stored(store: &dyn SecretsStore, provider: ProviderType) -> ProviderToken {
    store
        .load(&scope())
        .await
        .expect("load")
        .and_then(|mut s| s.provider_tokens.remove(&provider))
        .expect("stored token")
}

async fn link(store: &dyn SecretsStore, provider: ProviderType, token: ProviderToken) {
    store
        .change_provider_token(&scope(), provider, ProviderTokenChange::Set(token))
        .await
        .expect("link");
}

#[tokio::test]
async fn a_token_near_expiry_is_refreshed_once_by_concurrent_callers() {
    let fake = FakeGit::start().await;
    let (store, _db) = sql_store().await;
    let seeded = fake.seed_refresh_token(ProviderType::Github, "octocat");
    link(
        &*store,
        ProviderType::Github,
        linked("ghu_old", &seeded, 60),
    )
    .await;
    store
        .change_custom_secret(
            &scope(),
            CustomSecretChange::Create {
                name: "KEEP".into(),
                value: Secret::new("kept"),
                description: String::new(),
            },
        )
        .await
        .expect("custom secret");
    let oauth =
        Arc::new(GitOAuth::from_config(&config(&fake), cipher(), store.clone()).expect("oauth"));

    let calls = (0..8).map(|_| {
        let oauth = oauth.clone();
        tokio::spawn(async move {
            oauth
                .fresh_provider_token(&scope(), ProviderType::Github)
                .await
        })
    });
    let results = futures_util::future::join_all(calls).await;
    let issued = fake.last_issued(ProviderType::Github).expect("refreshed");
    for result in results {
        let token = result.expect("join").expect("fresh").expect("linked");
        assert_eq!(
            token.token.as_ref().map(Secret::expose),
            Some(issued.access_token.as_str()),
            "every caller gets the one refreshed token"
        );
    }
    assert_eq!(
        fake.refreshes(ProviderType::Github),
        1,
        "one refresh for all callers"
    );
    assert!(
        !fake.accepts_refresh_token(&seeded),
        "the old refresh token is used up"
    );

    // The new pair is stored, both tokens, with the new expiry; the rest is kept.
    let now_stored = stored(&*store, ProviderType::Github).await;
    assert_eq!(
        now_stored.token.as_ref().map(Secret::expose),
        Some(issued.access_token.as_str())
    );
    assert_eq!(
        now_stored.refresh_token.as_ref().map(Secret::expose),
        Some(issued.refresh_token.as_str())
    );
    let left = now_stored.expires_at.expect("expiry") - chrono::Utc::now();
    assert!(left > chrono::Duration::hours(7), "{left}");
    assert_eq!(now_stored.user_id.as_deref(), Some("octocat"));
    let all = store.load(&scope()).await.expect("load").expect("secrets");
    assert_eq!(all.custom_secrets["KEEP"].secret.expose(), "kept");

    // Fresh now: no further refresh.
    let again = oauth
        .fresh_provider_token(&scope(), ProviderType::Github)
        .await
        .expect("fresh")
        .expect("linked");
    assert_eq!(again.token, now_stored.token);
    assert_eq!(fake.refreshes(ProviderType::Github), 1);
}

#[tokio::test]
async fn the_margin_is_four_hours_but_at_most_half_a_token_lifetime() {
    let fake = FakeGit::start().await;
    let (store, _db) = sql_store().await;
    let oauth = GitOAuth::from_config(&config(&fake), cipher(), store.clone()).expect("oauth");
    let now = chrono::Utc::now();
    let hours = |h: i64| chrono::Duration::hours(h);
    // GitHub tokens live 8 hours: the full four-hour margin.
    assert_eq!(oauth.margin(ProviderType::Github), hours(4));
    assert!(oauth.is_due(ProviderType::Github, &linked("a", "r", 3 * 3600), now));
    assert!(!oauth.is_due(ProviderType::Github, &linked("a", "r", 5 * 3600), now));
    // GitLab tokens live 2 hours: refreshed in their second hour, not at every use.
    assert_eq!(oauth.margin(ProviderType::Gitlab), hours(1));
    assert!(!oauth.is_due(ProviderType::Gitlab, &linked("a", "r", 7_000), now));
    assert!(oauth.is_due(ProviderType::Gitlab, &linked("a", "r", 1_800), now));
    // Tokens without expiry (personal access tokens) are never due.
    assert!(!oauth.is_due(ProviderType::Github, &ProviderToken::plain("ghp"), now));

    // A configured margin below that wins.
    let mut small = config(&fake);
    small.git_oauth.refresh_margin_seconds = 600;
    let oauth = GitOAuth::from_config(&small, cipher(), store).expect("oauth");
    assert_eq!(
        oauth.margin(ProviderType::Github),
        chrono::Duration::minutes(10)
    );
}

#[tokio::test]
async fn gitlab_and_bitbucket_tokens_refresh_with_their_shapes() {
    let fake = FakeGit::start().await;
    let (store, _db) = sql_store().await;
    for provider in [ProviderType::Gitlab, ProviderType::Bitbucket] {
        let seeded = fake.seed_refresh_token(provider, "user");
        link(&*store, provider, linked("old", &seeded, 60)).await;
    }
    let oauth = GitOAuth::from_config(&config(&fake), cipher(), store.clone()).expect("oauth");
    for provider in [ProviderType::Gitlab, ProviderType::Bitbucket] {
        let fresh = oauth
            .fresh_provider_token(&scope(), provider)
            .await
            .expect("fresh")
            .expect("linked");
        let issued = fake.last_issued(provider).expect("issued");
        assert_eq!(
            fresh.token.as_ref().map(Secret::expose),
            Some(issued.access_token.as_str())
        );
        assert_eq!(stored(&*store, provider).await.token, fresh.token);
    }
    let bitbucket = &fake.token_requests(ProviderType::Bitbucket)[0];
    assert_eq!(bitbucket.form["grant_type"], "refresh_token");
    assert_eq!(
        bitbucket.basic,
        Some(("bb-client".to_owned(), "bb-secret".to_owned()))
    );
    let gitlab = &fake.token_requests(ProviderType::Gitlab)[0];
    assert_eq!(gitlab.form["client_secret"], "gl-secret");
}

#[tokio::test]
async fn a_refused_refresh_is_a_clear_error_and_keeps_the_stored_token() {
    let fake = FakeGit::start().await;
    let (store, _db) = sql_store().await;
    link(
        &*store,
        ProviderType::Github,
        linked("ghu_stale", "ghr_revoked", 60),
    )
    .await;
    let oauth = GitOAuth::from_config(&config(&fake), cipher(), store.clone()).expect("oauth");
    let err = oauth
        .fresh_provider_token(&scope(), ProviderType::Github)
        .await
        .expect_err("refused");
    assert!(matches!(err, RefreshError::Refused { .. }), "{err:?}");
    let message = err.to_string();
    assert_eq!(
        message,
        "github refused to refresh the token (bad_refresh_token); link the account again"
    );
    assert!(!message.contains("ghr_revoked") && !message.contains("ghu_stale"));
    assert_eq!(
        stored(&*store, ProviderType::Github).await.token,
        Some(Secret::new("ghu_stale")),
        "nothing overwritten"
    );

    // Through the conversation hook: the error names the provider, never a token.
    let source: &dyn ProviderTokenSource = &oauth;
    let err = source
        .fresh_token(
            &scope(),
            ProviderType::Github,
            linked("ghu_stale", "ghr_revoked", 60),
        )
        .await
        .expect_err("refused");
    assert!(
        err.to_string()
            .starts_with("the github token could not be refreshed"),
        "{err}"
    );

    // An unreachable provider is a different error (try later, nothing to re-link).
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
    let dead_url = format!("http://{}", closed.local_addr().expect("address"));
    drop(closed);
    let mut down = Config::default();
    use_fake(&mut down, &dead_url);
    let oauth = GitOAuth::from_config(&down, cipher(), store.clone()).expect("oauth");
    let err = oauth
        .fresh_provider_token(&scope(), ProviderType::Github)
        .await
        .expect_err("unavailable");
    assert!(matches!(err, RefreshError::Unavailable { .. }), "{err:?}");
    assert!(
        err.to_string().starts_with("github could not be reached"),
        "{err}"
    );
}

/// A store that shows a stale snapshot to its first `stale_loads` reads, as a second
/// server does that read the token just before the first one stored its refresh.
struct LaggingStore {
    inner: Arc<SqlSecretsStore>,
    stale: UserSecrets,
    stale_loads: AtomicUsize,
}

#[async_trait]
impl SecretsStore for LaggingStore {
    async fn load(&self, scope: &UserScope) -> Result<Option<UserSecrets>, StoreError> {
        let left = self.stale_loads.load(Ordering::SeqCst);
        if left > 0 {
            self.stale_loads.store(left - 1, Ordering::SeqCst);
            return Ok(Some(self.stale.clone()));
        }
        self.inner.load(scope).await
    }
    async fn store(&self, scope: &UserScope, secrets: UserSecrets) -> Result<(), StoreError> {
        self.inner.store(scope, secrets).await
    }
    async fn change_custom_secret(
        &self,
        scope: &UserScope,
        change: CustomSecretChange,
    ) -> Result<(), StoreError> {
        self.inner.change_custom_secret(scope, change).await
    }
    async fn replace_provider_tokens(
        &self,
        scope: &UserScope,
        tokens: BTreeMap<ProviderType, ProviderToken>,
    ) -> Result<(), StoreError> {
        self.inner.replace_provider_tokens(scope, tokens).await
    }
    async fn change_provider_token(
        &self,
        scope: &UserScope,
        provider: ProviderType,
        change: ProviderTokenChange,
    ) -> Result<bool, StoreError> {
        self.inner
            .change_provider_token(scope, provider, change)
            .await
    }
    async fn health(&self) -> Result<(), StoreError> {
        self.inner.health().await
    }
}

#[tokio::test]
async fn a_refresh_refused_because_another_server_refreshed_first_uses_that_token() {
    let fake = FakeGit::start().await;
    let (store, _db) = sql_store().await;
    let seeded = fake.seed_refresh_token(ProviderType::Github, "octocat");
    link(
        &*store,
        ProviderType::Github,
        linked("ghu_old", &seeded, 60),
    )
    .await;
    let before = store.load(&scope()).await.expect("load").expect("stored");

    // Server one refreshes and stores.
    let one = GitOAuth::from_config(&config(&fake), cipher(), store.clone()).expect("oauth");
    let first = one
        .fresh_provider_token(&scope(), ProviderType::Github)
        .await
        .expect("fresh")
        .expect("linked");
    // Server two read the old token (both of its reads before the lock and under it),
    // so it refreshes with the used refresh token and is refused.
    let lagging = Arc::new(LaggingStore {
        inner: store.clone(),
        stale: before,
        stale_loads: AtomicUsize::new(2),
    });
    let two = GitOAuth::from_config(&config(&fake), cipher(), lagging).expect("oauth");
    let second = two
        .fresh_provider_token(&scope(), ProviderType::Github)
        .await
        .expect("the token server one stored")
        .expect("linked");
    assert_eq!(
        fake.refreshes(ProviderType::Github),
        2,
        "server two did try"
    );
    assert_eq!(second.token, first.token);
    assert_eq!(
        stored(&*store, ProviderType::Github).await.token,
        first.token
    );
}

#[tokio::test]
async fn a_refresh_never_overwrites_a_token_changed_meanwhile() {
    let fake = FakeGit::start().await;
    let (store, _db) = sql_store().await;
    let seeded = fake.seed_refresh_token(ProviderType::Gitlab, "user");
    link(
        &*store,
        ProviderType::Gitlab,
        linked("glat_old", &seeded, 60),
    )
    .await;
    let before = store.load(&scope()).await.expect("load").expect("stored");
    // The user set a personal access token after the refresh read the linked one.
    store
        .replace_provider_tokens(
            &scope(),
            BTreeMap::from([(ProviderType::Gitlab, ProviderToken::plain("glpat-mine"))]),
        )
        .await
        .expect("plain token");
    let lagging = Arc::new(LaggingStore {
        inner: store.clone(),
        stale: before,
        stale_loads: AtomicUsize::new(2),
    });
    let oauth = GitOAuth::from_config(&config(&fake), cipher(), lagging).expect("oauth");
    let fresh = oauth
        .fresh_provider_token(&scope(), ProviderType::Gitlab)
        .await
        .expect("fresh")
        .expect("linked");
    assert_eq!(fake.refreshes(ProviderType::Gitlab), 1);
    assert_eq!(
        fresh.token,
        Some(Secret::new("glpat-mine")),
        "the user's choice wins"
    );
    let now_stored = stored(&*store, ProviderType::Gitlab).await;
    assert_eq!(now_stored.token, Some(Secret::new("glpat-mine")));
    assert!(now_stored.refresh_token.is_none());
}
