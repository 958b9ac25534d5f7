//! The OSS defaults: everything a single-user install needs, with no service to run.
//!
//! State lives in files under the data directory (default `~/.openhands`), laid out like
//! OpenHands' file store (`settings.json`, `secrets.json`, `sessions/<id>/metadata.json`,
//! `sessions/<id>/events/<n>.json`), except that secret values are sealed. Each store keeps an
//! in-memory copy or index, so reads never scan directories, and serializes its writes, which
//! go through [`crate::fs_atomic`].

mod class;
mod file_conversations;
mod file_events;
mod file_secrets;
mod file_settings;
mod layout;
mod local_auth;
mod local_changes;
mod log_audit;
mod log_monitoring;
mod memory_rate_limiter;
mod process_sandbox;
mod stored_tokens;

pub use file_conversations::FileConversationStore;
pub use file_events::FileEventStore;
pub use file_secrets::FileSecretsStore;
pub use file_settings::FileSettingsStore;
pub use local_auth::{LocalUserAuth, SESSION_API_KEY_HEADER};
pub use local_changes::LocalChangeFeed;
pub use log_audit::LogAuditLog;
pub use log_monitoring::LogMonitoringListener;
pub use memory_rate_limiter::MemoryRateLimiter;
pub use stored_tokens::StoredProviderTokens;
