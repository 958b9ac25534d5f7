//! Hardening item 5, "limits that hold", across replicas: `max_concurrent_conversations`
//! counts a user's running conversations in all of their orgs, and
//! `max_running_conversations` caps the whole cluster, counted in the claim script itself
//! (atomic across replicas) and never enforced by stopping another user's work.
//!
//! The lease tests drive `Leases` of two replicas on one Redis; the manager test runs two
//! `ClusterConversationManager`s sharing stores and Redis, with agents answered by a
//! scripted LLM (`finish`, so each idles, still running) in a sandbox stand-in whose tool
//! server only says hello.

use openhands_cluster_manager::ClusterConversationManager;
use openhands_cluster_manager::lease::{AtLimit, Claim, Leases};
use openhands_core::config::Config;
use openhands_core::conversation::ConversationStatus;
use openhands_core::crypto::Cipher;
use openhands_core::extension::{ConversationManager, ManagerError};
use openhands_core::registry::{PluginContext, Services};
use openhands_core::scope::UserScope;
use openhands_runtime::testing::{HelloOnlySandbox, ScriptedLlm, start_request};
use openhands_test_support::redis::redis_for_test;
use std::sync::Arc;
use std::time::Duration;

mod common;
use common::{WAIT, logs, pool};

const LEASE: Duration = Duration::from_secs(15);

fn in_org(user: &str, org: &str) -> UserScope {
    UserScope {
        user_id: Some(user.into()),
        org_id: Some(org.into()),
    }
}

async fn claim(leases: &Leases, id: &str, scope: &UserScope) -> Claim {
    leases
        .claim(id, scope, ConversationStatus::Starting, AtLimit::Evict)
        .await
        .expect("claim")
}

#[tokio::test]
async fn a_users_claims_in_two_orgs_on_two_replicas_share_one_limit() {
    let redis = redis_for_test().expect("redis");
    let a = Leases::new(pool(&redis), "replica-a", LEASE, 2);
    let b = Leases::new(pool(&redis), "replica-b", LEASE, 2);
    let (org_a, org_b) = (in_org("ann", "org-a"), in_org("ann", "org-b"));

    assert_eq!(claim(&a, "c1", &org_a).await, Claim::Won { evict: vec![] });
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(claim(&b, "c2", &org_b).await, Claim::Won { evict: vec![] });
    tokio::time::sleep(Duration::from_millis(5)).await;
    // The third, in either org and on either replica, pushes out the least recently active.
    assert_eq!(
        claim(&b, "c3", &org_b).await,
        Claim::Won {
            evict: vec!["c1".to_owned()]
        }
    );
    assert_eq!(
        a.running_of(&org_a).await.expect("set"),
        b.running_of(&org_b).await.expect("set"),
        "one set for the user, whatever the org"
    );
    assert_eq!(
        a.running_of(&in_org("ann", "org-z")).await.expect("set"),
        vec!["c2".to_owned(), "c3".to_owned()]
    );
}

#[tokio::test]
async fn at_the_cluster_cap_another_users_claim_is_refused_and_nothing_is_evicted() {
    let redis = redis_for_test().expect("redis");
    let a = Leases::new(pool(&redis), "replica-a", LEASE, 3).with_global_cap(2);
    let b = Leases::new(pool(&redis), "replica-b", LEASE, 3).with_global_cap(2);

    assert_eq!(
        claim(&a, "c1", &in_org("ann", "o")).await,
        Claim::Won { evict: vec![] }
    );
    assert_eq!(
        claim(&b, "c2", &in_org("bob", "o")).await,
        Claim::Won { evict: vec![] }
    );
    // Carol, with nothing running, and Ann, under her own limit, are both refused.
    assert_eq!(
        claim(&b, "c3", &in_org("carol", "o")).await,
        Claim::AtCapacity
    );
    assert!(
        b.release("c3", &in_org("carol", "o"))
            .await
            .expect("release")
    );
    assert_eq!(
        claim(&a, "c4", &in_org("ann", "o")).await,
        Claim::AtCapacity
    );
    assert!(a.release("c4", &in_org("ann", "o")).await.expect("release"));
    let mut running = a.running_in_cluster().await.expect("cluster set");
    running.sort();
    assert_eq!(running, ["c1", "c2"], "nobody's run was given up");

    // A release makes room, on any replica.
    assert!(a.release("c1", &in_org("ann", "o")).await.expect("release"));
    assert_eq!(
        claim(&b, "c3", &in_org("carol", "o")).await,
        Claim::Won { evict: vec![] }
    );
}

