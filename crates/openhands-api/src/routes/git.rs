//! `/api/user/*`: the user's git-provider data, read with their linked tokens, wire-compatible
//! with OpenHands (`openhands/server/routes/git.py`): account, repositories (sorted, paged,
//! or one app installation's), repository search, branches, installations.
//!
//! Each linked provider with a [`GitService`] answers (`selected_provider` picks one); tokens
//! are refreshed when due, as for a conversation. Repository listings are cached per user
//! for [`LIST_TTL`], so the web app's start page does not spend the user's provider rate
//! limit. Provider failures are told apart: a refused token is 401 (link the account
//! again), a spent rate limit 429 with `Retry-After`, an unknown repository 404, anything
//! else 502. A user without any provider token gets OpenHands' 401 JSON string.

use crate::error::ApiError;
use crate::error::schema::ErrorDetail;
use crate::state::AppState;
use crate::user::CurrentUser;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use openhands_core::cache::TtlCache;
use openhands_core::extension::{
    GitService, GitServiceError, GitUser, PaginatedBranches, Repository, RepositoryPage,
    RepositorySearch,
};
use openhands_core::scope::UserScope;
use openhands_core::secrets::{ProviderToken, ProviderType};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use utoipa::IntoParams;

/// How long a user's repository listing is served from memory.
pub const LIST_TTL: Duration = Duration::from_secs(30);
/// Largest page a caller may ask for (GitHub's own cap).
const MAX_PER_PAGE: u32 = 100;
const NO_TOKEN: &str = "Git provider token required.";

/// A bare JSON string, as OpenHands answers here: `"Git provider token required."`, a refused
/// token, or a provider without installations.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)] // documents the answer's shape only
pub struct ProviderMessage(String);

/// Repository listings by user, provider and query (see [`LIST_TTL`]).
pub type ListCache = TtlCache<(UserScope, ProviderType, String), Vec<Repository>>;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/user/info", web::get().to(user_info))
        .route("/api/user/repositories", web::get().to(repositories))
        .route(
            "/api/user/search/repositories",
            web::get().to(search_repositories),
        )
        .route("/api/user/repository/branches", web::get().to(branches))
        .route("/api/user/installations", web::get().to(installations));
}

fn provider_error(err: GitServiceError) -> ApiError {
    let message = err.to_string();
    match err {
        GitServiceError::Unauthorized(_) => ApiError::new(StatusCode::UNAUTHORIZED, json!(message)),
        GitServiceError::RateLimited { retry_after, .. } => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            json!({"detail": message, "code": "provider_rate_limited"}),
        )
        .with_header("retry-after", retry_after.to_string()),
        GitServiceError::NotFound(_) => {
            ApiError::new(StatusCode::NOT_FOUND, json!({"detail": message}))
        }
        GitServiceError::Unsupported(_) => ApiError::new(StatusCode::BAD_REQUEST, json!(message)),
        GitServiceError::Provider { .. } => {
            tracing::warn!(error = %message, "a git provider call failed");
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                json!({"detail": message, "code": "provider_error"}),
            )
        }
    }
}

/// The user's providers that have a service and a token (refreshed when due), optionally
/// only `selected`; 401 with OpenHands' string when there is none.
async fn linked(
    state: &AppState,
    scope: &UserScope,
    selected: Option<ProviderType>,
) -> Result<Vec<(Arc<dyn GitService>, ProviderToken)>, ApiError> {
    let secrets = state
        .ext
        .secrets_store
        .load(scope)
        .await
        .map_err(|e| ApiError::internal(&e, json!({"detail": "Storage failed"})))?
        .unwrap_or_default();
    let mut found = Vec::new();
    for service in &state.git_services {
        let provider = service.provider();
        if selected.is_some_and(|s| s != provider) {
            continue;
        }
        let Some(token) = secrets
            .provider_tokens
            .get(&provider)
            .filter(|t| t.token.is_some())
        else {
            continue;
        };
        let fresh = state
            .ext
            .provider_tokens
            .fresh_token(scope, provider, token.clone())
            .await
            .unwrap_or_else(|err| {
                tracing::warn!(provider = provider.as_str(), error = %err, "refreshing a provider token failed; using the stored one");
                token.clone()
            });
        found.push((service.clone(), fresh));
    }
    if found.is_empty() {
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, json!(NO_TOKEN)));
    }
    Ok(found)
}

