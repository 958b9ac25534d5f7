//! The comments the integration posts, in one place so their wording is reviewed together.
//! They never contain a token or an internal error; failures say what the asker can do.

use openhands_core::extension::{Outcome, StartFailure};

/// Where a user links their GitHub account (the git-oauth login route).
pub fn link_url(public_url: Option<&str>) -> Option<String> {
    public_url.map(|base| format!("{base}/api/git-oauth/github/login?redirect_url=/settings/git"))
}

fn conversation_url(public_url: Option<&str>, conversation_id: &str) -> Option<String> {
    public_url.map(|base| format!("{base}/conversations/{conversation_id}"))
}

/// The outcome comment: what happened, the branch and pull-request links the agent's events
/// mention for this repository, and the conversation in the web app.
pub fn outcome(
    outcome: &Outcome,
    repository: &str,
    web_url: &str,
    public_url: Option<&str>,
) -> String {
    let verdict = match outcome.agent_state.as_str() {
        "finished" => "OpenHands finished working on this.",
        "awaiting_user_input" => "OpenHands stopped and is waiting for your input.",
        _ => "OpenHands stopped because of an error.",
    };
    let mut text = verdict.to_owned();
    if let Some(message) = outcome.message.as_deref().filter(|m| !m.trim().is_empty()) {
        text.push_str("\n\n");
        text.push_str(message.trim());
    }
    let repo_base = format!("{web_url}/{repository}/");
    let links: Vec<&String> = outcome
        .links
        .iter()
        .filter(|l| {
            l.starts_with(&repo_base)
                && ["pull/", "tree/", "compare/"]
                    .iter()
                    .any(|kind| l[repo_base.len()..].starts_with(kind))
        })
        .collect();
    if !links.is_empty() {
        text.push_str("\n\nBranch and pull request:");
        for link in links {
            text.push_str("\n- ");
            text.push_str(link);
        }
    }
    match conversation_url(public_url, &outcome.conversation_id) {
        Some(url) => text.push_str(&format!("\n\n[View the conversation]({url})")),
        None => text.push_str(&format!("\n\nConversation `{}`", outcome.conversation_id)),
    }
    text
}

/// To a sender whose GitHub account is linked to no OpenHands account.
pub fn no_linked_account(login: &str, public_url: Option<&str>) -> String {
    let how = match link_url(public_url) {
        Some(url) => format!("[link your GitHub account]({url})"),
        None => "link your GitHub account in OpenHands (Settings → Git)".to_owned(),
    };
    format!(
        "@{login} I can't start on this yet: no OpenHands account is linked to your GitHub \
         account. Please sign in to OpenHands, {how}, then ask again."
    )
}

/// To a sender whose job could not be started.
pub fn start_failed(login: &str, failure: StartFailure, public_url: Option<&str>) -> String {
    match failure {
        StartFailure::NoLlmSettings => {
            let place = public_url
                .map(|base| format!("[your settings]({base}/settings)"))
                .unwrap_or_else(|| "your OpenHands settings".to_owned());
            format!(
                "@{login} I couldn't start: your OpenHands account has no LLM configured. \
                 Please set a model and a valid LLM API key in {place}, then ask again."
            )
        }
        StartFailure::Other => format!(
            "@{login} Something went wrong on our side and I couldn't start working on this. \
             Please try again in a little while."
        ),
    }
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
