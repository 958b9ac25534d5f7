//! Copying a whole SaaS database into another one: moving a single-box SQLite deployment to
//! PostgreSQL (`openhands db copy --to <url>`).
//!
//! A single box starts on SQLite under the data dir; when it outgrows it, its data has to
//! move to PostgreSQL without going through the stores (which would need every user's
//! scope and would re-seal every secret). [`copy_database`] copies the rows of every table
//! of the schema as they are:
//!
//! * **Verbatim.** Rows are read through the [`entity`](crate::entity) models and written
//!   back unchanged. Sealed columns stay sealed: the target server must be configured with
//!   the same `secrets_keys` as the source (nothing is opened, so no key is needed here).
//! * **Refuses to merge.** Before writing anything it checks that both schemas are fully
//!   migrated (same migrations on both sides, so the same columns) and that every table of
//!   the target is empty; it names the command to run or the table that holds rows.
//! * **One snapshot.** The source is read in one read transaction, so the copy is
//!   consistent even if the source is still being written (stop the server anyway: rows
//!   written after the snapshot are not copied).
//! * **Batches.** Each table is walked in primary-key order (keyset pagination), parents
//!   before children so foreign keys hold; each batch is inserted in one transaction on
//!   the target and reported through the progress callback.
//! * **Checked.** After the copy, the row count of every table on the target must equal
//!   the source's; the report lists them.
//!
//! One thing does change on the way to PostgreSQL: timestamps are kept to the microsecond
//! there, so the nanoseconds SQLite may hold (`user_settings.updated_at`,
//! `custom_secrets.created_at`) are truncated. Conversation timestamps, which cursors are
//! built from, are already written to the microsecond, so paging is unchanged.
//!
//! No sequence needs resetting on PostgreSQL: every id of the schema is text (uuids), or a
//! number the stores compute (`events.id` is the per-conversation position, assigned by
//! the event store as `max + 1`), and `audit_log.id` is text. No column is `SERIAL` or an
//! identity column (`tests/copy.rs` checks this on a migrated PostgreSQL database, so a
//! migration adding one fails there first and this module must then `setval` it).
//!
//! A failure half-way leaves the tables copied so far on the target; a new run refuses
//! that non-empty target, so empty it first (`openhands migrate down` then `up`, or a new
//! database).
//!
//! Only the core schema is copied. Tables that a linked provider crate adds through its
//! own migrations are not known here; the report names such providers.

use crate::database::Database;
use crate::entity::{
    api_key, audit_log, conversation_metadata, custom_secret, event, org_invitation,
    org_membership, organization, provider_token, user, user_settings,
};
use openhands_migrations::{Migrator, runner};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ConnectionTrait, DbErr, EntityTrait, ExprTrait, Iterable, ModelTrait, PaginatorTrait,
    PrimaryKeyToColumn, QueryFilter, QueryOrder, QuerySelect,
};
use std::fmt;
use std::time::{Duration, Instant};

/// Rows per batch when the caller has no preference.
pub const DEFAULT_BATCH_SIZE: usize = 500;

/// Bound parameters per `INSERT` statement, under SQLite's (32766) and PostgreSQL's
/// (65535) limits; a batch of wide rows is split into several statements (still one
/// transaction).
const MAX_PARAMETERS: usize = 30_000;

/// The tables of the schema, in copy order: parents before the tables whose foreign keys
/// point at them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Organizations,
    Users,
    OrgMemberships,
    OrgInvitations,
    ApiKeys,
    UserSettings,
    CustomSecrets,
    ProviderTokens,
    ConversationMetadata,
    Events,
    AuditLog,
}

impl Table {
    /// Every table, in copy order.
    pub const ALL: [Table; 11] = [
        Table::Organizations,
        Table::Users,
        Table::OrgMemberships,
        Table::OrgInvitations,
        Table::ApiKeys,
        Table::UserSettings,
        Table::CustomSecrets,
        Table::ProviderTokens,
        Table::ConversationMetadata,
        Table::Events,
        Table::AuditLog,
    ];