#[tokio::test]
async fn at_the_cluster_cap_a_user_at_their_own_limit_swaps_their_own_run() {
    let redis = redis_for_test().expect("redis");
    let a = Leases::new(pool(&redis), "replica-a", LEASE, 1).with_global_cap(2);
    let b = Leases::new(pool(&redis), "replica-b", LEASE, 1).with_global_cap(2);
    claim(&a, "c1", &in_org("ann", "org-a")).await;
    claim(&b, "c2", &in_org("bob", "o")).await;
    assert_eq!(
        claim(&b, "c3", &in_org("ann", "org-b")).await,
        Claim::Won {
            evict: vec!["c1".to_owned()]
        },
        "Ann's own run makes room"
    );
}

#[tokio::test]
async fn concurrent_claims_on_two_replicas_never_exceed_the_cluster_cap() {
    let redis = redis_for_test().expect("redis");
    let a = Leases::new(pool(&redis), "replica-a", LEASE, 3).with_global_cap(3);
    let b = Leases::new(pool(&redis), "replica-b", LEASE, 3).with_global_cap(3);
    let scopes: Vec<UserScope> = (0..12).map(|i| in_org(&format!("user-{i}"), "o")).collect();
    let claims = scopes.iter().enumerate().map(|(i, scope)| {
        let leases = if i % 2 == 0 { &a } else { &b };
        async move { claim(leases, &format!("c{i}"), scope).await }
    });
    let results = futures_util::future::join_all(claims).await;
    let won = results
        .iter()
        .filter(|c| matches!(c, Claim::Won { .. }))
        .count();
    let refused = results.iter().filter(|c| **c == Claim::AtCapacity).count();
    assert_eq!((won, refused), (3, 9), "{results:?}");
    assert_eq!(a.running_in_cluster().await.expect("set").len(), 3);
}

#[tokio::test]
async fn a_dead_replicas_runs_leave_the_cluster_count_a_lease_later() {
    let redis = redis_for_test().expect("redis");
    let dying =
        Leases::new(pool(&redis), "dying", Duration::from_millis(100), 3).with_global_cap(1);
    let alive = Leases::new(pool(&redis), "alive", LEASE, 3).with_global_cap(1);
    claim(&dying, "c1", &in_org("ann", "o")).await;
    assert_eq!(
        claim(&alive, "c2", &in_org("bob", "o")).await,
        Claim::AtCapacity
    );
    assert!(
        alive
            .release("c2", &in_org("bob", "o"))
            .await
            .expect("release")
    );
    // No renewal comes: after its lease, the dead replica's run no longer counts.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        claim(&alive, "c2", &in_org("bob", "o")).await,
        Claim::Won { evict: vec![] }
    );
}

#[tokio::test]
async fn a_failed_run_leaves_the_cluster_count_at_its_next_renewal() {
    let redis = redis_for_test().expect("redis");
    let a = Leases::new(pool(&redis), "replica-a", LEASE, 3).with_global_cap(1);
    let (ann, bob) = (in_org("ann", "o"), in_org("bob", "o"));
    claim(&a, "c1", &ann).await;
    assert_eq!(claim(&a, "c2", &bob).await, Claim::AtCapacity);
    assert!(a.release("c2", &bob).await.expect("release"));
    // Its run failed: the lease is kept (a start replaces it) but it holds no sandbox.
    a.renew("c1", &ann, ConversationStatus::Error)
        .await
        .expect("renew");
    assert_eq!(claim(&a, "c2", &bob).await, Claim::Won { evict: vec![] });
}

openhands_core::register_plugin!(
    openhands_core::extension::Sandbox,
    "test.hello_only",
    "Test only: a tool server that says hello and nothing else",
    |ctx| Ok(Arc::new(HelloOnlySandbox))
);

/// Two replicas sharing stores (OSS files in one directory) and one Redis prefix.
struct TwoReplicas {
    a: ClusterConversationManager,
    b: ClusterConversationManager,
    services: Services,
    llm: ScriptedLlm,
    _dir: tempfile::TempDir,
}

