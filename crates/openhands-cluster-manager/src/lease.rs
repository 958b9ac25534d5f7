//! Ownership of a conversation: one replica at a time, by a lease in Redis.
//!
//! A claim is `SET owner-key <replica> NX PX <lease>` together with the conversation's
//! status record (one script, so a claimed conversation always has a record). The owner
//! renews with a compare-and-`PEXPIRE` (and refreshes the record in the same script) and
//! gives the conversation up with a compare-and-delete; a replica never touches a lease
//! that is not its own. When the owner dies its lease runs out and the key disappears.

use crate::keys::Keys;
use openhands_core::conversation::ConversationStatus;
use openhands_core::scope::UserScope;
use openhands_redis::redis::{self, Script};
use openhands_redis::{RedisError, RedisPool};
use serde::{Deserialize, Serialize};
use std::sync::LazyLock;
use std::time::Duration;

/// What the status hash holds for an owned conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OwnerRecord {
    pub replica: String,
    pub user_id: Option<String>,
    pub org_id: Option<String>,
    pub status: ConversationStatus,
}

impl OwnerRecord {
    pub fn new(replica: &str, scope: &UserScope, status: ConversationStatus) -> Self {
        Self {
            replica: replica.to_owned(),
            user_id: scope.user_id.clone(),
            org_id: scope.org_id.clone(),
            status,
        }
    }

    pub fn belongs_to(&self, scope: &UserScope) -> bool {
        self.user_id == scope.user_id && self.org_id == scope.org_id
    }
}

/// KEYS: owner, status hash. ARGV: replica, lease ms, conversation, record.
static CLAIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
            redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
            return 1
          end
          return 0",
    )
});

/// KEYS: owner, status hash. ARGV: replica, lease ms, conversation, record.
static RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('GET', KEYS[1]) == ARGV[1] then
            redis.call('PEXPIRE', KEYS[1], ARGV[2])
            redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
            return 1
          end
          return 0",
    )
});

/// KEYS: owner, status hash. ARGV: replica, conversation.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('GET', KEYS[1]) == ARGV[1] then
            redis.call('DEL', KEYS[1])
            redis.call('HDEL', KEYS[2], ARGV[2])
            return 1
          end
          return 0",
    )
});

/// The leases one replica holds or asks for.
#[derive(Debug, Clone)]
pub struct Leases {
    pool: RedisPool,
    keys: Keys,
    replica_id: String,
    lease: Duration,
}

impl Leases {
    pub fn new(pool: RedisPool, replica_id: &str, lease: Duration) -> Self {
        Self {
            keys: Keys::new(pool.key_prefix()),
            pool,
            replica_id: replica_id.to_owned(),
            lease,
        }
    }

    pub fn replica_id(&self) -> &str {
        &self.replica_id
    }

    fn lease_ms(&self) -> u64 {
        u64::try_from(self.lease.as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    async fn script(
        &self,
        script: &'static LazyLock<Script>,
        conversation_id: &str,
        args: Vec<String>,
    ) -> Result<bool, RedisError> {
        let owner = self.keys.owner(conversation_id);
        let status = self.keys.status();
        let won: i64 = self
            .pool
            .run(|mut connection| async move {
                let mut invocation = script.key(owner);
                invocation.key(status);
                for arg in &args {
                    invocation.arg(arg);
                }
                invocation.invoke_async(&mut connection).await
            })
            .await?;
        Ok(won == 1)
    }

    fn record_json(&self, scope: &UserScope, status: ConversationStatus) -> String {
        serde_json::to_string(&OwnerRecord::new(&self.replica_id, scope, status))
            .unwrap_or_default()
    }

    /// Claims the conversation unless another replica holds it; true when this replica
    /// owns it now.
    pub async fn claim(
        &self,
        conversation_id: &str,
        scope: &UserScope,
        status: ConversationStatus,
    ) -> Result<bool, RedisError> {
        let args = vec![
            self.replica_id.clone(),
            self.lease_ms().to_string(),
            conversation_id.to_owned(),
            self.record_json(scope, status),
        ];
        self.script(&CLAIM, conversation_id, args).await
    }

    /// Extends this replica's lease and records the status; false when the lease is lost.
    pub async fn renew(
        &self,
        conversation_id: &str,
        scope: &UserScope,
        status: ConversationStatus,
    ) -> Result<bool, RedisError> {
        let args = vec![
            self.replica_id.clone(),
            self.lease_ms().to_string(),
            conversation_id.to_owned(),
            self.record_json(scope, status),
        ];
        self.script(&RENEW, conversation_id, args).await
    }

    /// Gives the conversation up if this replica holds it; true when it did.
    pub async fn release(&self, conversation_id: &str) -> Result<bool, RedisError> {
        let args = vec![self.replica_id.clone(), conversation_id.to_owned()];
        self.script(&RELEASE, conversation_id, args).await
    }

    /// The replica holding the conversation, if any.
    pub async fn owner(&self, conversation_id: &str) -> Result<Option<String>, RedisError> {
        let key = self.keys.owner(conversation_id);
        self.pool
            .run(|mut connection| async move {
                redis::cmd("GET")
                    .arg(key)
                    .query_async(&mut connection)
                    .await
            })
            .await
    }

    /// Owner and status record of each conversation, in one round trip. A record without
    /// a live owner key (its owner died) is left out.
    pub async fn records(
        &self,
        conversation_ids: &[String],
    ) -> Result<Vec<Option<OwnerRecord>>, RedisError> {
        if conversation_ids.is_empty() {
            return Ok(Vec::new());
        }
        let owner_keys: Vec<String> = conversation_ids
            .iter()
            .map(|id| self.keys.owner(id))
            .collect();
        let status = self.keys.status();
        let fields = conversation_ids.to_vec();
        let (owners, records): (Vec<Option<String>>, Vec<Option<String>>) = self
            .pool
            .run(|mut connection| async move {
                redis::pipe()
                    .cmd("MGET")
                    .arg(owner_keys)
                    .cmd("HMGET")
                    .arg(status)
                    .arg(fields)
                    .query_async(&mut connection)
                    .await
            })
            .await?;
        Ok(owners
            .into_iter()
            .zip(records)
            .map(|(owner, record)| {
                let owner = owner?;
                let record: OwnerRecord = serde_json::from_str(&record?).ok()?;
                (record.replica == owner).then_some(record)
            })
            .collect())
    }
}
