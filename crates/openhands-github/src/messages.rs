//! The comments the integration posts: the resolver kit's replies
//! (`openhands_core::resolver::messages`) with GitHub's link shapes and names.

use openhands_core::extension::{Outcome, StartFailure};
use openhands_core::resolver::messages;

/// Where a user links their GitHub account (the git-oauth login route).
pub fn link_url(public_url: Option<&str>) -> Option<String> {
    messages::link_url(public_url, "github")
}

/// The outcome comment: what happened, the branch and pull-request links the agent's events
/// mention for this repository, and the conversation in the web app.
pub fn outcome(
    outcome: &Outcome,
    repository: &str,
    web_url: &str,
    public_url: Option<&str>,
) -> String {
    let kinds = ["pull/", "tree/", "compare/"];
    messages::outcome(
        outcome,
        "pull request",
        |link| messages::is_repository_link(link, web_url, repository, &kinds),
        public_url,
    )
}

/// To a sender whose GitHub account is linked to no OpenHands account.
pub fn no_linked_account(login: &str, public_url: Option<&str>) -> String {
    messages::no_linked_account("GitHub", login, link_url(public_url))
}

/// To a sender whose job could not be started.
pub fn start_failed(login: &str, failure: StartFailure, public_url: Option<&str>) -> String {
    messages::start_failed(login, failure, public_url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_outcome_lists_this_repositorys_branch_and_pr_links_and_the_conversation() {
        let text = outcome(
            &Outcome {
                conversation_id: "c1".into(),
                agent_state: "finished".into(),
                message: Some("Fixed the crash.".into()),
                links: vec![
                    "https://github.com/acme/app/pull/5".into(),
                    "https://github.com/other/x/pull/1".into(),
                    "https://example.com/docs".into(),
                ],
            },
            "acme/app",
            "https://github.com",
            Some("https://app.example"),
        );
        assert!(text.contains("Fixed the crash."), "{text}");
        assert!(
            text.contains("https://github.com/acme/app/pull/5"),
            "{text}"
        );
        assert!(!text.contains("other/x"), "{text}");
        assert!(!text.contains("example.com/docs"), "{text}");
        assert!(
            text.contains("(https://app.example/conversations/c1)"),
            "{text}"
        );
    }
}
