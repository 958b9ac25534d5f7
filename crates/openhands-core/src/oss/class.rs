//! The `oss` config class: the defaults of a single-user install.

use crate::registry::{ConfigClass, Slot};

inventory::submit! {
    ConfigClass {
        name: "oss",
        description: "Single user, files under the data dir, in-process conversations",
        app_mode: "oss",
        slots: &[
            (Slot::SettingsStore, "oss.file_settings"),
            (Slot::SecretsStore, "oss.file_secrets"),
            (Slot::ConversationStore, "oss.file_conversations"),
            (Slot::EventStore, "oss.file_events"),
            (Slot::UserAuth, "oss.local_user"),
            (Slot::ConversationManager, "oss.standalone"),
            (Slot::MonitoringListener, "oss.log"),
            (Slot::RateLimiter, "oss.memory"),
            (Slot::Sandbox, "oss.process"),
            (Slot::AuditLog, "oss.log_audit"),
            (Slot::ProviderTokenSource, "oss.stored_tokens"),
            (Slot::ChangeFeed, "oss.local_changes"),
        ],
    }
}
