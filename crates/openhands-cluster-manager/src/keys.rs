//! The Redis keys of the clustered manager, all under `redis.key_prefix` (`<p>`).
//!
//! | Key | Type | Written by | Meaning |
//! |---|---|---|---|
//! | `<p>cm:owner:{<conversation>}` | string, `PX` lease | the owner | id of the replica running the conversation |
//! | `<p>cm:status` | hash, field per conversation | the owner | `OwnerRecord` JSON: replica, user, org, status |
//! | `<p>cm:events:{<conversation>}` | stream, `MAXLEN ~`, expires a day after the last entry | the owner | each stored event (`event_id`, `json`) or notice (`notice`) |
//! | `<p>cm:user:{<user>\|}` (`<p>cm:user:{\|<org>}` for a scope without a user) | sorted set, member per conversation, score = last activity (ms) | claims, releases, sends | the user's running conversations in all of their orgs, for the cluster-wide `max_concurrent_conversations` |
//! | `<p>cm:running` | sorted set, member per conversation, score = lease deadline (ms) | claims, renewals, releases | every running conversation of the cluster, for `max_running_conversations`; members past their deadline (owner died) are dropped by the next claim, failed runs by their next renewal |
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

    /// The user's running conversations (sorted set, scored by last activity), in all of
    /// their organizations: orgs are free to create, so a per-org set would multiply the
    /// limit. A scope without a user (the local user) keeps a set per org, as before.
    pub fn user(&self, scope: &UserScope) -> String {
        match scope.user_id.as_deref() {
            Some(user) => format!("{}cm:user:{{{user}|}}", self.prefix),
            None => format!(
                "{}cm:user:{{|{}}}",
                self.prefix,
                scope.org_id.as_deref().unwrap_or_default()
            ),
        }
    }

    /// Every running conversation of the cluster (sorted set, scored by lease deadline).
    pub fn running(&self) -> String {
        format!("{}cm:running", self.prefix)
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
        assert_eq!(keys.running(), "oh:cm:running");
    }

    #[test]
    fn a_users_conversations_share_one_set_whatever_the_org() {
        let keys = Keys::new("oh:");
        let in_org = |user: Option<&str>, org: &str| UserScope {
            user_id: user.map(str::to_owned),
            org_id: Some(org.to_owned()),
        };
        assert_eq!(keys.user(&in_org(Some("u1"), "o1")), "oh:cm:user:{u1|}");
        assert_eq!(keys.user(&in_org(Some("u1"), "o2")), "oh:cm:user:{u1|}");
        assert_eq!(keys.user(&in_org(None, "o1")), "oh:cm:user:{|o1}");
        assert_ne!(
            keys.user(&in_org(None, "o1")),
            keys.user(&in_org(None, "o2"))
        );
    }
}
