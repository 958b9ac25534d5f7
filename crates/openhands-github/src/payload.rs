//! GitHub webhook payloads (the fields we read, as GitHub documents them) and the job they
//! ask for: the View. Pure functions of the bytes, so the worker can re-run them on retries.
//!
//! Triggers, as OpenHands has them:
//! - `issues` / `labeled` with the trigger label (an issue);
//! - `issue_comment` / `created` mentioning the trigger (on an issue, or on a pull request
//!   when `issue.pull_request` is present);
//! - `pull_request_review_comment` / `created` mentioning it (an inline review comment).
//!
//! A sender of type `Bot` (the App itself included) or the configured bot login never
//! triggers, so the integration cannot answer itself.

use openhands_core::extension::{Job, ParseError};
use openhands_core::resolver::{
    self,
    prompts::{self, CodePlace, Thread},
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize)]
pub struct Event {
    #[serde(default)]
    pub action: String,
    pub installation: Option<Installation>,
    pub sender: Option<User>,
    pub repository: Option<Repository>,
    pub issue: Option<Issue>,
    pub label: Option<Label>,
    pub comment: Option<Comment>,
    pub pull_request: Option<PullRequest>,
}

#[derive(Debug, Deserialize)]
pub struct Installation {
    pub id: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct User {
    pub login: String,
    #[serde(default)]
    pub id: u64,
    #[serde(rename = "type", default)]
    pub kind: String,
}

#[derive(Debug, Deserialize)]
pub struct Repository {
    pub full_name: String,
    #[serde(default)]
    pub clone_url: Option<String>,
    #[serde(default)]
    pub default_branch: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Issue {
    pub number: u64,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub body: Option<String>,
    /// Present when the issue is a pull request.
    #[serde(default)]
    pub pull_request: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
pub struct Label {
    pub name: String,
}

#[derive(Debug, Deserialize)]
pub struct Comment {
    pub id: u64,
    #[serde(default)]
    pub body: Option<String>,
    pub user: Option<User>,
    /// Inline review comments: the file and line.
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub line: Option<u64>,
    #[serde(default)]
    pub diff_hunk: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct PullRequest {
    pub number: u64,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub body: Option<String>,
    pub head: Option<Head>,
}

#[derive(Debug, Deserialize)]
pub struct Head {
    #[serde(rename = "ref")]
    pub branch: String,
}

/// What started the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// An issue got the trigger label.
    LabeledIssue,
    /// A comment on an issue.
    IssueComment,
    /// A comment on a pull request's conversation.
    PrComment,
    /// An inline review comment on a pull request's diff.
    InlineComment,
}

/// What the provider's later steps need (stored in [`Job::reply_to`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyTo {
    pub trigger: Trigger,
    pub installation_id: u64,
    /// `owner/repo`.
    pub repository: String,
    /// The issue or pull request number.
    pub number: u64,
    /// The triggering comment, for comment triggers.
    pub comment_id: Option<u64>,
    /// The GitHub user who asked.
    pub sender_login: String,
    pub sender_id: u64,
}

/// What the parser needs from the settings: the resolver kit's trigger rules, and where
/// GitHub is.
#[derive(Debug, Clone, Copy)]
pub struct Triggers<'a> {
    pub rules: resolver::Triggers<'a>,
    /// GitHub's web base; a repository elsewhere than `https://github.com` is cloned by URL.
    pub web_url: &'a str,
}

/// The installation id of a payload, if it has one.
pub fn installation_id(body: &[u8]) -> Option<u64> {
    #[derive(Deserialize)]
    struct Only {
        installation: Option<Installation>,
    }
    serde_json::from_slice::<Only>(body)
        .ok()?
        .installation
        .map(|i| i.id)
}

/// A GitHub App's user is of type `Bot`; the configured bot login is checked too.
fn is_bot(user: Option<&User>, rules: &resolver::Triggers<'_>) -> bool {
    user.is_some_and(|u| u.kind.eq_ignore_ascii_case("bot") || rules.is_bot(&u.login))
}

/// The job a delivery of `event_type` asks for, or `None` (not a trigger, or the bot's own).
/// The job's `user_id` is empty: the integration fills it in once it knows the account.
pub fn job_of(
    event_type: &str,
    body: &[u8],
    triggers: &Triggers<'_>,
) -> Result<Option<Job>, ParseError> {
    if !matches!(
        event_type,
        "issues" | "issue_comment" | "pull_request_review_comment"
    ) {
        return Ok(None);
    }
    let event: Event = serde_json::from_slice(body)
        .map_err(|e| ParseError(format!("not a GitHub {event_type} payload: {e}")))?;
    let (Some(installation), Some(repository), Some(sender)) =
        (&event.installation, &event.repository, &event.sender)
    else {
        return Ok(None);
    };
    let rules = &triggers.rules;
    if is_bot(Some(sender), rules) {
        return Ok(None);
    }
    let repo = repository.full_name.as_str();
    let comment_text = |c: &Comment| c.body.clone().unwrap_or_default();
    let (trigger, number, comment_id, branch, instructions, follow_up, summary) = match event_type {
        "issues" => {
            let (Some(issue), Some(label)) = (&event.issue, &event.label) else {
                return Ok(None);
            };
            if event.action != "labeled" || !rules.is_trigger_label(&label.name) {
                return Ok(None);
            }
            let thread = Thread {
                repository: repo,
                what: "issue",
                on_change_request: false,
                number: issue.number,
                title: &issue.title,
                body: issue.body.as_deref().unwrap_or_default(),
            };
            (
                Trigger::LabeledIssue,
                issue.number,
                None,
                None,
                prompts::labelled_issue(&thread, "pull request"),
                None,
                format!("{repo}#{} labelled: {}", issue.number, issue.title),
            )
        }
        "issue_comment" => {
            let (Some(issue), Some(comment)) = (&event.issue, &event.comment) else {
                return Ok(None);
            };
            let text = comment_text(comment);
            if event.action != "created"
                || is_bot(comment.user.as_ref(), rules)
                || !rules.comment_asks(&text, &sender.login)
            {
                return Ok(None);
            }
            let on_pr = issue.pull_request.is_some();
            let thread = Thread {
                repository: repo,
                what: if on_pr { "pull request" } else { "issue" },
                on_change_request: on_pr,
                number: issue.number,
                title: &issue.title,
                body: issue.body.as_deref().unwrap_or_default(),
            };
            let instructions = prompts::comment(&thread, &sender.login, &text);
            let follow_up = prompts::follow_up(&thread, &sender.login, &text);
            (
                if on_pr {
                    Trigger::PrComment
                } else {
                    Trigger::IssueComment
                },
                issue.number,
                Some(comment.id),
                None,
                instructions,
                Some(follow_up),
                format!("{repo}#{} comment by {}", issue.number, sender.login),
            )
        }
        _ => {
            let (Some(pr), Some(comment)) = (&event.pull_request, &event.comment) else {
                return Ok(None);
            };
            let text = comment_text(comment);
            if event.action != "created"
                || is_bot(comment.user.as_ref(), rules)
                || !rules.comment_asks(&text, &sender.login)
            {
                return Ok(None);
            }
            let thread = Thread {
                repository: repo,
                what: "pull request",
                on_change_request: true,
                number: pr.number,
                title: &pr.title,
                body: "",
            };
            let place = CodePlace {
                path: comment.path.as_deref(),
                line: comment.line,
                diff_hunk: comment.diff_hunk.as_deref(),
            };
            (
                Trigger::InlineComment,
                pr.number,
                Some(comment.id),
                pr.head.as_ref().map(|h| h.branch.clone()),
                prompts::review_comment(&thread, &sender.login, &text, &place),
                Some(prompts::follow_up(&thread, &sender.login, &text)),
                format!("{repo}#{} review comment by {}", pr.number, sender.login),
            )
        }
    };
    let reply_to = ReplyTo {
        trigger,
        installation_id: installation.id,
        repository: repo.to_owned(),
        number,
        comment_id,
        sender_login: sender.login.clone(),
        sender_id: sender.id,
    };
    // A plain `owner/repo` is cloned from github.com; anywhere else, by its clone URL.
    let clone_from = if triggers.web_url == "https://github.com" {
        repo.to_owned()
    } else {
        repository
            .clone_url
            .clone()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| repo.to_owned())
    };
    Ok(Some(Job {
        user_id: String::new(),
        org_id: None,
        repository: Some(clone_from),
        branch: branch.or_else(|| repository.default_branch.clone()),
        instructions,
        summary,
        reply_to: serde_json::to_value(reply_to)
            .map_err(|e| ParseError(format!("reply data: {e}")))?,
        thread: Some(format!("{repo}#{number}")),
        follow_up,
        git_provider: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    const TRIGGERS: Triggers<'static> = Triggers {
        rules: resolver::Triggers {
            label: "openhands",
            mention: "@openhands",
            bot_login: Some("openhands-ai[bot]"),
        },
        web_url: "https://github.com",
    };

    fn comment(body: &str, sender_type: &str, on_pr: bool) -> Vec<u8> {
        let mut issue = json!({"number": 4, "title": "Crash", "body": "It crashes"});
        if on_pr {
            issue["pull_request"] = json!({"url": "x"});
        }
        json!({"action": "created", "installation": {"id": 9}, "issue": issue,
               "comment": {"id": 77, "body": body, "user": {"login": "alice", "id": 1, "type": sender_type}},
               "repository": {"full_name": "acme/app", "default_branch": "main"},
               "sender": {"login": "alice", "id": 1, "type": sender_type}})
        .to_string()
        .into_bytes()
    }

    #[test]
    fn a_mention_inside_a_word_is_not_a_job() {
        for body in ["mail user@openhands.com", "@openhands-agent do it"] {
            assert_eq!(
                job_of("issue_comment", &comment(body, "User", false), &TRIGGERS).ok(),
                Some(None),
                "{body}"
            );
        }
    }

    #[test]
    fn an_issue_comment_with_the_mention_is_a_job() {
        let job = job_of(
            "issue_comment",
            &comment("@openhands fix", "User", false),
            &TRIGGERS,
        )
        .expect("parses")
        .expect("job");
        let reply: ReplyTo = serde_json::from_value(job.reply_to).expect("reply");
        assert_eq!(reply.trigger, Trigger::IssueComment);
        assert_eq!(reply.comment_id, Some(77));
        assert_eq!(reply.installation_id, 9);
        assert_eq!(job.repository.as_deref(), Some("acme/app"));
        assert_eq!(job.branch.as_deref(), Some("main"));
        let pr = job_of(
            "issue_comment",
            &comment("@openhands fix", "User", true),
            &TRIGGERS,
        )
        .expect("parses")
        .expect("job");
        let reply: ReplyTo = serde_json::from_value(pr.reply_to).expect("reply");
        assert_eq!(reply.trigger, Trigger::PrComment);
    }

    #[test]
    fn bots_and_comments_without_the_mention_are_ignored() {
        for (body, kind) in [("@openhands fix", "Bot"), ("looks good", "User")] {
            assert_eq!(
                job_of("issue_comment", &comment(body, kind, false), &TRIGGERS).ok(),
                Some(None)
            );
        }
        assert_eq!(job_of("push", b"{}", &TRIGGERS).ok(), Some(None));
        assert!(job_of("issues", b"nope", &TRIGGERS).is_err());
    }

    #[test]
    fn the_installation_id_is_read_alone() {
        assert_eq!(installation_id(br#"{"installation": {"id": 5}}"#), Some(5));
        assert_eq!(installation_id(br#"{"zen": "x"}"#), None);
    }

    proptest! {
        #[test]
        fn parsing_never_panics(body in proptest::collection::vec(any::<u8>(), 0..200),
                                event in "issues|issue_comment|pull_request_review_comment") {
            let _ = job_of(&event, &body, &TRIGGERS);
        }
    }
}
