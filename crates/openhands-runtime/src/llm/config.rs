//! What the LLM client needs to know: model, endpoint, key, and its retry/timeout policy.
//!
//! Model ids are LiteLLM-style (`openai/gpt-4o`, `anthropic/claude-sonnet-4-20250514`). Where
//! the request goes and which id is sent is decided here, in one place:
//!
//! * with a `base_url`, requests go to `{base_url}/chat/completions` (or to `base_url` itself
//!   when it already ends with `/chat/completions`). Only an `openai/` prefix is stripped from
//!   the model id: a LiteLLM proxy understands full ids such as `anthropic/claude-...` and
//!   needs them to route, while a plain OpenAI-compatible server expects `gpt-4o`.
//! * without a `base_url`, requests go to OpenAI (`https://api.openai.com/v1`) and any
//!   provider prefix is stripped.

use super::egress::LlmEgress;
use openhands_core::secret::Secret;
use std::time::Duration;

/// OpenAI's API root, used when no `base_url` is configured.
pub const OPENAI_BASE_URL: &str = "https://api.openai.com/v1";

const CHAT_COMPLETIONS: &str = "/chat/completions";

/// Default cap on a response body: far above any chat completion, far below memory trouble.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// Configuration of an [`crate::llm::LlmClient`].
#[derive(Debug, Clone)]
pub struct LlmConfig {
    /// LiteLLM-style model id, e.g. `openai/gpt-4o`.
    pub model: String,
    /// Root of an OpenAI-compatible API (e.g. `http://localhost:4000/v1`); OpenAI when `None`.
    pub base_url: Option<String>,
    /// Sent as `Authorization: Bearer <key>` when set.
    pub api_key: Option<Secret>,
    /// How many times a failed call is retried (429, 5xx, connection errors).
    pub max_retries: u32,
    /// Wait before the first retry; doubles on each further retry.
    pub initial_backoff: Duration,
    /// Timeout of one HTTP request.
    pub timeout: Duration,
    /// Which addresses the client may connect to ([`LlmEgress::Public`] on a multi-user
    /// server, where `base_url` is user input).
    pub egress: LlmEgress,
    /// Largest response body read; a longer one fails the call.
    pub max_response_bytes: usize,
}

impl LlmConfig {
    /// A config with the default retry policy (4 retries from 500 ms, 120 s timeout), any
    /// address reachable and responses up to [`DEFAULT_MAX_RESPONSE_BYTES`].
    pub fn new(model: impl Into<String>) -> Self {
        Self {
            model: model.into(),
            base_url: None,
            api_key: None,
            max_retries: 4,
            initial_backoff: Duration::from_millis(500),
            timeout: Duration::from_secs(120),
            egress: LlmEgress::Any,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }

    /// The full URL requests are POSTed to.
    pub fn endpoint(&self) -> String {
        match self.base_url.as_deref().map(str::trim) {
            Some(base) if !base.is_empty() => {
                let base = base.trim_end_matches('/');
                if base.ends_with(CHAT_COMPLETIONS) {
                    base.to_owned()
                } else {
                    format!("{base}{CHAT_COMPLETIONS}")
                }
            }
            _ => format!("{OPENAI_BASE_URL}{CHAT_COMPLETIONS}"),
        }
    }

    /// The model id sent in the request body (see the module docs for the prefix rule).
    pub fn wire_model(&self) -> &str {
        let has_base_url = self
            .base_url
            .as_deref()
            .is_some_and(|b| !b.trim().is_empty());
        if has_base_url {
            self.model.strip_prefix("openai/").unwrap_or(&self.model)
        } else {
            strip_provider(&self.model)
        }
    }
}

impl Default for LlmConfig {
    fn default() -> Self {
        Self::new("openai/gpt-4o")
    }
}

/// The model id without its `provider/` prefix (`anthropic/claude-x` → `claude-x`).
pub(crate) fn strip_provider(model: &str) -> &str {
    model.split_once('/').map_or(model, |(_, rest)| rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_base(model: &str, base: Option<&str>) -> LlmConfig {
        LlmConfig {
            base_url: base.map(str::to_owned),
            ..LlmConfig::new(model)
        }
    }

    #[test]
    fn endpoint_appends_chat_completions_once() {
        assert_eq!(
            with_base("m", Some("http://h:4000/v1/")).endpoint(),
            "http://h:4000/v1/chat/completions"
        );
        assert_eq!(
            with_base("m", Some("http://h/v1/chat/completions")).endpoint(),
            "http://h/v1/chat/completions"
        );
        assert_eq!(
            with_base("m", None).endpoint(),
            "https://api.openai.com/v1/chat/completions"
        );
        assert_eq!(
            with_base("m", Some("  ")).endpoint(),
            "https://api.openai.com/v1/chat/completions"
        );
    }

    #[test]
    fn only_openai_prefix_is_stripped_for_proxies() {
        let proxy = Some("http://litellm:4000");
        assert_eq!(with_base("openai/gpt-4o", proxy).wire_model(), "gpt-4o");
        assert_eq!(
            with_base("anthropic/claude-sonnet-4", proxy).wire_model(),
            "anthropic/claude-sonnet-4"
        );
        assert_eq!(with_base("openai/gpt-4o", None).wire_model(), "gpt-4o");
        assert_eq!(with_base("gpt-4o", None).wire_model(), "gpt-4o");
    }
}
