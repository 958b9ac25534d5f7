//! The Redis parts of the clustered manager on their own: the relay's ordering and gap
//! filling, and routing to a replica that is not there.

use async_trait::async_trait;
use openhands_cluster_manager::fanout::{GapSource, relay};
use openhands_cluster_manager::keys::Keys;
use openhands_cluster_manager::lease::{AtLimit, Claim, Leases, Renewal};
use openhands_cluster_manager::routing::{Op, Router};
use openhands_core::StoreError;
use openhands_core::config::RedisConfig;
use openhands_core::conversation::ConversationStatus;
use openhands_core::event::{Event, EventPage, EventQuery, NewEvent};
use openhands_core::extension::{EventStore, LiveMessage, ManagerError};
use openhands_core::scope::UserScope;
use openhands_core::secret::Secret;
use openhands_redis::{RedisPool, redis};
use openhands_test_support::redis::{RedisForTest, redis_for_test};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::broadcast;

fn pool(redis: &RedisForTest) -> RedisPool {
    RedisPool::new(&RedisConfig {
        url: Some(Secret::new(redis.url().to_owned())),
        key_prefix: redis.key_prefix().to_owned(),
        ..RedisConfig::default()
    })
    .expect("pool")
}

fn event(id: u64) -> Event {
    serde_json::from_value(json!({
        "id": id, "timestamp": "2026-11-23T12:00:00", "source": "agent",
        "message": format!("event {id}"), "action": "message",
        "args": {"content": format!("event {id}")}
    }))
    .expect("event")
}

/// Holds events `0..count`.
struct FixedStore {
    count: u64,
}

#[async_trait]
impl EventStore for FixedStore {
    async fn append(&self, _: &UserScope, _: &str, _: NewEvent) -> Result<Event, StoreError> {
        Err(StoreError::Backend("read-only".into()))
    }

    async fn read(
        &self,
        _: &UserScope,
        _: &str,
        query: EventQuery,
    ) -> Result<EventPage, StoreError> {
        let end = query.end_id.map_or(self.count, |e| (e + 1).min(self.count));
        Ok(EventPage {
            events: (query.start_id..end).map(event).collect(),
            has_more: false,
        })
    }

    async fn delete_all(&self, _: &UserScope, _: &str) -> Result<(), StoreError> {
        Ok(())
    }

    async fn health(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

async fn xadd(pool: &RedisPool, stream: &str, id: u64) {
    let stream = stream.to_owned();
    let json = serde_json::to_string(&event(id)).expect("json");
    pool.run(|mut c| async move {
        redis::cmd("XADD")
            .arg(stream)
            .arg("*")
            .arg("event_id")
            .arg(id)
            .arg("json")
            .arg(json)
            .query_async::<String>(&mut c)
            .await
    })
    .await
    .expect("XADD");
}

/// The event ids of the next message (one event, or a batch of what one read returned).
async fn next_ids(rx: &mut broadcast::Receiver<LiveMessage>) -> Vec<u64> {
    match tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
        Ok(Ok(LiveMessage::Event { id, .. })) => vec![id],
        Ok(Ok(LiveMessage::Events(events))) => events.iter().map(|e| e.id).collect(),
        other => panic!("expected events, got {other:?}"),
    }
}

#[tokio::test]
async fn the_relay_passes_events_in_order_dropping_duplicates_and_filling_gaps_from_the_store() {
    let redis = redis_for_test().expect("redis");
    let pool = pool(&redis);
    let stream = Keys::new(pool.key_prefix()).events("c1");
    let (sender, mut rx) = broadcast::channel(64);
    let running = Arc::new(AtomicBool::new(true));
    let keep_going = {
        let running = running.clone();
        move || running.load(Ordering::SeqCst)
    };
    let gaps = GapSource {
        store: Arc::new(FixedStore { count: 6 }),
        scope: UserScope::local(),
        conversation_id: "c1".into(),
    };
    let task = tokio::spawn(relay(
        pool.clone(),
        stream.clone(),
        "0-0".into(),
        gaps,
        sender,
        keep_going,
    ));

    // 2 never made it to the stream, 1 came twice, 4 came before 3's duplicate.
    for id in [0, 1, 1, 3, 2, 4, 3, 5] {
        xadd(&pool, &stream, id).await;
    }
    let mut got = Vec::new();
    while got.len() < 6 {
        got.extend(next_ids(&mut rx).await);
    }
    assert_eq!(got, vec![0, 1, 2, 3, 4, 5]);
    assert!(rx.try_recv().is_err(), "nothing more");

    running.store(false, Ordering::SeqCst);
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the relay ends when asked")
        .expect("relay task");
}

#[tokio::test]
async fn a_command_for_a_replica_that_is_not_listening_fails_at_once_and_says_so() {
    let redis = redis_for_test().expect("redis");
    let router = Router::new(pool(&redis), "asking-replica", Duration::from_secs(10));
    let started = std::time::Instant::now();
    let err = router
        .request("gone-replica", &UserScope::local(), "c1", Op::Stop)
        .await
        .expect_err("nobody listens");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "no wait for the timeout"
    );
    let ManagerError::Failed(message) = err else {
        panic!("unexpected error {err:?}");
    };
    assert!(message.contains("gone-replica"), "{message}");
    assert!(message.contains("not listening"), "{message}");
}

fn user(id: &str) -> UserScope {
    UserScope {
        user_id: Some(id.into()),
        org_id: None,
    }
}

async fn claim(leases: &Leases, id: &str, scope: &UserScope, at_limit: AtLimit) -> Claim {
    leases
        .claim(id, scope, ConversationStatus::Starting, at_limit)
        .await
        .expect("claim")
}

