//! The notes the integration posts: the resolver kit's replies
//! (`openhands_core::resolver::messages`) with GitLab's names and link shapes.
//!
//! GitLab replies are posted with a user's token, so they appear as that user's notes, and
//! GitLab would send them back to us like any note. A reply that quoted the trigger
//! mention (the agent's last message may) would then ask the agent again, forever. So every
//! posted text has its mentions of the agent defused with an invisible word joiner after the
//! `@` ([`defuse_mentions`]): it reads the same and is not a mention.

use crate::payload::ReplyTo;
use openhands_core::extension::{Outcome, StartFailure};
use openhands_core::resolver::messages;

/// `text` with every `mention` (`@openhands`, any case) made a non-mention.
pub fn defuse_mentions(text: &str, mention: &str) -> String {
    let needle = mention.as_bytes();
    if needle.len() < 2 || !mention.is_ascii() {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len() + 8);
    let mut rest = text;
    while let Some(at) = rest
        .as_bytes()
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
    {
        // `at` and `at + 1` are char boundaries: the match is ASCII and starts with `@`.
        let (before, found) = rest.split_at(at);
        out.push_str(before);
        out.push('@');
        out.push('\u{2060}');
        out.push_str(found.get(1..needle.len()).unwrap_or_default());
        rest = found.get(needle.len()..).unwrap_or_default();
    }
    out.push_str(rest);
    out
}

/// The outcome note: the verdict, the agent's last message, this project's branch and
/// merge-request links, and the conversation.
pub fn outcome(outcome: &Outcome, reply: &ReplyTo, public_url: &str) -> String {
    let kinds = ["-/merge_requests/", "-/tree/", "-/compare/"];
    messages::outcome(
        outcome,
        "merge request",
        |link| messages::is_repository_link(link, &reply.base_url, &reply.project_path, &kinds),
        Some(public_url),
    )
}

/// To an asker whose GitLab account is linked to no OpenHands account.
pub fn no_linked_account(login: &str, public_url: &str) -> String {
    messages::no_linked_account(
        "GitLab",
        login,
        messages::link_url(Some(public_url), "gitlab"),
    )
}

/// To an asker below the Developer role.
pub fn not_allowed(login: &str) -> String {
    messages::not_allowed(login, "the Developer role")
}

/// To an asker whose job could not be started.
pub fn start_failed(login: &str, failure: StartFailure, public_url: &str) -> String {
    messages::start_failed(login, failure, Some(public_url))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::Trigger;
    use openhands_core::resolver::mentions;

    #[test]
    fn a_defused_mention_is_no_mention_and_other_text_is_kept() {
        let text = "Done. Ask @OpenHands again, or mail user@openhands.com — ünïcode @openhands!";
        let defused = defuse_mentions(text, "@openhands");
        assert!(!mentions(&defused, "@openhands"), "{defused}");
        assert_eq!(defused.replace('\u{2060}', ""), text);
        assert_eq!(defuse_mentions("plain", "@openhands"), "plain");
    }

    #[test]
    fn the_outcome_keeps_this_projects_merge_request_links() {
        let reply = ReplyTo {
            trigger: Trigger::IssueNote,
            webhook_id: "w".into(),
            base_url: "https://gitlab.example.com".into(),
            project_id: 5,
            project_path: "acme/app".into(),
            iid: 7,
            discussion_id: None,
            internal: false,
            sender_username: "alice".into(),
            sender_id: 1,
        };
        let text = outcome(
            &Outcome {
                conversation_id: "c1".into(),
                agent_state: "finished".into(),
                message: Some("Opened a merge request.".into()),
                links: vec![
                    "https://gitlab.example.com/acme/app/-/merge_requests/3".into(),
                    "https://gitlab.example.com/other/app/-/merge_requests/1".into(),
                ],
            },
            &reply,
            "https://app.example",
        );
        assert!(text.contains("acme/app/-/merge_requests/3"), "{text}");
        assert!(!text.contains("other/app"), "{text}");
        assert!(
            text.contains("https://app.example/conversations/c1"),
            "{text}"
        );
    }
}
