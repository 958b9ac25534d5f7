//! Shared set-up: a fresh, migrated database per test on SQLite or PostgreSQL, and a
//! timeout so no test can hang.

#![allow(dead_code)] // each test file uses a part

use openhands_core::crypto::{Cipher, KEY_LEN};
use openhands_migrations::Migrator;
use openhands_sql_store::{Database, PoolOptions};
use openhands_test_support::{postgres, sqlite};
use sea_orm_migration::MigratorTrait;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Longest a single test scenario may take.
pub const TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Keeps the database alive (and drops it after the test).
pub enum Guard {
    Sqlite(sqlite::TestSqlite),
    Postgres(postgres::TestDatabase),
}

/// A fresh, empty database of `backend` and its URL.
pub fn fresh_url(backend: Backend) -> (String, Guard) {
    match backend {
        Backend::Sqlite => {
            let db = sqlite::fresh_database().expect("temporary SQLite file");
            (db.url().to_owned(), Guard::Sqlite(db))
        }
        Backend::Postgres => {
            let db = postgres::fresh_database().unwrap_or_else(|e| panic!("{e}"));
            (db.url().to_owned(), Guard::Postgres(db))
        }
    }
}

/// A small pool: many test databases share one server.
pub fn test_pool() -> PoolOptions {
    PoolOptions {
        pool_size: 4,
        max_overflow: 4,
    }
}

/// Connects to a fresh database and runs every migration.
pub async fn migrated(backend: Backend) -> (Database, Guard) {
    let (url, guard) = fresh_url(backend);
    let db = Database::connect(&url, test_pool()).await.expect("connect");
    Migrator::up(db.connection(), None)
        .await
        .expect("migrate up");
    (db, guard)
}

/// Runs `scenario` on a fresh migrated database of `backend`, failing after [`TIMEOUT`].
pub async fn run<F, Fut>(backend: Backend, scenario: F)
where
    F: FnOnce(Database) -> Fut,
    Fut: Future<Output = ()>,
{
    let (db, _guard) = migrated(backend).await;
    tokio::time::timeout(TIMEOUT, scenario(db))
        .await
        .unwrap_or_else(|_| panic!("scenario on {backend:?} took longer than {TIMEOUT:?}"));
}

pub fn cipher() -> Arc<Cipher> {
    Arc::new(Cipher::new(vec![("k1".into(), [5; KEY_LEN])]).expect("cipher"))
}

/// Declares `sqlite` and `postgres` tests in a module named `$name` that run `$scenario`.
#[macro_export]
macro_rules! on_both_databases {
    ($name:ident, $scenario:path) => {
        mod $name {
            use super::common::{Backend, run};

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                run(Backend::Sqlite, $scenario).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                run(Backend::Postgres, $scenario).await;
            }
        }
    };
}
