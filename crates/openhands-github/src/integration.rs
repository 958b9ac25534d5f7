//! The GitHub App as a provider of the integration framework: `POST
//! /integration/github/events`, mounted when the App is configured (`GITHUB_APP_CLIENT_ID`
//! and its key and secret).
//!
//! - the route: `GITHUB_WEBHOOKS_ENABLED` off answers `200` "disabled"; `X-Hub-Signature-256`
//!   checked in constant time (403, nothing stored); no `installation.id` is a 400; the
//!   delivery id is `X-GitHub-Delivery`, the event type `X-GitHub-Event`;
//! - [`crate::payload`] parses the job; [`Github::admit`] then checks that the sender may
//!   write to the repository, finds the OpenHands account that linked the sender's GitHub
//!   account (and proves it: GitHub must say the linked token is that user's), looks up the
//!   pull request's branch, and puts an `eyes` reaction on what triggered it;
//! - the outcome is posted as one comment, or as a reply in an inline comment's thread.

use crate::api::{ApiError, GithubApi, ReactionTarget};
use crate::messages;
use crate::payload::{self, ReplyTo, Trigger, Triggers};
use crate::settings::GithubSettings;
use crate::tokens::InstallationTokens;
use crate::webhook::verify_webhook_signature;
use async_trait::async_trait;
use openhands_core::extension::{
    Admission, CallbackError, Integration, IntegrationRegistration, InvalidPayload, Job,
    JobContext, Outcome, ParseError, RetryPolicy, StartFailure, VerifyError, WebhookHeaders,
};
use openhands_core::registry::PluginError;
use openhands_core::scope::UserScope;
use openhands_core::secrets::ProviderType;
use std::sync::Arc;

/// The integration's name (`/integration/github/events`).
pub const NAME: &str = "github";

/// What a delivery with GitHub webhooks switched off is told.
pub const DISABLED: &str = "GitHub webhooks are disabled on this server.";

/// The GitHub integration.
pub struct Github {
    settings: Arc<GithubSettings>,
    api: GithubApi,
}

impl std::fmt::Debug for Github {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Github")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

fn callback_error(err: impl std::fmt::Display) -> CallbackError {
    CallbackError(err.to_string())
}

impl Github {
    pub fn new(settings: Arc<GithubSettings>) -> Result<Self, PluginError> {
        let tokens =
            InstallationTokens::new(&settings.app).map_err(|e| PluginError(e.to_string()))?;
        let api = GithubApi::new(&settings.app.api_url, Arc::new(tokens))
            .map_err(|e| PluginError(e.to_string()))?;
        Ok(Self { settings, api })
    }

    fn reply_to(job: &Job) -> Result<ReplyTo, CallbackError> {
        serde_json::from_value(job.reply_to.clone())
            .map_err(|e| CallbackError(format!("job has no GitHub issue to answer: {e}")))
    }

    /// Posts `body` where the job was asked: in an inline comment's thread, else on the
    /// issue or pull request.
    async fn answer(&self, reply: &ReplyTo, body: &str) -> Result<(), ApiError> {
        match (reply.trigger, reply.comment_id) {
            (Trigger::InlineComment, Some(comment_id)) => {
                self.api
                    .reply_to_review_comment(
                        reply.installation_id,
                        &reply.repository,
                        reply.number,
                        comment_id,
                        body,
                    )
                    .await
            }
            _ => {
                self.api
                    .comment(reply.installation_id, &reply.repository, reply.number, body)
                    .await
            }
        }
    }

    /// The first linked scope whose GitHub token GitHub says belongs to the sender.
    async fn proven_account(
        &self,
        ctx: &dyn JobContext,
        reply: &ReplyTo,
    ) -> Result<Option<UserScope>, CallbackError> {
        let candidates = ctx
            .linked_scopes(ProviderType::Github, &reply.sender_login)
            .await
            .map_err(callback_error)?;
        let services = ctx.services();
        for scope in candidates {
            let Some(stored) = services
                .secrets_store
                .load(&scope)
                .await
                .map_err(callback_error)?
                .and_then(|mut s| s.provider_tokens.remove(&ProviderType::Github))
            else {
                continue;
            };
            let token = match services
                .provider_tokens
                .fresh_token(&scope, ProviderType::Github, stored.clone())
                .await
            {
                Ok(fresh) => fresh,
                Err(err) => {
                    tracing::info!(user_id = scope.user_id.as_deref().unwrap_or_default(),
                        error = %err, "github: using the stored token to prove the link");
                    stored
                }
            };
            let Some(secret) = token.token.as_ref() else {
                continue;
            };
            let Some(owner) = self
                .api
                .token_user(secret.expose())
                .await
                .map_err(callback_error)?
            else {
                continue;
            };
            // GitHub always sends the sender's id; a payload without one (0) is matched on
            // the login alone, which GitHub has just vouched for.
            let same_id = reply.sender_id == 0 || owner.id == reply.sender_id;
            if same_id && owner.login.eq_ignore_ascii_case(&reply.sender_login) {
                return Ok(Some(scope));
            }
        }
        Ok(None)
    }
}

#[async_trait]
impl Integration for Github {
    fn name(&self) -> &'static str {
        NAME
    }

    fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.settings.max_attempts.max(1),
            base_backoff_ms: self.settings.backoff_ms,
        }
    }

    fn disabled_message(&self) -> Option<&'static str> {
        (!self.settings.webhooks_enabled).then_some(DISABLED)
    }

    fn verify(&self, headers: &WebhookHeaders, body: &[u8]) -> Result<(), VerifyError> {
        verify_webhook_signature(
            &self.settings.app.webhook_secret,
            headers.get("x-hub-signature-256"),
            body,
        )
    }

    fn check_payload(&self, _headers: &WebhookHeaders, body: &[u8]) -> Result<(), InvalidPayload> {
        payload::installation_id(body)
            .map(|_| ())
            .ok_or_else(|| InvalidPayload("the payload has no installation id".to_owned()))
    }

    fn delivery_id(&self, headers: &WebhookHeaders, _body: &[u8]) -> Option<String> {
        headers
            .get("x-github-delivery")
            .map(str::trim)
            .filter(|id| !id.is_empty() && id.len() <= 200)
            .map(str::to_owned)
    }

    fn parse(&self, headers: &WebhookHeaders, body: &[u8]) -> Result<Option<Job>, ParseError> {
        let settings = &self.settings;
        payload::job_of(
            headers.get("x-github-event").unwrap_or_default(),
            body,
            &Triggers {
                rules: openhands_core::resolver::Triggers {
                    label: &settings.label,
                    mention: &settings.mention,
                    bot_login: settings.bot_login.as_deref(),
                },
                web_url: &settings.web_url,
            },
        )
    }

    async fn admit(&self, ctx: &dyn JobContext, mut job: Job) -> Result<Admission, CallbackError> {
        let reply = Self::reply_to(&job)?;
        let (installation, repo) = (reply.installation_id, reply.repository.as_str());
        if !self
            .api
            .can_write(installation, repo, &reply.sender_login)
            .await
            .map_err(callback_error)?
        {
            return Ok(Admission::Ignore(format!(
                "{} has no write access to {repo}",
                reply.sender_login
            )));
        }
        let target = match (reply.trigger, reply.comment_id) {
            (Trigger::InlineComment, Some(id)) => ReactionTarget::ReviewComment(id),
            (_, Some(id)) => ReactionTarget::IssueComment(id),
            (_, None) => ReactionTarget::Issue(reply.number),
        };
        if let Err(err) = self.api.react(installation, repo, target, "eyes").await {
            // The acknowledgement is a courtesy: the job runs without it.
            tracing::warn!(repository = %repo, error = %err, "github: adding the eyes reaction failed");
        }
        let Some(scope) = self.proven_account(ctx, &reply).await? else {
            let text = messages::no_linked_account(
                &reply.sender_login,
                self.settings.public_url.as_deref(),
            );
            self.answer(&reply, &text).await.map_err(callback_error)?;
            return Ok(Admission::Refuse(format!(
                "GitHub user {} has no linked OpenHands account",
                reply.sender_login
            )));
        };
        if reply.trigger == Trigger::PrComment {
            job.branch = Some(
                self.api
                    .pull_head(installation, repo, reply.number)
                    .await
                    .map_err(callback_error)?,
            );
        }
        job.user_id = scope.user_id.clone().unwrap_or_default();
        job.org_id = scope.org_id;
        Ok(Admission::Run(job))
    }

    async fn on_finished(&self, job: &Job, outcome: &Outcome) -> Result<(), CallbackError> {
        let reply = Self::reply_to(job)?;
        let text = messages::outcome(
            outcome,
            &reply.repository,
            &self.settings.web_url,
            self.settings.public_url.as_deref(),
        );
        self.answer(&reply, &text).await.map_err(callback_error)
    }

    async fn on_start_failed(&self, job: &Job, failure: StartFailure) -> Result<(), CallbackError> {
        let reply = Self::reply_to(job)?;
        let text = messages::start_failed(
            &reply.sender_login,
            failure,
            self.settings.public_url.as_deref(),
        );
        self.answer(&reply, &text).await.map_err(callback_error)
    }
}

fn build(
    config: &openhands_core::config::Config,
) -> Result<Option<Arc<dyn Integration>>, PluginError> {
    let Some(settings) =
        GithubSettings::for_server(config).map_err(|e| PluginError(e.to_string()))?
    else {
        return Ok(None);
    };
    Ok(Some(Arc::new(Github::new(settings)?)))
}

inventory::submit! {
    IntegrationRegistration {
        name: NAME,
        description: "GitHub App webhooks: labelled issues, @openhands comments and inline review comments",
        build,
    }
}
