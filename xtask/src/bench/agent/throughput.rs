//! Agent events/s: how fast one agent loop turns LLM answers into stored events.
//!
//! The fake LLM answers `think` N times, then `finish`; each `think` is an action
//! and an observation, so the server stores ~2N events as fast as it can. The rate
//! comes from the events' own timestamps (first to last), not from the poll, so
//! the 100 ms polling granularity does not blur it.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Serialize;

use super::api;
use super::events;
use super::fake_llm::FakeLlm;
use crate::bench::client::HttpConn;

/// The longest the task may take.
const TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EventThroughput {
    /// `think` answers the fake LLM gave before `finish`.
    pub think_calls: u64,
    pub events: usize,
    /// First to last event timestamp.
    pub seconds: f64,
    pub events_per_s: f64,
}

pub async fn measure(addr: SocketAddr, llm: &FakeLlm, think_calls: u64) -> Result<EventThroughput> {
    llm.set_think_budget(think_calls);
    let mut conn = HttpConn::connect(addr).await?;
    let id = api::create_conversation(&mut conn)
        .await
        .context("creating the conversation")?;
    let events = api::wait_finished(addr, &id, TIMEOUT).await?;
    let (seconds, rate) = events::events_per_second(&events)?;
    Ok(EventThroughput {
        think_calls,
        events: events.len(),
        seconds: (seconds * 1000.0).round() / 1000.0,
        events_per_s: rate.round(),
    })
}
