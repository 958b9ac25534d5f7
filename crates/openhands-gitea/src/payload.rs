//! Gitea / Forgejo webhook payloads (the fields we use) and the job they ask for (the View).

use openhands_core::extension::{Job, ParseError};
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
/// [`MENTION`] (`issue_comment`, action `created`) not written by the bot. `None` for
/// anything else.
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
    let (instructions, summary) = match event_type {
        // Gitea sends label changes as `issues` (`X-Gitea-Event-Type: issue_label`).
        "issues" | "issue_label" => {
            let labelled = issue.labels.iter().any(|l| l.name == LABEL)
                || event.label.as_ref().is_some_and(|l| l.name == LABEL);
            let labelling = matches!(
                event.action.as_str(),
                "label_updated" | "labeled" | "opened"
            );
            if !(labelled && labelling) {
                return Ok(None);
            }
            (
                format!(
                    "Resolve issue #{} of {repository}: {}\n\n{}",
                    issue.number, issue.title, issue.body
                ),
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
            if event.action != "created"
                || author.eq_ignore_ascii_case(bot_login)
                || !comment.body.to_ascii_lowercase().contains(MENTION)
            {
                return Ok(None);
            }
            (
                format!(
                    "On issue #{} of {repository} ({}), {author} asks:\n\n{}\n\nIssue text:\n{}",
                    issue.number, issue.title, comment.body, issue.body
                ),
                format!("{repository}#{} comment by {author}", issue.number),
            )
        }
        _ => return Ok(None),
    };
    let reply_to = ReplyTo {
        repository: repository.clone(),
        issue: issue.number,
    };
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

    #[test]
    fn garbage_is_a_parse_error() {
        assert!(job_of("issues", b"not json", "u", "openhands").is_err());
    }
}
