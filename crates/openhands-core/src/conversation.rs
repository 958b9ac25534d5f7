//! Conversation metadata, status and the list/paging types, with OpenHands' JSON shapes.

use crate::secrets::ProviderType;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Longest conversation id accepted, as in OpenHands.
pub const MAX_CONVERSATION_ID_LEN: usize = 100;

/// Why a conversation id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidConversationId {
    #[error("Conversation ID is empty")]
    Empty,
    #[error("Conversation ID is too long (max {MAX_CONVERSATION_ID_LEN} characters)")]
    TooLong,
    #[error("Conversation ID contains invalid characters")]
    BadCharacters,
    #[error("Conversation ID contains path traversal sequences")]
    PathTraversal,
}

/// Checks a conversation id the way OpenHands does: at most 100 characters, no NUL or
/// other control character, no `..`, `/` or `\`. Ids reach file paths, so this is a
/// security boundary. U+FFFD is refused too: it is what a path segment that was not UTF-8
/// (`%FF`) decodes to, and no id we hand out contains it.
pub fn validate_conversation_id(id: &str) -> Result<(), InvalidConversationId> {
    if id.is_empty() {
        return Err(InvalidConversationId::Empty);
    }
    if id.chars().count() > MAX_CONVERSATION_ID_LEN {
        return Err(InvalidConversationId::TooLong);
    }
    if id == "." || id.contains("..") || id.contains('/') || id.contains('\\') {
        return Err(InvalidConversationId::PathTraversal);
    }
    if id
        .chars()
        .any(|c| c.is_control() || c == char::REPLACEMENT_CHARACTER)
    {
        return Err(InvalidConversationId::BadCharacters);
    }
    Ok(())
}

/// A new random conversation id: 32 lowercase hex characters, as OpenHands.
pub fn new_conversation_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// What started a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConversationTrigger {
    Resolver,
    Gui,
    SuggestedTask,
    OpenhandsApi,
    Slack,
    MicroagentManagement,
    Jira,
    JiraDc,
    Linear,
    Bitbucket,
}

/// Lifecycle status of a conversation's agent loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ConversationStatus {
    Starting,
    Running,
    Stopped,
    Archived,
    Error,
}

/// Persisted metadata of one conversation (OpenHands' `ConversationMetadata`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct ConversationMetadata {
    pub conversation_id: String,
    #[serde(default)]
    pub selected_repository: Option<String>,
    #[serde(default)]
    pub user_id: Option<String>,
    /// Organization owning the conversation (ours; absent in OSS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_id: Option<String>,
    #[serde(default)]
    pub selected_branch: Option<String>,
    #[serde(default)]
    pub git_provider: Option<ProviderType>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub last_updated_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub trigger: Option<ConversationTrigger>,
    #[serde(default)]
    pub pr_number: Vec<i64>,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub llm_model: Option<String>,
    #[serde(default)]
    pub accumulated_cost: f64,
    #[serde(default)]
    pub prompt_tokens: i64,
    #[serde(default)]
    pub completion_tokens: i64,
    #[serde(default)]
    pub total_tokens: i64,
    #[serde(default)]
    pub sandbox_id: Option<String>,
    #[serde(default)]
    pub conversation_version: Option<String>,
    /// Extra instructions given at creation, kept so a restarted agent gets them (ours).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_instructions: Option<String>,
}

impl ConversationMetadata {
    /// Fresh metadata for a new conversation, titled like OpenHands.
    pub fn new(conversation_id: String, user_id: Option<String>, now: DateTime<Utc>) -> Self {
        Self {
            title: Some(default_title(&conversation_id)),
            conversation_id,
            selected_repository: None,
            user_id,
            org_id: None,
            selected_branch: None,
            git_provider: None,
            last_updated_at: Some(now),
            trigger: None,
            pr_number: Vec::new(),
            created_at: now,
            llm_model: None,
            accumulated_cost: 0.0,
            prompt_tokens: 0,
            completion_tokens: 0,
            total_tokens: 0,
            sandbox_id: None,
            conversation_version: Some("V0".to_owned()),
            conversation_instructions: None,
        }
    }
}

