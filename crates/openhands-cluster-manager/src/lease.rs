//! Ownership of a conversation: one replica at a time, by a lease in Redis.
//!
//! A claim is `SET owner-key <replica> NX PX <lease>` together with the conversation's
//! status record (one script, so a claimed conversation always has a record). The owner
//! renews with a compare-and-`PEXPIRE` (and refreshes the record in the same script) and
//! gives the conversation up with a compare-and-delete; a replica never touches a lease
//! that is not its own. When the owner dies its lease runs out and the key disappears.
//!
//! Redis may also lose every key at once (a restart without persistence, a fail-over to a
//! replica that lagged). An owner must then claim its conversations again rather than
//! stop them, but it must still stop a run whose lease ran out (another replica may have
//! taken it over, run it and released it meanwhile). The *epoch* key tells the two apart: a
//! random value, never expiring, created by the first claim or renewal that finds it
//! missing. Each lease remembers the epoch it was claimed or renewed under; a renewal that
//! finds the owner key gone re-claims only when the epoch changed, i.e. when Redis lost its
//! data since.
//!
//! The same scripts keep the two counts the limits read (see [`crate::keys`]): the user's
//! running set, for `max_concurrent_conversations` across all of the user's orgs, and the
//! cluster's running set, for `max_running_conversations`. A claim reads and changes both
//! in one script, so claims on several replicas at once cannot overshoot either limit. The
//! cluster set is scored by lease deadline (renewals push it on), so the runs of a replica
//! that died drop out of the count by themselves a lease after its last renewal.

use crate::keys::Keys;
use openhands_core::conversation::ConversationStatus;
use openhands_core::scope::UserScope;
use openhands_redis::redis::{self, Script};
use openhands_redis::{RedisError, RedisPool};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
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

    /// The scope the conversation runs for.
    pub fn scope(&self) -> UserScope {
        UserScope {
            user_id: self.user_id.clone(),
            org_id: self.org_id.clone(),
        }
    }
}

/// KEYS: owner, status hash, the user's set, epoch, the cluster's running set. ARGV: replica,
/// lease ms, conversation, record, the user's limit, now (ms), owner-key prefix
/// (`<p>cm:owner:{`), `evict` or `yield`, a fresh epoch, the cluster's cap (`0`: none).
///
/// Returns `{0}` when another replica holds the conversation, else `{1, epoch, evicted...}`: the
/// user's least recently active conversations taken out of the set to stay within the limit
/// (members whose owner key is gone are dropped first: their owner died). With `yield`,
/// nothing is evicted: a claim that would exceed the limit returns `{2}` (claimed, not
/// counted; the caller releases it). A claim that would take the cluster past its cap
/// returns `{3}` (claimed, not counted; the caller releases it): only the user's own
/// evictions make room, never another user's run. The evicted stay in the cluster's set
/// until their owner releases them, so the cap holds while they stop.
static CLAIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
            return {0}
          end
          local epoch = redis.call('GET', KEYS[4])
          if not epoch then
            redis.call('SET', KEYS[4], ARGV[9])
            epoch = ARGV[9]
          end
          redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
          for _, member in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
            if member ~= ARGV[3] and redis.call('EXISTS', ARGV[7] .. member .. '}') == 0 then
              redis.call('ZREM', KEYS[3], member)
            end
          end
          local counted = redis.call('ZSCORE', KEYS[3], ARGV[3])
          local limit = tonumber(ARGV[5])
          if ARGV[8] == 'yield' and not counted and redis.call('ZCARD', KEYS[3]) >= limit then
            return {2}
          end
          local evict = {}
          if ARGV[8] == 'evict' then
            local over = redis.call('ZCARD', KEYS[3]) - limit
            if not counted then over = over + 1 end
            for _, member in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
              if over <= 0 then break end
              if member ~= ARGV[3] then
                table.insert(evict, member)
                over = over - 1
              end
            end
          end
          redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', '(' .. ARGV[6])
          local cap = tonumber(ARGV[10])
          if cap > 0 and not redis.call('ZSCORE', KEYS[5], ARGV[3]) then
            local freed = 0
            for _, member in ipairs(evict) do
              if redis.call('ZSCORE', KEYS[5], member) then freed = freed + 1 end
            end
            if redis.call('ZCARD', KEYS[5]) - freed >= cap then
              return {3}
            end
          end
          redis.call('ZADD', KEYS[3], ARGV[6], ARGV[3])
          redis.call('ZADD', KEYS[5], tonumber(ARGV[6]) + tonumber(ARGV[2]), ARGV[3])
          local result = {1, epoch}
          for _, member in ipairs(evict) do
            redis.call('ZREM', KEYS[3], member)
            table.insert(result, member)
          end
          return result",
    )
});

