//! The agent's first message for each kind of trigger, rendered from the template files
//! in `resolver/templates/` (Jinja syntax, rendered with `minijinja`; `.md` names, so
//! nothing is HTML-escaped). A provider fills a [`Thread`] from its payload and picks the
//! prompt for its trigger.

use minijinja::{Environment, context};
use std::sync::LazyLock;

static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    for (name, source) in [
        ("issue.md", include_str!("templates/issue.md")),
        ("comment.md", include_str!("templates/comment.md")),
        (
            "review_comment.md",
            include_str!("templates/review_comment.md"),
        ),
        ("follow_up.md", include_str!("templates/follow_up.md")),
    ] {
        if let Err(err) = env.add_template(name, source) {
            tracing::error!(template = name, error = %err, "a resolver prompt template does not compile");
        }
    }
    env
});

/// The issue or change request a trigger happened on.
#[derive(Debug, Clone, Copy)]
pub struct Thread<'a> {
    /// `owner/repo` (or `group/subgroup/project`).
    pub repository: &'a str,
    /// `issue`, or the provider's name of a change request (`pull request`, `merge request`).
    pub what: &'a str,
    /// Whether it is a change request (the agent then works on its branch).
    pub on_change_request: bool,
    pub number: u64,
    pub title: &'a str,
    pub body: &'a str,
}

fn render(name: &str, values: minijinja::Value) -> String {
    let rendered = TEMPLATES
        .get_template(name)
        .and_then(|template| template.render(values.clone()));
    rendered.unwrap_or_else(|err| {
        // Only a broken template file gets here (the unit tests render each one); the
        // values still reach the agent.
        tracing::error!(template = name, error = %err, "rendering a resolver prompt failed");
        format!("{values}")
    })
}

/// The task for an issue that got the trigger label; `change_request` is the provider's
/// name for what the agent opens (`pull request`, `merge request`).
pub fn labelled_issue(thread: &Thread<'_>, change_request: &str) -> String {
    render(
        "issue.md",
        context! {
            number => thread.number, repository => thread.repository,
            title => thread.title, body => thread.body, change_request => change_request,
        },
    )
}

/// The task for a comment on an issue or a change request that mentions the agent.
pub fn comment(thread: &Thread<'_>, author: &str, text: &str) -> String {
    render(
        "comment.md",
        context! {
            author => author, text => text, what => thread.what, number => thread.number,
            repository => thread.repository, title => thread.title, body => thread.body,
            on_change_request => thread.on_change_request,
        },
    )
}

/// Where an inline review comment sits.
#[derive(Debug, Clone, Copy, Default)]
pub struct CodePlace<'a> {
    pub path: Option<&'a str>,
    pub line: Option<u64>,
    /// The diff hunk the comment is on.
    pub diff_hunk: Option<&'a str>,
}

/// The task for an inline review comment on a change request that mentions the agent.
pub fn review_comment(
    thread: &Thread<'_>,
    author: &str,
    text: &str,
    place: &CodePlace<'_>,
) -> String {
    render(
        "review_comment.md",
        context! {
            author => author, text => text, what => thread.what, number => thread.number,
            repository => thread.repository, title => thread.title,
            path => place.path, line => place.line, diff_hunk => place.diff_hunk,
        },
    )
}

/// The message a thread's existing conversation gets for a later comment that asks the
/// agent again (the conversation already knows the issue).
pub fn follow_up(thread: &Thread<'_>, author: &str, text: &str) -> String {
    render(
        "follow_up.md",
        context! { author => author, text => text, what => thread.what, number => thread.number },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn thread(on_change_request: bool) -> Thread<'static> {
        Thread {
            repository: "acme/app",
            what: if on_change_request {
                "pull request"
            } else {
                "issue"
            },
            on_change_request,
            number: 7,
            title: "Crash <on> start",
            body: "It & crashes.",
        }
    }

    #[test]
    fn every_template_renders_and_nothing_is_escaped() {
        assert_eq!(
            labelled_issue(&thread(false), "merge request"),
            "Resolve issue #7 of the repository acme/app.\n\nTitle: Crash <on> start\n\n\
             It & crashes.\n\nWhen the fix is ready, push it to a new branch and open a merge \
             request that references the issue."
        );
        assert_eq!(
            comment(&thread(false), "alice", "@openhands look"),
            "alice asked you in a comment on issue #7 of the repository acme/app:\n\n\
             @openhands look\n\nThe issue is titled \"Crash <on> start\":\n\nIt & crashes."
        );
        assert!(comment(&thread(true), "alice", "fix").ends_with(
            "It & crashes.\n\nYou are on the pull request's branch: commit and push your \
                 changes to it."
        ));
    }

    #[test]
    fn a_follow_up_is_the_new_comment_only() {
        assert_eq!(
            follow_up(&thread(false), "carol", "@openhands also the docs"),
            "carol commented again on issue #7:\n\n@openhands also the docs"
        );
    }

    #[test]
    fn a_review_comment_names_its_place_and_hunk_when_known() {
        let place = CodePlace {
            path: Some("src/main.rs"),
            line: Some(12),
            diff_hunk: Some("@@ -1 +1 @@\n-a\n+b"),
        };
        assert_eq!(
            review_comment(&thread(true), "bob", "@openhands rename", &place),
            "bob asked you in a review comment on `src/main.rs` line 12 of pull request #7 \
             (\"Crash <on> start\") of the repository acme/app:\n\n@openhands rename\n\n\
             The code under review:\n```diff\n@@ -1 +1 @@\n-a\n+b\n```\n\nYou are on the pull \
             request's branch: commit and push your changes to it."
        );
        assert_eq!(
            review_comment(&thread(true), "bob", "why?", &CodePlace::default()),
            "bob asked you in a review comment of pull request #7 (\"Crash <on> start\") of \
             the repository acme/app:\n\nwhy?\n\nYou are on the pull request's branch: commit \
             and push your changes to it."
        );
    }
}
