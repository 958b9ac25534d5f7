//! The installed hooks (`gitlab_webhooks`): which OpenHands user installed a hook on which
//! GitLab project or group, on which GitLab, and the hook's secret token, **hashed**.
//!
//! OpenHands keeps `gitlab_webhook.webhook_secret` in plain text. Here the row holds the
//! token's SHA-256 only, as the API keys do (`docs/api-keys.md`): the token is 32 random
//! bytes, so a fast unsalted hash is enough to make a leaked row useless, and the server
//! never needs the token back (GitLab sends it, we compare). Sealing it with the server's
//! cipher instead would also work, but then `openhands keys rotate`, which walks a fixed list
//! of sealed tables in `openhands-sql-store`, would not re-seal it, and dropping an old key
//! would silently break every hook. The comparison is of the two digests, in constant time.

use chrono::Utc;
use openhands_core::config::Config;
use openhands_core::secret::constant_time_eq;
use openhands_sql_store::{Database, DatabaseError, PoolOptions};
use sea_orm::entity::prelude::*;
use sea_orm::{ActiveValue::Set, EntityTrait, QueryFilter, QueryOrder};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "gitlab_webhooks")]
pub struct Model {
    /// The `X-OpenHands-Webhook-ID` GitLab sends with every delivery of this hook.
    #[sea_orm(primary_key, auto_increment = false)]
    pub webhook_id: String,
    /// The OpenHands user who installed it (`X-OpenHands-User-ID`).
    pub user_id: String,
    pub org_id: Option<String>,
    /// The GitLab it is installed on, without a trailing `/`.
    pub base_url: String,
    /// Exactly one of the project and the group is set.
    pub project_id: Option<i64>,
    pub group_id: Option<i64>,
    /// The project's `path_with_namespace` or the group's full path.
    pub target_path: String,
    /// GitLab's id of the hook, to remove it.
    pub gitlab_hook_id: Option<i64>,
    /// Lower-case hex SHA-256 of the hook's secret token.
    pub secret_sha256: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Model {
    /// Whether a delivery about project `project_id` at `project_path` may come through this
    /// hook: the hook's own project, or a project inside the hook's group.
    pub fn covers(&self, project_id: u64, project_path: &str) -> bool {
        match (self.project_id, self.group_id) {
            (Some(own), _) => u64::try_from(own).is_ok_and(|own| own == project_id),
            (None, Some(_)) => project_path
                .strip_prefix(self.target_path.as_str())
                .is_some_and(|rest| rest.starts_with('/')),
            (None, None) => false,
        }
    }
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Lower-case hex SHA-256 of a hook's secret token.
pub fn secret_digest(token: &str) -> String {
    sha256_hex(token.as_bytes())
}

/// Whether `token` is the secret whose digest is `digest` (digests compared in constant
/// time).
pub fn token_matches(token: &str, digest: &str) -> bool {
    constant_time_eq(&secret_digest(token), digest)
}

/// Why the hooks table could not be used. Never holds a token or the database URL.
#[derive(Debug, thiserror::Error)]
pub enum HookStoreError {
    #[error(transparent)]
    Connect(#[from] DatabaseError),
    #[error("the gitlab_webhooks table: {0}")]
    Query(#[from] DbErr),
}

/// What an installation records.
#[derive(Debug, Clone)]
pub struct NewHook {
    pub webhook_id: String,
    pub user_id: String,
    pub org_id: Option<String>,
    pub base_url: String,
    pub project_id: Option<u64>,
    pub group_id: Option<u64>,
    pub target_path: String,
    pub gitlab_hook_id: Option<u64>,
    pub secret_sha256: String,
}

fn signed(id: Option<u64>) -> Option<i64> {
    id.and_then(|id| i64::try_from(id).ok())
}

/// The installed hooks, on the server's database.
#[derive(Debug, Clone)]
pub struct HookStore {
    db: Database,
}

impl HookStore {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// The pool, for the other tables the integration reads (the users' secrets).
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// A small pool of the integration's own on `config`'s database: the integration is built
    /// from the config alone, so it cannot borrow the server's pool.
    pub async fn connect(config: &Config) -> Result<Self, HookStoreError> {
        let url = config.database.connection_url(&config.data_dir());
        let pool = PoolOptions {
            pool_size: 2,
            max_overflow: 0,
        };
        Ok(Self::new(Database::connect(url.expose(), pool).await?))
    }

    /// The hook `webhook_id`.
    pub async fn find(&self, webhook_id: &str) -> Result<Option<Model>, HookStoreError> {
        Ok(Entity::find_by_id(webhook_id.to_owned())
            .one(self.db.connection())
            .await?)
    }

    /// The hooks installed on project `project_id` of the GitLab at `base_url`.
    pub async fn for_project(
        &self,
        base_url: &str,
        project_id: u64,
    ) -> Result<Vec<Model>, HookStoreError> {
        Ok(Entity::find()
            .filter(Column::BaseUrl.eq(base_url))
            .filter(Column::ProjectId.eq(signed(Some(project_id))))
            .order_by_asc(Column::CreatedAt)
            .all(self.db.connection())
            .await?)
    }

    /// The hooks `user_id` installed, oldest first.
    pub async fn of_user(&self, user_id: &str) -> Result<Vec<Model>, HookStoreError> {
        Ok(Entity::find()
            .filter(Column::UserId.eq(user_id))
            .order_by_asc(Column::CreatedAt)
            .all(self.db.connection())
            .await?)
    }

    /// Records an installed hook.
    pub async fn insert(&self, hook: NewHook) -> Result<Model, HookStoreError> {
        let now = Utc::now();
        let row = ActiveModel {
            webhook_id: Set(hook.webhook_id),
            user_id: Set(hook.user_id),
            org_id: Set(hook.org_id),
            base_url: Set(hook.base_url),
            project_id: Set(signed(hook.project_id)),
            group_id: Set(signed(hook.group_id)),
            target_path: Set(hook.target_path),
            gitlab_hook_id: Set(signed(hook.gitlab_hook_id)),
            secret_sha256: Set(hook.secret_sha256),
            created_at: Set(now),
            updated_at: Set(now),
        };
        Ok(row.insert(self.db.connection()).await?)
    }

    /// Forgets hook `webhook_id`; whether it was there.
    pub async fn delete(&self, webhook_id: &str) -> Result<bool, HookStoreError> {
        let result = Entity::delete_by_id(webhook_id.to_owned())
            .exec(self.db.connection())
            .await?;
        Ok(result.rows_affected > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(project_id: Option<i64>, group_id: Option<i64>, path: &str) -> Model {
        Model {
            webhook_id: "w".into(),
            user_id: "u".into(),
            org_id: None,
            base_url: "https://gitlab.com".into(),
            project_id,
            group_id,
            target_path: path.into(),
            gitlab_hook_id: None,
            secret_sha256: secret_digest("t"),
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    #[test]
    fn a_digest_matches_its_token_only() {
        let digest = secret_digest("s3cret");
        assert_eq!(digest.len(), 64);
        assert!(token_matches("s3cret", &digest));
        assert!(!token_matches("s3cre", &digest));
        assert!(!token_matches("", &digest));
    }

    #[test]
    fn a_hook_covers_its_project_or_its_groups_projects() {
        assert!(hook(Some(5), None, "g/p").covers(5, "g/p"));
        assert!(!hook(Some(5), None, "g/p").covers(6, "g/p"));
        let group = hook(None, Some(9), "acme/team");
        assert!(group.covers(1, "acme/team/app"));
        assert!(group.covers(1, "acme/team/sub/app"));
        assert!(!group.covers(1, "acme/teammates/app"));
        assert!(!group.covers(1, "acme/team"));
    }
}
