//! The Redis keys of the clustered manager, all under `redis.key_prefix` (`<p>`).
//!
//! | Key | Type | Written by | Meaning |
//! |---|---|---|---|
//! | `<p>cm:owner:{<conversation>}` | string, `PX` lease | the owner | id of the replica running the conversation |
//! | `<p>cm:status` | hash, field per conversation | the owner | `OwnerRecord` JSON: replica, user, org, status |
//! | `<p>cm:events:{<conversation>}` | stream, `MAXLEN ~`, expires a day after the last entry | the owner | each stored event (`event_id`, `json`) or notice (`notice`) |
//! | `<p>cm:user:{<user>\|<org>}` | sorted set, member per conversation, score = last activity (ms) | claims, releases, sends | the user's running conversations, for the cluster-wide `max_concurrent_conversations` |
//! | `<p>cm:watchers:{<conversation>}` | sorted set, member per replica, score = deadline (ms), expires a lease after the last write | replicas with watchers | the replicas whose WebSockets watch the conversation (idle close, see `watchers`) |
//! | `<p>cm:epoch` | string, no expiry | the first claim or renewal that finds it missing | random; changes only when Redis lost its data (see `lease`) |
//! | `<p>cm:replica:{<replica>}` | string, `PX` heartbeat | each replica | the replica is alive |
//! | `<p>cm:cmd:{<replica>}` | pub/sub channel | any replica | commands for the conversations the replica owns |
//! | `<p>cm:reply:{<replica>}` | pub/sub channel | owners | answers to the replica's commands |

use openhands_core::scope::UserScope;

/// Builds key names under one prefix.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }

    pub fn owner(&self, conversation_id: &str) -> String {
        format!("{}cm:owner:{{{conversation_id}}}", self.prefix)
    }

    /// What every owner key starts with (the conversation id and `}` follow).
    pub fn owner_prefix(&self) -> String {
        format!("{}cm:owner:{{", self.prefix)
    }

    /// The user's running conversations (sorted set, scored by last activity).
    pub fn user(&self, scope: &UserScope) -> String {
        format!(
            "{}cm:user:{{{}|{}}}",
            self.prefix,
            scope.user_id.as_deref().unwrap_or_default(),
            scope.org_id.as_deref().unwrap_or_default()
        )
    }

    /// Changes when Redis lost its data (see [`crate::lease`]).
    pub fn epoch(&self) -> String {
        format!("{}cm:epoch", self.prefix)
    }

    pub fn status(&self) -> String {
        format!("{}cm:status", self.prefix)
    }

    pub fn events(&self, conversation_id: &str) -> String {
        format!("{}cm:events:{{{conversation_id}}}", self.prefix)
    }

    /// The replicas with watchers of the conversation (sorted set, scored by deadline).
    pub fn watchers(&self, conversation_id: &str) -> String {
        format!("{}cm:watchers:{{{conversation_id}}}", self.prefix)
    }

    pub fn replica(&self, replica_id: &str) -> String {
        format!("{}cm:replica:{{{replica_id}}}", self.prefix)
    }

    pub fn commands(&self, replica_id: &str) -> String {
        format!("{}cm:cmd:{{{replica_id}}}", self.prefix)
    }

    pub fn replies(&self, replica_id: &str) -> String {
        format!("{}cm:reply:{{{replica_id}}}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_carry_the_prefix_and_a_hash_tag() {
        let keys = Keys::new("oh:");
        assert_eq!(keys.owner("c1"), "oh:cm:owner:{c1}");
        assert_eq!(keys.events("c1"), "oh:cm:events:{c1}");
        assert_eq!(keys.status(), "oh:cm:status");
        assert_eq!(keys.watchers("c1"), "oh:cm:watchers:{c1}");
        assert_eq!(keys.commands("r1"), "oh:cm:cmd:{r1}");
        assert_eq!(keys.owner_prefix() + "c1}", keys.owner("c1"));
        let scope = UserScope {
            user_id: Some("u1".into()),
            org_id: None,
        };
        assert_eq!(keys.user(&scope), "oh:cm:user:{u1|}");
    }
}
