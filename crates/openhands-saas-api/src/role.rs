//! The roles of an organization member and what each may do.
//!
//! Owners and admins manage membership; only an owner may make someone an owner or touch
//! an owner's membership, so an admin can never lock the owners out. The rules live here,
//! as plain functions, so the org logic and its tests read the same table.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A member's role (the `role` column of `org_memberships` and `org_invitations`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Owner,
    Admin,
    Member,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }

    /// Whether this role may invite, remove members and change roles at all.
    pub fn manages_members(self) -> bool {
        matches!(self, Role::Owner | Role::Admin)
    }

    /// Whether this role may act on a member holding `target` or grant `target`:
    /// owners may act on anyone, admins on everyone but owners.
    pub fn may_handle(self, target: Role) -> bool {
        self == Role::Owner || (self.manages_members() && target != Role::Owner)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role name that is not `owner`, `admin` or `member`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role `{0}`; expected `owner`, `admin` or `member`")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "owner" => Ok(Role::Owner),
            "admin" => Ok(Role::Admin),
            "member" => Ok(Role::Member),
            other => Err(UnknownRole(other.chars().take(40).collect())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_owners_handle_owners() {
        assert!(Role::Owner.may_handle(Role::Owner));
        assert!(!Role::Admin.may_handle(Role::Owner));
        assert!(Role::Admin.may_handle(Role::Admin));
        assert!(Role::Admin.may_handle(Role::Member));
        assert!(!Role::Member.may_handle(Role::Member));
    }

    #[test]
    fn role_names_round_trip() {
        for role in [Role::Owner, Role::Admin, Role::Member] {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert!("root".parse::<Role>().is_err());
    }
}
