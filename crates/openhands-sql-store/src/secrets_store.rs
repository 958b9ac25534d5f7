//! `saas.sql_secrets`: custom secrets and provider tokens, one row each, values sealed.
//!
//! Scoped to the user *and* organization. `load` decrypts the scope's rows; `store` deletes
//! the scope's whole set and inserts the new one inside one transaction, so a failure
//! (a refused row, a lost connection) leaves the old set intact. The single-secret changes
//! and the provider-token merge read and write inside one transaction holding the scope's
//! write lock, so concurrent changes are never lost. A provider token linked by OAuth keeps
//! its refresh token (sealed, in `refresh_token_sealed`) and expiry in the same row.

use crate::database::{Database, lock_key};
use crate::entity::{custom_secret, provider_token};
use crate::error::{backend, corrupt, retry_read};
use crate::scope::ScopeKey;
use crate::sealing;
use async_trait::async_trait;
use openhands_core::crypto::Cipher;
use openhands_core::extension::SecretsStore;
use openhands_core::secret::Secret;
use openhands_core::secrets::{
    CustomSecret, CustomSecretChange, ProviderToken, ProviderTokenChange, ProviderType, UserSecrets,
};
use openhands_core::{StoreError, UserScope};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter,
    QueryOrder,
};
use std::collections::BTreeMap;
use std::sync::Arc;

const WHAT: &str = "secrets";
/// Namespace of the per-scope write lock; key rotation takes it too.
pub(crate) const LOCK_NAMESPACE: &str = WHAT;

/// Secrets in SQL.
pub struct SqlSecretsStore {
    db: Database,
    cipher: Arc<Cipher>,
}

impl SqlSecretsStore {
    pub fn new(db: Database, cipher: Arc<Cipher>) -> Self {
        Self { db, cipher }
    }

    async fn read_custom<C: ConnectionTrait>(
        &self,
        conn: &C,
        key: &ScopeKey,
    ) -> Result<BTreeMap<String, CustomSecret>, StoreError> {
        // In a transaction a lost connection fails the second try at once, harmlessly.
        let rows = retry_read(|| {
            custom_secret::Entity::find()
                .filter(custom_secret::Column::UserId.eq(&key.user_id))
                .filter(custom_secret::Column::OrgId.eq(&key.org_id))
                .order_by_asc(custom_secret::Column::Name)
                .all(conn)
        })
        .await
        .map_err(backend)?;
        rows.into_iter()
            .map(|row| {
                let value = self
                    .cipher
                    .open(&sealing::custom_secret(&row.name), &row.value_sealed)?;
                Ok((
                    row.name,
                    CustomSecret {
                        secret: Secret::new(value),
                        description: row.description,
                    },
                ))
            })
            .collect()
    }

    async fn read_tokens<C: ConnectionTrait>(
        &self,
        conn: &C,
        key: &ScopeKey,
    ) -> Result<BTreeMap<ProviderType, ProviderToken>, StoreError> {
        let rows = retry_read(|| {
            provider_token::Entity::find()
                .filter(provider_token::Column::UserId.eq(&key.user_id))
                .filter(provider_token::Column::OrgId.eq(&key.org_id))
                .all(conn)
        })
        .await
        .map_err(backend)?;
        let mut tokens = BTreeMap::new();
        for row in rows {
            let provider = parse_provider(&row.provider)?;
            let token = self
                .cipher
                .open(&sealing::provider_token(provider), &row.token_sealed)?;
            let refresh_token = match &row.refresh_token_sealed {
                Some(sealed) => Some(Secret::new(
                    self.cipher
                        .open(&sealing::provider_refresh_token(provider), sealed)?,
                )),
                None => None,
            };
            tokens.insert(
                provider,
                ProviderToken {
                    token: Some(Secret::new(token)),
                    user_id: row.user_login,
                    host: row.host,
                    refresh_token,
                    expires_at: row.expires_at,
                },
            );
        }
        Ok(tokens)
    }

    fn custom_row(
        &self,
        key: &ScopeKey,
        name: &str,
        secret: &CustomSecret,
    ) -> Result<custom_secret::ActiveModel, StoreError> {
        Ok(custom_secret::ActiveModel {
            user_id: Set(key.user_id.clone()),
            org_id: Set(key.org_id.clone()),
            name: Set(name.to_owned()),
            value_sealed: Set(self
                .cipher
                .seal(&sealing::custom_secret(name), secret.secret.expose())?),
            description: Set(secret.description.clone()),
            created_at: Set(chrono::Utc::now()),
        })
    }

    /// Replaces the scope's custom secrets with `secrets` (inside `txn`).
    async fn replace_custom(
        &self,
        txn: &DatabaseTransaction,
        key: &ScopeKey,
        secrets: &BTreeMap<String, CustomSecret>,
    ) -> Result<(), StoreError> {
        custom_secret::Entity::delete_many()
            .filter(custom_secret::Column::UserId.eq(&key.user_id))
            .filter(custom_secret::Column::OrgId.eq(&key.org_id))
            .exec(txn)
            .await
            .map_err(backend)?;
        // One row at a time: a refused row fails the transaction after the delete, which
        // is exactly the case the transaction must roll back.
        for (name, secret) in secrets {
            custom_secret::Entity::insert(self.custom_row(key, name, secret)?)
                .exec_without_returning(txn)
                .await
                .map_err(backend)?;
        }
        Ok(())
    }

