//! The user's own git-provider data, read with the user's linked token: who they are, their
//! repositories and branches, the app installations they can see. Behind `/api/user/*`,
//! wire-compatible with OpenHands (`openhands/integrations/service_types.py`).
//!
//! Each provider crate implements [`GitService`] with its REST client and submits a
//! [`GitServiceRegistration`]; the routes ask the services of the providers the user has a
//! token for. Like integrations, several are active at once, so they are collected with
//! `inventory` rather than picked by a slot.

use crate::config::Config;
use crate::secrets::{ProviderToken, ProviderType};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A repository, as OpenHands' `Repository`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Repository {
    pub id: String,
    pub full_name: String,
    pub git_provider: ProviderType,
    pub is_public: bool,
    pub stargazers_count: Option<u64>,
    /// The provider's `Link` header of the page (OpenHands passes it through for paging).
    pub link_header: Option<String>,
    pub pushed_at: Option<String>,
    /// `user` or `organization`.
    pub owner_type: Option<String>,
    pub main_branch: Option<String>,
}

/// A branch, as OpenHands' `Branch`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Branch {
    pub name: String,
    pub commit_sha: String,
    pub protected: bool,
    pub last_push_date: Option<String>,
}

/// One page of branches, as OpenHands' `PaginatedBranchesResponse`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PaginatedBranches {
    pub branches: Vec<Branch>,
    pub has_next_page: bool,
    pub current_page: u32,
    pub per_page: u32,
    pub total_count: Option<u64>,
}

/// The provider's account, as OpenHands' `User`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GitUser {
    pub id: String,
    pub login: String,
    pub avatar_url: String,
    pub company: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
}

/// What a repository listing asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryPage {
    /// `pushed` (default), `updated`, `created` or `full_name`.
    pub sort: String,
    pub page: u32,
    pub per_page: u32,
    /// Only the repositories of this app installation (GitHub) or workspace (Bitbucket).
    pub installation_id: Option<String>,
}

/// What a repository search asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositorySearch {
    pub query: String,
    pub per_page: u32,
    /// `stars` (default), `forks`, `updated`.
    pub sort: String,
    /// `desc` (default) or `asc`.
    pub order: String,
}

/// Why a provider call failed. Never holds a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GitServiceError {
    /// The token was refused (expired, revoked): the user has to link the account again.
    #[error("the {0} token was refused; link the account again")]
    Unauthorized(&'static str),
    /// The provider's rate limit; retry after this many seconds.
    #[error("{provider} rate limit reached; retry in {retry_after} s")]
    RateLimited {
        provider: &'static str,
        retry_after: u64,
    },
    /// The repository (or installation) does not exist or the token cannot see it.
    #[error("{0} not found")]
    NotFound(String),
    /// The provider does not have this (e.g. installations on GitLab).
    #[error("Provider {0} doesn't support installations")]
    Unsupported(&'static str),
    /// The provider failed or answered something unexpected.
    #[error("{provider} answered an error: {message}")]
    Provider {
        provider: &'static str,
        message: String,
    },
}

/// A provider's read API for the user's own data (see the module doc).
#[async_trait]
pub trait GitService: Send + Sync {
    fn provider(&self) -> ProviderType;

    async fn user(&self, token: &ProviderToken) -> Result<GitUser, GitServiceError>;

    async fn repositories(
        &self,
        token: &ProviderToken,
        page: &RepositoryPage,
    ) -> Result<Vec<Repository>, GitServiceError>;

    async fn search_repositories(
        &self,
        token: &ProviderToken,
        search: &RepositorySearch,
    ) -> Result<Vec<Repository>, GitServiceError>;

    /// One page of `repository`'s branches (`owner/repo`).
    async fn branches(
        &self,
        token: &ProviderToken,
        repository: &str,
        page: u32,
        per_page: u32,
    ) -> Result<PaginatedBranches, GitServiceError>;

    /// The app installations (GitHub) or workspaces (Bitbucket) the user can see.
    async fn installations(&self, _token: &ProviderToken) -> Result<Vec<String>, GitServiceError> {
        Err(GitServiceError::Unsupported(self.provider().as_str()))
    }
}

/// Builds a provider's service from the config; `None` when it is not available.
pub type GitServiceBuildFn = fn(&Config) -> Option<Arc<dyn GitService>>;

/// A linked provider crate's git service, submitted with `inventory::submit!`.
pub struct GitServiceRegistration {
    pub provider: ProviderType,
    pub build: GitServiceBuildFn,
}

inventory::collect!(GitServiceRegistration);

impl GitServiceRegistration {
    /// The services available with this config, one per provider.
    pub fn available(config: &Config) -> Vec<Arc<dyn GitService>> {
        let mut services: Vec<Arc<dyn GitService>> = inventory::iter::<GitServiceRegistration>
            .into_iter()
            .filter_map(|registration| (registration.build)(config))
            .collect();
        services.sort_by_key(|s| s.provider().as_str());
        services.dedup_by_key(|s| s.provider());
        services
    }
}
