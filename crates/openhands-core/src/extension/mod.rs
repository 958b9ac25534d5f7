//! The extension points: the traits that a mode (OSS, SaaS) or a provider crate implements.
//!
//! Each trait is small and async. Every method that touches user data takes a
//! [`UserScope`](crate::UserScope) and must confine itself to that user (and organization).
//! Implementations register in the [`registry`](crate::registry) under a stable name.

mod audit;
mod auth;
mod change_feed;
mod git_service;
mod integration;
mod manager;
mod monitoring;
mod provider_tokens;
mod rate_limit;
mod sandbox;
mod stores;

pub use audit::{AuditEntry, AuditError, AuditLog};
pub use auth::{AuthError, AuthType, AuthenticatedUser, RequestHeaders, UserAuth};
pub use change_feed::{ChangeFeed, ChangeFeedError, ChangeNotice};
pub use git_service::{
    Branch, GitService, GitServiceBuildFn, GitServiceError, GitServiceRegistration, GitUser,
    PaginatedBranches, Repository, RepositoryPage, RepositorySearch,
};
pub use integration::{
    Admission, CallbackError, Integration, IntegrationBuildFn, IntegrationRegistration,
    InvalidPayload, Job, JobContext, Outcome, ParseError, RetryPolicy, StartFailure, VerifyError,
    WebhookHeaders, sign_hmac_sha256_hex, verify_hmac_sha256_hex,
};
pub use manager::{
    ConversationInput, ConversationManager, LiveEvent, LiveMessage, LiveReceiver, ManagerError,
    StartRequest,
};
pub use monitoring::MonitoringListener;
pub use provider_tokens::{ProviderTokenError, ProviderTokenSource, fresh_secrets};
pub use rate_limit::{RateDecision, RateKey, RateLimiter, WindowState, fixed_window_decision};
pub use sandbox::{PreparedSandbox, Sandbox, SandboxError, SandboxSpec};
pub use stores::{ConversationStore, EventStore, SecretsStore, SettingsStore};
