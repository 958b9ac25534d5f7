//! Conversations moving between replicas: the handover a replica makes at shutdown, the
//! takeover of a dead replica's conversations, and the resume both end in (see
//! [`crate::takeover`] for the protocol and its guarantees).
//!
//! Every move claims and resumes conversations concurrently, each under its own
//! transition lock: a deploy moves a replica's whole load at once, and the pause a user
//! sees must not grow with the number of conversations moving with theirs.

use super::Shared;
use crate::fanout::xadd;
use crate::lease::{AtLimit, Claim, OwnerRecord};
use crate::routing::{Op, Outcome};
use crate::takeover;
use futures_util::StreamExt;
use openhands_core::conversation::ConversationStatus;
use openhands_core::extension::{LiveMessage, StartRequest};
use openhands_core::scope::UserScope;
use openhands_redis::{RedisError, redis};
use openhands_standalone_manager::DrainingRun;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// How many dead replicas' conversations one replica resumes at once.
const TAKEOVERS_AT_ONCE: usize = 32;
/// How many conversations a leaving replica moves at once. All of them at once made every
/// Redis call of the handover wait behind the others (past `redis.command_timeout_ms`, so
/// some leases were left to run out); a move takes milliseconds, so a hundred moves in
/// batches of this size are done well within the handover's budget.
const HANDOVERS_AT_ONCE: usize = 32;

impl Shared {
    /// Claims a conversation another replica hands over at its shutdown, answers at once
    /// and resumes it meanwhile (under the conversation's transition lock): the leaving
    /// replica moves the next one without waiting for this one's stores. A resume that
    /// fails after the answer gives the claim up, and the conversation stays stopped as
    /// when no replica accepts it.
    pub(super) async fn take_over(self: &Arc<Self>, scope: &UserScope, id: &str) -> Outcome {
        let transition = self.transitions.lock(id).await;
        if self.shutting_down.load(Ordering::SeqCst) {
            return Outcome::Failed {
                message: format!("replica {} is shutting down too", self.leases.replica_id()),
            };
        }
        if self.owns(scope, id) {
            return Outcome::TakenOver;
        }
        let claim = self
            .leases
            .claim(id, scope, ConversationStatus::Starting, AtLimit::Yield)
            .await;
        let failure = match claim {
            // Started meanwhile elsewhere (a user's message): it runs, which is the point.
            Ok(Claim::Refused) => return Outcome::TakenOver,
            Ok(Claim::Won { .. }) => {
                let shared = self.clone();
                let (scope, id) = (scope.clone(), id.to_owned());
                tokio::spawn(async move {
                    let _transition = transition;
                    let resumed = shared
                        .resume(&id, &scope, takeover::HANDED_OVER_REASON)
                        .await;
                    if let Err(reason) = resumed {
                        tracing::warn!(conversation_id = %id, reason, "not resuming a conversation handed over; it stays stopped");
                        if let Err(err) = shared.leases.release(&id, &scope).await {
                            tracing::warn!(conversation_id = %id, error = %err, "releasing a conversation failed; its lease will run out");
                        }
                    }
                });
                return Outcome::TakenOver;
            }
            Ok(claim @ (Claim::OverLimit | Claim::AtCapacity)) => at_limit(&claim),
            Err(err) => {
                return Outcome::Failed {
                    message: format!("claiming it in Redis: {err}"),
                };
            }
        };
        if let Err(err) = self.leases.release(id, scope).await {
            tracing::warn!(conversation_id = id, error = %err, "releasing a conversation failed; its lease will run out");
        }
        Outcome::Failed {
            message: format!("not resuming conversation {id}: {failure}"),
        }
    }

    /// The other replicas whose heartbeat is alive.
    async fn live_replicas(&self) -> Result<Vec<String>, RedisError> {
        let pattern = format!(
            "{}*",
            glob_escape(&self.keys.replica("")).trim_end_matches('}')
        );
        let mine = self.leases.replica_id().to_owned();
        let mut replicas: Vec<String> = self
            .pool
            .run(|mut connection| async move {
                let mut found: Vec<String> = Vec::new();
                let mut cursor: u64 = 0;
                loop {
                    let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(500)
                        .query_async(&mut connection)
                        .await?;
                    found.extend(keys);
                    if next == 0 {
                        return Ok(found);
                    }
                    cursor = next;
                }
            })
            .await?
            .into_iter()
            .filter_map(|key| {
                let start = key.rfind('{')? + 1;
                let end = key.rfind('}')?;
                key.get(start..end).map(str::to_owned)
            })
            .filter(|replica| *replica != mine)
            .collect();
        replicas.sort();
        Ok(replicas)
    }

