//! Integrations: a git host (Gitea, GitHub, ...) sends webhooks, a job starts a conversation,
//! and the outcome is posted back when the conversation finishes.
//!
//! This is OpenHands' Manager / View / Service / CallbackProcessor pattern as one trait per
//! provider: [`Integration::verify`] (request verification), [`Integration::parse`] (the
//! View: payload to a [`Job`]: who asked, where, what), the framework's worker starts the
//! job (the Manager), and [`Integration::on_finished`] (the CallbackProcessor, using the
//! provider's API client, the Service) reports back.
//!
//! Unlike the single-choice [`Slot`](crate::registry::Slot)s, several integrations are
//! active at once, so they register as a *collected* [`IntegrationRegistration`] (like
//! route contributions) and each decides for itself whether it is enabled by its flags.
//! Framework-free: the HTTP side lives in `openhands-integrations`.

use crate::StoreError;
use crate::config::Config;
use crate::registry::{PluginError, Services};
use crate::scope::UserScope;
use crate::secrets::ProviderType;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The headers of one webhook request, names lower-cased.
#[derive(Debug, Clone, Default)]
pub struct WebhookHeaders(pub Vec<(String, String)>);

impl WebhookHeaders {
    /// The first value of `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Why a request was refused (answered 403, nothing stored). Never holds a secret.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("signature header `{0}` is missing")]
    Missing(&'static str),
    #[error("signature is malformed")]
    Malformed,
    #[error("signature does not match")]
    Mismatch,
}

/// Why a payload could not be turned into a job (the delivery is dead-lettered at once:
/// retrying the same bytes cannot help).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

/// Why a callback failed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CallbackError(pub String);

/// What a delivery asks for: who, where, what; plus what the callback needs to answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// The user the conversation runs for.
    pub user_id: String,
    /// That user's organization, where the mode has organizations.
    pub org_id: Option<String>,
    /// `owner/repo`.
    pub repository: Option<String>,
    pub branch: Option<String>,
    /// The task for the agent (first user message).
    pub instructions: String,
    /// One line for `openhands webhooks list`.
    pub summary: String,
    /// Provider data the callback needs (e.g. the issue number), opaque to the framework.
    pub reply_to: serde_json::Value,
    /// The issue or change request the request came from (`owner/repo#7`), unique within
    /// the provider: a later request on the same thread by the same user continues that
    /// thread's conversation instead of starting another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread: Option<String>,
    /// What to tell the thread's conversation when it already exists (a comment's text,
    /// without the issue again; `resolver::prompts::follow_up`). `None`: this request always
    /// starts a new conversation (a label added again is a fresh attempt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follow_up: Option<String>,
    /// The git provider the repository is on, so the clone uses that provider's host and
    /// token (`None`: GitHub, or a full clone URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_provider: Option<ProviderType>,
}

impl Job {
    /// The scope the job's conversation runs in.
    pub fn scope(&self) -> UserScope {
        UserScope {
            user_id: Some(self.user_id.clone()),
            org_id: self.org_id.clone(),
        }
    }
}

/// How a job's conversation ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    pub conversation_id: String,
    /// The agent state that ended it: `finished`, `error` or `awaiting_user_input`.
    pub agent_state: String,
    /// The agent's last message, if any.
    pub message: Option<String>,
    /// The `http(s)` URLs the agent's events mention, first seen first, without repeats
    /// (a provider picks its branch and pull-request links from them).
    #[serde(default)]
    pub links: Vec<String>,
}

/// Why a delivery was refused before anything was stored (answered 400).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct InvalidPayload(pub String);

/// What a provider decided about a parsed job (see [`Integration::admit`]).
// One value per delivery, moved once: boxing the job would cost an allocation and change
// every provider for no gain.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Admission {
    /// Start it (with the user it runs for filled in).
    Run(Job),
    /// Nothing to do (e.g. the sender may not write to the repository); recorded `ignored`.
    Ignore(String),
    /// It cannot run until someone acts (e.g. links an account); dead-lettered at once with
    /// the reason, so `openhands webhooks replay` re-runs it after the fix.
    Refuse(String),
}

/// Why a job's conversation could not be started, as the asker should hear it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartFailure {
    /// The user has no LLM settings or no LLM API key.
    NoLlmSettings,
    /// Anything else (storage, the conversation manager).
    Other,
}

/// What the framework lends a provider while it admits a job.
#[async_trait]
pub trait JobContext: Send + Sync {
    /// The server's stores and provider-token source.
    fn services(&self) -> &Services;
    /// The scopes whose stored `provider` token names the provider account `login`
    /// (case-insensitive). The name is what was stored: prove it (e.g. ask the provider
    /// whose token it is) before trusting it.
    async fn linked_scopes(
        &self,
        provider: ProviderType,
        login: &str,
    ) -> Result<Vec<UserScope>, StoreError>;
}

/// Retries of a failing delivery: `max_attempts` in all, waiting `base_backoff_ms * 2^n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base_backoff_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_backoff_ms: 2_000,
        }
    }
}

impl RetryPolicy {
    /// The wait after the `attempt`-th failure (1-based), capped at one hour.
    pub fn backoff_ms(&self, attempt: u32) -> u64 {
        let factor = 1u64 << attempt.saturating_sub(1).min(20);
        self.base_backoff_ms.saturating_mul(factor).min(3_600_000)
    }
}

