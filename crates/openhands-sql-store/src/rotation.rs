//! Key rotation: re-seal every secret value still under an older key with the newest one.
//!
//! Adding a key to `secrets_keys` makes new writes use it at once, but values written
//! before stay under the old key until someone rewrites them; the old key can only be
//! dropped once none is left. [`rotate`] does that rewrite (`openhands keys rotate`) while
//! the server keeps serving:
//!
//! * **Resumable.** Each table is walked in primary-key order in batches (keyset
//!   pagination), selecting only values not yet under the newest key. Stopping between
//!   batches loses nothing: a new run finds what is left.
//! * **Never overwrites a newer write.** Values are opened and re-sealed outside the
//!   database, then each row is updated with a compare-and-set on the sealed values it was
//!   read with, in one short write transaction per batch that also takes the writers'
//!   per-scope lock (so it queues behind a store's read-modify-write instead of deadlocking
//!   with it). A row changed in between is skipped: its new value was sealed by a writer,
//!   hence already under the newest key.
//! * **Reports what it cannot read.** A row that does not open (tampered, or under a key
//!   that is not configured) is left as it is and reported by table and primary key, never
//!   by value; the run goes on with the other rows.
//!
//! [`rotation_status`] counts the sealed values per key id and table
//! (`openhands keys status`), to see what is left and when an old key can go.

use crate::database::{Database, lock_key};
use crate::scope::ScopeKey;
use crate::sealed_tables::{Layout, Row, SealedTable, TABLES};
use crate::sealing::{SETTINGS_FIELDS, settings_field};
use openhands_core::crypto::{Cipher, CryptoError, sealed_key_id};
use sea_orm::DbErr;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::ControlFlow;

/// Rows per batch when the caller has no preference.
pub const DEFAULT_BATCH_SIZE: usize = 500;
/// Rows read per query by [`rotation_status`].
const STATUS_PAGE: usize = 1000;

/// Where a rotation is, reported after each batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationProgress {
    /// The table being rotated.
    pub table: &'static str,
    /// Batches done in this table.
    pub batch: u64,
    /// Rows re-sealed in this table so far.
    pub rotated: u64,
    /// Rows skipped because a writer changed them meanwhile (already under the newest key).
    pub skipped: u64,
    /// Rows that could not be opened, so far in this table.
    pub failed: u64,
    /// Rows of this table that may still need re-sealing (counted when the table started;
    /// concurrent writes make it an estimate).
    pub left_estimate: u64,
}

impl fmt::Display for RotationProgress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: batch {}, {} rotated, {} skipped (changed meanwhile), {} failed, about {} left",
            self.table, self.batch, self.rotated, self.skipped, self.failed, self.left_estimate
        )
    }
}

/// A row that could not be rotated: where it is and why, never its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedRow {
    pub table: &'static str,
    /// The row's primary key, e.g. `user_id=alice, org_id=, name=TOKEN`.
    pub key: String,
    pub reason: String,
}

impl fmt::Display for FailedRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.table, self.key, self.reason)
    }
}

/// What a rotation did in one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableReport {
    pub table: &'static str,
    pub rotated: u64,
    pub skipped: u64,
    pub failed: u64,
}

/// What a rotation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationReport {
    /// The key everything was re-sealed under.
    pub newest_key_id: String,
    /// The tables walked, in order (the last one may be partial when `stopped`).
    pub tables: Vec<TableReport>,
    /// Rows left as they were because they do not open.
    pub failures: Vec<FailedRow>,
    /// The progress callback asked to stop; run again to finish.
    pub stopped: bool,
}

impl RotationReport {
    /// Rows re-sealed in all tables.
    pub fn rotated(&self) -> u64 {
        self.tables.iter().map(|t| t.rotated).sum()
    }

    /// Rows skipped because a writer changed them meanwhile.
    pub fn skipped(&self) -> u64 {
        self.tables.iter().map(|t| t.skipped).sum()
    }

    /// True when the run went through every table and every row opened.
    pub fn is_complete(&self) -> bool {
        !self.stopped && self.failures.is_empty()
    }
}

/// Why a rotation or a status count stopped. Never contains a secret value.
#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    #[error("the batch size must be at least 1")]
    BatchSize,
    #[error("table `{table}`: database error: {source}")]
    Database {
        table: &'static str,
        #[source]
        source: DbErr,
    },
    #[error("table `{table}` ({key}): sealing under the newest key failed: {source}")]
    Seal {
        table: &'static str,
        key: String,
        #[source]
        source: CryptoError,
    },
}

