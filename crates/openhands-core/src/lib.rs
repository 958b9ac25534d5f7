//! The heart of the server, free of any web framework.
//!
//! `openhands-core` owns three things:
//!
//! * the **domain types** with the JSON shapes of the OpenHands server (settings, secrets,
//!   conversation metadata, events), so every crate speaks the same wire format;
//! * the **extension points**: small async traits (stores, user auth, conversation manager,
//!   monitoring, rate limiter) and the [`registry`] through which implementations register by
//!   name and are selected at start-up by a *config class*;
//! * the **OSS defaults** in [`oss`]: file-backed stores under a data directory, a single local
//!   user, an in-memory rate limiter.
//!
//! Invariant: this crate never depends on actix-web (checked by `cargo xtask ci`).

pub mod auth_config;
pub mod cache;
pub mod cluster_config;
pub mod config;
pub mod conversation;
pub mod crypto;
pub mod error;
pub mod event;
pub mod extension;
pub mod fs_atomic;
pub mod git_oauth_config;
pub mod net_policy;
pub mod oss;
pub mod provider_http;
pub mod readiness;
pub mod registry;
pub mod repository;
pub mod resolver;
pub mod runtime_keys;
pub mod sandbox_config;
pub mod sandbox_host;
pub mod scope;
pub mod secret;
pub mod secrets;
pub mod settings;
pub mod settings_views;
pub mod shared;
pub mod tool_protocol;

pub use error::StoreError;
pub use scope::UserScope;

#[doc(hidden)]
pub use inventory;
