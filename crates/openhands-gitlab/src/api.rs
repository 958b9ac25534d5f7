//! The few GitLab REST calls (`/api/v4`) the integration makes (the Service), with `reqwest`,
//! always as a user (an OAuth token or a personal access token, `Authorization: Bearer`):
//! who a token belongs to, a member's access level, notes, and project hooks.
//!
//! Every call names the GitLab it goes to: each installed hook has its own (gitlab.com or a
//! self-managed host), and a token is only ever sent to the host it was issued by (see
//! [`crate::tokens`]). Redirects are not followed, so a token never travels further. Errors
//! name the call and the status, never a token.

use openhands_core::provider_http::read_json;
use serde::Deserialize;
use serde_json::json;
use std::time::Duration;

const USER_AGENT: &str = concat!("openhands-rust/", env!("CARGO_PKG_VERSION"));
/// Timeout of one call.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// GitLab's Developer role: the least that may ask the agent to change code.
pub const DEVELOPER: u32 = 30;
/// GitLab's Maintainer role: the least that may manage a project's hooks.
pub const MAINTAINER: u32 = 40;
/// Pages of 100 projects read at most when listing a user's projects.
pub const MAX_PROJECT_PAGES: u32 = 20;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("GitLab is unavailable ({what}): {reason}")]
    Unavailable { what: &'static str, reason: String },
    #[error("GitLab answered {status} ({what})")]
    Status { what: &'static str, status: u16 },
    #[error("GitLab's answer could not be read ({what})")]
    InvalidResponse { what: &'static str },
    #[error("could not build the GitLab HTTP client: {0}")]
    Client(String),
}

/// The GitLab user behind a token.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TokenUser {
    pub id: u64,
    pub username: String,
}

/// Where a note goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteTarget<'a> {
    pub project_id: u64,
    /// `issues` or `merge_requests`.
    pub kind: &'static str,
    pub iid: u64,
    /// A reply in this discussion, else a new note.
    pub discussion_id: Option<&'a str>,
    /// An internal note (only members see it).
    pub internal: bool,
}

/// A project hook to create.
#[derive(Debug, Clone)]
pub struct HookSpec<'a> {
    pub url: &'a str,
    pub token: &'a str,
    pub webhook_id: &'a str,
    pub user_id: &'a str,
}

/// A project, as `GET /projects/:id` answers.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ProjectInfo {
    pub id: u64,
    pub path_with_namespace: String,
}

/// GitLab's REST API, for any GitLab.
#[derive(Debug, Clone)]
pub struct GitlabApi {
    http: reqwest::Client,
}

/// `path` with every `/` escaped, as GitLab takes a project path in place of its id.
pub fn encode_path(path: &str) -> String {
    url::form_urlencoded::byte_serialize(path.as_bytes()).collect()
}