impl TwoReplicas {
    async fn start(
        redis: &openhands_test_support::redis::RedisForTest,
        per_user: u32,
        cap: u32,
    ) -> Self {
        logs();
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config {
            file_store_path: dir.path().display().to_string(),
            max_concurrent_conversations: per_user,
            max_running_conversations: cap,
            ..Config::default()
        };
        config.plugins.sandbox = Some("test.hello_only".into());
        config.sandbox.close_delay = 0;
        let config = Arc::new(config);
        let ctx = PluginContext {
            config: config.clone(),
            data_dir: dir.path().to_path_buf(),
            cipher: Arc::new(Cipher::new(vec![("k1".into(), [7; 32])]).expect("cipher")),
            services: None,
            shared: Default::default(),
        };
        let services = openhands_core::registry::resolve(&ctx)
            .await
            .expect("services")
            .services;
        let replica = |name: &str| {
            ClusterConversationManager::start(
                config.clone(),
                services.clone(),
                pool(redis),
                name.to_owned(),
            )
        };
        let (a, b) = tokio::join!(replica("replica-a"), replica("replica-b"));
        Self {
            a,
            b,
            services,
            llm: ScriptedLlm::start(Vec::new()).await.expect("scripted LLM"),
            _dir: dir,
        }
    }

    async fn start_on(
        &self,
        replica: &ClusterConversationManager,
        scope: &UserScope,
    ) -> (Result<ConversationStatus, ManagerError>, String) {
        let request = start_request(scope, &self.llm);
        let id = request.metadata.conversation_id.clone();
        self.services
            .conversation_store
            .save(scope, &request.metadata)
            .await
            .expect("metadata stored");
        let started = replica.start(request).await;
        (started, id)
    }

    /// Whether each `(scope, id)` runs, as replica A answers (statuses of B's runs come
    /// from Redis).
    async fn running(&self, runs: &[(&UserScope, &str)]) -> Vec<bool> {
        let mut out = Vec::new();
        for (scope, id) in runs {
            let statuses = self
                .a
                .statuses(scope, &[(*id).to_owned()])
                .await
                .expect("statuses");
            out.push(statuses.contains_key(*id));
        }
        out
    }

    async fn wait_until(&self, runs: &[(&UserScope, &str)], want: &[bool]) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let got = self.running(runs).await;
            if got == want {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "expected running {want:?}, got {got:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test]
async fn two_replicas_hold_the_per_user_limit_across_orgs_and_the_cluster_cap() {
    let redis = redis_for_test().expect("redis");
    let cluster = TwoReplicas::start(&redis, 2, 3).await;
    let (ann_a, ann_b, ann_c) = (
        in_org("ann", "org-a"),
        in_org("ann", "org-b"),
        in_org("ann", "org-c"),
    );
    let bob = in_org("bob", "org-x");

    let (started, first) = cluster.start_on(&cluster.b, &ann_b).await;
    started.expect("first");
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (started, second) = cluster.start_on(&cluster.a, &ann_a).await;
    started.expect("second");
    // Ann's third, in a third org on A, stops her least recently active one, on B.
    let (started, third) = cluster.start_on(&cluster.a, &ann_c).await;
    started.expect("third");
    cluster
        .wait_until(
            &[(&ann_b, &first), (&ann_a, &second), (&ann_c, &third)],
            &[false, true, true],
        )
        .await;

    // Bob fills the cluster to its cap of 3; Carol's start is refused, nobody is stopped.
    let (started, bob_id) = cluster.start_on(&cluster.b, &bob).await;
    started.expect("bob");
    let carol = in_org("carol", "org-y");
    let (refused, carol_id) = cluster.start_on(&cluster.b, &carol).await;
    assert!(
        matches!(refused, Err(ManagerError::CapacityReached { limit: 3 })),
        "{refused:?}"
    );
    let (refused, _) = cluster.start_on(&cluster.a, &carol).await;
    assert!(
        matches!(refused, Err(ManagerError::CapacityReached { .. })),
        "{refused:?}"
    );
    // The pre-check before anything is created agrees on both replicas, and still admits
    // Ann, who would swap out one of her own.
    for replica in [&cluster.a, &cluster.b] {
        assert!(matches!(
            replica.admits(&carol).await,
            Err(ManagerError::CapacityReached { limit: 3 })
        ));
        replica.admits(&ann_a).await.expect("ann swaps her own");
    }
    cluster
        .wait_until(
            &[
                (&ann_a, &second),
                (&ann_c, &third),
                (&bob, &bob_id),
                (&carol, &carol_id),
            ],
            &[true, true, true, false],
        )
        .await;
    let counted = Leases::new(pool(&redis), "observer", LEASE, 2)
        .running_in_cluster()
        .await
        .expect("cluster set");
    assert_eq!(counted.len(), 3, "{counted:?}");
}