/// Re-seals, under `cipher`'s newest key, every sealed value of every table that is still
/// under another key, `batch_size` rows per transaction.
///
/// `progress` is called after each batch; returning [`ControlFlow::Break`] stops the run
/// there (the report says `stopped`), and a later run resumes by finding what is left.
/// Rows that do not open are reported in [`RotationReport::failures`] and left untouched.
pub async fn rotate(
    db: &Database,
    cipher: &Cipher,
    batch_size: usize,
    mut progress: impl FnMut(RotationProgress) -> ControlFlow<()>,
) -> Result<RotationReport, RotationError> {
    if batch_size == 0 {
        return Err(RotationError::BatchSize);
    }
    let newest = cipher.newest_key_id();
    let mut report = RotationReport {
        newest_key_id: newest.to_owned(),
        tables: Vec::new(),
        failures: Vec::new(),
        stopped: false,
    };
    for table in &TABLES {
        let database = |source| RotationError::Database {
            table: table.name,
            source,
        };
        let total = table
            .count(db.connection(), table.candidates(newest))
            .await
            .map_err(database)?;
        let mut done = TableReport {
            table: table.name,
            rotated: 0,
            skipped: 0,
            failed: 0,
        };
        let mut cursor: Option<Vec<String>> = None;
        let mut batch = 0;
        let mut examined = 0u64;
        loop {
            let rows = table
                .page(
                    db.connection(),
                    table.candidates(newest),
                    cursor.as_deref(),
                    batch_size,
                )
                .await
                .map_err(database)?;
            let Some(last) = rows.last() else { break };
            cursor = Some(last.key.clone());
            let full_page = rows.len() == batch_size;
            batch += 1;
            examined += rows.len() as u64;

            let mut planned = Vec::with_capacity(rows.len());
            for row in rows {
                match reseal(table, &row, cipher) {
                    Ok(Some(new)) => planned.push((row, new)),
                    Ok(None) => {}
                    Err(Failure::Unreadable(reason)) => {
                        let key = table.describe_key(&row);
                        tracing::warn!(table = table.name, row = %key, %reason, "key rotation: row does not open, left as it is");
                        done.failed += 1;
                        report.failures.push(FailedRow {
                            table: table.name,
                            key,
                            reason,
                        });
                    }
                    Err(Failure::Seal(source)) => {
                        return Err(RotationError::Seal {
                            table: table.name,
                            key: table.describe_key(&row),
                            source,
                        });
                    }
                }
            }
            let (rotated, skipped) = apply(db, table, &planned).await.map_err(database)?;
            done.rotated += rotated;
            done.skipped += skipped;

            let flow = progress(RotationProgress {
                table: table.name,
                batch,
                rotated: done.rotated,
                skipped: done.skipped,
                failed: done.failed,
                left_estimate: total.saturating_sub(examined),
            });
            if flow.is_break() {
                report.tables.push(done);
                report.stopped = true;
                return Ok(report);
            }
            if !full_page {
                break;
            }
        }
        report.tables.push(done);
    }
    Ok(report)
}

/// Why one row cannot be re-sealed.
enum Failure {
    /// It does not open: reported, left as it is.
    Unreadable(String),
    /// Sealing failed (the system random generator): stops the run.
    Seal(CryptoError),
}

/// The new sealed columns of `row`, or `None` when every value is already under the
/// newest key.
fn reseal(
    table: &SealedTable,
    row: &Row,
    cipher: &Cipher,
) -> Result<Option<Vec<Option<String>>>, Failure> {
    let newest = cipher.newest_key_id();
    let is_current = |sealed: &str| sealed_key_id(sealed) == Some(newest);
    let reseal_one = |what: &str, context: &str, sealed: &str| {
        let plain = cipher
            .open(context, sealed)
            .map_err(|e| Failure::Unreadable(format!("{what}: {e}")))?;
        cipher.seal(context, &plain).map_err(Failure::Seal)
    };
    match table.layout {
        Layout::Columns => {
            let mut changed = false;
            let mut new = Vec::with_capacity(row.values.len());
            for (index, (column, value)) in table.columns.iter().zip(&row.values).enumerate() {
                match value {
                    Some(sealed) if !is_current(sealed) => {
                        let context = table
                            .context(row, index)
                            .map_err(|e| Failure::Unreadable(format!("{column}: {e}")))?;
                        new.push(Some(reseal_one(column, &context, sealed)?));
                        changed = true;
                    }
                    other => new.push(other.clone()),
                }
            }
            Ok(changed.then_some(new))
        }
        Layout::SettingsDocument => {
            let Some(text) = row.values.first().and_then(Option::as_deref) else {
                return Ok(None);
            };
            let mut document: serde_json::Value = serde_json::from_str(text)
                .map_err(|_| Failure::Unreadable("settings: not a JSON document".into()))?;
            let Some(fields) = document.as_object_mut() else {
                return Err(Failure::Unreadable("settings: not a JSON object".into()));
            };
            let mut changed = false;
            for field in SETTINGS_FIELDS {
                if let Some(serde_json::Value::String(sealed)) = fields.get_mut(field)
                    && !is_current(sealed)
                {
                    *sealed = reseal_one(field, &settings_field(field), sealed)?;
                    changed = true;
                }
            }
            if !changed {
                return Ok(None);
            }
            let text = serde_json::to_string(&document)
                .map_err(|_| Failure::Unreadable("settings: cannot serialize".into()))?;
            Ok(Some(vec![Some(text)]))
        }
    }
}

