//! Mapping database errors to [`StoreError`].
//!
//! The database's message is kept (it names the table and constraint, never a secret
//! value: secret columns only ever hold sealed text).

use openhands_core::StoreError;
use sea_orm::DbErr;

/// A database failure as a store error.
pub(crate) fn backend(err: DbErr) -> StoreError {
    StoreError::Backend(err.to_string())
}

/// Stored JSON that does not parse.
pub(crate) fn corrupt(what: impl Into<String>, reason: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        path: what.into(),
        reason: reason.to_string(),
    }
}
