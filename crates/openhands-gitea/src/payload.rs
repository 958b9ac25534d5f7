//! Gitea / Forgejo webhook payloads (the fields we use) and the job they ask for (the View).

use openhands_core::extension::{Job, ParseError};
use openhands_core::resolver::Triggers;
use openhands_core::resolver::prompts::{self, Thread};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct Event {
    #[serde(default)]
    pub action: String,
    pub issue: Option<Issue>,
    pub comment: Option<Comment>,
    pub label: Option<Label>,
    pub repository: Repository,
    pub sender: Option<User>,
}

#[derive(Debug, Deserialize)]
pub struct Issue {
    pub number: u64,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub body: String,
    #[serde(default)]
    pub labels: Vec<Label>,
    /// Set when the issue is a pull request (its comments come as `issue_comment` too).
    #[serde(default)]
    pub pull_request: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
pub struct Label {
    pub name: String,
}

#[derive(Debug, Deserialize)]
pub struct Comment {
    #[serde(default)]
    pub body: String,
    pub user: Option<User>,
}

#[derive(Debug, Deserialize)]
pub struct Repository {
    pub full_name: String,
    /// Where the sandbox clones from (the Gitea host, not github.com).
    #[serde(default)]
    pub clone_url: Option<String>,
    #[serde(default)]
    pub default_branch: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct User {
    pub login: String,
}

/// The label and the mention that trigger a job.
pub const LABEL: &str = "openhands";
pub const MENTION: &str = "@openhands";

/// What the callback needs to answer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct ReplyTo {
    pub repository: String,
    pub issue: u64,
}

/// The job a delivery asks for (the repository is the payload's `clone_url`, so the
/// sandbox clones from the Gitea host): an issue labelled [`LABEL`] (`issues` event, action
/// `label_updated`/`labeled`/`opened` with the label), or a new comment mentioning
/// [`MENTION`] as a whole word (`issue_comment`, action `created`) not written by the bot;
/// the trigger rules and the task's wording are the resolver kit's
/// (`openhands_core::resolver`). `None` for anything else.
pub fn job_of(
    event_type: &str,
    body: &[u8],
    user_id: &str,
    bot_login: &str,
) -> Result<Option<Job>, ParseError> {
    let event: Event = serde_json::from_slice(body)
        .map_err(|e| ParseError(format!("not a Gitea {event_type} payload: {e}")))?;
    let Some(issue) = &event.issue else {
        return Ok(None);
    };
    let repository = event.repository.full_name.clone();
    let rules = Triggers {
        label: LABEL,
        mention: MENTION,
        bot_login: Some(bot_login),
    };
    let on_pr = issue.pull_request.is_some();
    let thread = Thread {
        repository: &repository,
        what: if on_pr { "pull request" } else { "issue" },
        on_change_request: on_pr,
        number: issue.number,
        title: &issue.title,
        body: &issue.body,
    };
    let (instructions, follow_up, summary) = match event_type {
        // Gitea sends label changes as `issues` (`X-Gitea-Event-Type: issue_label`).
        "issues" | "issue_label" => {
            let labelled = issue.labels.iter().any(|l| rules.is_trigger_label(&l.name))
                || event
                    .label
                    .as_ref()
                    .is_some_and(|l| rules.is_trigger_label(&l.name));
            let labelling = matches!(
                event.action.as_str(),
                "label_updated" | "labeled" | "opened"
            );
            if !(labelled && labelling) {
                return Ok(None);
            }
            (
                prompts::labelled_issue(&thread, "pull request"),
                None,
                format!("{repository}#{} labelled: {}", issue.number, issue.title),
            )
        }
        "issue_comment" => {
            let Some(comment) = &event.comment else {
                return Ok(None);
            };
            let author = comment
                .user
                .as_ref()
                .or(event.sender.as_ref())
                .map(|u| u.login.as_str())
                .unwrap_or_default();
            if event.action != "created" || !rules.comment_asks(&comment.body, author) {
                return Ok(None);
            }
            (
                prompts::comment(&thread, author, &comment.body),
                Some(prompts::follow_up(&thread, author, &comment.body)),
                format!("{repository}#{} comment by {author}", issue.number),
            )
        }
        _ => return Ok(None),
    };
    let reply_to = ReplyTo {
        repository: repository.clone(),
        issue: issue.number,
    };
    let thread = format!("{repository}#{}", issue.number);
    Ok(Some(Job {
        user_id: user_id.to_owned(),
        org_id: None,
        repository: Some(
            event
                .repository
                .clone_url
                .clone()
                .filter(|u| !u.is_empty())
                .unwrap_or(repository),
        ),
        branch: event.repository.default_branch.clone(),
        instructions,
        summary,
        reply_to: serde_json::to_value(reply_to).unwrap_or_default(),
        thread: Some(thread),
        follow_up,
        git_provider: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn issue_event(action: &str, labels: &[&str]) -> Vec<u8> {
        let labels: Vec<_> = labels.iter().map(|l| json!({"name": l})).collect();
        json!({"action": action, "issue": {"number": 7, "title": "Crash", "body": "It crashes", "labels": labels},
               "repository": {"full_name": "acme/app", "clone_url": "http://g/acme/app.git", "default_branch": "main"},
               "sender": {"login": "alice"}})
        .to_string()
        .into_bytes()
    }

    #[test]
    fn a_labelled_issue_is_a_job_for_the_configured_user() {
        let job = job_of(
            "issues",
            &issue_event("label_updated", &["bug", "openhands"]),
            "u1",
            "openhands",
        )
        .expect("parses")
        .expect("a job");
        assert_eq!(job.user_id, "u1");
        assert_eq!(job.repository.as_deref(), Some("http://g/acme/app.git"));
        assert_eq!(job.branch.as_deref(), Some("main"));
        assert!(job.instructions.contains("It crashes"));
        assert_eq!(job.reply_to, json!({"repository": "acme/app", "issue": 7}));
    }

    #[test]
    fn an_unlabelled_issue_and_the_bots_own_comment_are_ignored() {
        assert_eq!(
            job_of(
                "issues",
                &issue_event("label_updated", &["bug"]),
                "u",
                "openhands"
            )
            .ok(),
            Some(None)
        );
        let bot = json!({"action": "created", "issue": {"number": 1, "title": "t", "body": "", "labels": []},
            "comment": {"body": "@openhands done", "user": {"login": "openhands"}},
            "repository": {"full_name": "a/b"}, "sender": {"login": "openhands"}});
        assert_eq!(
            job_of(
                "issue_comment",
                bot.to_string().as_bytes(),
                "u",
                "openhands"
            )
            .ok(),
            Some(None)
        );
    }

    fn comment_event(body: &str) -> Vec<u8> {
        json!({"action": "created", "issue": {"number": 3, "title": "t", "body": "b", "labels": []},
               "comment": {"body": body, "user": {"login": "alice"}},
               "repository": {"full_name": "a/b"}, "sender": {"login": "alice"}})
        .to_string()
        .into_bytes()
    }

    /// Regression: the crate matched `@openhands` as a substring, so an e-mail address or a
    /// longer handle started a job.
    #[test]
    fn only_a_whole_word_mention_starts_a_job() {
        for text in [
            "write to user@openhands.com",
            "ping @openhands-agent",
            "@openhandsbot",
        ] {
            assert_eq!(
                job_of("issue_comment", &comment_event(text), "u", "openhands").ok(),
                Some(None),
                "{text}"
            );
        }
        let job = job_of(
            "issue_comment",
            &comment_event("(@OpenHands) fix"),
            "u",
            "openhands",
        )
        .expect("parses");
        assert!(job.is_some());
    }

    #[test]
    fn garbage_is_a_parse_error() {
        assert!(job_of("issues", b"not json", "u", "openhands").is_err());
    }
}