    /// Replaces the scope's provider tokens with `tokens` (inside `txn`). Entries without
    /// a token are not stored, as in the file store.
    async fn replace_tokens(
        &self,
        txn: &DatabaseTransaction,
        key: &ScopeKey,
        tokens: &BTreeMap<ProviderType, ProviderToken>,
    ) -> Result<(), StoreError> {
        provider_token::Entity::delete_many()
            .filter(provider_token::Column::UserId.eq(&key.user_id))
            .filter(provider_token::Column::OrgId.eq(&key.org_id))
            .exec(txn)
            .await
            .map_err(backend)?;
        for (provider, token) in tokens {
            let Some(value) = token.token.as_ref().filter(|t| !t.is_blank()) else {
                continue;
            };
            let refresh_token_sealed = match token.refresh_token.as_ref().filter(|t| !t.is_blank())
            {
                Some(refresh) => Some(self.cipher.seal(
                    &sealing::provider_refresh_token(*provider),
                    refresh.expose(),
                )?),
                None => None,
            };
            let row = provider_token::ActiveModel {
                user_id: Set(key.user_id.clone()),
                org_id: Set(key.org_id.clone()),
                provider: Set(provider.as_str().to_owned()),
                token_sealed: Set(self
                    .cipher
                    .seal(&sealing::provider_token(*provider), value.expose())?),
                host: Set(token.host.clone()),
                user_login: Set(token.user_id.clone()),
                expires_at: Set(token.expires_at),
                refresh_token_sealed: Set(refresh_token_sealed),
            };
            provider_token::Entity::insert(row)
                .exec_without_returning(txn)
                .await
                .map_err(backend)?;
        }
        Ok(())
    }

    async fn begin_locked(&self, key: &ScopeKey) -> Result<DatabaseTransaction, StoreError> {
        let txn = self.db.begin_write().await.map_err(backend)?;
        lock_key(&txn, &key.lock_name(WHAT))
            .await
            .map_err(backend)?;
        Ok(txn)
    }
}

fn parse_provider(text: &str) -> Result<ProviderType, StoreError> {
    ProviderType::ALL
        .into_iter()
        .find(|p| p.as_str() == text)
        .ok_or_else(|| corrupt("provider_tokens", format!("unknown provider `{text}`")))
}

#[async_trait]
impl SecretsStore for SqlSecretsStore {
    async fn load(&self, scope: &UserScope) -> Result<Option<UserSecrets>, StoreError> {
        // Two plain reads side by side, not a read-only transaction: on PostgreSQL that
        // transaction costs three extra round trips (BEGIN, SET TRANSACTION, COMMIT), and
        // every settings page load comes through here. Each table's rows for the scope are
        // still read whole; what is given up is only that the two tables come from one
        // snapshot, so a read racing a replace may pair the old custom secrets with the new
        // provider tokens (both the user's own, each set complete).
        let key = ScopeKey::of(scope);
        let connection = self.db.connection();
        let (custom_secrets, provider_tokens) = tokio::try_join!(
            self.read_custom(connection, &key),
            self.read_tokens(connection, &key)
        )?;
        if custom_secrets.is_empty() && provider_tokens.is_empty() {
            return Ok(None);
        }
        Ok(Some(UserSecrets {
            provider_tokens,
            custom_secrets,
        }))
    }

    async fn store(&self, scope: &UserScope, secrets: UserSecrets) -> Result<(), StoreError> {
        let key = ScopeKey::of(scope);
        let txn = self.begin_locked(&key).await?;
        self.replace_custom(&txn, &key, &secrets.custom_secrets)
            .await?;
        self.replace_tokens(&txn, &key, &secrets.provider_tokens)
            .await?;
        txn.commit().await.map_err(backend)
    }

    async fn change_custom_secret(
        &self,
        scope: &UserScope,
        change: CustomSecretChange,
    ) -> Result<(), StoreError> {
        let key = ScopeKey::of(scope);
        let txn = self.begin_locked(&key).await?;
        let mut secrets = UserSecrets {
            custom_secrets: self.read_custom(&txn, &key).await?,
            ..UserSecrets::default()
        };
        change.apply(&mut secrets)?;
        self.replace_custom(&txn, &key, &secrets.custom_secrets)
            .await?;
        txn.commit().await.map_err(backend)
    }

    async fn replace_provider_tokens(
        &self,
        scope: &UserScope,
        tokens: BTreeMap<ProviderType, ProviderToken>,
    ) -> Result<(), StoreError> {
        let key = ScopeKey::of(scope);
        let txn = self.begin_locked(&key).await?;
        let mut secrets = UserSecrets {
            provider_tokens: self.read_tokens(&txn, &key).await?,
            ..UserSecrets::default()
        };
        secrets.replace_provider_tokens(tokens);
        self.replace_tokens(&txn, &key, &secrets.provider_tokens)
            .await?;
        txn.commit().await.map_err(backend)
    }

    async fn change_provider_token(
        &self,
        scope: &UserScope,
        provider: ProviderType,
        change: ProviderTokenChange,
    ) -> Result<bool, StoreError> {
        let key = ScopeKey::of(scope);
        let txn = self.begin_locked(&key).await?;
        let mut secrets = UserSecrets {
            provider_tokens: self.read_tokens(&txn, &key).await?,
            ..UserSecrets::default()
        };
        if !change.apply(provider, &mut secrets)? {
            // Nothing to write; the transaction only read.
            txn.rollback().await.map_err(backend)?;
            return Ok(false);
        }
        self.replace_tokens(&txn, &key, &secrets.provider_tokens)
            .await?;
        txn.commit().await.map_err(backend)?;
        Ok(true)
    }

    async fn health(&self) -> Result<(), StoreError> {
        self.db.ping().await.map_err(backend)
    }
}
