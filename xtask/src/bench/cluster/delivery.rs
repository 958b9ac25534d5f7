//! Cross-replica delivery delay: from the owner storing an event to a WebSocket watcher
//! connected to *another* replica receiving it.
//!
//! The agent's fan-out measurement ([`Audience`]) spread over the replicas: one
//! conversation, started through the first replica (which then owns it: the replica a
//! `start` reaches claims the conversation), 1,000 watchers connected round-robin to all
//! three, and a task of `think` calls answered by the fake LLM in 10 ms each. An event's
//! path to a watcher elsewhere is: stored by the owner, `XADD`ed to the conversation's
//! Redis stream by its forwarder, read by the other replica's relay (`XREAD BLOCK`),
//! broadcast there and sent on the socket. Watchers on the owner read the same stream
//! through a relay of their own, so their figure is reported too, for comparison.
//!
//! The delay is the receive time minus the event's `timestamp`, as in the fan-out
//! measurement: every process runs on this machine, on one clock. The receive time is
//! when the frame arrived at the watcher's socket; the time the bench read it (after its
//! own queue of 1,000 sockets) is reported too.

use anyhow::{Context, Result, ensure};
use serde::Serialize;

use super::Deployment;
use super::redis::Redis;
use super::replicas::Replicas;
use crate::bench::agent::api;
use crate::bench::agent::fake_llm::FakeLlm;
use crate::bench::agent::fanout::{Audience, Delays, LLM_ANSWER_DELAY};
use crate::bench::client::HttpConn;
use crate::bench::cpu::CpuUsage;
use crate::bench::stats::DelaySummary;

/// What the delivery measurement reports.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Delivery {
    pub replicas: usize,
    pub watchers: usize,
    pub think_calls: u64,
    pub llm_answer_ms: u64,
    /// Deliveries to the watchers on the replicas that do not own the conversation,
    /// until they arrived at the watchers' sockets.
    pub cross_replica: DelaySummary,
    /// The same deliveries until the bench read them.
    pub cross_replica_read: DelaySummary,
    /// Deliveries to the watchers on the owner, for comparison.
    pub owner_replica: DelaySummary,
    /// CPU of all replicas and of the bench during the measured task.
    pub usage: CpuUsage,
}

pub async fn measure(
    replicas: &Replicas,
    deployment: &Deployment,
    redis: &mut Redis,
    llm: &FakeLlm,
    watchers: usize,
    think_calls: u64,
) -> Result<Delivery> {
    let addrs = replicas.addrs()?;
    let first = *addrs.first().context("no replica")?;
    llm.set_think_budget(0);
    let id = api::create_conversation(&mut HttpConn::connect(first).await?)
        .await
        .context("creating the watched conversation")?;
    let owner = owner_index(replicas, deployment, redis, &id)?;
    let audience = Audience::gather(&addrs, &id, watchers).await?;
    let (delays, usage) = audience
        .measure_task(llm, think_calls, &replicas.pids()?)
        .await?;
    api::stop_conversation(first, &id)
        .await
        .context("stopping the watched conversation")?;
    let (on_owner, elsewhere) = split_by_owner(delays, owner);
    let cross_replica = DelaySummary::of(elsewhere.arrived);
    ensure!(
        cross_replica.deliveries > 0,
        "no watcher on another replica than the owner received an event"
    );
    Ok(Delivery {
        replicas: addrs.len(),
        watchers,
        think_calls,
        llm_answer_ms: u64::try_from(LLM_ANSWER_DELAY.as_millis()).unwrap_or(u64::MAX),
        cross_replica,
        cross_replica_read: DelaySummary::of(elsewhere.read),
        owner_replica: DelaySummary::of(on_owner.arrived),
        usage,
    })
}

/// The index of the replica whose id the conversation's owner key holds.
pub fn owner_index(
    replicas: &Replicas,
    deployment: &Deployment,
    redis: &mut Redis,
    conversation_id: &str,
) -> Result<usize> {
    let owner = redis
        .get(&deployment.owner_key(conversation_id))?
        .with_context(|| format!("conversation {conversation_id} has no owner in Redis"))?;
    replicas.index_of(&owner).with_context(|| {
        format!(
            "conversation {conversation_id} is owned by {owner}, which is not a replica of this run"
        )
    })
}

/// The owner's watchers' delays and everybody else's, from the delays per replica.
fn split_by_owner(delays: Vec<Delays>, owner: usize) -> (Delays, Delays) {
    let mut on_owner = Delays::default();
    let mut elsewhere = Delays::default();
    for (index, replica_delays) in delays.into_iter().enumerate() {
        if index == owner {
            on_owner = replica_delays;
        } else {
            elsewhere.extend(replica_delays);
        }
    }
    (on_owner, elsewhere)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_other_replicas_count_as_cross_replica() {
        let replica = |arrived: &[u32]| Delays {
            arrived: arrived.to_vec(),
            read: arrived.iter().map(|d| d + 500).collect(),
        };
        let delays = vec![
            replica(&[9_000, 9_000]),
            replica(&[1_000, 2_000]),
            replica(&[3_000]),
        ];
        let (owner, cross) = split_by_owner(delays, 0);
        assert_eq!(owner.arrived, [9_000, 9_000]);
        assert_eq!(cross.arrived, [1_000, 2_000, 3_000]);
        assert_eq!(cross.read, [1_500, 2_500, 3_500]);
        let (owner, cross) = split_by_owner(vec![replica(&[1_000]), replica(&[5_000])], 1);
        assert_eq!((owner.arrived, cross.arrived), (vec![5_000], vec![1_000]));
    }
}
