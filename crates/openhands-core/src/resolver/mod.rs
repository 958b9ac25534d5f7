//! The resolver kit: what every git-host and tracker integration does the same way, so a
//! provider crate only speaks its provider's wire format.
//!
//! OpenHands' resolvers (GitHub, GitLab, Bitbucket, Jira, Linear, Slack) each decide when a
//! webhook asks for the agent, build the agent's task from the issue or comment, and post
//! the outcome back. Copies of that logic drift (the Gitea crate once started a job for
//! `user@openhands.com`), so it lives here once:
//!
//! - [`mention`]: whether comment text mentions the agent, as a whole word;
//! - [`triggers`]: the trigger rules (the label, the mention, the bot's own comments);
//! - [`prompts`]: the agent's first message for each kind of trigger, rendered from the
//!   template files in `resolver/templates/` (Jinja syntax, with `minijinja`), so the
//!   wording is reviewed as text, not as string concatenation;
//! - [`messages`]: the replies posted back (the outcome with its branch and change-request
//!   links, a start that failed, an unlinked account), in one voice for every provider.
//!
//! The provider crate parses its payloads into these pieces' inputs and posts their
//! outputs with its own API client; the framework (`openhands-integrations`) does the rest.

pub mod mention;
pub mod messages;
pub mod prompts;
pub mod triggers;

pub use mention::mentions;
pub use triggers::Triggers;
