//! The server routes the agent and cluster measurements call: settings,
//! conversation creation, status and stop, and the trajectory poll that tells when a
//! task has ended.
//!
//! Kept apart from the measurements so each of those reads as its steps; every
//! answer is untrusted input and checked (status, shape, a path-safe id).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use hyper::StatusCode;
use serde_json::{Value, json};

use super::events::{self, EventView};
use crate::bench::client::{HttpConn, RequestSpec, ensure_status, expect_status};

/// How often a task is polled through the trajectory route.
pub const POLL_EVERY: Duration = Duration::from_millis(100);
/// The iteration limit stored with the settings: the server's default (100 LLM
/// calls per user message) is below the 500 `think` calls of the events/s run.
const MAX_ITERATIONS: u32 = 1000;
/// The first message of every conversation the bench creates.
const CREATE_BODY: &str = r#"{"initial_user_msg":"go"}"#;

/// Stores LLM settings pointing at the fake LLM at `llm_base_url`.
pub async fn store_settings(addr: SocketAddr, llm_base_url: &str) -> Result<()> {
    let body = json!({
        "llm_model": "openai/bench-model",
        "llm_api_key": "sk-bench",
        "llm_base_url": llm_base_url,
        "max_iterations": MAX_ITERATIONS,
    });
    let request = RequestSpec::post_json("/api/settings", body.to_string());
    expect_status(addr, &request, StatusCode::OK)
        .await
        .context("storing the agent settings")?;
    Ok(())
}

/// Creates a conversation whose agent starts on "go"; returns its id.
pub async fn create_conversation(conn: &mut HttpConn) -> Result<String> {
    let request = RequestSpec::post_json("/api/conversations", CREATE_BODY);
    let reply = conn.send(&request).await?;
    ensure_status(&request, &reply, StatusCode::OK)?;
    let body: Value =
        serde_json::from_slice(&reply.body).context("conversation creation answer is not JSON")?;
    let id = body
        .get("conversation_id")
        .and_then(Value::as_str)
        .context("conversation creation answer has no conversation_id")?;
    ensure!(
        !id.is_empty()
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
        "conversation id {id:?} is not safe in a URL path"
    );
    Ok(id.to_owned())
}

/// Sends a user message to the conversation (`POST .../message`).
pub async fn send_message(addr: SocketAddr, id: &str, message: &str) -> Result<()> {
    let body = json!({ "message": message });
    let request =
        RequestSpec::post_json(format!("/api/conversations/{id}/message"), body.to_string());
    expect_status(addr, &request, StatusCode::OK)
        .await
        .with_context(|| format!("sending a message to conversation {id}"))?;
    Ok(())
}

/// Stops the conversation's agent (on whichever server runs it).
pub async fn stop_conversation(addr: SocketAddr, id: &str) -> Result<()> {
    let request = RequestSpec::post_json(format!("/api/conversations/{id}/stop"), "{}");
    expect_status(addr, &request, StatusCode::OK)
        .await
        .with_context(|| format!("stopping conversation {id}"))?;
    Ok(())
}

/// The conversation's `status` as `GET /api/conversations/{id}` shows it (`RUNNING`,
/// `STOPPED`, ...).
pub async fn conversation_status(conn: &mut HttpConn, id: &str) -> Result<String> {
    let request = RequestSpec::get(format!("/api/conversations/{id}"));
    let reply = conn.send(&request).await?;
    ensure_status(&request, &reply, StatusCode::OK)?;
    let body: Value =
        serde_json::from_slice(&reply.body).context("conversation answer is not JSON")?;
    body.get("status")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .with_context(|| format!("conversation {id} answered without a status"))
}

/// The conversation's stored events.
pub async fn trajectory(conn: &mut HttpConn, id: &str) -> Result<Vec<EventView>> {
    let request = RequestSpec::get(format!("/api/conversations/{id}/trajectory"));
    let reply = conn.send(&request).await?;
    ensure_status(&request, &reply, StatusCode::OK)?;
    events::parse_trajectory(&reply.body)
        .with_context(|| format!("trajectory of conversation {id}"))
}

/// Polls the trajectory every [`POLL_EVERY`] until the agent reaches `finished`;
/// returns the events up to and including that one. Fails fast on the `error`
/// state and after `timeout`.
pub async fn wait_finished(
    addr: SocketAddr,
    id: &str,
    timeout: Duration,
) -> Result<Vec<EventView>> {
    let deadline = Instant::now() + timeout;
    let poll = async {
        let mut conn = HttpConn::connect(addr).await?;
        loop {
            let mut events = trajectory(&mut conn, id).await?;
            if let Some(end) = events::task_end(&events)? {
                events.truncate(end + 1);
                return anyhow::Ok(events);
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    };
    match tokio::time::timeout_at(deadline.into(), poll).await {
        Ok(result) => result.with_context(|| format!("waiting for conversation {id} to finish")),
        Err(_) => bail!("conversation {id} did not reach `finished` within {timeout:?}"),
    }
}