#[tokio::test]
async fn a_claim_over_the_users_limit_evicts_the_least_recently_active_or_yields() {
    let redis = redis_for_test().expect("redis");
    let a = Leases::new(pool(&redis), "replica-a", Duration::from_secs(15), 2);
    let b = Leases::new(pool(&redis), "replica-b", Duration::from_secs(15), 2);
    let (alice, bob) = (user("alice"), user("bob"));

    assert_eq!(
        claim(&a, "c1", &alice, AtLimit::Evict).await,
        Claim::Won { evict: vec![] }
    );
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(
        claim(&b, "c2", &alice, AtLimit::Evict).await,
        Claim::Won { evict: vec![] }
    );
    // Other users do not count.
    assert_eq!(
        claim(&b, "c9", &bob, AtLimit::Evict).await,
        Claim::Won { evict: vec![] }
    );
    tokio::time::sleep(Duration::from_millis(5)).await;
    // c1 was active after c2: c2 goes when a third one starts, on whichever replica.
    a.touch("c1", &alice).await.expect("touch");
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(
        claim(&b, "c3", &alice, AtLimit::Yield).await,
        Claim::OverLimit,
        "a takeover yields instead of evicting"
    );
    assert!(b.release("c3", &alice).await.expect("release"));
    assert_eq!(
        claim(&b, "c3", &alice, AtLimit::Evict).await,
        Claim::Won {
            evict: vec!["c2".to_owned()]
        }
    );
    assert_eq!(
        a.running_of(&alice).await.expect("set"),
        vec!["c1".to_owned(), "c3".to_owned()]
    );
    // A release takes the conversation out of the count.
    assert!(a.release("c1", &alice).await.expect("release"));
    assert_eq!(
        a.running_of(&alice).await.expect("set"),
        vec!["c3".to_owned()]
    );
}

#[tokio::test]
async fn a_record_whose_lease_ran_out_is_an_orphan_until_claimed_again() {
    let redis = redis_for_test().expect("redis");
    let dying = Leases::new(pool(&redis), "dying", Duration::from_millis(50), 3);
    let alive = Leases::new(pool(&redis), "alive", Duration::from_secs(15), 3);
    let scope = user("carol");
    claim(&dying, "c1", &scope, AtLimit::Evict).await;
    claim(&alive, "c2", &scope, AtLimit::Evict).await;
    assert!(alive.orphans().await.expect("orphans").is_empty());

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let orphans = loop {
        let orphans = alive.orphans().await.expect("orphans");
        if !orphans.is_empty() {
            break orphans;
        }
        assert!(tokio::time::Instant::now() < deadline, "no orphan");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(orphans.len(), 1);
    assert_eq!(orphans[0].0, "c1");
    assert_eq!(orphans[0].1.replica, "dying");
    assert_eq!(orphans[0].1.scope(), scope);

    assert!(matches!(
        claim(&alive, "c1", &scope, AtLimit::Yield).await,
        Claim::Won { .. }
    ));
    assert!(alive.orphans().await.expect("orphans").is_empty());
}

/// Deletes every key of the test's prefix, as a Redis restarted without persistence has
/// none.
async fn lose_all_keys(redis: &RedisForTest) {
    let pattern = format!("{}*", redis.key_prefix());
    pool(redis)
        .run(|mut connection| async move {
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(pattern)
                .query_async(&mut connection)
                .await?;
            if !keys.is_empty() {
                redis::cmd("DEL")
                    .arg(keys)
                    .query_async::<()>(&mut connection)
                    .await?;
            }
            Ok(())
        })
        .await
        .expect("delete keys");
}

#[tokio::test]
async fn a_renewal_claims_again_after_redis_lost_its_data_but_not_after_the_lease_ran_out() {
    let redis = redis_for_test().expect("redis");
    let a = Leases::new(pool(&redis), "replica-a", Duration::from_millis(200), 3);
    let b = Leases::new(pool(&redis), "replica-b", Duration::from_secs(15), 3);
    let scope = user("dave");
    let running = ConversationStatus::Running;

    // Redis lost everything: the owner claims its conversation again, counted for its user.
    claim(&a, "c1", &scope, AtLimit::Evict).await;
    assert_eq!(
        a.renew("c1", &scope, running).await.expect("renew"),
        Renewal::Renewed
    );
    lose_all_keys(&redis).await;
    assert_eq!(
        a.renew("c1", &scope, running).await.expect("renew"),
        Renewal::Reclaimed
    );
    assert_eq!(
        a.owner("c1").await.expect("owner").as_deref(),
        Some("replica-a")
    );
    assert_eq!(
        a.running_of(&scope).await.expect("set"),
        vec!["c1".to_owned()]
    );
    assert_eq!(
        a.renew("c1", &scope, running).await.expect("renew"),
        Renewal::Renewed
    );

    // The lease ran out (the owner paused), nobody claimed it: the run must stop, since
    // another replica may have run and released it meanwhile.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(a.owner("c1").await.expect("owner"), None);
    assert_eq!(
        a.renew("c1", &scope, running).await.expect("renew"),
        Renewal::Lost
    );
    assert_eq!(a.owner("c1").await.expect("owner"), None, "left alone");

    // Someone else holds it: lost too, and their lease is untouched.
    claim(&a, "c2", &scope, AtLimit::Evict).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    claim(&b, "c2", &scope, AtLimit::Evict).await;
    assert_eq!(
        a.renew("c2", &scope, running).await.expect("renew"),
        Renewal::Lost
    );
    assert_eq!(
        a.owner("c2").await.expect("owner").as_deref(),
        Some("replica-b")
    );
}
