//! GitLab as a provider of the integration framework: `POST /integration/gitlab/events`.
//!
//! - verification ([`Gitlab::verify`]): `X-Gitlab-Token` against the secret of the hook named
//!   by `X-OpenHands-Webhook-ID`, installed by the user named by `X-OpenHands-User-ID`
//!   (digests compared in constant time, keys cached, see [`crate::cache`]); any of the
//!   three missing, an unknown hook or a wrong token is a 403 and nothing is stored;
//! - the delivery id is `X-Gitlab-Event-UUID` (else `Idempotency-Key`, else the body's
//!   SHA-256, as OpenHands de-duplicates by a payload hash);
//! - [`crate::payload`] parses the job; [`Gitlab::admit`] checks that the hook is still
//!   installed and covers the project, finds the OpenHands account that linked the sender's
//!   GitLab account and proves it (GitLab must say the linked token is that user's), and
//!   checks that the sender is at least a Developer of the project;
//! - replies are notes posted with the user's token, in the trigger's discussion when it
//!   had one.

use crate::api::{ApiError, DEVELOPER, GitlabApi, NoteTarget};
use crate::cache::HookKeys;
use crate::config::GitlabSettings;
use crate::payload::{self, ReplyTo};
use crate::replies;
use crate::store::{HookStore, sha256_hex, token_matches};
use crate::tokens::TokenSource;
use async_trait::async_trait;
use openhands_core::config::Config;
use openhands_core::crypto::Cipher;
use openhands_core::extension::{
    Admission, CallbackError, Integration, Job, JobContext, Outcome, ParseError, RetryPolicy,
    StartFailure, VerifyError, WebhookHeaders,
};
use openhands_core::registry::{PluginError, Services};
use openhands_core::scope::UserScope;
use openhands_core::secret::{Secret, constant_time_eq};
use openhands_core::secrets::ProviderType;
use openhands_sql_store::SqlSecretsStore;
use std::sync::{Arc, OnceLock};

/// The integration's name (`/integration/gitlab/events`).
pub const NAME: &str = "gitlab";

/// What needs the database: the hooks and, when no job was admitted yet on this server (a
/// callback after a restart), the users' stored tokens.
struct Backend {
    hooks: HookStore,
    secrets: SqlSecretsStore,
}

/// The GitLab integration.
pub struct Gitlab {
    settings: Arc<GitlabSettings>,
    config: Arc<Config>,
    api: GitlabApi,
    keys: HookKeys,
    backend: tokio::sync::OnceCell<Backend>,
    /// The server's services, lent by the first admission: their token source refreshes
    /// expiring OAuth tokens, which the callbacks (given no context) use too.
    services: OnceLock<Services>,
}

impl std::fmt::Debug for Gitlab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gitlab")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

fn callback_error(err: impl std::fmt::Display) -> CallbackError {
    CallbackError(err.to_string())
}

fn reply_to(job: &Job) -> Result<ReplyTo, CallbackError> {
    serde_json::from_value(job.reply_to.clone()).map_err(|e| {
        CallbackError(format!(
            "job has no GitLab issue or merge request to answer: {e}"
        ))
    })
}

impl Gitlab {
    pub fn new(settings: Arc<GitlabSettings>, config: Arc<Config>) -> Result<Self, PluginError> {
        Ok(Self {
            api: GitlabApi::new().map_err(|e| PluginError(e.to_string()))?,
            keys: HookKeys::new(config.clone()),
            settings,
            config,
            backend: tokio::sync::OnceCell::new(),
            services: OnceLock::new(),
        })
    }

    async fn backend(&self) -> Result<&Backend, CallbackError> {
        self.backend
            .get_or_try_init(|| async {
                let hooks = HookStore::connect(&self.config)
                    .await
                    .map_err(callback_error)?;
                let cipher = Cipher::from_config(&self.config, &self.config.data_dir())
                    .map_err(callback_error)?;
                let secrets = SqlSecretsStore::new(hooks.database().clone(), Arc::new(cipher));
                Ok(Backend { hooks, secrets })
            })
            .await
    }

