//! The chat-completions call with its retry policy.
//!
//! Retried: HTTP 429, 5xx and transport failures (connect, timeout, broken body), with
//! exponential backoff from `initial_backoff` plus up to 25 % jitter, or the server's
//! `Retry-After` (seconds, capped at 60 s) when it sends one. Not retried: other 4xx — 401/403
//! become [`LlmError::Authentication`], 400 [`LlmError::BadRequest`]. Bodies put into errors are
//! cut to an excerpt and have the API key replaced by `[REDACTED]`.
//!
//! Not retried either: a host refused by the egress check ([`LlmEgress::Public`]) and a body
//! over `max_response_bytes`. Redirects are not followed (a 3xx is an [`LlmError::Http`]).

use super::config::LlmConfig;
use super::egress::{CheckedResolver, LlmEgress, check_url, refused_in};
use super::error::LlmError;
use super::request::{MessageLog, request_bytes, tools_json};
use super::wire::{ChatMessage, ChatResponse, ToolSpec, parse_response};
use openhands_core::net_policy::AllowList;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// Longest `Retry-After` we honour.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// Longest body excerpt kept in an error.
const BODY_EXCERPT_CHARS: usize = 500;

/// The process-wide HTTP clients: one connection pool and one set of buffers shared by every
/// conversation, so an idle conversation holds no connection of its own. The per-model timeout
/// is set on each request instead. Checked clients carry their allow-list in their resolver;
/// the last one built is kept (a server has one list).
static OPEN_HTTP: OnceLock<reqwest::Client> = OnceLock::new();
static CHECKED_HTTP: Mutex<Option<(AllowList, reqwest::Client)>> = Mutex::new(None);

/// Redirects are never followed: a redirect could lead a checked client's request, key
/// included, anywhere.
fn builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none())
}

fn build(builder: reqwest::ClientBuilder) -> Result<reqwest::Client, LlmError> {
    builder
        .build()
        .map_err(|e| LlmError::InvalidConfig(format!("HTTP client: {e}")))
}

fn shared_http(egress: &LlmEgress) -> Result<reqwest::Client, LlmError> {
    match egress {
        LlmEgress::Any => {
            if let Some(client) = OPEN_HTTP.get() {
                return Ok(client.clone());
            }
            let client = build(builder())?;
            // Another thread may have won the race; either client is as good.
            Ok(OPEN_HTTP.get_or_init(|| client).clone())
        }
        LlmEgress::Public(allow) => {
            let mut cached = CHECKED_HTTP.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((_, client)) = cached.as_ref().filter(|(list, _)| list == allow) {
                return Ok(client.clone());
            }
            // No proxy: a proxy would resolve the name itself, past the resolver's check.
            let resolver = CheckedResolver {
                allow: allow.clone(),
            };
            let client = build(builder().no_proxy().dns_resolver(Arc::new(resolver)))?;
            *cached = Some((allow.clone(), client.clone()));
            Ok(client)
        }
    }
}

/// A client for one model on one endpoint (cheap: the HTTP client is shared).
#[derive(Debug, Clone)]
pub struct LlmClient {
    config: LlmConfig,
    endpoint: String,
    http: reqwest::Client,
}

/// Outcome of one attempt.
enum Attempt {
    Done(Box<ChatResponse>),
    Retry {
        reason: String,
        retry_after: Option<Duration>,
    },
}

impl LlmClient {
    /// Builds a client; fails on an empty model id, an HTTP client that cannot be built, or
    /// (with [`LlmEgress::Public`]) an endpoint on an internal IP literal.
    pub fn new(config: LlmConfig) -> Result<Self, LlmError> {
        if config.model.trim().is_empty() {
            return Err(LlmError::InvalidConfig("the model id is empty".into()));
        }
        let endpoint = config.endpoint();
        if let LlmEgress::Public(allow) = &config.egress {
            check_url(&endpoint, allow)?;
        }
        let http = shared_http(&config.egress)?;
        Ok(Self {
            endpoint,
            config,
            http,
        })
    }

    /// The configuration this client was built with.
    pub fn config(&self) -> &LlmConfig {
        &self.config
    }

    /// Sends `messages` with `tools` and returns the first choice, retrying as the module
    /// docs describe.
    pub async fn complete(
        &self,
        messages: &[ChatMessage],
        tools: &[ToolSpec],
    ) -> Result<ChatResponse, LlmError> {
        let log: MessageLog = messages.iter().collect();
        self.complete_log(&log, &tools_json(tools)).await
    }