    /// Drains this replica's runs and hands each to a live replica, all at once (see
    /// [`crate::takeover`]); a conversation no replica accepts stays stopped.
    pub(super) async fn hand_over(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
        let owned: Vec<(String, UserScope)> = self
            .owned()
            .iter()
            .map(|(id, o)| (id.clone(), o.scope.clone()))
            .collect();
        let until = tokio::time::Instant::now() + self.drain_deadline;
        let (runs, replicas) = tokio::join!(
            self.local.begin_drain(takeover::LEAVING_REASON),
            self.live_replicas()
        );
        let mut runs: HashMap<String, DrainingRun> = runs
            .into_iter()
            .map(|run| (run.conversation_id.clone(), run))
            .collect();
        let replicas = replicas.unwrap_or_else(|err| {
            tracing::warn!(error = %err, "finding live replicas failed; stopping the conversations instead");
            Vec::new()
        });
        // Each conversation moves as soon as its own agent has left: its events reach the
        // stream and its lease goes before any replica is asked to take it (an upkeep round
        // may have done that already), whatever the other runs still do.
        let moves: Vec<_> = owned.into_iter().enumerate().map(|(turn, (id, scope))| {
            let run = runs.remove(&id);
            let replicas = &replicas;
            async move {
                let mut run = run;
                if let Some(run) = &mut run {
                    run.agent_left(until).await;
                }
                if let Err(err) = self.stop_owned(&scope, &id).await {
                    tracing::warn!(conversation_id = %id, error = %err, "stopping a conversation at shutdown failed");
                }
                // The old sandbox ends while the new owner starts its own (see the
                // module doc of `crate::takeover`), outside the moves' slots.
                let release = run.map(|run| tokio::spawn(run.finished()));
                (self.offer(turn, id, scope, replicas).await, release)
            }
        }).collect();
        // Runs the cluster does not list (none, normally) end too before the replica exits.
        let unlisted = runs.into_values().map(|run| run.ended(until));
        let moving = futures_util::stream::iter(moves)
            .buffer_unordered(HANDOVERS_AT_ONCE)
            .collect::<Vec<_>>();
        let (moved, _) = tokio::join!(moving, futures_util::future::join_all(unlisted));
        let (handed, releases): (Vec<bool>, Vec<_>) = moved.into_iter().unzip();
        for release in releases.into_iter().flatten() {
            let _ = release.await;
        }
        if handed.is_empty() {
            return;
        }
        let handed_count = handed.iter().filter(|handed| **handed).count();
        tracing::info!(
            handed = handed_count,
            stopped = handed.len() - handed_count,
            "handed this replica's conversations over at shutdown"
        );
    }

    /// Asks the live replicas, starting with the `turn`-th (to spread the conversations),
    /// to take a conversation over; true when one did.
    async fn offer(&self, turn: usize, id: String, scope: UserScope, replicas: &[String]) -> bool {
        let order = (0..replicas.len()).map(|i| &replicas[(turn + i) % replicas.len()]);
        for replica in order {
            match self
                .router
                .request(replica, &scope, &id, Op::TakeOver)
                .await
            {
                Ok(Outcome::TakenOver) => {
                    tracing::debug!(conversation_id = %id, replica = %replica, "handed a conversation over at shutdown");
                    return true;
                }
                Ok(other) => {
                    tracing::warn!(conversation_id = %id, replica = %replica, answer = ?other, "a replica refused a conversation at shutdown")
                }
                Err(err) => {
                    tracing::warn!(conversation_id = %id, replica = %replica, error = %err, "handing a conversation over failed")
                }
            }
        }
        tracing::info!(conversation_id = %id, "no replica took the conversation over; it stays stopped");
        false
    }

    /// Claims and resumes the conversations whose owner died (see [`crate::takeover`]),
    /// several at once: a dead replica's hundred conversations must not wait for each
    /// other's resume, and the upkeep round that calls this must come back to renew the
    /// leases this replica holds.
    pub(super) async fn take_over_orphans(&self) {
        if self.shutting_down.load(Ordering::SeqCst) {
            return;
        }
        let orphans = match self.leases.orphans().await {
            Ok(orphans) => orphans,
            Err(err) => {
                tracing::warn!(error = %err, "looking for conversations of dead replicas failed");
                return;
            }
        };
        let evictions: Vec<(UserScope, Vec<String>)> = futures_util::stream::iter(orphans)
            .map(|(id, record)| self.take_over_orphan(id, record))
            .buffer_unordered(TAKEOVERS_AT_ONCE)
            .filter_map(|evicted| async move { evicted })
            .collect()
            .await;
        for (scope, evict) in evictions {
            self.evict(&scope, &evict).await;
        }
    }

