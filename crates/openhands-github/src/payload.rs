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

/// What the parser needs from the settings.
#[derive(Debug, Clone, Copy)]
pub struct Triggers<'a> {
    pub label: &'a str,
    pub mention: &'a str,
    pub bot_login: Option<&'a str>,
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

/// True when `text` mentions `mention` as a whole word, ignoring case: `(@OpenHands)` does,
/// `user@openhands.com` and `@openhands-agent` do not.
pub fn mentions(text: &str, mention: &str) -> bool {
    let haystack = text.to_lowercase();
    let needle = mention.to_lowercase();
    if needle.is_empty() {
        return false;
    }
    let word = |c: char| c.is_alphanumeric() || c == '_' || c == '-';
    haystack.match_indices(&needle).any(|(at, _)| {
        let before = haystack[..at].chars().next_back();
        let after = haystack[at + needle.len()..].chars().next();
        !before.is_some_and(|c| word(c) || c == '.' || c == '@')
            && !after.is_some_and(|c| word(c) || c == '@')
    })
}

fn is_bot(user: Option<&User>, bot_login: Option<&str>) -> bool {
    user.is_some_and(|u| {
        u.kind.eq_ignore_ascii_case("bot")
            || bot_login.is_some_and(|bot| u.login.eq_ignore_ascii_case(bot))
    })
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
    if is_bot(Some(sender), triggers.bot_login) {
        return Ok(None);
    }
    let repo = repository.full_name.as_str();
    let comment_text = |c: &Comment| c.body.clone().unwrap_or_default();
    let (trigger, number, comment_id, branch, instructions, summary) = match event_type {
        "issues" => {
            let (Some(issue), Some(label)) = (&event.issue, &event.label) else {
                return Ok(None);
            };
            if event.action != "labeled" || !label.name.eq_ignore_ascii_case(triggers.label) {
                return Ok(None);
            }
            (
                Trigger::LabeledIssue,
                issue.number,
                None,
                None,
                format!(
                    "Resolve issue #{} of the repository {repo}.\n\nTitle: {}\n\n{}\n\n\
                     When the fix is ready, push it to a new branch and open a pull request \
                     that references the issue.",
                    issue.number,
                    issue.title,
                    issue.body.as_deref().unwrap_or_default()
                ),
                format!("{repo}#{} labelled: {}", issue.number, issue.title),
            )
        }
        "issue_comment" => {
            let (Some(issue), Some(comment)) = (&event.issue, &event.comment) else {
                return Ok(None);
            };
            let text = comment_text(comment);
            if event.action != "created"
                || is_bot(comment.user.as_ref(), triggers.bot_login)
                || !mentions(&text, triggers.mention)
            {
                return Ok(None);
            }
            let on_pr = issue.pull_request.is_some();
            let what = if on_pr { "pull request" } else { "issue" };
            let mut instructions = format!(
                "{} asked you in a comment on {what} #{} of the repository {repo}:\n\n{text}\n\n\
                 The {what} is titled \"{}\":\n\n{}",
                sender.login,
                issue.number,
                issue.title,
                issue.body.as_deref().unwrap_or_default()
            );
            if on_pr {
                instructions.push_str(
                    "\n\nYou are on the pull request's branch: commit and push your changes to it.",
                );
            }
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
                format!("{repo}#{} comment by {}", issue.number, sender.login),
            )
        }
        _ => {
            let (Some(pr), Some(comment)) = (&event.pull_request, &event.comment) else {
                return Ok(None);
            };
            let text = comment_text(comment);
            if event.action != "created"
                || is_bot(comment.user.as_ref(), triggers.bot_login)
                || !mentions(&text, triggers.mention)
            {
                return Ok(None);
            }
            let place = match (&comment.path, comment.line) {
                (Some(path), Some(line)) => format!(" on `{path}` line {line}"),
                (Some(path), None) => format!(" on `{path}`"),
                _ => String::new(),
            };
            let hunk = comment
                .diff_hunk
                .as_deref()
                .map(|h| format!("\n\nThe code under review:\n```diff\n{h}\n```"))
                .unwrap_or_default();
            (
                Trigger::InlineComment,
                pr.number,
                Some(comment.id),
                pr.head.as_ref().map(|h| h.branch.clone()),
                format!(
                    "{} asked you in a review comment{place} of pull request #{} (\"{}\") of \
                     the repository {repo}:\n\n{text}{hunk}\n\nYou are on the pull request's \
                     branch: commit and push your changes to it.",
                    sender.login, pr.number, pr.title
                ),
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
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    const TRIGGERS: Triggers<'static> = Triggers {
        label: "openhands",
        mention: "@openhands",
        bot_login: Some("openhands-ai[bot]"),
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
    fn mentions_need_a_whole_word() {
        assert!(mentions("hey @openhands please", "@openhands"));
        assert!(mentions("(@OpenHands)", "@openhands"));
        assert!(mentions("@openhands: fix it.", "@openhands"));
        assert!(!mentions("mail user@openhands.com", "@openhands"));
        assert!(!mentions("@openhands-agent do it", "@openhands"));
        assert!(!mentions("@openhandsbot", "@openhands"));
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

        #[test]
        fn mention_matching_never_panics(text in ".{0,60}") {
            let _ = mentions(&text, "@openhands");
        }
    }
}
