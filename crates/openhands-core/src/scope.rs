//! Who a store call acts for.
//!
//! Every store method takes a [`UserScope`]; implementations must confine reads and writes to
//! that user (and organization, where they have one). OSS mode has a single local user whose
//! scope has no id.

/// The user (and organization) a request acts for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct UserScope {
    /// `None` for the single local user of OSS mode.
    pub user_id: Option<String>,
    /// The current organization, in modes that have organizations.
    pub org_id: Option<String>,
}

impl UserScope {
    /// The single local user of OSS mode.
    pub fn local() -> Self {
        Self::default()
    }

    /// A named user without an organization.
    pub fn user(user_id: impl Into<String>) -> Self {
        Self {
            user_id: Some(user_id.into()),
            org_id: None,
        }
    }
}
