//! The user's own GitHub data for `/api/user/*` ([`GitService`]): their account, their
//! repositories (or one App installation's), search, branches and installations, read from
//! GitHub's REST API with the user's linked token (`GITHUB_API_URL`, default
//! `https://api.github.com`, for GitHub Enterprise and tests).
//!
//! GitHub's answers are mapped to OpenHands' models; a refused token is `Unauthorized`, a
//! spent rate limit (`403`/`429` with `x-ratelimit-remaining: 0`, or `Retry-After`) is
//! `RateLimited` with the seconds until the reset, so the route can say when to retry.

use crate::config::DEFAULT_API_URL;
use crate::settings::GithubSettings;
use async_trait::async_trait;
use openhands_core::extension::{
    Branch, GitService, GitServiceError, GitServiceRegistration, GitUser, PaginatedBranches,
    Repository, RepositoryPage, RepositorySearch,
};
use openhands_core::provider_http::read_json;
use openhands_core::secrets::{ProviderToken, ProviderType};
use reqwest::header::{HeaderMap, LINK};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::time::Duration;

const PROVIDER: &str = "GitHub";
/// Longest a GitHub call may take.
const TIMEOUT: Duration = Duration::from_secs(15);

/// [`GitService`] for GitHub.
pub struct GithubUserService {
    api_url: String,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct WireUser {
    id: u64,
    login: String,
    #[serde(default)]
    avatar_url: String,
    company: Option<String>,
    name: Option<String>,
    email: Option<String>,
}

#[derive(Deserialize)]
struct WireOwner {
    #[serde(rename = "type", default)]
    kind: String,
}

#[derive(Deserialize)]
struct WireRepository {
    id: u64,
    full_name: String,
    #[serde(default)]
    private: bool,
    stargazers_count: Option<u64>,
    pushed_at: Option<String>,
    owner: Option<WireOwner>,
    default_branch: Option<String>,
}

#[derive(Deserialize)]
struct WireInstallationRepositories {
    repositories: Vec<WireRepository>,
}

#[derive(Deserialize)]
struct WireSearch {
    items: Vec<WireRepository>,
}

#[derive(Deserialize)]
struct WireCommit {
    sha: String,
}

#[derive(Deserialize)]
struct WireBranch {
    name: String,
    commit: WireCommit,
    #[serde(default)]
    protected: bool,
}

#[derive(Deserialize)]
struct WireInstallation {
    id: u64,
}

#[derive(Deserialize)]
struct WireInstallations {
    installations: Vec<WireInstallation>,
}

fn repository(wire: WireRepository, link_header: Option<&str>) -> Repository {
    Repository {
        id: wire.id.to_string(),
        full_name: wire.full_name,
        git_provider: ProviderType::Github,
        is_public: !wire.private,
        stargazers_count: wire.stargazers_count,
        link_header: link_header.map(str::to_owned),
        pushed_at: wire.pushed_at,
        owner_type: wire.owner.map(|o| {
            if o.kind.eq_ignore_ascii_case("organization") {
                "organization".to_owned()
            } else {
                "user".to_owned()
            }
        }),
        main_branch: wire.default_branch,
    }
}

/// Seconds until a spent rate limit resets, when the answer says the limit is spent.
fn rate_limited(status: reqwest::StatusCode, headers: &HeaderMap) -> Option<u64> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    if status != reqwest::StatusCode::FORBIDDEN && status != reqwest::StatusCode::TOO_MANY_REQUESTS
    {
        return None;
    }
    if let Some(seconds) = header("retry-after") {
        return Some(seconds);
    }
    if header("x-ratelimit-remaining") != Some(0) {
        return None;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Some(header("x-ratelimit-reset").map_or(60, |reset| reset.saturating_sub(now).max(1)))
}

/// Whether a `Link` header has a `rel="next"` page.
fn has_next(link: Option<&str>) -> bool {
    link.is_some_and(|l| l.split(',').any(|part| part.contains("rel=\"next\"")))
}

impl GithubUserService {
    pub fn new(api_url: &str) -> Self {
        Self {
            api_url: api_url.trim_end_matches('/').to_owned(),
            http: reqwest::Client::builder()
                .timeout(TIMEOUT)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_default(),
        }
    }

    /// GETs `path` (with `query`) with the user's token; the body and the `Link` header.
    async fn get<T: DeserializeOwned>(
        &self,
        token: &ProviderToken,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<(T, Option<String>), GitServiceError> {
        let secret = token
            .token
            .as_ref()
            .ok_or(GitServiceError::Unauthorized(PROVIDER))?;
        let failed = |message: String| GitServiceError::Provider {
            provider: PROVIDER,
            message,
        };
        let response = self
            .http
            .get(format!("{}{path}", self.api_url))
            .query(query)
            .bearer_auth(secret.expose())
            .header("Accept", "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28")
            .header("User-Agent", "openhands-server")
            .send()
            .await
            .map_err(|e| failed(format!("no answer: {}", e.without_url())))?;
        let status = response.status();
        if let Some(retry_after) = rate_limited(status, response.headers()) {
            return Err(GitServiceError::RateLimited {
                provider: PROVIDER,
                retry_after,
            });
        }
        match status.as_u16() {
            401 => return Err(GitServiceError::Unauthorized(PROVIDER)),
            404 => return Err(GitServiceError::NotFound(path.to_owned())),
            200..=299 => {}
            other => return Err(failed(format!("status {other} for {path}"))),
        }
        let link = response
            .headers()
            .get(LINK)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = read_json::<T>(response)
            .await
            .map_err(|e| failed(format!("unexpected answer for {path}: {e}")))?;
        Ok((body, link))
    }
}

#[async_trait]
impl GitService for GithubUserService {
    fn provider(&self) -> ProviderType {
        ProviderType::Github
    }

