//! GitLab webhooks end to end: GitLab's documented Issue Hook and Note Hook payloads
//! (`tests/fixtures`) delivered with the token and custom headers of a hook installed by the
//! crate's installer, to a running SaaS server (SQLite), conversations on the scripted LLM,
//! and a fake GitLab API that checks the tokens and records every call.

mod common;

use common::{ALICE_TOKEN, Env, InstalledHook, MR_BRANCH, PROJECT_ID, PUBLIC_URL, text};
use openhands_core::extension::IntegrationRegistration;
use openhands_test_support::json_body;
use serde_json::json;
use std::time::Duration;

// The server under test must link the provider crate for its registration to exist.
use openhands_gitlab as _;

#[test]
fn the_gitlab_integration_is_registered() {
    let names: Vec<_> = IntegrationRegistration::registered()
        .iter()
        .map(|r| r.name)
        .collect();
    assert!(names.contains(&"gitlab"), "{names:?}");
}

#[tokio::test]
async fn a_note_mentioning_openhands_on_an_issue_starts_a_conversation_and_posts_the_outcome() {
    let env = Env::ready().await;
    let payload = env.payload("note_on_issue");

    let res = env.deliver("e-note-1", &payload).await;
    assert_eq!(res.status(), 202);
    let row = env.wait_for("e-note-1", "done").await;
    let conversation_id = row.conversation_id.clone().expect("conversation id");
    assert!(!row.headers.contains("x-gitlab-token"), "{}", row.headers);
    assert_eq!(
        row.job_summary.as_deref(),
        Some("acme/app#17 note by alice")
    );

    let notes = env.wait_for_notes(1).await;
    assert_eq!(
        notes[0].path,
        format!("/api/v4/projects/{PROJECT_ID}/issues/17/notes")
    );
    assert_eq!(notes[0].token, ALICE_TOKEN, "posted as the asker");
    assert_eq!(notes[0].body["internal"], false);
    let note = text(&notes[0]);
    assert!(note.contains("finished"), "{note}");
    assert!(
        note.contains(&format!("{PUBLIC_URL}/conversations/{conversation_id}")),
        "{note}"
    );
    assert!(
        note.contains(&format!("{}/acme/app/-/merge_requests/3", env.gitlab.url)),
        "{note}"
    );
    // The agent's message said "@openhands": posted as the user, it must not ask again.
    assert!(
        !openhands_core::resolver::mentions(note, "@openhands"),
        "{note}"
    );
    let conversations = env.conversations().await;
    assert_eq!(conversations.len(), 1, "{conversations:#?}");
    assert_eq!(conversations[0]["trigger"], "resolver");
    assert_eq!(conversations[0]["selected_branch"], "main");
    let calls = env.gitlab.calls();
    assert!(
        calls.iter().any(|c| c.path == "/api/v4/user"),
        "the link was proven: {calls:#?}"
    );
    assert!(
        calls
            .iter()
            .any(|c| c.path == format!("/api/v4/projects/{PROJECT_ID}/members/all/101")),
        "the role was checked: {calls:#?}"
    );
    env.assert_calls_were_expected();
}

#[tokio::test]
async fn a_duplicate_delivery_is_ignored() {
    let env = Env::ready().await;
    let payload = env.payload("note_on_issue");
    assert_eq!(env.deliver("e-dup", &payload).await.status(), 202);
    let res = env.deliver("e-dup", &payload).await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        json_body(res).await,
        json!({"message": "duplicate delivery ignored"})
    );
    env.wait_for("e-dup", "done").await;
    env.wait_for_notes(1).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(env.rows().await.len(), 1);
    assert_eq!(env.conversations().await.len(), 1);
    assert_eq!(env.gitlab.notes().len(), 1, "answered once");
}

