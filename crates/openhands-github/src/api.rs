//! The few GitHub REST calls the integration makes (the Service), with `reqwest` against the
//! configured API base, as the installation (its cached token) or, to prove an account link,
//! as the user.
//!
//! Why not a GitHub client crate: `octocrab` would bring its own HTTP stack (hyper, tower,
//! its own JWT and a second TLS setup) for six endpoints; `reqwest` is already what every
//! other client in the workspace uses, and the installation tokens come from
//! [`InstallationTokens`]. Retries are the delivery worker's (a failed call fails the attempt).
//!
//! Errors name the call and the status, never a token.

use crate::tokens::{InstallationTokens, REQUEST_TIMEOUT, TokenError};
use openhands_core::provider_http::read_json;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

const USER_AGENT: &str = concat!("openhands-rust/", env!("CARGO_PKG_VERSION"));

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("GitHub is unavailable ({what}): {reason}")]
    Unavailable { what: &'static str, reason: String },
    #[error("GitHub answered {status} ({what})")]
    Status { what: &'static str, status: u16 },
    #[error("GitHub's answer could not be read ({what})")]
    InvalidResponse { what: &'static str },
    #[error("could not build the GitHub HTTP client: {0}")]
    Client(String),
}

/// Where a reaction goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReactionTarget {
    Issue(u64),
    IssueComment(u64),
    ReviewComment(u64),
}

/// The GitHub user behind a user token.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TokenUser {
    pub login: String,
    pub id: u64,
}

/// GitHub's REST API for one App.
pub struct GithubApi {
    api_url: String,
    http: reqwest::Client,
    tokens: Arc<InstallationTokens>,
}

impl std::fmt::Debug for GithubApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GithubApi")
            .field("api_url", &self.api_url)
            .finish_non_exhaustive()
    }
}