    /// The table's name in the database.
    pub const fn name(self) -> &'static str {
        match self {
            Table::Organizations => "organizations",
            Table::Users => "users",
            Table::OrgMemberships => "org_memberships",
            Table::OrgInvitations => "org_invitations",
            Table::ApiKeys => "api_keys",
            Table::UserSettings => "user_settings",
            Table::CustomSecrets => "custom_secrets",
            Table::ProviderTokens => "provider_tokens",
            Table::ConversationMetadata => "conversation_metadata",
            Table::Events => "events",
            Table::AuditLog => "audit_log",
        }
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Runs `$body` with `$e` the entity type of `$table`.
macro_rules! with_entity {
    ($table:expr, $e:ident => $body:expr) => {
        match $table {
            Table::Organizations => {
                type $e = organization::Entity;
                $body
            }
            Table::Users => {
                type $e = user::Entity;
                $body
            }
            Table::OrgMemberships => {
                type $e = org_membership::Entity;
                $body
            }
            Table::OrgInvitations => {
                type $e = org_invitation::Entity;
                $body
            }
            Table::ApiKeys => {
                type $e = api_key::Entity;
                $body
            }
            Table::UserSettings => {
                type $e = user_settings::Entity;
                $body
            }
            Table::CustomSecrets => {
                type $e = custom_secret::Entity;
                $body
            }
            Table::ProviderTokens => {
                type $e = provider_token::Entity;
                $body
            }
            Table::ConversationMetadata => {
                type $e = conversation_metadata::Entity;
                $body
            }
            Table::Events => {
                type $e = event::Entity;
                $body
            }
            Table::AuditLog => {
                type $e = audit_log::Entity;
                $body
            }
        }
    };
}

/// Where a copy is, reported after each batch committed on the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyProgress {
    /// The table being copied.
    pub table: &'static str,
    /// Batches committed in this table.
    pub batch: u64,
    /// Rows of this table copied so far.
    pub copied: u64,
    /// Rows of this table in the source snapshot.
    pub total: u64,
}

impl fmt::Display for CopyProgress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: batch {}, {}/{} rows copied",
            self.table, self.batch, self.copied, self.total
        )
    }
}

/// What was copied into one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCopy {
    pub table: &'static str,
    /// Rows copied; equal to the row count of the table on both databases.
    pub rows: u64,
    /// Transactions committed on the target for this table.
    pub batches: u64,
}

/// What a copy did: every table with its (verified) row count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyReport {
    /// Every table of the schema, in copy order.
    pub tables: Vec<TableCopy>,
    /// Linked providers whose own tables (from their migrations) were not copied.
    pub providers_not_copied: Vec<&'static str>,
    pub elapsed: Duration,
}

impl CopyReport {
    /// Rows copied over all tables.
    pub fn rows(&self) -> u64 {
        self.tables.iter().map(|t| t.rows).sum()
    }
}

impl fmt::Display for CopyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for table in &self.tables {
            writeln!(f, "{}: {} rows", table.table, table.rows)?;
        }
        for provider in &self.providers_not_copied {
            writeln!(
                f,
                "warning: the tables of provider `{provider}` were not copied (copy them with the provider's own tooling)"
            )?;
        }
        write!(
            f,
            "copied {} rows in {} tables in {:.1}s; row counts match on both databases",
            self.rows(),
            self.tables.len(),
            self.elapsed.as_secs_f64()
        )
    }
}

/// Which side of the copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Source,
    Target,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Source => "source",
            Side::Target => "target",
        })
    }
}

/// Why a copy was refused or stopped. Never contains a row's value or a database URL.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("the batch size must be at least 1")]
    BatchSize,
    #[error(
        "the {side} database is not fully migrated ({} pending, first `{}`): run `openhands migrate up` against it first",
        pending.len(),
        pending.first().map(String::as_str).unwrap_or_default()
    )]
    NotMigrated { side: Side, pending: Vec<String> },
    #[error(
        "the target database is not empty: table `{table}` has {rows} rows; copying only goes into an empty database (create a new one and run `openhands migrate up` against it)"
    )]
    TargetNotEmpty { table: &'static str, rows: u64 },
    #[error("checking the {side} database failed: {source}")]
    Check {
        side: Side,
        #[source]
        source: DbErr,
    },
    #[error(
        "copying table `{table}` failed: {source}; the target now holds a partial copy, empty it before trying again"
    )]
    Copy {
        table: &'static str,
        #[source]
        source: DbErr,
    },
    #[error(
        "table `{table}` has {source_rows} rows in the source but {target_rows} in the target after the copy"
    )]
    CountMismatch {
        table: &'static str,
        source_rows: u64,
        target_rows: u64,
    },
}