    async fn user(&self, token: &ProviderToken) -> Result<GitUser, GitServiceError> {
        let (user, _) = self.get::<WireUser>(token, "/user", &[]).await?;
        Ok(GitUser {
            id: user.id.to_string(),
            login: user.login,
            avatar_url: user.avatar_url,
            company: user.company,
            name: user.name,
            email: user.email,
        })
    }

    async fn repositories(
        &self,
        token: &ProviderToken,
        page: &RepositoryPage,
    ) -> Result<Vec<Repository>, GitServiceError> {
        let paging = [
            ("page", page.page.to_string()),
            ("per_page", page.per_page.to_string()),
        ];
        if let Some(installation) = &page.installation_id {
            if !installation.bytes().all(|b| b.is_ascii_digit()) || installation.is_empty() {
                return Err(GitServiceError::NotFound(format!(
                    "installation {installation}"
                )));
            }
            let path = format!("/user/installations/{installation}/repositories");
            let (found, link) = self
                .get::<WireInstallationRepositories>(token, &path, &paging)
                .await?;
            return Ok(found
                .repositories
                .into_iter()
                .map(|r| repository(r, link.as_deref()))
                .collect());
        }
        let mut query = vec![("sort", page.sort.clone())];
        query.extend(paging);
        let (found, link) = self
            .get::<Vec<WireRepository>>(token, "/user/repos", &query)
            .await?;
        Ok(found
            .into_iter()
            .map(|r| repository(r, link.as_deref()))
            .collect())
    }

    async fn search_repositories(
        &self,
        token: &ProviderToken,
        search: &RepositorySearch,
    ) -> Result<Vec<Repository>, GitServiceError> {
        let query = [
            ("q", search.query.clone()),
            ("per_page", search.per_page.to_string()),
            ("sort", search.sort.clone()),
            ("order", search.order.clone()),
        ];
        let (found, _) = self
            .get::<WireSearch>(token, "/search/repositories", &query)
            .await?;
        Ok(found
            .items
            .into_iter()
            .map(|r| repository(r, None))
            .collect())
    }

    async fn branches(
        &self,
        token: &ProviderToken,
        repository: &str,
        page: u32,
        per_page: u32,
    ) -> Result<PaginatedBranches, GitServiceError> {
        let path = format!("/repos/{repository}/branches");
        let query = [
            ("page", page.to_string()),
            ("per_page", per_page.to_string()),
        ];
        let (found, link) = self.get::<Vec<WireBranch>>(token, &path, &query).await?;
        Ok(PaginatedBranches {
            branches: found
                .into_iter()
                .map(|b| Branch {
                    name: b.name,
                    commit_sha: b.commit.sha,
                    protected: b.protected,
                    last_push_date: None,
                })
                .collect(),
            has_next_page: has_next(link.as_deref()),
            current_page: page,
            per_page,
            total_count: None,
        })
    }

    async fn installations(&self, token: &ProviderToken) -> Result<Vec<String>, GitServiceError> {
        let (found, _) = self
            .get::<WireInstallations>(token, "/user/installations", &[])
            .await?;
        Ok(found
            .installations
            .into_iter()
            .map(|i| i.id.to_string())
            .collect())
    }
}

/// The App's API URL when the App is configured for this server (tests install theirs),
/// else `GITHUB_API_URL`, else github.com's: a user's linked token works without the App.
fn build(config: &openhands_core::config::Config) -> Option<Arc<dyn GitService>> {
    let api_url = GithubSettings::for_server(config)
        .ok()
        .flatten()
        .map(|settings| settings.app.api_url.clone())
        .or_else(|| std::env::var("GITHUB_API_URL").ok())
        .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
        .unwrap_or_else(|| DEFAULT_API_URL.to_owned());
    Some(Arc::new(GithubUserService::new(&api_url)))
}

inventory::submit! {
    GitServiceRegistration { provider: ProviderType::Github, build }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spent_limit_is_told_apart_from_a_refusal() {
        let mut headers = HeaderMap::new();
        headers.insert("x-ratelimit-remaining", "0".parse().expect("value"));
        headers.insert("x-ratelimit-reset", "1".parse().expect("value"));
        assert_eq!(
            rate_limited(reqwest::StatusCode::FORBIDDEN, &headers),
            Some(1)
        );
        let mut refused = HeaderMap::new();
        refused.insert("x-ratelimit-remaining", "42".parse().expect("value"));
        assert_eq!(rate_limited(reqwest::StatusCode::FORBIDDEN, &refused), None);
        let mut retry = HeaderMap::new();
        retry.insert("retry-after", "30".parse().expect("value"));
        assert_eq!(
            rate_limited(reqwest::StatusCode::TOO_MANY_REQUESTS, &retry),
            Some(30)
        );
    }

    #[test]
    fn the_next_page_comes_from_the_link_header() {
        assert!(has_next(Some(
            "<https://api.github.com/x?page=2>; rel=\"next\", <https://api.github.com/x?page=5>; rel=\"last\""
        )));
        assert!(!has_next(Some(
            "<https://api.github.com/x?page=1>; rel=\"prev\""
        )));
        assert!(!has_next(None));
    }
}
