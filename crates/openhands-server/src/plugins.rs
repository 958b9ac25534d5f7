//! Provider crates linked into the binary. `inventory` only sees crates that are linked, so
//! each optional provider is named here behind its Cargo feature; that line is the only
//! change a new provider needs outside its own crate.

// The OSS conversation manager lives in its own crate (it needs the agent runtime).
use openhands_standalone_manager as _;

#[cfg(feature = "example-plugin")]
use openhands_example_plugin as _;

// SaaS mode: the SQL stores (the `saas` config class is in `crate::saas`).
#[cfg(feature = "saas")]
use openhands_sql_store as _;

// SaaS mode: organizations, members and roles (routes) and the SQL audit log.
#[cfg(feature = "saas")]
use openhands_saas_api as _;

// SaaS mode: OIDC login (`saas.oidc`), session cookies, API-key auth and the login routes.
#[cfg(feature = "saas")]
use openhands_oidc_auth as _;
// SaaS mode: rate limits counted in Redis, and the server's Redis pool.
#[cfg(feature = "saas")]
use openhands_redis as _;

// SaaS mode: linking GitHub, GitLab and Bitbucket accounts by OAuth (routes) and the
// `saas.git_oauth` provider-token source that refreshes linked tokens.
#[cfg(feature = "saas")]
use openhands_git_oauth as _;

// SaaS mode: the clustered conversation manager (`saas.clustered`, the `saas` class's pick).
#[cfg(feature = "saas")]
use openhands_cluster_manager as _;

// SaaS mode: the integration framework (webhook route, delivery log, worker, callbacks).
#[cfg(feature = "saas")]
use openhands_integrations as _;

// Integrations: Gitea / Forgejo webhooks (on only with GITEA_WEBHOOKS_ENABLED).
#[cfg(feature = "gitea")]
use openhands_gitea as _;

// Integrations: the GitHub App (on only when GITHUB_APP_CLIENT_ID and its key and secret are set).
#[cfg(feature = "github")]
use openhands_github as _;

// Integrations: GitLab webhooks (on only with GITLAB_WEBHOOKS_ENABLED).
#[cfg(feature = "gitlab")]
use openhands_gitlab as _;

// SaaS mode: the isolated sandbox (`saas.bwrap`, the `saas` class's pick) and its proxy.
#[cfg(feature = "saas")]
use openhands_sandbox as _;
