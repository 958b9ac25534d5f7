//! The extension points: the traits that a mode (OSS, SaaS) or a provider crate implements.
//!
//! Each trait is small and async. Every method that touches user data takes a
//! [`UserScope`](crate::UserScope) and must confine itself to that user (and organization).
//! Implementations register in the [`registry`](crate::registry) under a stable name.

mod auth;
mod manager;
mod monitoring;
mod rate_limit;
mod stores;

pub use auth::{AuthError, AuthType, AuthenticatedUser, RequestHeaders, UserAuth};
pub use manager::ConversationManager;
pub use monitoring::MonitoringListener;
pub use rate_limit::{RateDecision, RateLimiter};
pub use stores::{ConversationStore, EventStore, SecretsStore, SettingsStore};