    /// Where tokens come from: the server's services once lent, else the stored secrets.
    async fn tokens(&self) -> Result<TokenSource<'_>, CallbackError> {
        if let Some(services) = self.services.get() {
            return Ok(TokenSource {
                secrets: services.secrets_store.as_ref(),
                refresher: Some(services.provider_tokens.as_ref()),
            });
        }
        Ok(TokenSource {
            secrets: &self.backend().await?.secrets,
            refresher: None,
        })
    }

    /// Posts `text` where the job was asked, with `token`.
    async fn answer(&self, reply: &ReplyTo, token: &Secret, text: &str) -> Result<(), ApiError> {
        let target = NoteTarget {
            project_id: reply.project_id,
            kind: if reply.trigger.on_merge_request() {
                "merge_requests"
            } else {
                "issues"
            },
            iid: reply.iid,
            discussion_id: reply.discussion_id.as_deref(),
            internal: reply.internal,
        };
        let text = replies::defuse_mentions(text, &self.settings.mention);
        self.api
            .post_note(&reply.base_url, token.expose(), &target, &text)
            .await
    }

    /// Posts `text` as the job's user.
    async fn answer_as_job_user(&self, job: &Job, text: &str) -> Result<(), CallbackError> {
        let reply = reply_to(job)?;
        let tokens = self.tokens().await?;
        let token = tokens
            .token(&job.scope(), &reply.base_url)
            .await
            .map_err(callback_error)?
            .ok_or_else(|| {
                CallbackError(format!(
                    "user `{}` has no GitLab token for {}",
                    job.user_id, reply.base_url
                ))
            })?;
        self.answer(&reply, &token, text)
            .await
            .map_err(callback_error)
    }

    /// The first linked scope whose GitLab token GitLab says belongs to the sender, with the
    /// token.
    async fn proven_account(
        &self,
        ctx: &dyn JobContext,
        tokens: &TokenSource<'_>,
        reply: &ReplyTo,
    ) -> Result<Option<(UserScope, Secret)>, CallbackError> {
        let candidates = ctx
            .linked_scopes(ProviderType::Gitlab, &reply.sender_username)
            .await
            .map_err(callback_error)?;
        for scope in candidates {
            let Some(token) = tokens
                .token(&scope, &reply.base_url)
                .await
                .map_err(callback_error)?
            else {
                continue;
            };
            let owner = self
                .api
                .token_user(&reply.base_url, token.expose())
                .await
                .map_err(callback_error)?;
            if owner.is_some_and(|o| {
                o.id == reply.sender_id && o.username.eq_ignore_ascii_case(&reply.sender_username)
            }) {
                return Ok(Some((scope, token)));
            }
        }
        Ok(None)
    }

    /// Tells an asker without a linked account how to link it, as the hook's installer
    /// (the asker has no token we could use).
    async fn tell_unlinked(
        &self,
        tokens: &TokenSource<'_>,
        reply: &ReplyTo,
        installer: UserScope,
    ) -> Result<(), CallbackError> {
        let text = replies::no_linked_account(&reply.sender_username, &self.settings.public_url);
        match tokens
            .token(&installer, &reply.base_url)
            .await
            .map_err(callback_error)?
        {
            Some(token) => self
                .answer(reply, &token, &text)
                .await
                .map_err(callback_error),
            None => {
                tracing::warn!(webhook_id = %reply.webhook_id,
                    "gitlab: the hook's installer has no GitLab token; the unlinked asker is not told");
                Ok(())
            }
        }
    }
}