/// Writes one batch in one write transaction: per scope the writers' lock, per row a
/// compare-and-set. Returns `(rotated, skipped)`.
async fn apply(
    db: &Database,
    table: &SealedTable,
    planned: &[(Row, Vec<Option<String>>)],
) -> Result<(u64, u64), DbErr> {
    if planned.is_empty() {
        return Ok((0, 0));
    }
    let txn = db.begin_write().await?;
    let mut locked: Option<ScopeKey> = None;
    let (mut rotated, mut skipped) = (0, 0);
    // Rows come in primary-key order, which starts with the scope: each scope's lock is
    // taken once, and always in the same order.
    for (row, new) in planned {
        let scope = row.scope();
        if locked.as_ref() != Some(&scope) {
            lock_key(&txn, &scope.lock_name(table.lock_namespace)).await?;
            locked = Some(scope);
        }
        if table.compare_and_set(&txn, row, new).await? {
            rotated += 1;
        } else {
            skipped += 1;
        }
    }
    txn.commit().await?;
    Ok((rotated, skipped))
}

/// Sealed values of one table, per key id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableStatus {
    pub table: &'static str,
    /// Values per key id named in their envelope (a settings row holds up to three).
    pub by_key: BTreeMap<String, u64>,
    /// Values that are not in the sealed format at all.
    pub not_sealed: u64,
}

/// Sealed values per key id and table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationStatus {
    pub newest_key_id: String,
    /// The configured key ids, oldest first.
    pub key_ids: Vec<String>,
    pub tables: Vec<TableStatus>,
}

impl RotationStatus {
    /// Values under a key other than the newest: what [`rotate`] would re-seal.
    pub fn pending(&self) -> u64 {
        self.tables
            .iter()
            .flat_map(|t| &t.by_key)
            .filter(|(id, _)| **id != self.newest_key_id)
            .map(|(_, n)| n)
            .sum()
    }

    /// Key ids that values name but that are not configured: those values cannot be read.
    pub fn unknown_key_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .tables
            .iter()
            .flat_map(|t| t.by_key.keys())
            .filter(|id| !self.key_ids.contains(id))
            .cloned()
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }
}

impl fmt::Display for RotationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "keys (oldest first): {}; new values are sealed under `{}`",
            self.key_ids.join(", "),
            self.newest_key_id
        )?;
        for table in &self.tables {
            let counts: Vec<String> = table
                .by_key
                .iter()
                .map(|(id, n)| {
                    let note = if !self.key_ids.contains(id) {
                        " (not configured)"
                    } else {
                        ""
                    };
                    format!("{id}: {n}{note}")
                })
                .collect();
            let counts = if counts.is_empty() {
                "no sealed values".to_owned()
            } else {
                counts.join(", ")
            };
            write!(f, "{}: {counts}", table.table)?;
            if table.not_sealed > 0 {
                write!(f, ", {} not sealed", table.not_sealed)?;
            }
            writeln!(f)?;
        }
        write!(f, "{} value(s) to rotate", self.pending())
    }
}

/// Counts the sealed values of every table per key id, without opening them.
pub async fn rotation_status(
    db: &Database,
    cipher: &Cipher,
) -> Result<RotationStatus, RotationError> {
    let mut tables = Vec::with_capacity(TABLES.len());
    for table in &TABLES {
        let mut status = TableStatus {
            table: table.name,
            by_key: BTreeMap::new(),
            not_sealed: 0,
        };
        let mut cursor: Option<Vec<String>> = None;
        loop {
            let rows = table
                .page(
                    db.connection(),
                    SealedTable::all_rows(),
                    cursor.as_deref(),
                    STATUS_PAGE,
                )
                .await
                .map_err(|source| RotationError::Database {
                    table: table.name,
                    source,
                })?;
            let Some(last) = rows.last() else { break };
            cursor = Some(last.key.clone());
            for row in &rows {
                count_row(table, row, &mut status);
            }
            if rows.len() < STATUS_PAGE {
                break;
            }
        }
        tables.push(status);
    }
    Ok(RotationStatus {
        newest_key_id: cipher.newest_key_id().to_owned(),
        key_ids: cipher.key_ids().map(str::to_owned).collect(),
        tables,
    })
}

fn count_row(table: &SealedTable, row: &Row, status: &mut TableStatus) {
    let mut count = |sealed: &str| match sealed_key_id(sealed) {
        Some(id) => *status.by_key.entry(id.to_owned()).or_default() += 1,
        None => status.not_sealed += 1,
    };
    match table.layout {
        Layout::Columns => row.values.iter().flatten().for_each(|v| count(v)),
        Layout::SettingsDocument => {
            let document = row
                .values
                .first()
                .and_then(Option::as_deref)
                .and_then(|text| serde_json::from_str::<serde_json::Value>(text).ok());
            match document.as_ref().and_then(serde_json::Value::as_object) {
                Some(fields) => {
                    for field in SETTINGS_FIELDS {
                        if let Some(serde_json::Value::String(sealed)) = fields.get(field) {
                            count(sealed);
                        }
                    }
                }
                None => status.not_sealed += 1,
            }
        }
    }
}
