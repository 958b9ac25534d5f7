//! GitLab webhook payloads (the fields we read, as GitLab documents its Issue Hook and Note
//! Hook) and the job they ask for: the View. Pure functions of the bytes and the stored
//! headers, so the worker can run them again on retries.
//!
//! Triggers, as OpenHands has them (`gitlab_view.py`), confidential ones included:
//! - `object_kind: issue` (`event_type` `issue` or `confidential_issue`) whose
//!   `changes.labels` gained the trigger label (in `current`, not in `previous`);
//! - `object_kind: note` (`note` or `confidential_note`) on an issue mentioning the agent;
//! - the same on a merge request (`noteable_type: MergeRequest`); with a `position` or
//!   `change_position` it is an inline note on the diff. Merge request jobs run on the
//!   merge request's source branch.
//!
//! System notes ("added label ...") and notes by the configured bot login never trigger; a
//! note edited (`action: update`) does not trigger again. The rules and the task's wording
//! are the resolver kit's (`openhands_core::resolver`).

use openhands_core::extension::{Job, ParseError};
use openhands_core::resolver::{
    self,
    prompts::{self, CodePlace, Thread},
};
use serde::{Deserialize, Serialize};

use crate::config::GITLAB_COM;

#[derive(Debug, Deserialize)]
struct Head {
    #[serde(default)]
    object_kind: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct User {
    pub id: u64,
    pub username: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Project {
    pub id: u64,
    pub path_with_namespace: String,
    #[serde(default)]
    pub web_url: Option<String>,
    #[serde(default)]
    pub git_http_url: Option<String>,
    #[serde(default)]
    pub default_branch: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct IssueEvent {
    #[serde(default)]
    pub event_type: String,
    pub user: User,
    pub project: Project,
    pub object_attributes: IssueAttributes,
    #[serde(default)]
    pub changes: Changes,
}

#[derive(Debug, Deserialize)]
pub struct IssueAttributes {
    pub iid: u64,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Changes {
    #[serde(default)]
    pub labels: Option<LabelChange>,
}

#[derive(Debug, Default, Deserialize)]
pub struct LabelChange {
    #[serde(default)]
    pub previous: Vec<Label>,
    #[serde(default)]
    pub current: Vec<Label>,
}

#[derive(Debug, Deserialize)]
pub struct Label {
    #[serde(default)]
    pub title: String,
}

#[derive(Debug, Deserialize)]
pub struct NoteEvent {
    #[serde(default)]
    pub event_type: String,
    pub user: User,
    pub project: Project,
    pub object_attributes: NoteAttributes,
    #[serde(default)]
    pub issue: Option<Noteable>,
    #[serde(default)]
    pub merge_request: Option<Noteable>,
}

#[derive(Debug, Deserialize)]
pub struct NoteAttributes {
    pub id: u64,
    #[serde(default)]
    pub note: String,
    #[serde(default)]
    pub noteable_type: String,
    #[serde(default)]
    pub system: bool,
    /// `create` or `update` (GitLab 16+); absent on older versions, which only send creates.
    #[serde(default)]
    pub action: Option<String>,
    #[serde(default)]
    pub discussion_id: Option<String>,
    /// `null` (a plain note), `DiscussionNote` (in a thread) or `DiffNote` (on the diff).
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub internal: bool,
    #[serde(default)]
    pub confidential: bool,
    #[serde(default)]
    pub position: Option<Position>,
    #[serde(default)]
    pub change_position: Option<Position>,
}

/// Where an inline note sits on the diff.
#[derive(Debug, Clone, Deserialize)]
pub struct Position {
    #[serde(default)]
    pub new_path: Option<String>,
    #[serde(default)]
    pub old_path: Option<String>,
    #[serde(default)]
    pub new_line: Option<u64>,
    #[serde(default)]
    pub old_line: Option<u64>,
}

/// The issue or merge request a note is on.
#[derive(Debug, Deserialize)]
pub struct Noteable {
    pub iid: u64,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Merge requests: the branch the agent works on.
    #[serde(default)]
    pub source_branch: Option<String>,
    #[serde(default)]
    pub source_project_id: Option<u64>,
    /// Merge requests: the project the source branch lives in (a fork, or the same).
    #[serde(default)]
    pub source: Option<Project>,
}

/// What started the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    LabelledIssue,
    IssueNote,
    MergeRequestNote,
    /// A note on a merge request's diff.
    InlineNote,
}

impl Trigger {
    /// Whether the job is about a merge request.
    pub fn on_merge_request(self) -> bool {
        matches!(self, Trigger::MergeRequestNote | Trigger::InlineNote)
    }
}

/// What admission and the replies need (stored in [`Job::reply_to`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyTo {
    pub trigger: Trigger,
    /// The installed hook that delivered it (`X-OpenHands-Webhook-ID`).
    pub webhook_id: String,
    /// The GitLab the project is on: from the payload when parsed, the hook's own once
    /// admitted.
    pub base_url: String,
    pub project_id: u64,
    pub project_path: String,
    /// The issue's or merge request's iid.
    pub iid: u64,
    /// Answer in this discussion (the trigger was a threaded or inline note).
    #[serde(default)]
    pub discussion_id: Option<String>,
    /// The trigger was an internal (confidential) note: answers are internal too.
    #[serde(default)]
    pub internal: bool,
    pub sender_username: String,
    pub sender_id: u64,
}

/// The GitLab a project's `web_url` (`{base}/{path_with_namespace}`) is on.
pub fn base_of(project: &Project) -> Option<String> {
    let web_url = project.web_url.as_deref()?.trim_end_matches('/');
    let base = web_url.strip_suffix(project.path_with_namespace.as_str())?;
    crate::config::normalized_url(base)
}

/// The thread key of an issue (`group/project#7`) or merge request (`group/project!7`);
/// projects off gitlab.com carry their host, so two GitLabs' projects never share one.
pub fn thread_key(base_url: &str, path: &str, on_merge_request: bool, iid: u64) -> String {
    let sign = if on_merge_request { '!' } else { '#' };
    let host = url::Url::parse(base_url)
        .ok()
        .filter(|_| base_url != GITLAB_COM)
        .and_then(|u| {
            let host = u.host_str()?.to_owned();
            Some(u.port().map_or(host.clone(), |p| format!("{host}:{p}")))
        });
    match host {
        Some(host) => format!("{host}/{path}{sign}{iid}"),
        None => format!("{path}{sign}{iid}"),
    }
}

/// What a job's repository is: on gitlab.com `group/project`, elsewhere the clone URL
/// (`git_http_url`), as the GitHub integration does for hosts other than github.com.
pub fn clone_from(base_url: &str, project: &Project) -> String {
    let path = project.path_with_namespace.clone();
    if base_url == GITLAB_COM {
        return path;
    }
    project
        .git_http_url
        .clone()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or(path)
}

/// The job a delivery asks for, or `None` (not a trigger, or the bot's own note).
/// `webhook_id` is the hook that delivered it. The job's `user_id` is empty: admission fills
/// it in once it knows the account.
pub fn job_of(
    body: &[u8],
    webhook_id: &str,
    rules: &resolver::Triggers<'_>,
) -> Result<Option<Job>, ParseError> {
    let head: Head = serde_json::from_slice(body)
        .map_err(|e| ParseError(format!("not a GitLab webhook payload: {e}")))?;
    let parsed = match head.object_kind.as_str() {
        "issue" => labelled_issue(body, rules)?,
        "note" => note(body, rules)?,
        _ => None,
    };
    let Some(asked) = parsed else {
        return Ok(None);
    };
    let base_url = base_of(&asked.project).unwrap_or_default();
    let trigger = asked.trigger;
    let reply_to = ReplyTo {
        trigger,
        webhook_id: webhook_id.to_owned(),
        base_url: base_url.clone(),
        project_id: asked.project.id,
        project_path: asked.project.path_with_namespace.clone(),
        iid: asked.iid,
        discussion_id: asked.discussion_id,
        internal: asked.internal,
        sender_username: asked.sender.username.clone(),
        sender_id: asked.sender.id,
    };
    let thread = thread_key(
        &base_url,
        &asked.project.path_with_namespace,
        trigger.on_merge_request(),
        asked.iid,
    );
    Ok(Some(Job {
        user_id: String::new(),
        org_id: None,
        repository: Some(clone_from(&base_url, &asked.clone_project)),
        branch: asked.branch.or(asked.project.default_branch.clone()),
        instructions: asked.instructions,
        summary: asked.summary,
        reply_to: serde_json::to_value(reply_to)
            .map_err(|e| ParseError(format!("reply data: {e}")))?,
        thread: Some(thread),
        follow_up: asked.follow_up,
        // The clone uses GitLab's host and the user's GitLab token, not GitHub's.
        git_provider: Some(openhands_core::secrets::ProviderType::Gitlab),
    }))
}

/// A trigger found in a payload, before it becomes a [`Job`].
struct Asked {
    trigger: Trigger,
    sender: User,
    project: Project,
    /// Where the work happens: the project, or a merge request's source project (a fork).
    clone_project: Project,
    iid: u64,
    branch: Option<String>,
    discussion_id: Option<String>,
    internal: bool,
    instructions: String,
    follow_up: Option<String>,
    summary: String,
}

fn labelled_issue(
    body: &[u8],
    rules: &resolver::Triggers<'_>,
) -> Result<Option<Asked>, ParseError> {
    let event: IssueEvent = serde_json::from_slice(body)
        .map_err(|e| ParseError(format!("not a GitLab Issue Hook payload: {e}")))?;
    let Some(labels) = &event.changes.labels else {
        return Ok(None);
    };
    let has = |list: &[Label]| list.iter().any(|l| rules.is_trigger_label(&l.title));
    let issue_kind = matches!(
        event.event_type.as_str(),
        "issue" | "confidential_issue" | ""
    );
    if !issue_kind
        || !has(&labels.current)
        || has(&labels.previous)
        || rules.is_bot(&event.user.username)
    {
        return Ok(None);
    }
    let attributes = &event.object_attributes;
    let path = event.project.path_with_namespace.clone();
    let thread = Thread {
        repository: &path,
        what: "issue",
        on_change_request: false,
        number: attributes.iid,
        title: &attributes.title,
        body: attributes.description.as_deref().unwrap_or_default(),
    };
    Ok(Some(Asked {
        trigger: Trigger::LabelledIssue,
        instructions: prompts::labelled_issue(&thread, "merge request"),
        follow_up: None,
        summary: format!("{path}#{} labelled: {}", attributes.iid, attributes.title),
        iid: attributes.iid,
        branch: None,
        discussion_id: None,
        internal: false,
        sender: event.user,
        clone_project: event.project.clone(),
        project: event.project,
    }))
}

fn note(body: &[u8], rules: &resolver::Triggers<'_>) -> Result<Option<Asked>, ParseError> {
    let event: NoteEvent = serde_json::from_slice(body)
        .map_err(|e| ParseError(format!("not a GitLab Note Hook payload: {e}")))?;
    let note = &event.object_attributes;
    let created = note.action.as_deref().is_none_or(|a| a == "create");
    let note_kind = matches!(event.event_type.as_str(), "note" | "confidential_note" | "");
    if !note_kind
        || !created
        || note.system
        || !rules.comment_asks(&note.note, &event.user.username)
    {
        return Ok(None);
    }
    let path = event.project.path_with_namespace.clone();
    let author = event.user.username.as_str();
    let internal = note.internal || note.confidential || event.event_type == "confidential_note";
    let (noteable, on_mr) = match note.noteable_type.as_str() {
        "Issue" => (event.issue.as_ref(), false),
        "MergeRequest" => (event.merge_request.as_ref(), true),
        _ => return Ok(None),
    };
    let Some(noteable) = noteable else {
        return Ok(None);
    };
    let thread = Thread {
        repository: &path,
        what: if on_mr { "merge request" } else { "issue" },
        on_change_request: on_mr,
        number: noteable.iid,
        title: &noteable.title,
        body: noteable.description.as_deref().unwrap_or_default(),
    };
    let place = note.position.as_ref().or(note.change_position.as_ref());
    let (trigger, instructions, what) = match (on_mr, place) {
        (true, Some(place)) => {
            let code = CodePlace {
                path: place.new_path.as_deref().or(place.old_path.as_deref()),
                line: place.new_line.or(place.old_line),
                diff_hunk: None,
            };
            let task = prompts::review_comment(&thread, author, &note.note, &code);
            (Trigger::InlineNote, task, "inline note")
        }
        (true, None) => {
            let task = prompts::comment(&thread, author, &note.note);
            (Trigger::MergeRequestNote, task, "note")
        }
        (false, _) => (
            Trigger::IssueNote,
            prompts::comment(&thread, author, &note.note),
            "note",
        ),
    };
    let threaded = matches!(note.kind.as_deref(), Some("DiscussionNote" | "DiffNote"));
    // A merge request from a fork: its source branch lives in the source project.
    let clone_project = noteable
        .source
        .clone()
        .filter(|source| {
            on_mr
                && noteable
                    .source_project_id
                    .is_some_and(|id| id != event.project.id)
                && source.id != event.project.id
        })
        .unwrap_or_else(|| event.project.clone());
    let sign = if on_mr { '!' } else { '#' };
    Ok(Some(Asked {
        trigger,
        follow_up: Some(prompts::follow_up(&thread, author, &note.note)),
        summary: format!("{path}{sign}{} {what} by {author}", noteable.iid),
        instructions,
        iid: noteable.iid,
        branch: if on_mr {
            noteable.source_branch.clone()
        } else {
            None
        },
        discussion_id: note.discussion_id.clone().filter(|_| threaded),
        internal,
        sender: event.user.clone(),
        clone_project,
        project: event.project,
    }))
}

#[cfg(test)]
#[path = "payload_tests.rs"]
mod tests;