#[async_trait]
impl Integration for Gitlab {
    fn name(&self) -> &'static str {
        NAME
    }

    fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.settings.max_attempts.max(1),
            base_backoff_ms: self.settings.backoff_ms,
        }
    }

    fn verify(&self, headers: &WebhookHeaders, _body: &[u8]) -> Result<(), VerifyError> {
        let token = headers
            .get("x-gitlab-token")
            .ok_or(VerifyError::Missing("X-Gitlab-Token"))?;
        let webhook_id = headers
            .get("x-openhands-webhook-id")
            .ok_or(VerifyError::Missing("X-OpenHands-Webhook-ID"))?
            .trim();
        let user_id = headers
            .get("x-openhands-user-id")
            .ok_or(VerifyError::Missing("X-OpenHands-User-ID"))?
            .trim();
        if uuid::Uuid::parse_str(webhook_id).is_err() {
            return Err(VerifyError::Malformed);
        }
        let key = match self.keys.key(webhook_id) {
            Ok(Some(key)) => key,
            Ok(None) => return Err(VerifyError::Mismatch),
            Err(err) => {
                tracing::warn!(webhook_id, error = %err, "gitlab: the hook's key could not be read");
                return Err(VerifyError::Mismatch);
            }
        };
        // Both checks run whatever the first says, so the timing tells nothing.
        let same_user = constant_time_eq(&key.user_id, user_id);
        let same_token = token_matches(token, &key.secret_sha256);
        if same_user && same_token {
            Ok(())
        } else {
            Err(VerifyError::Mismatch)
        }
    }

    fn delivery_id(&self, headers: &WebhookHeaders, body: &[u8]) -> Option<String> {
        let header = |name: &str| {
            headers
                .get(name)
                .map(str::trim)
                .filter(|id| !id.is_empty() && id.len() <= 200)
                .map(str::to_owned)
        };
        header("x-gitlab-event-uuid")
            .or_else(|| header("idempotency-key"))
            .or_else(|| Some(format!("sha256:{}", sha256_hex(body))))
    }

    fn parse(&self, headers: &WebhookHeaders, body: &[u8]) -> Result<Option<Job>, ParseError> {
        let settings = &self.settings;
        let rules = openhands_core::resolver::Triggers {
            label: &settings.label,
            mention: &settings.mention,
            bot_login: settings.bot_login.as_deref(),
        };
        let webhook_id = headers
            .get("x-openhands-webhook-id")
            .unwrap_or_default()
            .trim();
        payload::job_of(body, webhook_id, &rules)
    }

    async fn admit(&self, ctx: &dyn JobContext, mut job: Job) -> Result<Admission, CallbackError> {
        let services = ctx.services();
        let _ = self.services.set(services.clone());
        let mut reply = reply_to(&job)?;
        let hook = self
            .backend()
            .await?
            .hooks
            .find(&reply.webhook_id)
            .await
            .map_err(callback_error)?;
        let Some(hook) = hook.filter(|h| h.covers(reply.project_id, &reply.project_path)) else {
            return Ok(Admission::Ignore(format!(
                "no installed hook {} covers {}",
                reply.webhook_id, reply.project_path
            )));
        };
        // The hook's GitLab is where the tokens go, not what the payload says.
        reply.base_url = hook.base_url.clone();
        job.reply_to = serde_json::to_value(&reply).map_err(callback_error)?;
        let tokens = TokenSource {
            secrets: services.secrets_store.as_ref(),
            refresher: Some(services.provider_tokens.as_ref()),
        };
        let Some((scope, token)) = self.proven_account(ctx, &tokens, &reply).await? else {
            let installer = UserScope {
                user_id: Some(hook.user_id.clone()),
                org_id: hook.org_id.clone(),
            };
            self.tell_unlinked(&tokens, &reply, installer).await?;
            return Ok(Admission::Refuse(format!(
                "GitLab user {} has no linked OpenHands account",
                reply.sender_username
            )));
        };
        let level = self
            .api
            .access_level(
                &reply.base_url,
                token.expose(),
                reply.project_id,
                reply.sender_id,
            )
            .await
            .map_err(callback_error)?;
        if level < DEVELOPER {
            let text = replies::not_allowed(&reply.sender_username);
            self.answer(&reply, &token, &text)
                .await
                .map_err(callback_error)?;
            return Ok(Admission::Ignore(format!(
                "{} has access level {level} on {}, below Developer ({DEVELOPER})",
                reply.sender_username, reply.project_path
            )));
        }
        job.user_id = scope.user_id.clone().unwrap_or_default();
        job.org_id = scope.org_id;
        Ok(Admission::Run(job))
    }

    async fn on_finished(&self, job: &Job, outcome: &Outcome) -> Result<(), CallbackError> {
        let reply = reply_to(job)?;
        let text = replies::outcome(outcome, &reply, &self.settings.public_url);
        self.answer_as_job_user(job, &text).await
    }

    async fn on_start_failed(&self, job: &Job, failure: StartFailure) -> Result<(), CallbackError> {
        let reply = reply_to(job)?;
        let text =
            replies::start_failed(&reply.sender_username, failure, &self.settings.public_url);
        self.answer_as_job_user(job, &text).await
    }
}

