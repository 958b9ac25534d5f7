//! Server-side session records: what makes a session cookie revocable.
//!
//! The sealed cookie alone cannot be taken back: a copy keeps working after logout, and its
//! life is whatever the provider's refresh token allows. So each login creates a row of
//! `oidc_sessions` ([`crate::migration`]) holding the SHA-256 of a random token that only
//! the cookie carries (the database never holds the token), the user, an absolute expiry
//! (`auth.session_max_age_seconds` from creation) and a revocation time. Every cookie
//! request looks its record up: a missing, revoked or expired one ends the session.
//!
//! Lookups go through a per-replica cache of `auth.lookup_cache_ms`. A revocation on this
//! replica drops the entry at once (the cache's epoch keeps a lookup racing with it from
//! putting the old record back); other replicas see it within the cache time. Expiry is
//! checked against the clock on every request, cached or not. `last_seen_at` is written at
//! most once a minute per session (the write is conditional, so replicas do not add up),
//! off the request's path.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration as Span, Utc};
use openhands_core::cache::TtlCache;
use openhands_sql_store::Database;
use ring::rand::{SecureRandom, SystemRandom};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, Condition, DbErr, EntityTrait, QueryFilter, QueryOrder};
use std::time::Duration;

/// The `oidc_sessions` rows.
pub mod entity {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "oidc_sessions")]
    pub struct Model {
        /// The public id (a uuid), shown in listings and used to revoke one session.
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        /// Hex SHA-256 of the session token the cookie carries.
        pub token_hash: String,
        pub user_id: String,
        pub created_at: DateTimeUtc,
        /// `created_at` plus `auth.session_max_age_seconds`; no refresh extends it.
        pub expires_at: DateTimeUtc,
        pub last_seen_at: DateTimeUtc,
        pub revoked_at: Option<DateTimeUtc>,
        pub user_agent: Option<String>,
        pub ip: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub use entity::Model as SessionRecord;
use entity::{ActiveModel, Column, Entity};

/// How often `last_seen_at` is written at most, per session.
pub const TOUCH_INTERVAL_SECONDS: i64 = 60;
/// Characters of the `User-Agent` kept with a session.
pub const MAX_USER_AGENT_CHARS: usize = 256;
/// Random bytes in a session token.
const TOKEN_BYTES: usize = 32;
/// Entries of the lookup cache before it is cleared.
const CACHE_CAPACITY: usize = 100_000;

/// Why a session could not be created.
#[derive(Debug, thiserror::Error)]
pub enum SessionStoreError {
    #[error("the system random generator failed")]
    Random,
    #[error("session storage: {0}")]
    Database(#[from] DbErr),
}

/// What a login knows about the browser that logged in.
#[derive(Debug, Clone, Default)]
pub struct Origin<'a> {
    pub user_agent: Option<&'a str>,
    pub ip: Option<String>,
}

/// The session records of one server: the table, the lifetime, the lookup cache.
#[derive(Debug)]
pub struct SessionStore {
    db: Database,
    max_age: Span,
    /// token hash -> record (`None`: no such token).
    cache: TtlCache<String, Option<SessionRecord>>,
}

/// Hex SHA-256 of a session token: what the database and the cache are keyed by.
pub fn token_hash(token: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether a record is neither revoked nor expired at `now`.
pub fn is_live(record: &SessionRecord, now: DateTime<Utc>) -> bool {
    record.revoked_at.is_none() && record.expires_at > now
}

/// Seconds a record has left at `now`, rounded up (the cookie's `Max-Age`: a cookie with
/// half a second left is not deleted at once; the server ends the session on time anyway).
pub fn remaining_seconds(record: &SessionRecord, now: DateTime<Utc>) -> i64 {
    let millis = (record.expires_at - now).num_milliseconds().max(0);
    (millis + 999) / 1000
}

impl SessionStore {
    /// `max_age`: the absolute lifetime (at least a second); `lookup_ttl`: the cache time.
    pub fn new(db: Database, max_age: Duration, lookup_ttl: Duration) -> Self {
        let seconds = i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX / 2);
        Self {
            db,
            max_age: Span::seconds(seconds.clamp(1, 100 * 365 * 24 * 3600)),
            cache: TtlCache::new(lookup_ttl, CACHE_CAPACITY),
        }
    }

    /// Creates the record of a new login; returns it and its token, which goes into the
    /// cookie and nowhere else. The user's ended records are removed on the way, so the
    /// table holds about one row per live session.
    pub async fn create(
        &self,
        user_id: &str,
        origin: Origin<'_>,
    ) -> Result<(SessionRecord, String), SessionStoreError> {
        let mut raw = [0u8; TOKEN_BYTES];
        SystemRandom::new()
            .fill(&mut raw)
            .map_err(|_| SessionStoreError::Random)?;
        let token = URL_SAFE_NO_PAD.encode(raw);
        let now = Utc::now();
        let record = SessionRecord {
            id: uuid::Uuid::new_v4().to_string(),
            token_hash: token_hash(&token),
            user_id: user_id.to_owned(),
            created_at: now,
            expires_at: now + self.max_age,
            last_seen_at: now,
            revoked_at: None,
            user_agent: origin.user_agent.map(|ua| {
                ua.chars()
                    .filter(|c| !c.is_control())
                    .take(MAX_USER_AGENT_CHARS)
                    .collect()
            }),
            ip: origin.ip,
        };
        let conn = self.db.connection();
        Entity::delete_many()
            .filter(Column::UserId.eq(user_id))
            .filter(
                Condition::any()
                    .add(Column::ExpiresAt.lte(now))
                    .add(Column::RevokedAt.is_not_null()),
            )
            .exec(conn)
            .await?;
        let row: ActiveModel = record.clone().into();
        Entity::insert(row).exec_without_returning(conn).await?;
        Ok((record, token))
    }

    /// The live record of a token, through the cache; `None` when it is unknown, revoked or
    /// expired. Touches `last_seen_at` when it is a minute old.
    pub async fn live(&self, token: &str) -> Result<Option<SessionRecord>, DbErr> {
        if token.is_empty() {
            return Ok(None);
        }
        let hash = token_hash(token);
        let epoch = self.cache.epoch();
        let found = match self.cache.get(&hash) {
            Some(found) => found,
            None => {
                let found = Entity::find()
                    .filter(Column::TokenHash.eq(hash.as_str()))
                    .one(self.db.connection())
                    .await?;
                self.cache
                    .insert_if_unchanged(hash.clone(), found.clone(), epoch);
                found
            }
        };
        let now = Utc::now();
        let Some(mut record) = found.filter(|r| is_live(r, now)) else {
            return Ok(None);
        };
        if (now - record.last_seen_at).num_seconds() >= TOUCH_INTERVAL_SECONDS {
            record.last_seen_at = now;
            self.cache
                .insert_if_unchanged(hash, Some(record.clone()), epoch);
            self.touch(record.id.clone(), now);
        }
        Ok(Some(record))
    }

    /// Writes `last_seen_at` in the background, only if no replica did in the last minute.
    fn touch(&self, id: String, now: DateTime<Utc>) {
        let db = self.db.clone();
        tokio::spawn(async move {
            let result = Entity::update_many()
                .col_expr(Column::LastSeenAt, Expr::value(now))
                .filter(Column::Id.eq(id.as_str()))
                .filter(Column::LastSeenAt.lt(now - Span::seconds(TOUCH_INTERVAL_SECONDS)))
                .exec(db.connection())
                .await;
            if let Err(err) = result {
                tracing::warn!(error = %err, session_id = %id, "updating last_seen_at failed");
            }
        });
    }

    /// Revokes the session of a token (logout). Returns whether a live one was revoked.
    pub async fn revoke_token(&self, token: &str) -> Result<bool, DbErr> {
        if token.is_empty() {
            return Ok(false);
        }
        let hash = token_hash(token);
        let result = Entity::update_many()
            .col_expr(Column::RevokedAt, Expr::value(Some(Utc::now())))
            .filter(Column::TokenHash.eq(hash.as_str()))
            .filter(Column::RevokedAt.is_null())
            .exec(self.db.connection())
            .await;
        self.cache.invalidate(&hash);
        Ok(result?.rows_affected > 0)
    }

    /// Revokes one live session of `user_id` by its public id and returns it; `None` when
    /// the user has no such live session (another user's id included).
    pub async fn revoke_one(
        &self,
        user_id: &str,
        id: &str,
    ) -> Result<Option<SessionRecord>, DbErr> {
        let now = Utc::now();
        let Some(record) = Entity::find_by_id(id.to_owned())
            .filter(Column::UserId.eq(user_id))
            .one(self.db.connection())
            .await?
            .filter(|r| is_live(r, now))
        else {
            return Ok(None);
        };
        let result = Entity::update_many()
            .col_expr(Column::RevokedAt, Expr::value(Some(now)))
            .filter(Column::Id.eq(record.id.as_str()))
            .filter(Column::RevokedAt.is_null())
            .exec(self.db.connection())
            .await;
        self.cache.invalidate(&record.token_hash);
        Ok((result?.rows_affected > 0).then_some(record))
    }

    /// Revokes every live session of `user_id`; returns how many. The whole lookup cache
    /// of this replica is dropped (the user's entries among it).
    pub async fn revoke_all(&self, user_id: &str) -> Result<u64, DbErr> {
        let now = Utc::now();
        let result = Entity::update_many()
            .col_expr(Column::RevokedAt, Expr::value(Some(now)))
            .filter(Column::UserId.eq(user_id))
            .filter(Column::RevokedAt.is_null())
            .filter(Column::ExpiresAt.gt(now))
            .exec(self.db.connection())
            .await;
        self.cache.clear();
        Ok(result?.rows_affected)
    }

    /// The live sessions of `user_id`, most recently seen first.
    pub async fn list_live(&self, user_id: &str) -> Result<Vec<SessionRecord>, DbErr> {
        Entity::find()
            .filter(Column::UserId.eq(user_id))
            .filter(Column::RevokedAt.is_null())
            .filter(Column::ExpiresAt.gt(Utc::now()))
            .order_by_desc(Column::LastSeenAt)
            .order_by_asc(Column::Id)
            .all(self.db.connection())
            .await
    }
}
