//! Applying and reverting migrations one at a time, for `openhands migrate` and the start-up
//! check of SaaS mode.
//!
//! sea-orm-migration can apply everything at once, but an operator wants a line per
//! migration as it is applied (and to know which one failed), so [`up`] and [`down`] step
//! one migration at a time and report each. Reading the state ([`status`], [`pending`]) never
//! writes: a server checking its schema at start-up, or `openhands migrate status`, leaves a
//! fresh database as it found it. Running several replicas with
//! `database.migrate_on_start` at the same moment is not coordinated here: run
//! `openhands migrate up` as a deploy step instead.

use crate::Migrator;
use sea_orm_migration::MigratorTrait;
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseConnection;
use std::time::{Duration, Instant};

/// One migration and whether the database has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationState {
    pub name: String,
    pub applied: bool,
}

/// Every known migration in order, with its state in `db`.
pub async fn status(db: &DatabaseConnection) -> Result<Vec<MigrationState>, DbErr> {
    let applied: std::collections::HashSet<String> = Migrator::get_applied_migrations_read_only(db)
        .await?
        .iter()
        .map(|m| m.name().to_owned())
        .collect();
    Ok(Migrator::migrations()
        .iter()
        .map(|m| MigrationState {
            name: m.name().to_owned(),
            applied: applied.contains(m.name()),
        })
        .collect())
}

/// Names of the migrations `db` does not have yet, in the order they would run.
pub async fn pending(db: &DatabaseConnection) -> Result<Vec<String>, DbErr> {
    Ok(Migrator::get_pending_migrations_read_only(db)
        .await?
        .iter()
        .map(|m| m.name().to_owned())
        .collect())
}

/// Applies every pending migration, calling `applied` after each with its name and how long
/// it took. Returns how many were applied; stops at the first failure.
pub async fn up(
    db: &DatabaseConnection,
    mut applied: impl FnMut(&str, Duration),
) -> Result<usize, DbErr> {
    let mut count = 0;
    for name in pending(db).await? {
        let started = Instant::now();
        Migrator::up(db, Some(1))
            .await
            .map_err(|e| DbErr::Migration(format!("{name}: {e}")))?;
        applied(&name, started.elapsed());
        count += 1;
    }
    Ok(count)
}

/// Reverts the last `steps` applied migrations, newest first, calling `reverted` after each.
pub async fn down(
    db: &DatabaseConnection,
    steps: u32,
    mut reverted: impl FnMut(&str, Duration),
) -> Result<usize, DbErr> {
    let mut count = 0;
    for _ in 0..steps {
        let Some(last) = Migrator::get_applied_migrations_read_only(db).await?.pop() else {
            break;
        };
        let name = last.name().to_owned();
        let started = Instant::now();
        Migrator::down(db, Some(1))
            .await
            .map_err(|e| DbErr::Migration(format!("{name}: {e}")))?;
        reverted(&name, started.elapsed());
        count += 1;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm_migration::sea_orm::{ConnectOptions, ConnectionTrait, Database};

    async fn tables(db: &DatabaseConnection) -> Vec<String> {
        let rows = db
            .query_all_raw(sea_orm_migration::sea_orm::Statement::from_string(
                db.get_database_backend(),
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name",
            ))
            .await
            .expect("list tables");
        rows.iter()
            .map(|row| row.try_get::<String>("", "name").expect("name"))
            .collect()
    }

    #[tokio::test]
    async fn reading_the_state_writes_nothing_and_up_down_step_one_at_a_time() {
        // One connection: each connection to `sqlite::memory:` is a database of its own.
        let mut options = ConnectOptions::new("sqlite::memory:");
        options.max_connections(1).min_connections(1);
        let db = Database::connect(options).await.expect("sqlite");
        let all = Migrator::migrations().len();
        assert_eq!(pending(&db).await.expect("pending").len(), all);
        assert!(
            status(&db)
                .await
                .expect("status")
                .iter()
                .all(|s| !s.applied)
        );
        assert!(tables(&db).await.is_empty(), "checking created a table");

        let mut applied = Vec::new();
        let count = up(&db, |name, _| applied.push(name.to_owned()))
            .await
            .expect("up");
        assert_eq!(count, all);
        assert_eq!(applied, crate::migration_names());
        assert!(pending(&db).await.expect("pending").is_empty());

        let mut reverted = Vec::new();
        down(&db, 2, |name, _| reverted.push(name.to_owned()))
            .await
            .expect("down");
        let mut newest_first = crate::migration_names();
        newest_first.reverse();
        assert_eq!(reverted, newest_first[..2].to_vec());
        assert_eq!(pending(&db).await.expect("pending").len(), 2);
    }
}
