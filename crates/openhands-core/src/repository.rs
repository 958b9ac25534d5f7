//! Which repositories a conversation may clone, and how.
//!
//! A conversation's `repository` is text a user (or a webhook sender) chose, and the clone
//! runs with the conversation's provider token. On a multi-user server it must name a
//! repository on a git provider: `owner/repo` (on the provider's host) or an `https://`
//! URL on a host the deployment allows. Local paths, `file://`, `ssh://` and `git@` forms
//! would read the server's disk or reach hosts nobody vetted, so they are refused with a
//! code the API returns. A single-user (OSS) server clones whatever its user names.
//!
//! The token never goes into the URL: [`CloneTarget::credentials`] reaches git through a
//! credential helper inside the sandbox.

use crate::secrets::ProviderType;
use crate::tool_protocol::GitCredentials;

/// What forms of `repository` are accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepositoryPolicy {
    /// Anything git can clone (the user's own machine).
    Local,
    /// `owner/repo` on the provider's host, or `https://` URLs on these extra hosts.
    Hosted { extra_https_hosts: Vec<String> },
}

/// Why a `repository` is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RepositoryRefused {
    /// Machine-readable: `repository_local_path`, `repository_scheme`,
    /// `repository_host`, `repository_invalid`.
    pub code: &'static str,
    pub message: String,
}

fn refused(code: &'static str, message: String) -> RepositoryRefused {
    RepositoryRefused { code, message }
}

/// A checked clone: the URL without credentials, the credentials, and the name to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloneTarget {
    pub url: String,
    pub credentials: Option<GitCredentials>,
    /// `owner/repo` or the URL, for messages.
    pub display: String,
}

fn default_host(provider: ProviderType) -> &'static str {
    match provider {
        ProviderType::Gitlab => "gitlab.com",
        ProviderType::Bitbucket => "bitbucket.org",
        ProviderType::Github | ProviderType::EnterpriseSso => "github.com",
    }
}

fn token_username(provider: ProviderType) -> &'static str {
    match provider {
        ProviderType::Gitlab => "oauth2",
        ProviderType::Bitbucket => "x-token-auth",
        ProviderType::Github | ProviderType::EnterpriseSso => "x-access-token",
    }
}

/// Whether `name` is `owner/repo` (or `group/sub/repo`): path segments of letters,
/// digits, `-`, `_` and `.`, none of them `.` or `..`.
fn is_repository_path(name: &str) -> bool {
    let segments: Vec<&str> = name.split('/').collect();
    segments.len() >= 2
        && segments.iter().all(|s| {
            !s.is_empty()
                && *s != "."
                && *s != ".."
                && !s.starts_with('-')
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        })
}

/// Checks `repository` against `policy` and builds its clone. `token` is the provider
/// token with the host it belongs to (self-hosted GitLab, GitHub Enterprise).
pub fn clone_target(
    repository: &str,
    provider: Option<ProviderType>,
    token: Option<(&str, Option<&str>)>,
    policy: &RepositoryPolicy,
) -> Result<CloneTarget, RepositoryRefused> {
    let repository = repository.trim();
    if repository.is_empty() {
        // Not `https://github.com/.git`: an empty name is no repository at all.
        return Err(refused(
            "repository_invalid",
            "repository is empty; leave it out to start without a repository".into(),
        ));
    }
    let provider = provider.unwrap_or(ProviderType::Github);
    let credentials = token.map(|(secret, _)| GitCredentials {
        username: token_username(provider).to_owned(),
        password: secret.to_owned(),
    });
    let is_location = repository.contains("://")
        || repository.starts_with('/')
        || repository.starts_with('.')
        || repository.starts_with('~')
        || repository.starts_with("file:")
        || repository.contains('@')
        || repository.contains(':');
    if !is_location {
        if !is_repository_path(repository.trim_end_matches(".git")) {
            return Err(refused(
                "repository_invalid",
                format!("repository {repository:?} is not of the form owner/repo"),
            ));
        }
        let host = token
            .and_then(|(_, host)| host)
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .unwrap_or(default_host(provider));
        let host = host.trim_start_matches("https://").trim_end_matches('/');
        return Ok(CloneTarget {
            url: format!("https://{host}/{}.git", repository.trim_end_matches(".git")),
            credentials,
            display: repository.to_owned(),
        });
    }
    match policy {
        RepositoryPolicy::Local => Ok(CloneTarget {
            url: repository.to_owned(),
            credentials,
            display: repository.to_owned(),
        }),
        RepositoryPolicy::Hosted { extra_https_hosts } => {
            check_hosted_url(repository, extra_https_hosts)?;
            Ok(CloneTarget {
                url: repository.to_owned(),
                credentials,
                display: repository.to_owned(),
            })
        }
    }
}

