//! Opening, sharing and using one connection pool per database URL.
//!
//! [`Database`] wraps a sea-orm connection pool with what the stores need on top: pool
//! sizes taken from OpenHands' `DB_POOL_SIZE` / `DB_MAX_OVERFLOW`, SQLite tuned for
//! concurrent use (WAL, a busy timeout), a process-wide cache so every store built for the
//! same URL shares one pool, and write transactions that serialize per key on both
//! databases ([`Database::begin_write`] + [`lock_key`]).

use openhands_core::config::DatabaseConfig;
use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
use sea_orm::{
    AccessMode, ConnectOptions, ConnectionTrait, DatabaseConnection, DatabaseTransaction,
    DbBackend, DbErr, IsolationLevel, SqliteTransactionMode, Statement, TransactionOptions,
    TransactionTrait,
};
use std::time::Duration;

/// How long a SQLite writer waits for the file's write lock before failing.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a caller waits for a free pooled connection.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);
/// Idle connections above the steady size are closed after this long.
const IDLE_TIMEOUT: Duration = Duration::from_secs(600);

/// Why a database could not be opened. Never contains the URL (it may hold a password).
#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    #[error(
        "database URL must start with `postgres://`, `postgresql://` or `sqlite:`; got `{scheme}:...`"
    )]
    UnsupportedUrl { scheme: String },
    #[error("connecting to the {backend} database failed: {source}")]
    Connect {
        backend: &'static str,
        #[source]
        source: DbErr,
    },
}

/// Pool sizing, SQLAlchemy-style as in OpenHands: `pool_size` connections for steady load
/// and up to `max_overflow` more at peaks. The pool opens connections on demand and holds
/// at most `pool_size + max_overflow`; idle ones are closed after ten minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolOptions {
    pub pool_size: u32,
    pub max_overflow: u32,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            pool_size: 25,
            max_overflow: 10,
        }
    }
}

impl From<&DatabaseConfig> for PoolOptions {
    fn from(config: &DatabaseConfig) -> Self {
        Self {
            pool_size: config.pool_size,
            max_overflow: config.max_overflow,
        }
    }
}

impl PoolOptions {
    fn max_connections(self) -> u32 {
        self.pool_size.saturating_add(self.max_overflow).max(1)
    }
}

/// A connection pool to PostgreSQL or SQLite. Cheap to clone (the pool is shared).
#[derive(Debug, Clone)]
pub struct Database {
    connection: DatabaseConnection,
}

impl Database {
    /// Opens a new pool for `url` (`postgres://...` or `sqlite://<path>?mode=rwc`).
    pub async fn connect(url: &str, pool: PoolOptions) -> Result<Self, DatabaseError> {
        let backend = backend_name(url)?;
        let mut options = ConnectOptions::new(url);
        options
            .max_connections(pool.max_connections())
            .min_connections(0)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_timeout(ACQUIRE_TIMEOUT)
            .idle_timeout(IDLE_TIMEOUT)
            .sqlx_logging(false)
            .map_sqlx_sqlite_opts(tune_sqlite);
        let connection = sea_orm::Database::connect(options)
            .await
            .map_err(|source| DatabaseError::Connect { backend, source })?;
        Ok(Self { connection })
    }

    /// The sea-orm connection, for queries outside a transaction.
    pub fn connection(&self) -> &DatabaseConnection {
        &self.connection
    }

    /// PostgreSQL or SQLite.
    pub fn backend(&self) -> DbBackend {
        self.connection.get_database_backend()
    }

    /// Starts a transaction that will write. On SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`), so read-then-write transactions wait for each other instead of
    /// failing on a lock upgrade; on PostgreSQL callers add [`lock_key`] for the rows
    /// they read and then replace.
    pub async fn begin_write(&self) -> Result<DatabaseTransaction, DbErr> {
        self.connection
            .begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..Default::default()
            })
            .await
    }

    /// Starts a read-only transaction that sees one snapshot across several statements
    /// (`REPEATABLE READ` on PostgreSQL; any SQLite transaction does).
    pub async fn begin_read(&self) -> Result<DatabaseTransaction, DbErr> {
        match self.backend() {
            DbBackend::Postgres => {
                self.connection
                    .begin_with_config(
                        Some(IsolationLevel::RepeatableRead),
                        Some(AccessMode::ReadOnly),
                    )
                    .await
            }
            _ => self.connection.begin().await,
        }
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), DbErr> {
        self.connection.ping().await
    }
}

/// Serializes write transactions on `key` until the transaction ends (PostgreSQL:
/// `pg_advisory_xact_lock`; SQLite: nothing to do, [`Database::begin_write`] already holds
/// the database's single write lock).
///
/// A row lock (`SELECT ... FOR UPDATE`) alone is not enough for read-modify-write: when
/// the row does not exist yet there is nothing to lock, and two first writers would both
/// read "nothing" and the second would overwrite the first.
pub async fn lock_key(txn: &DatabaseTransaction, key: &str) -> Result<(), DbErr> {
    if txn.get_database_backend() == DbBackend::Postgres {
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            [key.into()],
        ))
        .await?;
    }
    Ok(())
}

fn tune_sqlite(options: SqliteConnectOptions) -> SqliteConnectOptions {
    options
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(SQLITE_BUSY_TIMEOUT)
        .foreign_keys(true)
}

fn backend_name(url: &str) -> Result<&'static str, DatabaseError> {
    let scheme = url.split(':').next().unwrap_or_default();
    match scheme {
        "postgres" | "postgresql" => Ok("PostgreSQL"),
        "sqlite" => Ok("SQLite"),
        other => Err(DatabaseError::UnsupportedUrl {
            scheme: other.chars().take(20).collect(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_holds_steady_size_plus_overflow() {
        let pool = PoolOptions {
            pool_size: 25,
            max_overflow: 10,
        };
        assert_eq!(pool.max_connections(), 35);
        let empty = PoolOptions {
            pool_size: 0,
            max_overflow: 0,
        };
        assert_eq!(empty.max_connections(), 1);
    }

    #[test]
    fn unsupported_scheme_is_named_without_the_rest_of_the_url() {
        let err = backend_name("mysql://root:hunter2@db/x").expect_err("refused");
        let text = err.to_string();
        assert!(
            text.contains("mysql") && !text.contains("hunter2"),
            "{text}"
        );
    }
}