/// `"Conversation " + first 5 characters of the id`, OpenHands' default title.
pub fn default_title(conversation_id: &str) -> String {
    let prefix: String = conversation_id.chars().take(5).collect();
    format!("Conversation {prefix}")
}

/// A conversation as the API lists it (OpenHands' `ConversationInfo`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConversationInfo {
    pub conversation_id: String,
    pub title: String,
    pub last_updated_at: Option<DateTime<Utc>>,
    pub status: ConversationStatus,
    pub runtime_status: Option<String>,
    pub selected_repository: Option<String>,
    pub selected_branch: Option<String>,
    pub git_provider: Option<ProviderType>,
    pub trigger: Option<ConversationTrigger>,
    pub num_connections: u32,
    pub url: Option<String>,
    pub session_api_key: Option<String>,
    pub created_at: DateTime<Utc>,
    pub pr_number: Vec<i64>,
    pub conversation_version: String,
    pub sub_conversation_ids: Vec<String>,
}

impl ConversationInfo {
    /// Combines stored metadata with the live status from the conversation manager.
    pub fn from_metadata(meta: ConversationMetadata, status: ConversationStatus) -> Self {
        let running = matches!(
            status,
            ConversationStatus::Running | ConversationStatus::Starting
        );
        Self {
            url: running.then(|| format!("/api/conversations/{}", meta.conversation_id)),
            title: meta
                .title
                .unwrap_or_else(|| default_title(&meta.conversation_id)),
            conversation_id: meta.conversation_id,
            last_updated_at: meta.last_updated_at,
            status,
            runtime_status: None,
            selected_repository: meta.selected_repository,
            selected_branch: meta.selected_branch,
            git_provider: meta.git_provider,
            trigger: meta.trigger,
            num_connections: 0,
            session_api_key: None,
            created_at: meta.created_at,
            pr_number: meta.pr_number,
            conversation_version: meta.conversation_version.unwrap_or_else(|| "V0".into()),
            sub_conversation_ids: Vec::new(),
        }
    }
}

/// A search over one user's conversations, newest first.
#[derive(Debug, Clone, Default)]
pub struct ConversationQuery {
    /// Opaque cursor from a previous page.
    pub page_id: Option<String>,
    pub limit: usize,
    /// Only conversations created at or after this instant.
    pub created_after: Option<DateTime<Utc>>,
    pub selected_repository: Option<String>,
    pub trigger: Option<ConversationTrigger>,
}

/// One page of search results.
#[derive(Debug, Clone, Default)]
pub struct ConversationPage {
    pub results: Vec<ConversationMetadata>,
    pub next_page_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn openhands_style_ids_are_accepted() {
        assert!(validate_conversation_id(&new_conversation_id()).is_ok());
        assert!(validate_conversation_id("my-conv_1.2").is_ok());
    }

    #[test]
    fn traversal_separators_and_control_chars_are_refused() {
        for bad in ["..", "a/b", "a\\b", "a\0b", "a\nb", "x..y"] {
            assert!(
                validate_conversation_id(bad).is_err(),
                "{bad:?} must be refused"
            );
        }
        assert_eq!(
            validate_conversation_id(&"a".repeat(101)),
            Err(InvalidConversationId::TooLong)
        );
        assert!(validate_conversation_id(&"a".repeat(100)).is_ok());
    }

    #[test]
    fn an_id_that_was_not_utf8_is_refused() {
        // `%FF` in a path decodes (lossily) to U+FFFD.
        assert_eq!(
            validate_conversation_id("\u{FFFD}"),
            Err(InvalidConversationId::BadCharacters)
        );
    }

    #[test]
    fn default_title_uses_first_five_characters() {
        assert_eq!(default_title("abcdef123"), "Conversation abcde");
    }

    proptest! {
        #[test]
        fn accepted_ids_are_single_safe_path_segments(id in "\\PC{0,120}") {
            if validate_conversation_id(&id).is_ok() {
                let path = std::path::Path::new("/data/sessions").join(&id);
                prop_assert_eq!(path.parent(), Some(std::path::Path::new("/data/sessions")));
                prop_assert!(id != "." && !id.contains(".."));
            }
        }
    }
}