/// The account of the first linked provider that answers.
#[utoipa::path(get, path = "/api/user/info", tag = "git", security(("user" = [])), responses(
    (status = 200, body = GitUser),
    (status = 401, description = "No provider token, or the provider refused it", body = ProviderMessage),
    (status = 429, description = "The provider's rate limit; `Retry-After` says when", body = ErrorDetail),
    (status = 502, description = "The provider failed", body = ErrorDetail)))]
pub async fn user_info(
    user: CurrentUser,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let mut last = None;
    for (service, token) in linked(&state, user.scope(), None).await? {
        match service.user(&token).await {
            Ok(found) => return Ok(HttpResponse::Ok().json(found)),
            Err(err) => last = Some(err),
        }
    }
    Err(last.map_or_else(
        || ApiError::new(StatusCode::UNAUTHORIZED, json!(NO_TOKEN)),
        provider_error,
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RepositoriesQuery {
    /// `pushed` (default), `updated`, `created` or `full_name`.
    pub sort: Option<String>,
    pub selected_provider: Option<ProviderType>,
    /// 1-based (default 1).
    pub page: Option<u32>,
    /// 1 to 100 (default 30).
    pub per_page: Option<u32>,
    /// Only this GitHub App installation's repositories.
    pub installation_id: Option<String>,
}

fn bounded_per_page(value: Option<u32>, default: u32) -> Result<u32, ApiError> {
    match value.unwrap_or(default) {
        n @ 1..=MAX_PER_PAGE => Ok(n),
        _ => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            json!({"detail": format!("per_page must be between 1 and {MAX_PER_PAGE}")}),
        )),
    }
}

/// The user's repositories on each linked provider (or `selected_provider`), newest push
/// first by default; cached per user for 30 s.
#[utoipa::path(get, path = "/api/user/repositories", tag = "git", params(RepositoriesQuery), security(("user" = [])), responses(
    (status = 200, body = Vec<Repository>),
    (status = 400, description = "`per_page` out of range", body = ErrorDetail),
    (status = 401, description = "No provider token, or the provider refused it", body = ProviderMessage),
    (status = 404, description = "No such installation", body = ErrorDetail),
    (status = 429, description = "The provider's rate limit; `Retry-After` says when", body = ErrorDetail),
    (status = 502, description = "The provider failed", body = ErrorDetail)))]
pub async fn repositories(
    user: CurrentUser,
    state: web::Data<AppState>,
    query: web::Query<RepositoriesQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let page = RepositoryPage {
        sort: query.sort.unwrap_or_else(|| "pushed".to_owned()),
        page: query.page.unwrap_or(1).max(1),
        per_page: bounded_per_page(query.per_page, 30)?,
        installation_id: query.installation_id,
    };
    let key_of = |provider| {
        let detail = format!(
            "{}|{}|{}|{}",
            page.sort,
            page.page,
            page.per_page,
            page.installation_id.as_deref().unwrap_or_default()
        );
        (user.scope().clone(), provider, detail)
    };
    let mut all = Vec::new();
    for (service, token) in linked(&state, user.scope(), query.selected_provider).await? {
        let key = key_of(service.provider());
        if let Some(cached) = state.repository_lists.get(&key) {
            all.extend(cached);
            continue;
        }
        let found = service
            .repositories(&token, &page)
            .await
            .map_err(provider_error)?;
        state.repository_lists.insert(key, found.clone());
        all.extend(found);
    }
    Ok(HttpResponse::Ok().json(all))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    pub query: String,
    /// 1 to 100 (default 5).
    pub per_page: Option<u32>,
    /// `stars` (default), `forks` or `updated`.
    pub sort: Option<String>,
    /// `desc` (default) or `asc`.
    pub order: Option<String>,
    pub selected_provider: Option<ProviderType>,
}

/// Repositories matching `query` on each linked provider (or `selected_provider`).
#[utoipa::path(get, path = "/api/user/search/repositories", tag = "git", params(SearchQuery), security(("user" = [])), responses(
    (status = 200, body = Vec<Repository>),
    (status = 400, description = "`per_page` out of range", body = ErrorDetail),
    (status = 401, description = "No provider token, or the provider refused it", body = ProviderMessage),
    (status = 429, description = "The provider's rate limit; `Retry-After` says when", body = ErrorDetail),
    (status = 502, description = "The provider failed", body = ErrorDetail)))]
