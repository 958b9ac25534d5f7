//! Errors shared by every store implementation.

use thiserror::Error;

/// What can go wrong in a store. Messages never contain secret values.
#[derive(Debug, Error)]
pub enum StoreError {
    /// Reading or writing the backing storage failed.
    #[error("storage I/O failed on {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// Stored data could not be decoded.
    #[error("stored data at {path} is corrupt: {reason}")]
    Corrupt { path: String, reason: String },
    /// Encrypting or decrypting a secret failed (wrong key or tampered data).
    #[error("secret could not be decrypted: {0}")]
    Crypto(#[from] crate::crypto::CryptoError),
    /// The thing to change does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The thing to create exists already.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// The input was refused by the store.
    #[error("invalid input: {0}")]
    Invalid(String),
    /// The backend cannot be reached right now (a lost or refused database connection,
    /// an exhausted pool): worth retrying shortly, unlike [`StoreError::Backend`]. The API
    /// answers it with 503 and `Retry-After`.
    #[error("storage backend unavailable: {0}")]
    Unavailable(String),
    /// Any other backend failure (database, network).
    #[error("storage backend failed: {0}")]
    Backend(String),
}

impl StoreError {
    /// An I/O error with the path it happened on.
    pub fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }
}