/// KEYS: owner, status hash, the user's set, epoch, the cluster's running set. ARGV: replica,
/// lease ms, conversation, record, now (ms), the epoch of the lease, a fresh epoch, `1` when
/// the run counts against the cluster's cap (a failed run holds no sandbox: `0`).
///
/// Returns `{1, epoch}` when renewed, `{2, epoch}` when the owner key was gone because
/// Redis lost its data (the epoch changed) and the lease is claimed again, `{0, epoch}` when
/// the lease is lost.
static RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"local epoch = redis.call('GET', KEYS[4])
          if not epoch then
            redis.call('SET', KEYS[4], ARGV[7])
            epoch = ARGV[7]
          end
          local owner = redis.call('GET', KEYS[1])
          local function count()
            if ARGV[8] == '1' then
              redis.call('ZADD', KEYS[5], tonumber(ARGV[5]) + tonumber(ARGV[2]), ARGV[3])
            else
              redis.call('ZREM', KEYS[5], ARGV[3])
            end
          end
          if owner == ARGV[1] then
            redis.call('PEXPIRE', KEYS[1], ARGV[2])
            redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
            count()
            return {1, epoch}
          end
          if not owner and epoch ~= ARGV[6] then
            redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
            redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
            redis.call('ZADD', KEYS[3], 'NX', ARGV[5], ARGV[3])
            count()
            return {2, epoch}
          end
          return {0, epoch}",
    )
});

/// KEYS: owner, status hash, the user's set, epoch (unused), the cluster's running set.
/// ARGV: replica, conversation.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('GET', KEYS[1]) == ARGV[1] then
            redis.call('DEL', KEYS[1])
            redis.call('HDEL', KEYS[2], ARGV[2])
            redis.call('ZREM', KEYS[3], ARGV[2])
            redis.call('ZREM', KEYS[5], ARGV[2])
            return 1
          end
          return 0",
    )
});

/// What a claim did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Another replica holds the conversation.
    Refused,
    /// This replica owns it now; `evict` are the user's conversations (running anywhere)
    /// to stop so the user stays within `max_concurrent_conversations`, least recently
    /// active first.
    Won { evict: Vec<String> },
    /// Claimed, but running it would exceed the user's limit and the claim was asked to
    /// yield (a takeover): the caller releases it.
    OverLimit,
    /// Claimed, but running it would take the cluster past `max_running_conversations`:
    /// the caller releases it and refuses the start (or leaves a takeover stopped).
    AtCapacity,
}

/// What a renewal found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renewal {
    /// The lease is extended.
    Renewed,
    /// Redis had lost its data; the lease is this replica's again.
    Reclaimed,
    /// Another replica holds it, or it ran out: the run must stop here.
    Lost,
}

/// What a claim does when the user is at the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtLimit {
    /// Stop the user's least recently active conversations (a start by the user).
    Evict,
    /// Leave the others running and report [`Claim::OverLimit`] (a takeover).
    Yield,
}

/// A new epoch value, used when the epoch key is missing.
fn fresh_epoch() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The leases one replica holds or asks for.
#[derive(Debug, Clone)]
pub struct Leases {
    pool: RedisPool,
    keys: Keys,
    replica_id: String,
    lease: Duration,
    /// Running conversations per user, cluster-wide.
    per_user: u32,
    /// Running conversations in the whole cluster; `0`: no cap.
    global_cap: u32,
    /// The epoch (see the module doc) each lease of this replica was last claimed or
    /// renewed under.
    epochs: Arc<Mutex<HashMap<String, String>>>,
}

