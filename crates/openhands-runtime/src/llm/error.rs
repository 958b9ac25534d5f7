//! Errors of the LLM client.
//!
//! Every message names what failed; none contains the API key (bodies are redacted before they
//! are put into an error, see [`crate::llm::LlmClient`]).

use thiserror::Error;

/// Why an LLM call failed.
#[derive(Debug, Error)]
pub enum LlmError {
    /// The configuration cannot be used (e.g. an empty model id).
    #[error("invalid LLM configuration: {0}")]
    InvalidConfig(String),
    /// The provider refused the credentials (HTTP 401/403).
    #[error("LLM authentication failed for model {model} (HTTP {status}): {body}")]
    Authentication {
        model: String,
        status: u16,
        body: String,
    },
    /// The provider refused the request (HTTP 400).
    #[error("LLM rejected the request (HTTP 400): {0}")]
    BadRequest(String),
    /// Any other non-retryable HTTP status.
    #[error("LLM call to {url} failed with HTTP {status}: {body}")]
    Http {
        url: String,
        status: u16,
        body: String,
    },
    /// The call kept failing with retryable errors.
    #[error("LLM call to {url} failed after {attempts} attempts; last error: {last}")]
    RetriesExhausted {
        url: String,
        attempts: u32,
        last: String,
    },
    /// The base URL's host is, or resolves to, an internal address this server may not reach.
    #[error(
        "the LLM base URL is refused: {0}; this server only reaches public addresses \
         (an operator can allow hosts or networks with `llm_egress_allow`)"
    )]
    EgressRefused(#[from] super::egress::Refused),
    /// The response body was longer than `max_response_bytes`.
    #[error("LLM response from {url} is larger than {limit} bytes; it was cut off")]
    ResponseTooLarge { url: String, limit: usize },
    /// The answer was not a chat-completions response we understand.
    #[error("LLM response from {url} could not be decoded: {reason}")]
    Decode { url: String, reason: String },
}
