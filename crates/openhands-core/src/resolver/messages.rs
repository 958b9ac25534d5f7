//! The replies an integration posts, in one voice for every provider and in one place so
//! their wording is reviewed together. They never contain a token or an internal error;
//! a failure says what the asker can do.

use crate::extension::{Outcome, StartFailure};

/// Where a user links their account at `provider` (the git-oauth login route), when the
/// server knows its public URL.
pub fn link_url(public_url: Option<&str>, provider: &str) -> Option<String> {
    public_url
        .map(|base| format!("{base}/api/git-oauth/{provider}/login?redirect_url=/settings/git"))
}

fn conversation_url(public_url: Option<&str>, conversation_id: &str) -> Option<String> {
    public_url.map(|base| format!("{base}/conversations/{conversation_id}"))
}

/// The outcome reply: what happened, the agent's last message, the links the agent's
/// events mention that `is_change_link` accepts (this repository's branches and change
/// requests, which the provider calls `change_request`), and the conversation in the web
/// app.
pub fn outcome(
    outcome: &Outcome,
    change_request: &str,
    is_change_link: impl Fn(&str) -> bool,
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
    let links: Vec<&String> = outcome
        .links
        .iter()
        .filter(|link| is_change_link(link))
        .collect();
    if !links.is_empty() {
        text.push_str(&format!("\n\nBranch and {change_request}:"));
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

/// Whether `link` is under `{web_url}/{repository}/` followed by one of `kinds` (e.g.
/// `pull/`, `tree/`, `compare/` on GitHub).
pub fn is_repository_link(link: &str, web_url: &str, repository: &str, kinds: &[&str]) -> bool {
    let base = format!("{}/{repository}/", web_url.trim_end_matches('/'));
    link.strip_prefix(&base)
        .is_some_and(|rest| kinds.iter().any(|kind| rest.starts_with(kind)))
}

/// To a sender whose `provider_name` account (`GitHub`) is linked to no OpenHands account;
/// `link` is where to link it (see [`link_url`]).
pub fn no_linked_account(provider_name: &str, login: &str, link: Option<String>) -> String {
    let how = match link {
        Some(url) => format!("[link your {provider_name} account]({url})"),
        None => format!("link your {provider_name} account in OpenHands (Settings → Git)"),
    };
    format!(
        "@{login} I can't start on this yet: no OpenHands account is linked to your \
         {provider_name} account. Please sign in to OpenHands, {how}, then ask again."
    )
}

/// To a sender without the access the agent needs on the repository (`needed`, in the
/// provider's words: "write access", "the Developer role").
pub fn not_allowed(login: &str, needed: &str) -> String {
    format!("@{login} I can only start for people with {needed} on this repository.")
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
    fn the_outcome_lists_this_repositorys_change_links_and_the_conversation() {
        let text = outcome(
            &Outcome {
                conversation_id: "c1".into(),
                agent_state: "finished".into(),
                message: Some("Fixed the crash.".into()),
                links: vec![
                    "https://github.com/acme/app/pull/5".into(),
                    "https://github.com/other/x/pull/1".into(),
                    "https://github.com/acme/app/issues/2".into(),
                    "https://example.com/docs".into(),
                ],
            },
            "pull request",
            |link| is_repository_link(link, "https://github.com/", "acme/app", &["pull/", "tree/"]),
            Some("https://app.example"),
        );
        assert!(text.starts_with("OpenHands finished working on this.\n\nFixed the crash."));
        assert!(
            text.contains("Branch and pull request:\n- https://github.com/acme/app/pull/5"),
            "{text}"
        );
        assert!(!text.contains("other/x"), "{text}");
        assert!(!text.contains("issues/2"), "{text}");
        assert!(!text.contains("example.com/docs"), "{text}");
        assert!(
            text.ends_with("(https://app.example/conversations/c1)"),
            "{text}"
        );
    }

    #[test]
    fn failures_say_what_to_do_and_name_the_provider() {
        let unlinked = no_linked_account(
            "GitLab",
            "alice",
            link_url(Some("https://app.example"), "gitlab"),
        );
        assert!(unlinked.starts_with("@alice "), "{unlinked}");
        assert!(
            unlinked.contains(
                "[link your GitLab account](https://app.example/api/git-oauth/gitlab/login?redirect_url=/settings/git)"
            ),
            "{unlinked}"
        );
        let no_llm = start_failed("bob", StartFailure::NoLlmSettings, None);
        assert!(no_llm.contains("your OpenHands settings"), "{no_llm}");
    }
}