impl Leases {
    /// Leases of `replica_id`; a claim lets each user run at most `per_user` conversations
    /// across the cluster (at least 1).
    pub fn new(pool: RedisPool, replica_id: &str, lease: Duration, per_user: u32) -> Self {
        Self {
            keys: Keys::new(pool.key_prefix()),
            pool,
            replica_id: replica_id.to_owned(),
            lease,
            per_user: per_user.max(1),
            global_cap: 0,
            epochs: Arc::default(),
        }
    }

    /// The same leases with a claim refusing to take the cluster past `cap` running
    /// conversations (`max_running_conversations`; `0`: no cap).
    pub fn with_global_cap(mut self, cap: u32) -> Self {
        self.global_cap = cap;
        self
    }

    /// The cluster's cap on running conversations (`0`: none).
    pub fn global_cap(&self) -> u32 {
        self.global_cap
    }

    fn epochs(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.epochs.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn replica_id(&self) -> &str {
        &self.replica_id
    }

    fn lease_ms(&self) -> u64 {
        u64::try_from(self.lease.as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    async fn script<T: redis::FromRedisValue + Send + 'static>(
        &self,
        script: &'static LazyLock<Script>,
        conversation_id: &str,
        scope: &UserScope,
        args: Vec<String>,
    ) -> Result<T, RedisError> {
        let keys = [
            self.keys.owner(conversation_id),
            self.keys.status(),
            self.keys.user(scope),
            self.keys.epoch(),
            self.keys.running(),
        ];
        self.pool
            .run(|mut connection| async move {
                let mut invocation = script.prepare_invoke();
                for key in &keys {
                    invocation.key(key);
                }
                for arg in &args {
                    invocation.arg(arg);
                }
                invocation.invoke_async(&mut connection).await
            })
            .await
    }

    fn record_json(&self, scope: &UserScope, status: ConversationStatus) -> String {
        serde_json::to_string(&OwnerRecord::new(&self.replica_id, scope, status))
            .unwrap_or_default()
    }

    /// Claims the conversation unless another replica holds it, and adds it to the user's
    /// running set in the same script (so claims on different replicas at once cannot
    /// exceed the user's limit).
    pub async fn claim(
        &self,
        conversation_id: &str,
        scope: &UserScope,
        status: ConversationStatus,
        at_limit: AtLimit,
    ) -> Result<Claim, RedisError> {
        let args = vec![
            self.replica_id.clone(),
            self.lease_ms().to_string(),
            conversation_id.to_owned(),
            self.record_json(scope, status),
            self.per_user.to_string(),
            now_ms().to_string(),
            self.keys.owner_prefix(),
            match at_limit {
                AtLimit::Evict => "evict".to_owned(),
                AtLimit::Yield => "yield".to_owned(),
            },
            fresh_epoch(),
            self.global_cap.to_string(),
        ];
        let reply: Vec<redis::Value> = self.script(&CLAIM, conversation_id, scope, args).await?;
        let mut reply = reply.into_iter();
        let won: i64 = reply
            .next()
            .and_then(|v| redis::from_redis_value(v).ok())
            .unwrap_or(0);
        match won {
            1 => {}
            2 => return Ok(Claim::OverLimit),
            3 => return Ok(Claim::AtCapacity),
            _ => return Ok(Claim::Refused),
        }
        let epoch: String = reply
            .next()
            .and_then(|v| redis::from_redis_value(v).ok())
            .unwrap_or_default();
        self.epochs().insert(conversation_id.to_owned(), epoch);
        let evict = reply
            .filter_map(|v| redis::from_redis_value::<String>(v).ok())
            .collect();
        Ok(Claim::Won { evict })
    }

    /// Marks the user's conversation as active now (it is evicted last).
    pub async fn touch(&self, conversation_id: &str, scope: &UserScope) -> Result<(), RedisError> {
        let key = self.keys.user(scope);
        let member = conversation_id.to_owned();
        self.pool
            .run(|mut connection| async move {
                redis::cmd("ZADD")
                    .arg(key)
                    .arg("XX")
                    .arg(now_ms())
                    .arg(member)
                    .query_async::<()>(&mut connection)
                    .await
            })
            .await
    }

    /// The user's conversations counted against the limit, least recently active first.
    pub async fn running_of(&self, scope: &UserScope) -> Result<Vec<String>, RedisError> {
        let key = self.keys.user(scope);
        self.pool
            .run(|mut connection| async move {
                redis::cmd("ZRANGE")
                    .arg(key)
                    .arg(0)
                    .arg(-1)
                    .query_async(&mut connection)
                    .await
            })
            .await
    }

    /// Extends this replica's lease and records the status; claims it again when Redis
    /// lost its data since the last renewal (see the module doc).
    pub async fn renew(
        &self,
        conversation_id: &str,
        scope: &UserScope,
        status: ConversationStatus,
    ) -> Result<Renewal, RedisError> {
        let known = self
            .epochs()
            .get(conversation_id)
            .cloned()
            .unwrap_or_default();
        let args = vec![
            self.replica_id.clone(),
            self.lease_ms().to_string(),
            conversation_id.to_owned(),
            self.record_json(scope, status),
            now_ms().to_string(),
            known,
            fresh_epoch(),
            if status == ConversationStatus::Error {
                "0"
            } else {
                "1"
            }
            .to_owned(),
        ];
        let (code, epoch): (i64, String) =
            self.script(&RENEW, conversation_id, scope, args).await?;
        let renewal = match code {
            1 => Renewal::Renewed,
            2 => Renewal::Reclaimed,
            _ => Renewal::Lost,
        };
        let mut epochs = self.epochs();
        if renewal == Renewal::Lost {
            epochs.remove(conversation_id);
        } else {
            epochs.insert(conversation_id.to_owned(), epoch);
        }
        Ok(renewal)
    }

    /// Gives the conversation up if this replica holds it (and takes it out of the user's
    /// running set); true when it did.
    pub async fn release(
        &self,
        conversation_id: &str,
        scope: &UserScope,
    ) -> Result<bool, RedisError> {
        let args = vec![self.replica_id.clone(), conversation_id.to_owned()];
        let released: i64 = self.script(&RELEASE, conversation_id, scope, args).await?;
        self.epochs().remove(conversation_id);
        Ok(released == 1)
    }

    /// The conversations counted against the cluster's cap (their deadline may have passed
    /// since the last claim pruned the set).
    pub async fn running_in_cluster(&self) -> Result<Vec<String>, RedisError> {
        let key = self.keys.running();
        self.pool
            .run(|mut connection| async move {
                redis::cmd("ZRANGE")
                    .arg(key)
                    .arg(0)
                    .arg(-1)
                    .query_async(&mut connection)
                    .await
            })
            .await
    }

    /// How many conversations count against the cluster's cap now (leases not yet past
    /// their deadline).
    pub async fn running_in_cluster_now(&self) -> Result<u64, RedisError> {
        let key = self.keys.running();
        self.pool
            .run(|mut connection| async move {
                redis::cmd("ZCOUNT")
                    .arg(key)
                    .arg(now_ms())
                    .arg("+inf")
                    .query_async(&mut connection)
                    .await
            })
            .await
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

    /// Conversations recorded as owned whose owner key is gone: their owner stopped
    /// renewing (it died, or paused longer than the lease) without releasing them. Claim
    /// and release keep the key and the record together, so a record without its key is
    /// always such an orphan. Unreadable records are left out.
    pub async fn orphans(&self) -> Result<Vec<(String, OwnerRecord)>, RedisError> {
        let status = self.keys.status();
        let all: Vec<(String, String)> = self
            .pool
            .run(|mut connection| async move {
                redis::cmd("HGETALL")
                    .arg(status)
                    .query_async(&mut connection)
                    .await
            })
            .await?;
        if all.is_empty() {
            return Ok(Vec::new());
        }
        let owner_keys: Vec<String> = all.iter().map(|(id, _)| self.keys.owner(id)).collect();
        let owners: Vec<Option<String>> = self
            .pool
            .run(|mut connection| async move {
                redis::cmd("MGET")
                    .arg(owner_keys)
                    .query_async(&mut connection)
                    .await
            })
            .await?;
        Ok(all
            .into_iter()
            .zip(owners)
            .filter(|(_, owner)| owner.is_none())
            .filter_map(|((id, record), _)| {
                serde_json::from_str::<OwnerRecord>(&record)
                    .ok()
                    .map(|record| (id, record))
            })
            .collect())
    }
}