#[tokio::test]
async fn a_labelled_issue_starts_a_conversation() {
    let env = Env::ready().await;
    let payload = env.payload("issue_labelled");
    assert_eq!(env.deliver("e-label", &payload).await.status(), 202);
    let row = env.wait_for("e-label", "done").await;
    assert_eq!(
        row.job_summary.as_deref(),
        Some("acme/app#23 labelled: New API: create/update/delete file")
    );
    let notes = env.wait_for_notes(1).await;
    assert_eq!(
        notes[0].path,
        format!("/api/v4/projects/{PROJECT_ID}/issues/23/notes")
    );
    assert!(text(&notes[0]).contains("finished"), "{}", text(&notes[0]));
    assert_eq!(env.conversations().await.len(), 1);
    env.assert_calls_were_expected();
}

#[tokio::test]
async fn a_wrong_or_missing_token_is_refused_and_nothing_is_stored() {
    let env = Env::ready().await;
    let payload = env.payload("note_on_issue");
    let hook = env.hook.clone().expect("hook");
    let refused = [
        InstalledHook {
            token: "not-the-token".into(),
            ..hook.clone()
        },
        InstalledHook {
            token: String::new(),
            ..hook.clone()
        },
        InstalledHook {
            user_id: "someone-else".into(),
            ..hook.clone()
        },
        InstalledHook {
            webhook_id: "8a1f5a8e-0a57-4d0e-9d5e-5f8b8d6f0c33".into(),
            ..hook.clone()
        },
        InstalledHook {
            webhook_id: "not-a-uuid".into(),
            ..hook.clone()
        },
    ];
    for (n, wrong) in refused.iter().enumerate() {
        let res = env.deliver_as(wrong, &format!("e-bad-{n}"), &payload).await;
        assert_eq!(res.status(), 403, "{wrong:?}");
        assert_eq!(json_body(res).await["error"]["code"], "bad_signature");
    }
    // Without the token header at all.
    let res = env
        .server
        .client
        .post(env.server.url("/integration/gitlab/events"))
        .header("X-Gitlab-Event", "Note Hook")
        .header("X-Gitlab-Event-UUID", "e-none")
        .header("X-OpenHands-Webhook-ID", hook.webhook_id.as_str())
        .header("X-OpenHands-User-ID", hook.user_id.as_str())
        .body(payload.to_string())
        .send()
        .await
        .expect("POST webhook");
    assert_eq!(res.status(), 403);
    assert!(env.rows().await.is_empty());
    assert!(env.gitlab.notes().is_empty());
}

