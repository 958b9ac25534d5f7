//! The graceful shutdown, shared by `main` (at SIGTERM or SIGINT) and the test server.
//!
//! The order is what makes it lose nothing (see [`openhands_api::lifecycle`]): first out of
//! the load balancer's pool and no new conversations (`/ready` and starts answer 503); then
//! the running conversations drained (each agent leaves at a step boundary, keeping what it
//! already received) and, on a cluster, handed to live replicas, which go on with the work;
//! then the WebSockets closed with 1012 so their clients reconnect, to a replica that now
//! runs the conversation. The caller stops the HTTP server after this.
//!
//! The conversations run on the runtime the state was built on (`conversations`), not on
//! an HTTP worker's: a worker's runtime ends with the HTTP server.

use actix_web::web;
use openhands_api::AppState;
use std::time::Instant;

/// Drains and hands over the conversations, then closes the WebSockets (see the module doc).
pub async fn shut_down(state: &web::Data<AppState>, conversations: &tokio::runtime::Handle) {
    let started = Instant::now();
    state.lifecycle.begin_drain();
    let manager = state.ext.conversation_manager.clone();
    if let Err(err) = conversations
        .spawn(async move { manager.shutdown().await })
        .await
    {
        tracing::error!(error = %err, "stopping the conversations failed");
    }
    state.lifecycle.close_sockets();
    tracing::info!(
        elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "conversations stopped or handed over; closing connections"
    );
}
