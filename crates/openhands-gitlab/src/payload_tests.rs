//! The parser against GitLab's documented Issue Hook and Note Hook payloads
//! (`tests/fixtures`, shared with the end-to-end tests).

use super::*;
use proptest::prelude::*;
use serde_json::{Value, json};

const RULES: resolver::Triggers<'static> = resolver::Triggers {
    label: "openhands",
    mention: "@openhands",
    bot_login: Some("openhands-bot"),
};
const HOOK: &str = "6c1b0d9e-5d1f-4c38-9a57-4b1f3e5f2a10";

fn fixture(name: &str) -> Value {
    let text = match name {
        "issue_labelled" => include_str!("../tests/fixtures/issue_labelled.json"),
        "note_on_issue" => include_str!("../tests/fixtures/note_on_issue.json"),
        _ => include_str!("../tests/fixtures/note_on_merge_request_diff.json"),
    };
    serde_json::from_str(text).expect("fixture")
}

fn job(payload: &Value) -> Option<Job> {
    job_of(payload.to_string().as_bytes(), HOOK, &RULES).expect("parses")
}

fn reply(job: &Job) -> ReplyTo {
    serde_json::from_value(job.reply_to.clone()).expect("reply data")
}

#[test]
fn a_label_added_to_an_issue_is_a_job_on_its_thread() {
    let job = job(&fixture("issue_labelled")).expect("a job");
    let reply = reply(&job);
    assert_eq!(reply.trigger, Trigger::LabelledIssue);
    assert_eq!((reply.project_id, reply.iid), (1, 23));
    assert_eq!(reply.base_url, "http://example.com");
    assert_eq!(reply.webhook_id, HOOK);
    assert_eq!(reply.sender_username, "root");
    assert_eq!(
        job.thread.as_deref(),
        Some("example.com/gitlabhq/gitlab-test#23")
    );
    assert_eq!(job.follow_up, None, "a label is a fresh attempt");
    assert_eq!(
        job.repository.as_deref(),
        Some("http://example.com/gitlabhq/gitlab-test.git")
    );
    assert_eq!(job.branch.as_deref(), Some("master"));
    assert!(
        job.instructions.contains("Create new API"),
        "{}",
        job.instructions
    );
    assert!(
        job.instructions.contains("merge request"),
        "{}",
        job.instructions
    );
}

#[test]
fn a_label_that_was_already_there_or_another_label_is_not_a_job() {
    let mut again = fixture("issue_labelled");
    again["changes"]["labels"]["previous"] = again["changes"]["labels"]["current"].clone();
    assert!(job(&again).is_none());
    let mut other = fixture("issue_labelled");
    other["changes"]["labels"]["current"][1]["title"] = json!("bug");
    assert!(job(&other).is_none());
    let mut unlabelled = fixture("issue_labelled");
    unlabelled["changes"] = json!({"title": {"previous": "a", "current": "b"}});
    assert!(job(&unlabelled).is_none());
}

#[test]
fn a_confidential_issue_counts_too() {
    let mut confidential = fixture("issue_labelled");
    confidential["event_type"] = json!("confidential_issue");
    assert!(job(&confidential).is_some());
}

#[test]
fn a_note_mentioning_the_agent_on_an_issue_is_a_job_with_a_follow_up() {
    let job = job(&fixture("note_on_issue")).expect("a job");
    let reply = reply(&job);
    assert_eq!(reply.trigger, Trigger::IssueNote);
    assert_eq!((reply.project_id, reply.iid), (5, 17));
    assert_eq!(
        reply.discussion_id, None,
        "a plain note is answered with a new note"
    );
    assert!(!reply.internal);
    assert_eq!(
        job.thread.as_deref(),
        Some("example.com/gitlab-org/gitlab-test#17")
    );
    assert!(
        job.follow_up
            .as_deref()
            .is_some_and(|f| f.contains("please fix this"))
    );
    assert_eq!(job.summary, "gitlab-org/gitlab-test#17 note by root");
}

#[test]
fn an_inline_merge_request_note_works_on_the_source_branch_in_its_discussion() {
    let job = job(&fixture("note_on_merge_request_diff")).expect("a job");
    let reply = reply(&job);
    assert_eq!(reply.trigger, Trigger::InlineNote);
    assert_eq!(reply.iid, 1);
    assert_eq!(
        reply.discussion_id.as_deref(),
        Some("5ca9e1c1f7b1b4b0c6a1c9f1c2e7b2e8d1f0a3b4")
    );
    assert_eq!(job.branch.as_deref(), Some("master"));
    assert_eq!(
        job.thread.as_deref(),
        Some("example.com/gitlab-org/gitlab-test!1")
    );
    assert!(
        job.instructions.contains("`lib/helpers.rb` line 9"),
        "{}",
        job.instructions
    );
}