/// One provider of webhooks.
#[async_trait]
pub trait Integration: Send + Sync {
    /// Stable name, the `{provider}` of `/integration/{provider}/events`.
    fn name(&self) -> &'static str;
    /// Retries of a failing delivery.
    fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy::default()
    }
    /// Checks the request's signature (constant time, see [`verify_hmac_sha256_hex`]).
    fn verify(&self, headers: &WebhookHeaders, body: &[u8]) -> Result<(), VerifyError>;
    /// The provider's id of this delivery (redeliveries repeat it).
    fn delivery_id(&self, headers: &WebhookHeaders, body: &[u8]) -> Option<String>;
    /// Answers `200 {"message": ...}` to every delivery without looking at it, when the
    /// provider's webhooks are switched off but the provider is configured (as OpenHands
    /// does for `GITHUB_WEBHOOKS_ENABLED`).
    fn disabled_message(&self) -> Option<&'static str> {
        None
    }
    /// Checks a verified body before it is stored; an error is answered 400 and nothing is
    /// stored (e.g. GitHub deliveries without an installation id).
    fn check_payload(&self, _headers: &WebhookHeaders, _body: &[u8]) -> Result<(), InvalidPayload> {
        Ok(())
    }
    /// The body as kept in the delivery log (and later given to [`Integration::parse`]).
    /// Override to drop anything secret a provider puts in its payloads.
    fn stored_payload(&self, body: &[u8]) -> String {
        String::from_utf8_lossy(body).into_owned()
    }
    /// The job this delivery asks for, or `None` for an event to ignore (e.g. the bot's
    /// own comment).
    fn parse(&self, headers: &WebhookHeaders, body: &[u8]) -> Result<Option<Job>, ParseError>;
    /// Checks that need the network or the database (the sender's permission, the account
    /// behind the provider's user) and the acknowledgement, run by the worker before each
    /// attempt to start the job. An error is retried like a failed start. Default: run the
    /// job as parsed.
    async fn admit(&self, _ctx: &dyn JobContext, job: Job) -> Result<Admission, CallbackError> {
        Ok(Admission::Run(job))
    }
    /// Posts the outcome back; called once per job (a failure is retried).
    async fn on_finished(&self, job: &Job, outcome: &Outcome) -> Result<(), CallbackError>;
    /// Tells the asker that the job could not be started; called once, when the delivery is
    /// dead-lettered after its last attempt. Default: nothing.
    async fn on_start_failed(
        &self,
        _job: &Job,
        _failure: StartFailure,
    ) -> Result<(), CallbackError> {
        Ok(())
    }
}

/// Builds an integration from the config; `Ok(None)` when its flags are off.
pub type IntegrationBuildFn = fn(&Config) -> Result<Option<Arc<dyn Integration>>, PluginError>;

/// A linked provider crate's integration, submitted with `inventory::submit!`.
pub struct IntegrationRegistration {
    pub name: &'static str,
    pub description: &'static str,
    pub build: IntegrationBuildFn,
}

inventory::collect!(IntegrationRegistration);

impl IntegrationRegistration {
    /// Every linked registration, sorted by name.
    pub fn registered() -> Vec<&'static IntegrationRegistration> {
        let mut all: Vec<_> = inventory::iter::<IntegrationRegistration>
            .into_iter()
            .collect();
        all.sort_unstable_by_key(|r| r.name);
        all
    }

    /// The enabled integrations for this config, sorted by name; the first error names
    /// the provider.
    pub fn enabled(config: &Config) -> Result<Vec<Arc<dyn Integration>>, PluginError> {
        let mut out = Vec::new();
        for registration in Self::registered() {
            if let Some(built) = (registration.build)(config)
                .map_err(|e| PluginError(format!("integration `{}`: {e}", registration.name)))?
            {
                out.push(built);
            }
        }
        Ok(out)
    }
}

/// Checks `signature_hex` (hex HMAC-SHA256 of `body` under `secret`) in constant time.
pub fn verify_hmac_sha256_hex(
    secret: &[u8],
    body: &[u8],
    signature_hex: &str,
) -> Result<(), VerifyError> {
    let signature = decode_hex(signature_hex.trim()).ok_or(VerifyError::Malformed)?;
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    ring::hmac::verify(&key, body, &signature).map_err(|_| VerifyError::Mismatch)
}

/// Hex HMAC-SHA256 of `body` (for senders and tests).
pub fn sign_hmac_sha256_hex(secret: &[u8], body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    ring::hmac::sign(&key, body)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_signature_of_the_body_verifies_and_others_do_not() {
        let sig = sign_hmac_sha256_hex(b"s3cret", b"{\"a\":1}");
        assert_eq!(
            verify_hmac_sha256_hex(b"s3cret", b"{\"a\":1}", &sig),
            Ok(())
        );
        assert_eq!(
            verify_hmac_sha256_hex(b"other", b"{\"a\":1}", &sig),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify_hmac_sha256_hex(b"s3cret", b"{}", "zz"),
            Err(VerifyError::Malformed)
        );
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let policy = RetryPolicy {
            max_attempts: 3,
            base_backoff_ms: 10,
        };
        assert_eq!(policy.backoff_ms(1), 10);
        assert_eq!(policy.backoff_ms(2), 20);
        assert_eq!(policy.backoff_ms(3), 40);
        assert_eq!(policy.backoff_ms(200), 3_600_000);
    }

    proptest! {
        #[test]
        fn verification_never_panics(sig in ".{0,80}", body in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = verify_hmac_sha256_hex(b"k", &body, &sig);
        }
    }
}
