//! Storage extension points.

use crate::conversation::{ConversationMetadata, ConversationPage, ConversationQuery};
use crate::error::StoreError;
use crate::event::{Event, EventPage, EventQuery, NewEvent};
use crate::scope::UserScope;
use crate::secrets::{
    CustomSecretChange, ProviderToken, ProviderTokenChange, ProviderType, UserSecrets,
};
use crate::settings::Settings;
use async_trait::async_trait;
use std::collections::BTreeMap;

/// Per-user settings.
///
/// Guarantees: a `store` is atomic (readers see the old or the new settings, never a mix)
/// and durable when it returns; secret fields are encrypted at rest.
#[async_trait]
pub trait SettingsStore: Send + Sync {
    /// The user's settings, `None` when never stored.
    async fn load(&self, scope: &UserScope) -> Result<Option<Settings>, StoreError>;

    /// Applies OpenHands' POST rule ([`Settings::merged_over`]) against the stored settings
    /// and stores the result, as one atomic step with respect to other writers of the same
    /// user. Returns what was stored.
    async fn store_merged(
        &self,
        scope: &UserScope,
        incoming: Settings,
    ) -> Result<Settings, StoreError>;

    /// Checks that the backend answers (for `/ready`).
    async fn health(&self) -> Result<(), StoreError>;
}

/// Per-user custom secrets and provider tokens.
///
/// Guarantees: every method is atomic for the user's whole set; a failed call leaves the
/// previous set intact; values are encrypted at rest and never logged.
#[async_trait]
pub trait SecretsStore: Send + Sync {
    /// The user's secrets, `None` when never stored.
    async fn load(&self, scope: &UserScope) -> Result<Option<UserSecrets>, StoreError>;

    /// Replaces the user's whole set.
    async fn store(&self, scope: &UserScope, secrets: UserSecrets) -> Result<(), StoreError>;

    /// Applies one change to the custom secrets (see [`CustomSecretChange::apply`]).
    async fn change_custom_secret(
        &self,
        scope: &UserScope,
        change: CustomSecretChange,
    ) -> Result<(), StoreError>;

    /// Replaces the provider tokens by OpenHands' merge rule
    /// ([`UserSecrets::replace_provider_tokens`]); custom secrets are kept.
    async fn replace_provider_tokens(
        &self,
        scope: &UserScope,
        tokens: BTreeMap<ProviderType, ProviderToken>,
    ) -> Result<(), StoreError>;

    /// Applies one change to one provider's token (see [`ProviderTokenChange::apply`]),
    /// keeping the other providers and the custom secrets; returns whether it changed
    /// anything. Used by OAuth linking, unlinking and refresh.
    async fn change_provider_token(
        &self,
        scope: &UserScope,
        provider: ProviderType,
        change: ProviderTokenChange,
    ) -> Result<bool, StoreError>;

    /// Checks that the backend answers (for `/ready`).
    async fn health(&self) -> Result<(), StoreError>;
}

/// Conversation metadata.
///
/// Guarantees: a conversation belongs to the user (and organization) that saved it; `get`,
/// `delete` and `search` never return or touch another scope's conversations. `search` is
/// ordered by `created_at` descending and its cursor stays valid while others are added.
#[async_trait]
pub trait ConversationStore: Send + Sync {
    /// Creates or replaces the metadata (atomically).
    async fn save(
        &self,
        scope: &UserScope,
        metadata: &ConversationMetadata,
    ) -> Result<(), StoreError>;

    /// The metadata, `None` when absent or owned by another scope.
    async fn get(
        &self,
        scope: &UserScope,
        conversation_id: &str,
    ) -> Result<Option<ConversationMetadata>, StoreError>;

    /// Removes the conversation and everything stored under it. `false` when absent.
    async fn delete(&self, scope: &UserScope, conversation_id: &str) -> Result<bool, StoreError>;

    /// One page of the scope's conversations, newest first.
    async fn search(
        &self,
        scope: &UserScope,
        query: &ConversationQuery,
    ) -> Result<ConversationPage, StoreError>;

    /// Checks that the backend answers (for `/ready`).
    async fn health(&self) -> Result<(), StoreError>;
}

/// The append-only event log of each conversation.
///
/// Guarantees: ids start at 0 and increase by one per conversation without gaps, even under
/// concurrent appends; an event is stored (readable by every later `read`, surviving a
/// crash of the process) before `append` returns, so it is stored before anyone is shown
/// it; stored events are never modified. Callers check conversation ownership through the
/// [`ConversationStore`] before reading or appending.
#[async_trait]
pub trait EventStore: Send + Sync {
    /// Appends an event, assigning the next id and the timestamp.
    async fn append(
        &self,
        scope: &UserScope,
        conversation_id: &str,
        event: NewEvent,
    ) -> Result<Event, StoreError>;

    /// A page of events.
    async fn read(
        &self,
        scope: &UserScope,
        conversation_id: &str,
        query: EventQuery,
    ) -> Result<EventPage, StoreError>;

    /// Removes every event of the conversation.
    async fn delete_all(&self, scope: &UserScope, conversation_id: &str) -> Result<(), StoreError>;

    /// Checks that the backend answers (for `/ready`).
    async fn health(&self) -> Result<(), StoreError>;
}