impl GithubApi {
    pub fn new(api_url: &str, tokens: Arc<InstallationTokens>) -> Result<Self, ApiError> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(REQUEST_TIMEOUT)
            .user_agent(USER_AGENT)
            .build()
            .map_err(|e| ApiError::Client(e.to_string()))?;
        Ok(Self {
            api_url: api_url.trim_end_matches('/').to_owned(),
            http,
            tokens,
        })
    }

    fn request(&self, method: reqwest::Method, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.api_url))
            .bearer_auth(token)
            .header(reqwest::header::ACCEPT, "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28")
    }

    /// Sends as the installation; a 401 drops the cached token so the next try mints one.
    async fn as_installation(
        &self,
        installation_id: u64,
        what: &'static str,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<reqwest::Response, ApiError> {
        let token = self.tokens.token(installation_id).await?;
        let mut request = self.request(method, path, token.secret());
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(|e| ApiError::Unavailable {
            what,
            reason: e.without_url().to_string(),
        })?;
        if response.status() == reqwest::StatusCode::UNAUTHORIZED {
            self.tokens.invalidate(installation_id);
        }
        Ok(response)
    }

    /// Posts `body` to `path` as the installation; any 2xx is success.
    async fn post_as_installation(
        &self,
        installation_id: u64,
        what: &'static str,
        path: &str,
        body: serde_json::Value,
    ) -> Result<(), ApiError> {
        let response = self
            .as_installation(
                installation_id,
                what,
                reqwest::Method::POST,
                path,
                Some(body),
            )
            .await?;
        Self::check(what, &response)
    }

    fn check(what: &'static str, response: &reqwest::Response) -> Result<(), ApiError> {
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            Ok(())
        } else if status >= 500 {
            Err(ApiError::Unavailable {
                what,
                reason: format!("status {status}"),
            })
        } else {
            Err(ApiError::Status { what, status })
        }
    }

    /// Whether `login` may write to `repository` (`GET
    /// /repos/{repo}/collaborators/{login}/permission`: admin, maintain or write). A user
    /// GitHub does not know as a collaborator (404) may not.
    pub async fn can_write(
        &self,
        installation_id: u64,
        repository: &str,
        login: &str,
    ) -> Result<bool, ApiError> {
        const WHAT: &str = "collaborator permission";
        #[derive(Deserialize)]
        struct Permission {
            #[serde(default)]
            permission: String,
            #[serde(default)]
            role_name: Option<String>,
        }
        let path = format!("/repos/{repository}/collaborators/{login}/permission");
        let response = self
            .as_installation(installation_id, WHAT, reqwest::Method::GET, &path, None)
            .await?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(false);
        }
        Self::check(WHAT, &response)?;
        let answer: Permission = read_json(response)
            .await
            .map_err(|_| ApiError::InvalidResponse { what: WHAT })?;
        let writes = |p: &str| matches!(p, "admin" | "maintain" | "write");
        Ok(writes(&answer.permission) || answer.role_name.as_deref().is_some_and(writes))
    }

    /// The head branch of pull request `number`.
    pub async fn pull_head(
        &self,
        installation_id: u64,
        repository: &str,
        number: u64,
    ) -> Result<String, ApiError> {
        const WHAT: &str = "pull request";
        #[derive(Deserialize)]
        struct Pull {
            head: Head,
        }
        #[derive(Deserialize)]
        struct Head {
            #[serde(rename = "ref")]
            branch: String,
        }
        let path = format!("/repos/{repository}/pulls/{number}");
        let response = self
            .as_installation(installation_id, WHAT, reqwest::Method::GET, &path, None)
            .await?;
        Self::check(WHAT, &response)?;
        let pull: Pull = read_json(response)
            .await
            .map_err(|_| ApiError::InvalidResponse { what: WHAT })?;
        Ok(pull.head.branch)
    }

    /// Adds a reaction (`eyes`, ...) as the App.
    pub async fn react(
        &self,
        installation_id: u64,
        repository: &str,
        target: ReactionTarget,
        content: &str,
    ) -> Result<(), ApiError> {
        const WHAT: &str = "reaction";
        let path = match target {
            ReactionTarget::Issue(n) => format!("/repos/{repository}/issues/{n}/reactions"),
            ReactionTarget::IssueComment(id) => {
                format!("/repos/{repository}/issues/comments/{id}/reactions")
            }
            ReactionTarget::ReviewComment(id) => {
                format!("/repos/{repository}/pulls/comments/{id}/reactions")
            }
        };
        self.post_as_installation(installation_id, WHAT, &path, json!({ "content": content }))
            .await
    }

    /// Posts a comment on issue or pull request `number`.
    pub async fn comment(
        &self,
        installation_id: u64,
        repository: &str,
        number: u64,
        body: &str,
    ) -> Result<(), ApiError> {
        const WHAT: &str = "issue comment";
        let path = format!("/repos/{repository}/issues/{number}/comments");
        self.post_as_installation(installation_id, WHAT, &path, json!({ "body": body }))
            .await
    }

    /// Replies in the thread of review comment `comment_id` on pull request `number`.
    pub async fn reply_to_review_comment(
        &self,
        installation_id: u64,
        repository: &str,
        number: u64,
        comment_id: u64,
        body: &str,
    ) -> Result<(), ApiError> {
        const WHAT: &str = "review comment reply";
        let path = format!("/repos/{repository}/pulls/{number}/comments/{comment_id}/replies");
        self.post_as_installation(installation_id, WHAT, &path, json!({ "body": body }))
            .await
    }

    /// The user a user token belongs to (`GET /user`); `None` when GitHub refuses the token.
    pub async fn token_user(&self, user_token: &str) -> Result<Option<TokenUser>, ApiError> {
        const WHAT: &str = "token owner";
        let response = self
            .request(reqwest::Method::GET, "/user", user_token)
            .send()
            .await
            .map_err(|e| ApiError::Unavailable {
                what: WHAT,
                reason: e.without_url().to_string(),
            })?;
        if matches!(response.status().as_u16(), 401 | 403 | 404) {
            return Ok(None);
        }
        Self::check(WHAT, &response)?;
        let user: TokenUser = read_json(response)
            .await
            .map_err(|_| ApiError::InvalidResponse { what: WHAT })?;
        Ok(Some(user))
    }
}