/// Copies every row of every table from `from` into `to` (typically SQLite into
/// PostgreSQL), `batch_size` rows per transaction on the target, calling `progress` after
/// each batch. `to` must be fully migrated and empty, `from` fully migrated; see the
/// [module docs](self).
pub async fn copy_database(
    from: &Database,
    to: &Database,
    batch_size: usize,
    mut progress: impl FnMut(CopyProgress),
) -> Result<CopyReport, CopyError> {
    let started = Instant::now();
    if batch_size == 0 {
        return Err(CopyError::BatchSize);
    }
    check_migrated(to, Side::Target).await?;
    check_migrated(from, Side::Source).await?;
    for table in Table::ALL {
        let rows = count(table, to.connection())
            .await
            .map_err(|source| CopyError::Check {
                side: Side::Target,
                source,
            })?;
        if rows > 0 {
            return Err(CopyError::TargetNotEmpty {
                table: table.name(),
                rows,
            });
        }
    }

    // One snapshot of the source for the counts and every page.
    let snapshot = from.begin_read().await.map_err(|source| CopyError::Check {
        side: Side::Source,
        source,
    })?;
    let mut tables = Vec::with_capacity(Table::ALL.len());
    let mut source_rows = Vec::with_capacity(Table::ALL.len());
    for table in Table::ALL {
        let name = table.name();
        let failed = |source| CopyError::Copy {
            table: name,
            source,
        };
        let total = count(table, &snapshot).await.map_err(failed)?;
        let copied = with_entity!(table, E => {
            copy_table::<E>(table, &snapshot, to, total, batch_size, &mut progress).await
        })
        .map_err(failed)?;
        tracing::info!(
            table = name,
            rows = copied.rows,
            "database copy: table copied"
        );
        tables.push(copied);
        source_rows.push(total);
    }
    // Read-only: ending it changes nothing.
    snapshot
        .rollback()
        .await
        .map_err(|source| CopyError::Check {
            side: Side::Source,
            source,
        })?;

    for ((table, copied), source_rows) in Table::ALL.into_iter().zip(&tables).zip(source_rows) {
        let target_rows =
            count(table, to.connection())
                .await
                .map_err(|source| CopyError::Check {
                    side: Side::Target,
                    source,
                })?;
        if target_rows != source_rows || copied.rows != source_rows {
            return Err(CopyError::CountMismatch {
                table: copied.table,
                source_rows,
                target_rows,
            });
        }
    }

    let providers_not_copied: Vec<&'static str> = Migrator::providers()
        .into_iter()
        .filter(|p| !(p.migrations)().is_empty())
        .map(|p| p.provider)
        .collect();
    for provider in &providers_not_copied {
        tracing::warn!(
            provider,
            "database copy: the provider's own tables were not copied"
        );
    }
    Ok(CopyReport {
        tables,
        providers_not_copied,
        elapsed: started.elapsed(),
    })
}

async fn check_migrated(db: &Database, side: Side) -> Result<(), CopyError> {
    let pending = runner::pending(db.connection())
        .await
        .map_err(|source| CopyError::Check { side, source })?;
    if pending.is_empty() {
        Ok(())
    } else {
        Err(CopyError::NotMigrated { side, pending })
    }
}

async fn count(table: Table, conn: &impl ConnectionTrait) -> Result<u64, DbErr> {
    with_entity!(table, E => E::find().count(conn).await)
}

/// Copies one table: pages of `batch_size` rows in primary-key order from `source`, each
/// inserted in one transaction on `to`.
async fn copy_table<E>(
    table: Table,
    source: &impl ConnectionTrait,
    to: &Database,
    total: u64,
    batch_size: usize,
    progress: &mut impl FnMut(CopyProgress),
) -> Result<TableCopy, DbErr>
where
    E: EntityTrait,
    E::Model: Into<E::ActiveModel>,
    E::ActiveModel: Send,
{
    let key: Vec<E::Column> = E::PrimaryKey::iter()
        .map(PrimaryKeyToColumn::into_column)
        .collect();
    let per_statement = (MAX_PARAMETERS / E::Column::iter().count().max(1)).max(1);
    let mut done = TableCopy {
        table: table.name(),
        rows: 0,
        batches: 0,
    };
    let mut after: Option<Vec<sea_orm::Value>> = None;
    loop {
        let mut query = E::find();
        if let Some(after) = &after {
            query = query.filter(
                Expr::tuple(key.iter().map(|c| Expr::col(*c)))
                    .gt(Expr::tuple(after.iter().cloned().map(Expr::val))),
            );
        }
        for column in &key {
            query = query.order_by_asc(*column);
        }
        let rows = query.limit(batch_size as u64).all(source).await?;
        let Some(last) = rows.last() else { break };
        after = Some(key.iter().map(|c| last.get(*c)).collect());
        let full_page = rows.len() == batch_size;
        let count = rows.len() as u64;

        let txn = to.begin_write().await?;
        let mut rows = rows.into_iter().peekable();
        while rows.peek().is_some() {
            let chunk: Vec<E::ActiveModel> =
                rows.by_ref().take(per_statement).map(Into::into).collect();
            E::insert_many(chunk).exec_without_returning(&txn).await?;
        }
        txn.commit().await?;

        done.rows += count;
        done.batches += 1;
        progress(CopyProgress {
            table: table.name(),
            batch: done.batches,
            copied: done.rows,
            total,
        });
        if !full_page {
            break;
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::EntityName;

    #[test]
    fn table_names_match_the_entities_and_cover_the_schema() {
        for table in Table::ALL {
            let entity_name = with_entity!(table, E => E::default().table_name().to_owned());
            assert_eq!(table.name(), entity_name);
        }
        let mut names: Vec<_> = Table::ALL.iter().map(|t| t.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 11, "every table once");
    }

    #[test]
    fn not_migrated_names_the_command() {
        let err = CopyError::NotMigrated {
            side: Side::Target,
            pending: vec!["m1".into(), "m2".into()],
        };
        let text = err.to_string();
        assert!(
            text.contains("target") && text.contains("openhands migrate up"),
            "{text}"
        );
    }
}
