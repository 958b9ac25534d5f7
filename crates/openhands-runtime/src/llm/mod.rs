//! An OpenAI-compatible chat-completions client with tool calling.
//!
//! The wire types are written by hand (the format is small and stable), so that we control
//! exactly what is sent and ignore whatever extra fields a provider adds to its answers.
//! Requests are assembled from pre-serialized parts ([`MessageLog`], [`tools_json`]) so that
//! an agent's growing conversation is serialized once, not once per call.
//!
//! On a multi-user server the base URL is user input, so the client can be limited to public
//! addresses ([`LlmEgress`]); it never follows redirects and caps response bodies.

mod client;
mod config;
mod cost;
mod egress;
mod error;
mod request;
mod wire;

pub use client::LlmClient;
pub use config::{DEFAULT_MAX_RESPONSE_BYTES, LlmConfig};
pub use cost::cost_usd;
pub use egress::{LlmEgress, Refused};
pub use error::LlmError;
pub use request::{MessageLog, tools_json};
pub use wire::{
    AssistantMessage, ChatMessage, ChatResponse, ContentPart, ImageUrl, MessageContent, ToolCall,
    ToolSpec, Usage,
};
