//! GitLab (gitlab.com and self-managed) as a resolver provider: webhooks start conversations,
//! outcomes are posted back as notes. A provider crate of the integration framework
//! (`openhands-integrations`), linked into the server by its `gitlab` feature; the framework
//! mounts `POST /integration/gitlab/events` when `GITLAB_WEBHOOKS_ENABLED` is on.
//!
//! GitLab differs from the other providers in where trust comes from. There is no App and no
//! signature over the body: each project hook has its own secret token, which GitLab sends
//! back in `X-Gitlab-Token`, and custom headers set at installation name the hook and its
//! installer. So the crate keeps its own table of installed hooks, and every call to GitLab
//! is made with a user's own token, sent only to the GitLab that issued it.
//!
//! - [`integration`]: the [`Integration`](openhands_core::extension::Integration):
//!   verification, the delivery id, admission (hook, linked account, Developer role) and
//!   the replies; [`build`](integration::build) and its registration.
//! - [`payload`]: Issue Hook and Note Hook payloads and the triggers (the View).
//! - [`api`]: the REST calls (the Service), on `reqwest`.
//! - [`replies`]: the notes' wording (the resolver kit's), with mentions defused.
//! - [`store`] and [`migration`]: the `gitlab_webhooks` table, tokens hashed.
//! - [`cache`]: the hooks' keys for the synchronous verification.
//! - [`tokens`]: which user's token, for which host.
//! - [`install`]: installing and removing a project hook (`install_for_user`).
//! - [`config`]: the `GITLAB_*` settings.
//!
//! See `docs/gitlab.md`.

pub mod api;
pub mod cache;
pub mod config;
pub mod install;
pub mod integration;
pub mod migration;
pub mod payload;
pub mod replies;
pub mod store;
pub mod tokens;

pub use config::GitlabSettings;
pub use integration::{Gitlab, NAME};

use openhands_core::extension::IntegrationRegistration;

inventory::submit! {
    IntegrationRegistration {
        name: NAME,
        description: "GitLab webhooks: labelled issues and @openhands notes on issues and merge requests",
        build: integration::build,
    }
}