    /// Like [`Self::complete`], with the messages already serialized in `messages` and the
    /// tools as a serialized JSON array (`""` for none): what an agent calls on every step.
    pub async fn complete_log(
        &self,
        messages: &MessageLog,
        tools_json: &str,
    ) -> Result<ChatResponse, LlmError> {
        let body = request_bytes(self.config.wire_model(), messages, tools_json);
        let mut attempt: u32 = 0;
        loop {
            match self.attempt(&body).await? {
                Attempt::Done(response) => return Ok(*response),
                Attempt::Retry {
                    reason,
                    retry_after,
                } => {
                    if attempt >= self.config.max_retries {
                        return Err(LlmError::RetriesExhausted {
                            url: self.endpoint.clone(),
                            attempts: attempt + 1,
                            last: reason,
                        });
                    }
                    let wait = retry_after.unwrap_or_else(|| self.backoff(attempt));
                    tracing::warn!(
                        model = %self.config.model,
                        attempt = attempt + 1,
                        wait_ms = wait.as_millis() as u64,
                        %reason,
                        "LLM call failed, retrying"
                    );
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
            }
        }
    }

    async fn attempt(&self, body: &[u8]) -> Result<Attempt, LlmError> {
        let mut request = self
            .http
            .post(&self.endpoint)
            .timeout(self.config.timeout)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(body.to_vec());
        if let Some(key) = self.config.api_key.as_ref().filter(|k| !k.is_blank()) {
            request = request.header(AUTHORIZATION, format!("Bearer {}", key.expose()));
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) if e.is_builder() => {
                return Err(LlmError::InvalidConfig(self.redact(&format!(
                    "request to {} cannot be built: {e}",
                    self.endpoint
                ))));
            }
            Err(e) => {
                if let Some(refused) = refused_in(&e) {
                    return Err(refused.into());
                }
                return Ok(Attempt::Retry {
                    reason: self.redact(&transport_error(&e)),
                    retry_after: None,
                });
            }
        };
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let text = match read_capped(response, self.config.max_response_bytes).await {
            Ok(Some(text)) => text,
            Ok(None) => {
                return Err(LlmError::ResponseTooLarge {
                    url: self.endpoint.clone(),
                    limit: self.config.max_response_bytes,
                });
            }
            Err(e) => {
                return Ok(Attempt::Retry {
                    reason: self.redact(&transport_error(&e)),
                    retry_after: None,
                });
            }
        };
        if status.is_success() {
            return parse_response(&text)
                .map(|r| Attempt::Done(Box::new(r)))
                .map_err(|reason| LlmError::Decode {
                    url: self.endpoint.clone(),
                    reason: self.redact(&reason),
                });
        }
        let excerpt = self.redact(&excerpt(&text));
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            return Ok(Attempt::Retry {
                reason: format!("HTTP {}: {excerpt}", status.as_u16()),
                retry_after,
            });
        }
        Err(match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => LlmError::Authentication {
                model: self.config.model.clone(),
                status: status.as_u16(),
                body: excerpt,
            },
            StatusCode::BAD_REQUEST => LlmError::BadRequest(excerpt),
            _ => LlmError::Http {
                url: self.endpoint.clone(),
                status: status.as_u16(),
                body: excerpt,
            },
        })
    }

    /// `initial_backoff * 2^attempt` plus up to 25 % jitter, capped at [`MAX_RETRY_AFTER`].
    fn backoff(&self, attempt: u32) -> Duration {
        let base = self
            .config
            .initial_backoff
            .saturating_mul(2u32.saturating_pow(attempt.min(16)))
            .min(MAX_RETRY_AFTER);
        base + base.mul_f64(jitter_fraction() * 0.25)
    }

    /// Replaces the API key, wherever it appears, with `[REDACTED]`.
    fn redact(&self, text: &str) -> String {
        match self.config.api_key.as_ref().filter(|k| !k.is_blank()) {
            Some(key) => text.replace(key.expose(), "[REDACTED]"),
            None => text.to_owned(),
        }
    }
}

/// `Retry-After` in seconds, capped; HTTP-date values are ignored (backoff applies).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let secs: f64 = headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs).min(MAX_RETRY_AFTER))
}

/// The body as text (invalid UTF-8 replaced), or `None` when it is longer than `limit` bytes;
/// read chunk by chunk, so an endless body costs at most `limit` bytes of memory.
async fn read_capped(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Option<String>, reqwest::Error> {
    let declared = response.content_length().unwrap_or(0);
    if usize::try_from(declared).map_or(true, |n| n > limit) {
        return Ok(None);
    }
    let mut body = Vec::with_capacity(usize::try_from(declared).unwrap_or(0));
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > limit {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(String::from_utf8_lossy(&body).into_owned()))
}

/// A transport error with its cause chain (reqwest's top-level message is terse).
fn transport_error(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn excerpt(body: &str) -> String {
    let body = body.trim();
    if body.chars().count() <= BODY_EXCERPT_CHARS {
        return body.to_owned();
    }
    let cut: String = body.chars().take(BODY_EXCERPT_CHARS).collect();
    format!("{cut}...")
}

/// A number in `[0, 1)` that varies between calls; good enough for jitter.
fn jitter_fraction() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    f64::from(nanos % 1000) / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn retry_after_is_parsed_and_capped() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(RETRY_AFTER, HeaderValue::from_static("2"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(2)));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("3600"));
        assert_eq!(retry_after(&headers), Some(MAX_RETRY_AFTER));
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let client = LlmClient::new(LlmConfig {
            initial_backoff: Duration::from_millis(100),
            ..LlmConfig::new("gpt-4o")
        })
        .expect("client");
        let first = client.backoff(0);
        let third = client.backoff(2);
        assert!(first >= Duration::from_millis(100) && first <= Duration::from_millis(125));
        assert!(third >= Duration::from_millis(400) && third <= Duration::from_millis(500));
        assert!(client.backoff(30) <= MAX_RETRY_AFTER + MAX_RETRY_AFTER / 4);
    }

    #[test]
    fn empty_model_is_refused() {
        assert!(matches!(
            LlmClient::new(LlmConfig::new(" ")),
            Err(LlmError::InvalidConfig(_))
        ));
    }
}