#[tokio::test]
async fn a_reporter_is_told_and_nothing_starts() {
    let env = Env::ready().await;
    env.gitlab
        .with_state(|s| s.members.insert((PROJECT_ID, common::ALICE_ID), 20));
    let payload = env.payload("note_on_issue");
    assert_eq!(env.deliver("e-reporter", &payload).await.status(), 202);
    let row = env.wait_for("e-reporter", "ignored").await;
    assert!(
        row.job_summary
            .as_deref()
            .is_some_and(|s| s.contains("below Developer")),
        "{row:?}"
    );
    let notes = env.wait_for_notes(1).await;
    assert_eq!(
        notes[0].path,
        format!("/api/v4/projects/{PROJECT_ID}/issues/17/notes")
    );
    let note = text(&notes[0]);
    assert!(
        note.contains("@alice") && note.contains("the Developer role"),
        "{note}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(env.conversations().await.is_empty());
    assert_eq!(env.gitlab.notes().len(), 1);
}

#[tokio::test]
async fn an_inline_merge_request_note_runs_on_the_source_branch_and_is_answered_in_its_discussion()
{
    let env = Env::ready().await;
    let payload = env.payload("note_on_merge_request_diff");
    let discussion = payload["object_attributes"]["discussion_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(env.deliver("e-inline", &payload).await.status(), 202);
    let row = env.wait_for("e-inline", "done").await;
    assert_eq!(
        row.job_summary.as_deref(),
        Some("acme/app!1 inline note by alice")
    );
    let conversations = env.conversations().await;
    assert_eq!(conversations.len(), 1);
    assert_eq!(conversations[0]["selected_branch"], MR_BRANCH);
    let notes = env.wait_for_notes(1).await;
    assert_eq!(
        notes[0].path,
        format!("/api/v4/projects/{PROJECT_ID}/merge_requests/1/discussions/{discussion}/notes")
    );
    env.assert_calls_were_expected();
}

#[tokio::test]
async fn a_second_note_on_the_same_issue_continues_the_same_conversation() {
    let env = Env::ready().await;
    let first = env.payload("note_on_issue");
    env.deliver("e-first", &first).await;
    let started = env.wait_for("e-first", "done").await;
    let conversation_id = started.conversation_id.clone().expect("conversation");
    env.wait_for_notes(1).await;

    let mut again = env.payload("note_on_issue");
    again["object_attributes"]["id"] = json!(1299);
    again["object_attributes"]["note"] = json!("@openhands also update the docs");
    assert_eq!(env.deliver("e-second", &again).await.status(), 202);
    let second = env.wait_for("e-second", "done").await;
    assert_eq!(
        second.conversation_id.as_deref(),
        Some(conversation_id.as_str())
    );
    let notes = env.wait_for_notes(2).await;
    assert_eq!(
        notes[1].path,
        format!("/api/v4/projects/{PROJECT_ID}/issues/17/notes")
    );
    assert!(text(&notes[1]).contains("finished"), "{}", text(&notes[1]));
    assert_eq!(env.conversations().await.len(), 1, "no second conversation");
}

#[tokio::test]
async fn an_email_address_in_a_note_starts_nothing() {
    let env = Env::ready().await;
    let mut payload = env.payload("note_on_issue");
    payload["object_attributes"]["note"] = json!("please write to user@openhands.com about it");
    assert_eq!(env.deliver("e-mail", &payload).await.status(), 202);
    env.wait_for("e-mail", "ignored").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(env.conversations().await.is_empty());
    assert!(env.gitlab.notes().is_empty());
}

#[tokio::test]
async fn a_sender_without_a_linked_account_is_told_with_the_installers_token() {
    let env = Env::ready().await;
    let mut payload = env.payload("note_on_issue");
    payload["user"] = json!({"id": 202, "name": "Bob", "username": "bob"});
    assert_eq!(env.deliver("e-bob", &payload).await.status(), 202);
    let row = env.wait_for("e-bob", "dead").await;
    assert!(
        row.last_error
            .as_deref()
            .is_some_and(|e| e.contains("no linked OpenHands account")),
        "{row:?}"
    );
    let notes = env.wait_for_notes(1).await;
    assert_eq!(notes[0].token, ALICE_TOKEN, "the installer's token");
    let note = text(&notes[0]);
    assert!(note.contains("@bob"), "{note}");
    assert!(
        note.contains(&format!("{PUBLIC_URL}/api/git-oauth/gitlab/login")),
        "{note}"
    );
    assert!(env.conversations().await.is_empty());
}

#[tokio::test]
async fn a_user_without_llm_settings_is_told_after_the_last_attempt() {
    let mut env = Env::start().await;
    env.link_account(common::USER, ALICE_TOKEN, "alice").await;
    env.install_hook().await;
    let payload = env.payload("note_on_issue");
    assert_eq!(env.deliver("e-nollm", &payload).await.status(), 202);
    let row = env.wait_for("e-nollm", "dead").await;
    assert_eq!(row.attempts, 2, "max_attempts is 2");
    let notes = env.wait_for_notes(1).await;
    let note = text(&notes[0]);
    assert!(
        note.contains("@alice") && note.contains("LLM API key"),
        "{note}"
    );
    assert!(note.contains(&format!("{PUBLIC_URL}/settings")), "{note}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(env.gitlab.notes().len(), 1, "told once, not per attempt");
}
