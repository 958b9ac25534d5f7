//! The set-up phase: a data dir holding LLM settings and many conversations.
//!
//! Measuring list routes and start-up on an empty store would flatter the
//! server; the bench first fills the store through the public API (so the data
//! has exactly the shape the server writes) and only then measures.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use hyper::StatusCode;
use tokio::task::JoinSet;

use super::client::{HttpConn, ensure_status, expect_status};
use super::scenarios;
use super::server::{ServerConfig, ServerProcess};

/// Requests in flight while creating conversations.
const CONCURRENCY: usize = 16;

/// Starts the server on `config.data_dir`, stores settings, creates
/// `conversations` conversations and stops the server.
pub async fn prepare(config: &ServerConfig, conversations: usize) -> Result<()> {
    let mut server = ServerProcess::spawn(config)?;
    server
        .wait_alive(Duration::from_millis(5), Duration::from_secs(30))
        .await
        .context("set-up: waiting for the server")?;
    expect_status(server.addr(), &scenarios::store_settings(), StatusCode::OK)
        .await
        .context("set-up: storing LLM settings")?;
    create_conversations(server.addr(), conversations)
        .await
        .context("set-up: creating conversations")?;
    server.stop().await.context("set-up: stopping the server")
}

/// Creates `total` conversations over [`CONCURRENCY`] keep-alive connections.
async fn create_conversations(addr: SocketAddr, total: usize) -> Result<()> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = JoinSet::new();
    for _ in 0..CONCURRENCY.min(total) {
        let next = Arc::clone(&next);
        workers.spawn(async move {
            let request = scenarios::create_conversation();
            let mut conn = HttpConn::connect(addr).await?;
            while next.fetch_add(1, Ordering::Relaxed) < total {
                let reply = conn.send(&request).await?;
                ensure_status(&request, &reply, StatusCode::OK)?;
            }
            anyhow::Ok(())
        });
    }
    // Dropping the set on the first error aborts the other workers.
    while let Some(joined) = workers.join_next().await {
        joined.context("conversation worker panicked")??;
    }
    Ok(())
}
