//! The `(user_id, org_id)` pair every query filters by.
//!
//! A [`UserScope`] without a user or organization maps to the empty string, so the local
//! user of OSS-like set-ups and users without an organization get a scope of their own that
//! no named user or organization can reach.

use openhands_core::UserScope;

/// The column values of one scope.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ScopeKey {
    pub user_id: String,
    pub org_id: String,
}

impl ScopeKey {
    /// The key of `scope`: absent ids become `''`.
    pub fn of(scope: &UserScope) -> Self {
        Self {
            user_id: scope.user_id.clone().unwrap_or_default(),
            org_id: scope.org_id.clone().unwrap_or_default(),
        }
    }

    /// A lock name for this scope in `namespace` (see [`crate::database::lock_key`]). The
    /// unit separator keeps `("a", "b/c")` and `("a/b", "c")` apart.
    pub fn lock_name(&self, namespace: &str) -> String {
        format!("{namespace}\u{1f}{}\u{1f}{}", self.user_id, self.org_id)
    }

    /// Turns a stored `''` back into `None`.
    pub fn optional(value: &str) -> Option<String> {
        (!value.is_empty()).then(|| value.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_ids_are_empty_strings() {
        assert_eq!(
            ScopeKey::of(&UserScope::local()),
            ScopeKey {
                user_id: String::new(),
                org_id: String::new()
            }
        );
        let named = UserScope {
            user_id: Some("u".into()),
            org_id: Some("o".into()),
        };
        assert_eq!(ScopeKey::of(&named).org_id, "o");
    }

    #[test]
    fn lock_names_do_not_collide_across_the_separator() {
        let a = ScopeKey {
            user_id: "a".into(),
            org_id: "b/c".into(),
        };
        let b = ScopeKey {
            user_id: "a/b".into(),
            org_id: "c".into(),
        };
        assert_ne!(a.lock_name("x"), b.lock_name("x"));
    }
}