    /// Claims and resumes one conversation of a dead replica; the conversations the claim
    /// pushed over its user's limit, to evict once every takeover of the round is done.
    async fn take_over_orphan(
        &self,
        id: String,
        record: OwnerRecord,
    ) -> Option<(UserScope, Vec<String>)> {
        let scope = record.scope();
        let _transition = self.transitions.lock(&id).await;
        if self.owned().contains_key(&id) {
            // Our own lease ran out; the next renewal stops the run here.
            return None;
        }
        let evict = match self
            .leases
            .claim(&id, &scope, ConversationStatus::Starting, AtLimit::Yield)
            .await
        {
            Ok(Claim::Won { evict }) => evict,
            Ok(claim @ (Claim::OverLimit | Claim::AtCapacity)) => {
                let why = at_limit(&claim);
                tracing::info!(conversation_id = %id, dead_replica = %record.replica, why, "not resuming a dead replica's conversation");
                if let Err(err) = self.leases.release(&id, &scope).await {
                    tracing::warn!(conversation_id = %id, error = %err, "releasing a conversation failed; its lease will run out");
                }
                return None;
            }
            // Another replica was faster.
            Ok(Claim::Refused) => return None,
            Err(err) => {
                tracing::warn!(conversation_id = %id, error = %err, "claiming a dead replica's conversation failed");
                return None;
            }
        };
        let resumed = match record.status {
            ConversationStatus::Starting | ConversationStatus::Running => {
                self.resume(&id, &scope, takeover::RESUMED_REASON).await
            }
            other => Err(format!("it was not running ({other:?})")),
        };
        match resumed {
            Ok(()) => tracing::info!(
                conversation_id = %id,
                dead_replica = %record.replica,
                "took over a conversation of a replica that stopped answering"
            ),
            Err(reason) => {
                tracing::info!(conversation_id = %id, dead_replica = %record.replica, reason, "not resuming a dead replica's conversation");
                if let Err(err) = self.leases.release(&id, &scope).await {
                    tracing::warn!(conversation_id = %id, error = %err, "releasing a conversation failed; its lease will run out");
                }
            }
        }
        Some((scope, evict))
    }

    /// Resumes a claimed conversation from the stores: status event first (stored and
    /// published), then the run.
    async fn resume(&self, id: &str, scope: &UserScope, reason: &str) -> Result<(), String> {
        let services = &self.services;
        // Four independent reads, at once: a handover resumes many conversations together.
        let (metadata, settings, secrets, resumption) = tokio::join!(
            services.conversation_store.get(scope, id),
            services.settings_store.load(scope),
            services.secrets_store.load(scope),
            takeover::resumption(&*self.event_store, scope, id),
        );
        let metadata = metadata
            .map_err(|e| format!("reading its metadata failed: {e}"))?
            .ok_or("the conversation no longer exists")?;
        let settings = settings
            .map_err(|e| format!("reading the user's settings failed: {e}"))?
            .ok_or("the user has no settings")?;
        let secrets = secrets
            .map_err(|e| format!("reading the user's secrets failed: {e}"))?
            .unwrap_or_default();
        let event = self
            .event_store
            .append(
                scope,
                id,
                takeover::resumed_event(&resumption.agent_state, reason),
            )
            .await
            .map_err(|e| format!("storing the status event failed: {e}"))?;
        xadd(
            &self.pool,
            &self.keys.events(id),
            &LiveMessage::event(&event),
        )
        .await;
        let conversation_instructions = metadata.conversation_instructions.clone();
        self.run_claimed(
            StartRequest {
                scope: scope.clone(),
                metadata,
                settings,
                secrets,
                conversation_instructions,
                resume_work: resumption.resume_work,
            },
            Some(event.id),
        )
        .await
        .map(|_| ())
        .map_err(|e| format!("starting it failed: {e}"))
    }
}

/// Why a claim refused at a limit cannot resume the conversation.
fn at_limit(claim: &Claim) -> &'static str {
    if *claim == Claim::OverLimit {
        "its user runs the most conversations allowed"
    } else {
        "the cluster runs the most conversations allowed"
    }
}

/// `text` with the `SCAN MATCH` wildcards escaped.
fn glob_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}
