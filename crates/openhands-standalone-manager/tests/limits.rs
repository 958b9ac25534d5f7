//! Hardening item 5, "limits that hold", on one server: `max_concurrent_conversations` counts
//! a user's running conversations across all of their organizations, and
//! `max_running_conversations` caps the server without ever stopping another user's work.
//!
//! The manager runs real agent tasks against a scripted LLM (every call answers `finish`, so
//! each agent finishes and idles, still running). The sandbox is a stand-in whose tool
//! server says hello and nothing else: the agents here never call a tool.

use openhands_core::config::Config;
use openhands_core::conversation::ConversationStatus;
use openhands_core::crypto::Cipher;
use openhands_core::extension::{ConversationManager, ManagerError};
use openhands_core::registry::{PluginContext, Services};
use openhands_core::scope::UserScope;
use openhands_runtime::testing::{HelloOnlySandbox, ScriptedLlm, start_request};
use openhands_standalone_manager::StandaloneConversationManager;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

openhands_core::register_plugin!(
    openhands_core::extension::Sandbox,
    "test.hello_only",
    "Test only: a tool server that says hello and nothing else",
    |ctx| Ok(Arc::new(HelloOnlySandbox))
);

/// A manager with `adjust`ed limits over the OSS stores in a fresh directory.
struct Harness {
    manager: StandaloneConversationManager,
    services: Services,
    llm: ScriptedLlm,
    _dir: tempfile::TempDir,
}

impl Harness {
    async fn new(adjust: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config {
            file_store_path: dir.path().display().to_string(),
            ..Config::default()
        };
        config.plugins.sandbox = Some("test.hello_only".into());
        config.sandbox.close_delay = 0;
        adjust(&mut config);
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
            .expect("OSS services")
            .services;
        let llm = ScriptedLlm::start(Vec::new()).await.expect("scripted LLM");
        Self {
            manager: StandaloneConversationManager::new(config, services.clone()),
            services,
            llm,
            _dir: dir,
        }
    }

    /// Starts a new conversation of `scope`; the manager's answer and the id.
    async fn start(&self, scope: &UserScope) -> (Result<ConversationStatus, ManagerError>, String) {
        let request = start_request(scope, &self.llm);
        let id = request.metadata.conversation_id.clone();
        self.services
            .conversation_store
            .save(scope, &request.metadata)
            .await
            .expect("metadata stored");
        let started = self.manager.start(request).await;
        (started, id)
    }

    async fn start_ok(&self, scope: &UserScope) -> String {
        let (started, id) = self.start(scope).await;
        started.expect("started");
        id
    }

    /// The status of each `(scope, id)`; `None` when not running.
    async fn statuses(&self, runs: &[(&UserScope, &str)]) -> Vec<Option<ConversationStatus>> {
        let mut out = Vec::new();
        for (scope, id) in runs {
            let found: HashMap<String, ConversationStatus> = self
                .manager
                .statuses(scope, &[(*id).to_owned()])
                .await
                .expect("statuses");
            out.push(found.get(*id).copied());
        }
        out
    }

    /// Waits until every listed run is `RUNNING` (its agent finished its turn and idles).
    async fn wait_running(&self, runs: &[(&UserScope, &str)]) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let statuses = self.statuses(runs).await;
            if statuses
                .iter()
                .all(|s| *s == Some(ConversationStatus::Running))
            {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "not all running: {statuses:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn in_org(user: &str, org: &str) -> UserScope {
    UserScope {
        user_id: Some(user.into()),
        org_id: Some(org.into()),
    }
}

#[tokio::test]
async fn a_user_with_two_orgs_runs_at_most_the_limit_in_total_losing_the_least_recently_active() {
    let harness = Harness::new(|c| c.max_concurrent_conversations = 2).await;
    let (org_a, org_b) = (in_org("ann", "org-a"), in_org("ann", "org-b"));

    let first = harness.start_ok(&org_a).await;
    harness.wait_running(&[(&org_a, &first)]).await;
    let second = harness.start_ok(&org_b).await;
    harness.wait_running(&[(&org_b, &second)]).await;
    // A third, in either org, stops the least recently active one, in the other org.
    let third = harness.start_ok(&org_b).await;
    harness.wait_running(&[(&org_b, &third)]).await;

    let statuses = harness
        .statuses(&[(&org_a, &first), (&org_b, &second), (&org_b, &third)])
        .await;
    assert_eq!(
        statuses,
        [
            None,
            Some(ConversationStatus::Running),
            Some(ConversationStatus::Running)
        ],
        "ann runs two in total, the oldest (in org-a) stopped"
    );
}

#[tokio::test]
async fn another_users_conversations_do_not_count_against_the_per_user_limit() {
    let harness = Harness::new(|c| c.max_concurrent_conversations = 1).await;
    let (ann, bob) = (in_org("ann", "org-a"), in_org("bob", "org-a"));
    let ann_id = harness.start_ok(&ann).await;
    let bob_id = harness.start_ok(&bob).await;
    harness
        .wait_running(&[(&ann, &ann_id), (&bob, &bob_id)])
        .await;
}

#[tokio::test]
async fn at_the_global_cap_another_users_start_is_refused_and_nothing_is_evicted() {
    let harness = Harness::new(|c| {
        c.max_concurrent_conversations = 3;
        c.max_running_conversations = 2;
    })
    .await;
    let (ann, bob) = (in_org("ann", "org-a"), in_org("bob", "org-b"));
    let ann_1 = harness.start_ok(&ann).await;
    let ann_2 = harness.start_ok(&ann).await;
    harness
        .wait_running(&[(&ann, &ann_1), (&ann, &ann_2)])
        .await;

    let (refused, bob_id) = harness.start(&bob).await;
    assert!(
        matches!(refused, Err(ManagerError::CapacityReached { limit: 2 })),
        "{refused:?}"
    );
    // Ann under her own limit is refused too: the cap holds for everyone.
    let (also_refused, _) = harness.start(&ann).await;
    assert!(
        matches!(also_refused, Err(ManagerError::CapacityReached { .. })),
        "{also_refused:?}"
    );
    assert_eq!(
        harness
            .statuses(&[(&ann, &ann_1), (&ann, &ann_2), (&bob, &bob_id)])
            .await,
        [
            Some(ConversationStatus::Running),
            Some(ConversationStatus::Running),
            None
        ],
        "Ann's conversations keep running; Bob's did not start"
    );

    // Once one stops, there is room again.
    harness.manager.stop(&ann, &ann_1).await.expect("stop");
    let bob_id = harness.start_ok(&bob).await;
    harness.wait_running(&[(&bob, &bob_id)]).await;
}

#[tokio::test]
async fn at_the_global_cap_a_user_at_their_own_limit_still_swaps_their_own_conversation() {
    let harness = Harness::new(|c| {
        c.max_concurrent_conversations = 1;
        c.max_running_conversations = 2;
    })
    .await;
    let (ann, bob) = (in_org("ann", "org-a"), in_org("bob", "org-b"));
    let ann_1 = harness.start_ok(&ann).await;
    let bob_1 = harness.start_ok(&bob).await;
    harness
        .wait_running(&[(&ann, &ann_1), (&bob, &bob_1)])
        .await;

    // Ann's new one replaces her old one: the total stays at the cap.
    let ann_2 = harness.start_ok(&in_org("ann", "org-c")).await;
    harness
        .wait_running(&[(&in_org("ann", "org-c"), &ann_2), (&bob, &bob_1)])
        .await;
    assert_eq!(harness.statuses(&[(&ann, &ann_1)]).await, [None]);
}