/// Builds the integration when `GITLAB_WEBHOOKS_ENABLED` is on.
pub fn build(config: &Config) -> Result<Option<Arc<dyn Integration>>, PluginError> {
    let Some(settings) =
        GitlabSettings::for_server(config).map_err(|e| PluginError(e.to_string()))?
    else {
        return Ok(None);
    };
    Ok(Some(Arc::new(Gitlab::new(
        settings,
        Arc::new(config.clone()),
    )?)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::HookKey;
    use crate::store::secret_digest;

    const HOOK: &str = "0b6c2f57-3f5e-4a51-8a8e-2f1d8f7f2c11";

    fn gitlab() -> Gitlab {
        let settings = GitlabSettings::from_lookup(
            |name| (name == "GITLAB_WEBHOOKS_ENABLED").then(|| "1".to_owned()),
            Some("https://app.example".into()),
        )
        .expect("valid settings")
        .expect("enabled");
        let gitlab = Gitlab::new(Arc::new(settings), Arc::new(Config::default())).expect("client");
        gitlab.keys.remember(
            HOOK,
            Some(HookKey {
                user_id: "user-1".into(),
                secret_sha256: secret_digest("hook-secret"),
            }),
        );
        gitlab
    }

    fn headers(pairs: &[(&str, &str)]) -> WebhookHeaders {
        WebhookHeaders(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    #[test]
    fn the_hooks_token_and_installer_verify_and_nothing_else_does() {
        let gitlab = gitlab();
        let good = [
            ("x-gitlab-token", "hook-secret"),
            ("x-openhands-webhook-id", HOOK),
            ("x-openhands-user-id", "user-1"),
        ];
        assert_eq!(gitlab.verify(&headers(&good), b"{}"), Ok(()));
        let cases: [(&[(&str, &str)], VerifyError); 5] = [
            (&good[1..], VerifyError::Missing("X-Gitlab-Token")),
            (
                &[good[0], good[2]],
                VerifyError::Missing("X-OpenHands-Webhook-ID"),
            ),
            (&good[..2], VerifyError::Missing("X-OpenHands-User-ID")),
            (
                &[("x-gitlab-token", "wrong"), good[1], good[2]],
                VerifyError::Mismatch,
            ),
            (
                &[good[0], good[1], ("x-openhands-user-id", "user-2")],
                VerifyError::Mismatch,
            ),
        ];
        for (given, expected) in cases {
            assert_eq!(
                gitlab.verify(&headers(given), b"{}"),
                Err(expected),
                "{given:?}"
            );
        }
        let not_a_uuid = [good[0], ("x-openhands-webhook-id", "../1"), good[2]];
        assert_eq!(
            gitlab.verify(&headers(&not_a_uuid), b"{}"),
            Err(VerifyError::Malformed)
        );
    }

    #[test]
    fn the_delivery_id_is_the_event_uuid_else_the_idempotency_key_else_the_body_hash() {
        let gitlab = gitlab();
        let both = headers(&[("x-gitlab-event-uuid", "e-1"), ("idempotency-key", "k-1")]);
        assert_eq!(gitlab.delivery_id(&both, b"{}").as_deref(), Some("e-1"));
        let key = headers(&[("idempotency-key", "k-1")]);
        assert_eq!(gitlab.delivery_id(&key, b"{}").as_deref(), Some("k-1"));
        let none = gitlab.delivery_id(&headers(&[]), b"{}").unwrap_or_default();
        assert_eq!(none, format!("sha256:{}", sha256_hex(b"{}")));
        assert_ne!(
            gitlab.delivery_id(&headers(&[]), b"{ }").as_deref(),
            Some(none.as_str())
        );
    }
}
