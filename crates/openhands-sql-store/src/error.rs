//! Mapping database errors to [`StoreError`].
//!
//! The database's message is kept (it names the table and constraint, never a secret
//! value: secret columns only ever hold sealed text). Two kinds of failure are told apart
//! from the rest, because the client should hear something other than a 500:
//!
//! * **The connection, not the statement.** A pool that timed out or closed, an I/O or TLS
//!   failure, a backend the server terminated (`57P01`..`57P03`), a connection exception
//!   (`08…`), a database that no longer exists (`3D000`): [`StoreError::Unavailable`],
//!   which the API answers with 503 and `Retry-After`. Reads retry once on a fresh
//!   connection first ([`retry_read`]).
//! * **A NUL character in text**, which PostgreSQL refuses (`22021`): [`StoreError::Invalid`].
//!   The API refuses NUL in its input already; this keeps any other path from a 500.

use openhands_core::StoreError;
use sea_orm::{ConnAcquireErr, DbErr, RuntimeErr};
use std::future::Future;

/// What a text value holding U+0000 is told.
const NUL_IN_TEXT: &str =
    "a text value contains a NUL character (U+0000), which the database cannot store";

/// A database failure as a store error: a lost connection is `Unavailable` (503 with
/// `Retry-After` at the API), a NUL in text `Invalid`, anything else `Backend`. Crates that
/// query with sea-orm themselves (orgs, API keys) answer through it too.
pub fn backend(err: DbErr) -> StoreError {
    if is_connection_error(&err) {
        return StoreError::Unavailable(err.to_string());
    }
    if sqlstate(&err).as_deref() == Some("22021") {
        return StoreError::Invalid(NUL_IN_TEXT.into());
    }
    StoreError::Backend(err.to_string())
}

/// Stored JSON that does not parse.
pub(crate) fn corrupt(what: impl Into<String>, reason: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        path: what.into(),
        reason: reason.to_string(),
    }
}

/// Whether `err` is about the connection rather than the statement (see the module docs).
pub(crate) fn is_connection_error(err: &DbErr) -> bool {
    match err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
            sqlx_connection_error(e)
        }
        _ => false,
    }
}

fn sqlx_connection_error(err: &sea_orm::sqlx::Error) -> bool {
    use sea_orm::sqlx::Error;
    match err {
        Error::Io(_)
        | Error::Tls(_)
        | Error::Protocol(_)
        | Error::PoolTimedOut
        | Error::PoolClosed
        | Error::WorkerCrashed => true,
        Error::Database(db) => db.code().is_some_and(|code| connection_sqlstate(&code)),
        _ => false,
    }
}

/// SQLSTATEs of a lost or refused connection: class 08 (connection exception), 57P01-03
/// (terminated by the administrator, crash shutdown, cannot connect now), 53300 (too many
/// connections), 3D000 (the database does not exist).
fn connection_sqlstate(code: &str) -> bool {
    code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300" | "3D000")
}

/// The SQLSTATE of a statement's failure, if the database gave one.
fn sqlstate(err: &DbErr) -> Option<String> {
    match err {
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
            match e.as_ref() {
                sea_orm::sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
                _ => None,
            }
        }
        _ => None,
    }
}

/// Runs `read`, and once more when it failed because its connection was lost: the pool
/// hands the second try a fresh connection (a terminated backend is otherwise only noticed
/// by the request that meets it). For reads only: a write whose connection dropped may
/// have committed. A pool that timed out is not tried again (the wait would double).
pub(crate) async fn retry_read<T, F, Fut>(mut read: F) -> Result<T, DbErr>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, DbErr>>,
{
    match read().await {
        Err(err) if is_connection_error(&err) && !is_pool_timeout(&err) => {
            tracing::warn!(error = %err, "database connection lost during a read; trying once more");
            read().await
        }
        other => other,
    }
}

fn is_pool_timeout(err: &DbErr) -> bool {
    match err {
        DbErr::ConnectionAcquire(ConnAcquireErr::Timeout) => true,
        DbErr::Conn(RuntimeErr::SqlxError(e)) => {
            matches!(e.as_ref(), sea_orm::sqlx::Error::PoolTimedOut)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn io_error() -> DbErr {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        DbErr::Query(RuntimeErr::SqlxError(Arc::new(sea_orm::sqlx::Error::Io(
            io,
        ))))
    }

    #[test]
    fn connection_failures_are_unavailable_and_others_are_not() {
        for err in [
            DbErr::ConnectionAcquire(ConnAcquireErr::Timeout),
            DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed),
            DbErr::Conn(RuntimeErr::Internal("refused".into())),
            io_error(),
        ] {
            assert!(
                matches!(backend(err.clone()), StoreError::Unavailable(_)),
                "{err}"
            );
        }
        for err in [
            DbErr::RecordNotFound("x".into()),
            DbErr::Query(RuntimeErr::Internal("syntax".into())),
        ] {
            assert!(
                matches!(backend(err.clone()), StoreError::Backend(_)),
                "{err}"
            );
        }
        for code in ["08006", "57P01", "3D000"] {
            assert!(connection_sqlstate(code), "{code}");
        }
        for code in ["23505", "22021", "42P01"] {
            assert!(!connection_sqlstate(code), "{code}");
        }
    }

    async fn tries_of(first: DbErr) -> (Result<u8, DbErr>, usize) {
        let tries = AtomicUsize::new(0);
        let result = retry_read(|| {
            let n = tries.fetch_add(1, Ordering::SeqCst);
            let first = first.clone();
            async move { if n == 0 { Err(first) } else { Ok(7) } }
        })
        .await;
        (result, tries.load(Ordering::SeqCst))
    }

    #[tokio::test]
    async fn a_read_is_tried_once_more_after_a_lost_connection_only() {
        let (result, tries) = tries_of(io_error()).await;
        assert_eq!((result.ok(), tries), (Some(7), 2));
        let (result, tries) =
            tries_of(DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed)).await;
        assert_eq!((result.ok(), tries), (Some(7), 2));
        let (result, tries) = tries_of(DbErr::ConnectionAcquire(ConnAcquireErr::Timeout)).await;
        assert!(result.is_err());
        assert_eq!(tries, 1, "a pool timeout is not waited for twice");
        let (result, tries) = tries_of(DbErr::Query(RuntimeErr::Internal("bad".into()))).await;
        assert!(result.is_err());
        assert_eq!(tries, 1, "a failed statement is not repeated");
    }
}