fn check_hosted_url(repository: &str, allowed: &[String]) -> Result<(), RepositoryRefused> {
    let lower = repository.to_ascii_lowercase();
    if lower.starts_with('/') || lower.starts_with('.') || lower.starts_with('~') {
        return Err(refused(
            "repository_local_path",
            "local paths cannot be cloned on this server; use owner/repo".into(),
        ));
    }
    // An entry with a scheme is an origin the deployment vouches for, e.g. an internal
    // plain-HTTP mirror: `http://git.internal:8080`.
    let origin_allowed = allowed.iter().any(|entry| {
        let entry = entry.trim_end_matches('/').to_ascii_lowercase();
        entry.contains("://")
            && lower
                .strip_prefix(&entry)
                .is_some_and(|rest| rest.starts_with('/'))
    });
    let Some(rest) = lower
        .strip_prefix("https://")
        .or(origin_allowed.then_some(lower.as_str()))
    else {
        let scheme = lower.split(':').next().unwrap_or_default();
        return Err(refused(
            "repository_scheme",
            format!(
                "{scheme}: repositories cannot be cloned on this server; use owner/repo or an https:// URL"
            ),
        ));
    };
    let rest = rest.split_once("://").map_or(rest, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(refused(
            "repository_invalid",
            "repository URLs cannot carry credentials; link the provider account instead".into(),
        ));
    }
    if origin_allowed {
        return Ok(());
    }
    let host = authority.split(':').next().unwrap_or_default();
    if host.is_empty() || !allowed.iter().any(|h| h.eq_ignore_ascii_case(host)) {
        return Err(refused(
            "repository_host",
            format!("https://{host} is not a git host this server clones from; use owner/repo"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosted() -> RepositoryPolicy {
        RepositoryPolicy::Hosted {
            extra_https_hosts: vec!["git.example.com".into()],
        }
    }

    #[test]
    fn owner_repo_goes_to_the_providers_host_with_the_token_as_credentials() {
        let target = clone_target(
            "octo/repo",
            Some(ProviderType::Github),
            Some(("ghp_x", None)),
            &hosted(),
        )
        .expect("accepted");
        assert_eq!(target.url, "https://github.com/octo/repo.git");
        let credentials = target.credentials.expect("credentials");
        assert_eq!(credentials.username, "x-access-token");
        assert_eq!(credentials.password, "ghp_x");
        assert!(!target.url.contains("ghp_x"));
        let gitlab = clone_target(
            "g/sub/r",
            Some(ProviderType::Gitlab),
            Some(("glp", Some("gl.example"))),
            &hosted(),
        )
        .expect("accepted");
        assert_eq!(gitlab.url, "https://gl.example/g/sub/r.git");
        assert_eq!(gitlab.credentials.expect("credentials").username, "oauth2");
    }

    #[test]
    fn a_hosted_server_refuses_local_and_foreign_forms_with_a_code() {
        for (repository, code) in [
            ("/srv/other-user/workspace", "repository_local_path"),
            ("../other", "repository_local_path"),
            ("file:///etc", "repository_scheme"),
            ("git@github.com:octo/repo.git", "repository_scheme"),
            ("ssh://git@github.com/octo/repo", "repository_scheme"),
            ("http://github.com/octo/repo", "repository_scheme"),
            ("https://10.0.0.5/octo/repo", "repository_host"),
            ("https://internal.corp/octo/repo", "repository_host"),
            ("https://user:pw@git.example.com/a/b", "repository_invalid"),
            ("octo", "repository_invalid"),
            ("octo/../../etc", "repository_invalid"),
        ] {
            let refused = clone_target(repository, None, None, &hosted()).expect_err(repository);
            assert_eq!(refused.code, code, "{repository}: {}", refused.message);
        }
        assert!(clone_target("https://git.example.com/a/b.git", None, None, &hosted()).is_ok());
    }

    #[test]
    fn an_allowed_origin_admits_its_scheme_and_port_only() {
        let policy = RepositoryPolicy::Hosted {
            extra_https_hosts: vec!["http://mirror.internal:8080".into()],
        };
        assert!(clone_target("http://mirror.internal:8080/a/b.git", None, None, &policy).is_ok());
        for (repository, code) in [
            ("http://mirror.internal:9090/a/b.git", "repository_scheme"),
            (
                "http://mirror.internal:8080.evil.com/a/b",
                "repository_scheme",
            ),
            ("http://u:p@mirror.internal:8080/a/b", "repository_scheme"),
            ("https://mirror.internal/a/b", "repository_host"),
        ] {
            let refused = clone_target(repository, None, None, &policy).expect_err(repository);
            assert_eq!(refused.code, code, "{repository}: {}", refused.message);
        }
    }

    #[test]
    fn an_empty_name_is_refused_under_every_policy() {
        for policy in [RepositoryPolicy::Local, hosted()] {
            for repository in ["", "   ", "\n"] {
                let refused = clone_target(repository, None, None, &policy).expect_err(repository);
                assert_eq!(refused.code, "repository_invalid");
                assert!(refused.message.contains("empty"), "{}", refused.message);
            }
        }
    }

    #[test]
    fn a_local_server_clones_paths_and_file_urls() {
        for repository in ["/srv/repo.git", "file:///srv/r", "git@host:a/b"] {
            let target =
                clone_target(repository, None, None, &RepositoryPolicy::Local).expect(repository);
            assert_eq!(target.url, repository);
        }
    }
}
