//! A conversation whose run failed on one replica is started again through another: the
//! failed run is replaced there, as `start` replaces a failed run on a single server,
//! instead of the other replica answering the owner's `ERROR` for as long as it lives.

use openhands_runtime::testing::ScriptedLlm;
use openhands_test_support::git::GitHttpServer;
use openhands_test_support::redis::redis_for_test;
use openhands_test_support::{TestServer, json_body};
use serde_json::json;

// Named so its registration is linked into this test binary.
use openhands_cluster_manager as _;

mod common;
use common::*;

async fn last_event_id(server: &TestServer, id: &str) -> i64 {
    server
        .all_events(id)
        .await
        .last()
        .and_then(|e| e["id"].as_i64())
        .expect("stored events")
}

#[tokio::test]
async fn a_run_that_failed_on_one_replica_starts_again_through_another() {
    let redis = redis_for_test().expect("redis");
    let database = openhands_test_support::sqlite::fresh_database().expect("sqlite");
    let llm = ScriptedLlm::start(vec![finish()])
        .await
        .expect("scripted LLM");
    // Its repository does not exist yet: the clone fails and the run on A ends in ERROR,
    // which B lists.
    let origin = tempfile::tempdir().expect("dir");
    let git_host = GitHttpServer::serve(origin.path()).await;
    let a = TestServer::spawn_with(|c| {
        clustered(c, database.url(), &redis);
        git_host.allow_in(c);
    })
    .await;
    let b = TestServer::spawn_with(|c| {
        clustered(c, database.url(), &redis);
        git_host.allow_in(c);
    })
    .await;
    store_llm_settings(&a, &llm).await;
    let url = git_host.url("repo.git");
    let res = a
        .post_json(
            "/api/conversations",
            &json!({"repository": url, "selected_branch": "main", "initial_user_msg": "go"}),
        )
        .await;
    assert_eq!(res.status(), 200, "creating the conversation");
    let id = json_body(res).await["conversation_id"]
        .as_str()
        .expect("id")
        .to_owned();
    a.wait_for_agent_state(&id, "error", -1, WAIT).await;
    wait_for_status(&b, &id, "ERROR").await;
    assert!(llm.requests().is_empty(), "the agent never ran");

    // With the repository there, a start through B replaces the failed run.
    openhands_test_support::git::bare_repository(origin.path());
    let before = last_event_id(&a, &id).await;
    let res = b
        .post_json(&format!("/api/conversations/{id}/start"), &json!({}))
        .await;
    assert_eq!(res.status(), 200, "starting again through B");
    assert_eq!(
        json_body(res).await["conversation_status"],
        "STARTING",
        "B started a new run instead of answering the failed one's status"
    );
    wait_for_status(&a, &id, "RUNNING").await;
    wait_for_status(&b, &id, "RUNNING").await;

    // The new run waits for input, as a restarted run does on one server; a message sent
    // through A reaches it and it works the turn through.
    let mut watcher = connect(&a, &id, before).await;
    let (live, _) = message_until_finished(&mut watcher, "go on", before).await;
    assert_eq!(live[0]["args"]["content"], "go on");
    assert_eq!(llm.requests().len(), 1, "the new run called the LLM once");
}
