//! Gitea / Forgejo webhooks, as a provider crate of the integration framework.
//!
//! It plugs in with no edit to core or server beyond the link line every provider needs
//! (`use openhands_gitea as _;` in the server's `plugins.rs`): it implements
//! [`Integration`] and submits an [`IntegrationRegistration`]; the framework
//! (`openhands-integrations`) mounts `POST /integration/gitea/events`, logs and retries
//! deliveries and starts the jobs.
//!
//! - Verification: `X-Gitea-Signature` is the hex HMAC-SHA256 of the body under the
//!   webhook secret (checked in constant time); the delivery id is `X-Gitea-Delivery`,
//!   the event type `X-Gitea-Event`.
//! - Triggers ([`payload`]): an issue labelled `openhands`, or a new comment mentioning
//!   `@openhands` as a whole word (not by the bot itself), with the resolver kit's rules,
//!   prompts and replies (`openhands_core::resolver`).
//! - Callback: a comment on the issue with the outcome (`POST
//!   {base}/api/v1/repos/{owner}/{repo}/issues/{n}/comments`, `Authorization: token ...`).
//! - Settings ([`config`]): the crate's own `GITEA_*` environment variables.
//!
//! See `docs/writing-a-provider.md`, which is built on this crate.

pub mod config;
pub mod payload;

pub use config::GiteaConfig;

use async_trait::async_trait;
use openhands_core::extension::{
    CallbackError, Integration, IntegrationRegistration, Job, Outcome, ParseError, RetryPolicy,
    VerifyError, WebhookHeaders, verify_hmac_sha256_hex,
};
use openhands_core::registry::PluginError;
use openhands_core::resolver::messages;
use std::sync::Arc;

/// The integration's name (`/integration/gitea/events`).
pub const NAME: &str = "gitea";

/// The Gitea integration: verification, parsing and the API client for callbacks.
pub struct Gitea {
    config: GiteaConfig,
    http: reqwest::Client,
}

impl Gitea {
    pub fn new(config: GiteaConfig) -> Self {
        Self {
            config,
            http: reqwest::Client::new(),
        }
    }

    /// The comment posted when a job's conversation ends (the resolver kit's outcome
    /// reply, with this repository's pull-request and branch links on the Gitea host).
    pub fn comment_text(&self, outcome: &Outcome, repository: &str) -> String {
        let kinds = ["pulls/", "src/branch/", "compare/"];
        messages::outcome(
            outcome,
            "pull request",
            |link| messages::is_repository_link(link, &self.config.base_url, repository, &kinds),
            None,
        )
    }
}

#[async_trait]
impl Integration for Gitea {
    fn name(&self) -> &'static str {
        NAME
    }

    fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.config.max_attempts.max(1),
            base_backoff_ms: self.config.backoff_ms,
        }
    }

    fn verify(&self, headers: &WebhookHeaders, body: &[u8]) -> Result<(), VerifyError> {
        let signature = headers
            .get("x-gitea-signature")
            .ok_or(VerifyError::Missing("X-Gitea-Signature"))?;
        verify_hmac_sha256_hex(self.config.webhook_secret.as_bytes(), body, signature)
    }

    fn delivery_id(&self, headers: &WebhookHeaders, _body: &[u8]) -> Option<String> {
        headers
            .get("x-gitea-delivery")
            .map(str::trim)
            .filter(|id| !id.is_empty() && id.len() <= 200)
            .map(str::to_owned)
    }

    /// Gitea before 1.13 also sent the webhook secret in the body (`"secret"`); it is
    /// dropped before the body is stored.
    fn stored_payload(&self, body: &[u8]) -> String {
        match serde_json::from_slice::<serde_json::Value>(body) {
            Ok(serde_json::Value::Object(mut fields)) => {
                fields.remove("secret");
                serde_json::Value::Object(fields).to_string()
            }
            _ => String::from_utf8_lossy(body).into_owned(),
        }
    }

    fn parse(&self, headers: &WebhookHeaders, body: &[u8]) -> Result<Option<Job>, ParseError> {
        let event_type = headers.get("x-gitea-event").unwrap_or_default();
        payload::job_of(
            event_type,
            body,
            &self.config.user_id,
            &self.config.bot_login,
        )
    }

    async fn on_finished(&self, job: &Job, outcome: &Outcome) -> Result<(), CallbackError> {
        let reply: payload::ReplyTo = serde_json::from_value(job.reply_to.clone())
            .map_err(|e| CallbackError(format!("job has no Gitea issue to answer: {e}")))?;
        let url = format!(
            "{}/api/v1/repos/{}/issues/{}/comments",
            self.config.base_url, reply.repository, reply.issue
        );
        let response = self
            .http
            .post(&url)
            .header("Authorization", format!("token {}", self.config.token))
            .json(&serde_json::json!({"body": self.comment_text(outcome, &reply.repository)}))
            .send()
            .await
            .map_err(|e| {
                CallbackError(format!(
                    "posting the comment to {url} failed: {}",
                    e.without_url()
                ))
            })?;
        if !response.status().is_success() {
            return Err(CallbackError(format!(
                "posting the comment to {url} answered {}",
                response.status()
            )));
        }
        Ok(())
    }
}

fn build(
    config: &openhands_core::config::Config,
) -> Result<Option<Arc<dyn Integration>>, PluginError> {
    let Some(settings) = GiteaConfig::for_server(config).map_err(|e| PluginError(e.to_string()))?
    else {
        return Ok(None);
    };
    Ok(Some(Arc::new(Gitea::new(settings))))
}

inventory::submit! {
    IntegrationRegistration {
        name: NAME,
        description: "Gitea / Forgejo webhooks: labelled issues and @openhands comments",
        build,
    }
}