#[test]
fn a_merge_request_note_without_a_position_is_a_plain_note() {
    let mut payload = fixture("note_on_merge_request_diff");
    payload["object_attributes"]["position"] = Value::Null;
    payload["object_attributes"]["type"] = Value::Null;
    let job = job(&payload).expect("a job");
    let reply = reply(&job);
    assert_eq!(reply.trigger, Trigger::MergeRequestNote);
    assert_eq!(reply.discussion_id, None);
    assert_eq!(job.branch.as_deref(), Some("master"));
}

#[test]
fn a_merge_request_from_a_fork_is_cloned_from_the_fork() {
    let mut payload = fixture("note_on_merge_request_diff");
    payload["merge_request"]["source_project_id"] = json!(9);
    payload["merge_request"]["source"]["id"] = json!(9);
    payload["merge_request"]["source"]["git_http_url"] =
        json!("http://example.com/fork/gitlab-test.git");
    let job = job(&payload).expect("a job");
    assert_eq!(
        job.repository.as_deref(),
        Some("http://example.com/fork/gitlab-test.git")
    );
}

#[test]
fn an_internal_note_is_answered_internally() {
    let mut payload = fixture("note_on_issue");
    payload["event_type"] = json!("confidential_note");
    assert!(reply(&job(&payload).expect("a job")).internal);
}

#[test]
fn mentions_inside_words_the_bot_system_notes_and_edits_start_nothing() {
    for text in [
        "mail user@openhands.com",
        "ping @openhands-agent",
        "no mention here",
    ] {
        let mut payload = fixture("note_on_issue");
        payload["object_attributes"]["note"] = json!(text);
        assert!(job(&payload).is_none(), "{text}");
    }
    let mut bot = fixture("note_on_issue");
    bot["user"]["username"] = json!("OpenHands-Bot");
    assert!(job(&bot).is_none());
    let mut system = fixture("note_on_issue");
    system["object_attributes"]["system"] = json!(true);
    assert!(job(&system).is_none());
    let mut edited = fixture("note_on_issue");
    edited["object_attributes"]["action"] = json!("update");
    assert!(job(&edited).is_none());
    let mut on_commit = fixture("note_on_issue");
    on_commit["object_attributes"]["noteable_type"] = json!("Commit");
    assert!(job(&on_commit).is_none());
}

#[test]
fn other_events_are_ignored_and_garbage_is_an_error() {
    assert!(job(&json!({"object_kind": "push", "ref": "refs/heads/main"})).is_none());
    assert!(job_of(b"not json", HOOK, &RULES).is_err());
    assert!(job_of(br#"{"object_kind": "note"}"#, HOOK, &RULES).is_err());
}

#[test]
fn gitlab_com_projects_are_named_by_path_and_keep_a_plain_thread_key() {
    let mut payload = fixture("note_on_issue");
    payload["project"]["web_url"] = json!("https://gitlab.com/gitlab-org/gitlab-test");
    let job = job(&payload).expect("a job");
    assert_eq!(job.repository.as_deref(), Some("gitlab-org/gitlab-test"));
    assert_eq!(job.thread.as_deref(), Some("gitlab-org/gitlab-test#17"));
    assert_eq!(reply(&job).base_url, "https://gitlab.com");
}

#[test]
fn thread_keys_keep_the_port_of_a_self_managed_host() {
    assert_eq!(
        thread_key("http://127.0.0.1:8080", "g/p", true, 3),
        "127.0.0.1:8080/g/p!3"
    );
}

proptest! {
    #[test]
    fn parsing_arbitrary_bytes_never_panics(body in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = job_of(&body, HOOK, &RULES);
    }

    #[test]
    fn parsing_arbitrary_note_text_never_panics(text in ".{0,200}", kind in "note|issue|x") {
        let mut payload = fixture("note_on_issue");
        payload["object_kind"] = json!(kind);
        payload["object_attributes"]["note"] = json!(text);
        let _ = job_of(payload.to_string().as_bytes(), HOOK, &RULES);
    }
}