pub async fn search_repositories(
    user: CurrentUser,
    state: web::Data<AppState>,
    query: web::Query<SearchQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let search = RepositorySearch {
        query: query.query,
        per_page: bounded_per_page(query.per_page, 5)?,
        sort: query.sort.unwrap_or_else(|| "stars".to_owned()),
        order: query.order.unwrap_or_else(|| "desc".to_owned()),
    };
    let mut all = Vec::new();
    for (service, token) in linked(&state, user.scope(), query.selected_provider).await? {
        all.extend(
            service
                .search_repositories(&token, &search)
                .await
                .map_err(provider_error)?,
        );
    }
    Ok(HttpResponse::Ok().json(all))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BranchesQuery {
    /// `owner/repo`.
    pub repository: String,
    /// 1-based (default 1).
    pub page: Option<u32>,
    /// 1 to 100 (default 30).
    pub per_page: Option<u32>,
    pub selected_provider: Option<ProviderType>,
}

/// Whether `repository` is a plain `owner/repo` (or `group/sub/project`) path.
fn valid_repository(repository: &str) -> bool {
    let parts: Vec<&str> = repository.split('/').collect();
    parts.len() >= 2
        && parts.iter().all(|p| {
            !p.is_empty()
                && *p != "."
                && *p != ".."
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        })
}

/// One page of a repository's branches, from the first linked provider that has it.
#[utoipa::path(get, path = "/api/user/repository/branches", tag = "git", params(BranchesQuery), security(("user" = [])), responses(
    (status = 200, body = PaginatedBranches),
    (status = 400, description = "Not an `owner/repo` path, or `per_page` out of range", body = ErrorDetail),
    (status = 401, description = "No provider token, or the provider refused it", body = ProviderMessage),
    (status = 404, description = "No linked provider has this repository", body = ErrorDetail),
    (status = 429, description = "The provider's rate limit; `Retry-After` says when", body = ErrorDetail),
    (status = 502, description = "The provider failed", body = ErrorDetail)))]
pub async fn branches(
    user: CurrentUser,
    state: web::Data<AppState>,
    query: web::Query<BranchesQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    if !valid_repository(&query.repository) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            json!({"detail": "repository must be an owner/repo path"}),
        ));
    }
    let per_page = bounded_per_page(query.per_page, 30)?;
    let page = query.page.unwrap_or(1).max(1);
    let mut last = GitServiceError::NotFound(format!("repository {}", query.repository));
    for (service, token) in linked(&state, user.scope(), query.selected_provider).await? {
        match service
            .branches(&token, &query.repository, page, per_page)
            .await
        {
            Ok(found) => return Ok(HttpResponse::Ok().json(found)),
            Err(GitServiceError::NotFound(_)) => {}
            Err(other) => last = other,
        }
    }
    Err(provider_error(last))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InstallationsQuery {
    pub provider: ProviderType,
}

/// The app installations (GitHub) the user can see, as ids.
#[utoipa::path(get, path = "/api/user/installations", tag = "git", params(InstallationsQuery), security(("user" = [])), responses(
    (status = 200, body = Vec<String>),
    (status = 400, description = "The provider has no installations", body = ProviderMessage),
    (status = 401, description = "No token for the provider, or the provider refused it", body = ProviderMessage),
    (status = 429, description = "The provider's rate limit; `Retry-After` says when", body = ErrorDetail),
    (status = 502, description = "The provider failed", body = ErrorDetail)))]
pub async fn installations(
    user: CurrentUser,
    state: web::Data<AppState>,
    query: web::Query<InstallationsQuery>,
) -> Result<HttpResponse, ApiError> {
    let provider = query.into_inner().provider;
    let linked = linked(&state, user.scope(), Some(provider)).await?;
    let Some((service, token)) = linked.first() else {
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, json!(NO_TOKEN)));
    };
    let found = service.installations(token).await.map_err(provider_error)?;
    Ok(HttpResponse::Ok().json(found))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_paths_are_checked() {
        assert!(valid_repository("acme/app"));
        assert!(valid_repository("group/sub/project.js"));
        for bad in ["acme", "acme/", "../etc", "acme/../x", "a/b?c", "a/b c", ""] {
            assert!(!valid_repository(bad), "{bad}");
        }
    }
}