impl GitlabApi {
    pub fn new() -> Result<Self, ApiError> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(REQUEST_TIMEOUT)
            .user_agent(USER_AGENT)
            .build()
            .map_err(|e| ApiError::Client(e.to_string()))?;
        Ok(Self { http })
    }

    async fn send(
        &self,
        what: &'static str,
        method: reqwest::Method,
        url: String,
        token: &str,
        body: Option<serde_json::Value>,
    ) -> Result<reqwest::Response, ApiError> {
        let mut request = self.http.request(method, url).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.map_err(|e| ApiError::Unavailable {
            what,
            reason: e.without_url().to_string(),
        })
    }

    fn check(what: &'static str, response: &reqwest::Response) -> Result<(), ApiError> {
        let status = response.status().as_u16();
        match status {
            200..=299 => Ok(()),
            429 | 500.. => Err(ApiError::Unavailable {
                what,
                reason: format!("status {status}"),
            }),
            _ => Err(ApiError::Status { what, status }),
        }
    }

    async fn read<T: serde::de::DeserializeOwned>(
        what: &'static str,
        response: reqwest::Response,
    ) -> Result<T, ApiError> {
        Self::check(what, &response)?;
        read_json(response)
            .await
            .map_err(|_| ApiError::InvalidResponse { what })
    }

    /// The user `token` belongs to (`GET /user`); `None` when GitLab refuses the token.
    pub async fn token_user(&self, base: &str, token: &str) -> Result<Option<TokenUser>, ApiError> {
        const WHAT: &str = "token owner";
        let url = format!("{base}/api/v4/user");
        let response = self
            .send(WHAT, reqwest::Method::GET, url, token, None)
            .await?;
        if matches!(response.status().as_u16(), 401 | 403 | 404) {
            return Ok(None);
        }
        Self::read(WHAT, response).await.map(Some)
    }

    /// User `user_id`'s access level on project `project_id`, inherited ones included
    /// (`GET /projects/:id/members/all/:user_id`); 0 when they are no member.
    pub async fn access_level(
        &self,
        base: &str,
        token: &str,
        project_id: u64,
        user_id: u64,
    ) -> Result<u32, ApiError> {
        const WHAT: &str = "project membership";
        #[derive(Deserialize)]
        struct Member {
            #[serde(default)]
            access_level: u32,
        }
        let url = format!("{base}/api/v4/projects/{project_id}/members/all/{user_id}");
        let response = self
            .send(WHAT, reqwest::Method::GET, url, token, None)
            .await?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(0);
        }
        Ok(Self::read::<Member>(WHAT, response).await?.access_level)
    }

    /// Posts `body` as a note (`POST .../notes`), or as a reply in a discussion (`POST
    /// .../discussions/:discussion_id/notes`, which keeps the discussion's visibility).
    pub async fn post_note(
        &self,
        base: &str,
        token: &str,
        target: &NoteTarget<'_>,
        body: &str,
    ) -> Result<(), ApiError> {
        const WHAT: &str = "note";
        let NoteTarget {
            project_id,
            kind,
            iid,
            ..
        } = target;
        let (url, payload) = match target.discussion_id {
            Some(discussion) => (
                format!(
                    "{base}/api/v4/projects/{project_id}/{kind}/{iid}/discussions/{discussion}/notes"
                ),
                json!({ "body": body }),
            ),
            None => (
                format!("{base}/api/v4/projects/{project_id}/{kind}/{iid}/notes"),
                json!({ "body": body, "internal": target.internal }),
            ),
        };
        let response = self
            .send(WHAT, reqwest::Method::POST, url, token, Some(payload))
            .await?;
        Self::check(WHAT, &response)
    }

    /// Project `id_or_path` (a numeric id, or `group/project`).
    pub async fn project(
        &self,
        base: &str,
        token: &str,
        id_or_path: &str,
    ) -> Result<ProjectInfo, ApiError> {
        const WHAT: &str = "project";
        let url = format!("{base}/api/v4/projects/{}", encode_path(id_or_path));
        let response = self
            .send(WHAT, reqwest::Method::GET, url, token, None)
            .await?;
        Self::read(WHAT, response).await
    }

    /// The projects the token's user maintains (Maintainer or Owner, not archived), up to
    /// [`MAX_PROJECT_PAGES`] pages of 100, following GitLab's `X-Next-Page`.
    pub async fn maintained_projects(
        &self,
        base: &str,
        token: &str,
    ) -> Result<Vec<ProjectInfo>, ApiError> {
        const WHAT: &str = "maintained projects";
        let mut projects = Vec::new();
        let mut page = 1;
        while page <= MAX_PROJECT_PAGES {
            let url = format!(
                "{base}/api/v4/projects?membership=true&min_access_level={MAINTAINER}\
                 &archived=false&simple=true&per_page=100&page={page}"
            );
            let response = self
                .send(WHAT, reqwest::Method::GET, url, token, None)
                .await?;
            let next = response
                .headers()
                .get("x-next-page")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u32>().ok());
            projects.extend(Self::read::<Vec<ProjectInfo>>(WHAT, response).await?);
            match next {
                Some(next) if next > page => page = next,
                _ => break,
            }
        }
        Ok(projects)
    }

    /// Creates a project hook (`POST /projects/:id/hooks`) as OpenHands does, minus the
    /// events the resolver does not act on; returns GitLab's hook id.
    pub async fn create_project_hook(
        &self,
        base: &str,
        token: &str,
        project_id: u64,
        spec: &HookSpec<'_>,
    ) -> Result<u64, ApiError> {
        const WHAT: &str = "project hook";
        #[derive(Deserialize)]
        struct Created {
            id: u64,
        }
        let body = json!({
            "name": "OpenHands Resolver",
            "description": "Cloud OpenHands Resolver",
            "url": spec.url,
            "token": spec.token,
            "enable_ssl_verification": true,
            "push_events": false,
            "issues_events": true,
            "confidential_issues_events": true,
            "note_events": true,
            "confidential_note_events": true,
            "merge_requests_events": false,
            "job_events": false,
            "pipeline_events": false,
            "custom_headers": [
                {"key": "X-OpenHands-User-ID", "value": spec.user_id},
                {"key": "X-OpenHands-Webhook-ID", "value": spec.webhook_id},
            ],
        });
        let url = format!("{base}/api/v4/projects/{project_id}/hooks");
        let response = self
            .send(WHAT, reqwest::Method::POST, url, token, Some(body))
            .await?;
        Ok(Self::read::<Created>(WHAT, response).await?.id)
    }

    /// Deletes project hook `hook_id`; a hook GitLab no longer has counts as deleted.
    pub async fn delete_project_hook(
        &self,
        base: &str,
        token: &str,
        project_id: u64,
        hook_id: u64,
    ) -> Result<(), ApiError> {
        const WHAT: &str = "project hook removal";
        let url = format!("{base}/api/v4/projects/{project_id}/hooks/{hook_id}");
        let response = self
            .send(WHAT, reqwest::Method::DELETE, url, token, None)
            .await?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(());
        }
        Self::check(WHAT, &response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_project_path_is_escaped_as_one_segment() {
        assert_eq!(encode_path("group/sub/project"), "group%2Fsub%2Fproject");
        assert_eq!(encode_path("42"), "42");
    }
}
