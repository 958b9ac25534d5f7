//! Where sealed values live in the schema, and paging through them by primary key.
//!
//! Key rotation and `openhands keys status` walk every table that holds sealed values. Each
//! such table is described once here: its primary key, its sealed columns, the
//! associated-data context of each value (from [`crate::sealing`]) and the lock that the
//! stores' writers of a scope take. Paging is keyset pagination on the primary key
//! (`WHERE (pk) > (last) ORDER BY pk LIMIT n`), so a walk can stop anywhere, a row that is
//! skipped is never fetched again in the same walk, and a new walk starts over and finds
//! only what is left.

use crate::scope::ScopeKey;
use crate::sealing;
use openhands_core::secrets::ProviderType;
use sea_orm::sea_query::{Expr, ExprTrait, Func, Query, SelectStatement};
use sea_orm::{ConnectionTrait, DbErr, Value};

/// How a table holds its sealed values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    /// Every sealed column holds one sealed value (or NULL).
    Columns,
    /// The single sealed column is the settings JSON document; its secret fields are
    /// sealed under `settings.<field>`.
    SettingsDocument,
}

/// One table with sealed values.
#[derive(Debug)]
pub(crate) struct SealedTable {
    pub name: &'static str,
    /// Primary key columns; the first two are always `user_id` and `org_id`.
    pub key: &'static [&'static str],
    /// Columns holding sealed text.
    pub columns: &'static [&'static str],
    /// Namespace of the writers' per-scope lock ([`ScopeKey::lock_name`]).
    pub lock_namespace: &'static str,
    pub layout: Layout,
}

/// Every table with sealed values, in the order they are walked.
pub(crate) const TABLES: [SealedTable; 3] = [
    SealedTable {
        name: "user_settings",
        key: &["user_id", "org_id"],
        columns: &["settings"],
        lock_namespace: crate::settings_store::LOCK_NAMESPACE,
        layout: Layout::SettingsDocument,
    },
    SealedTable {
        name: "custom_secrets",
        key: &["user_id", "org_id", "name"],
        columns: &["value_sealed"],
        lock_namespace: crate::secrets_store::LOCK_NAMESPACE,
        layout: Layout::Columns,
    },
    SealedTable {
        name: "provider_tokens",
        key: &["user_id", "org_id", "provider"],
        columns: &["token_sealed", "refresh_token_sealed"],
        lock_namespace: crate::secrets_store::LOCK_NAMESPACE,
        layout: Layout::Columns,
    },
];

/// One fetched row: its primary key and its sealed columns.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub key: Vec<String>,
    pub values: Vec<Option<String>>,
}

impl Row {
    /// The scope the row belongs to.
    pub fn scope(&self) -> ScopeKey {
        ScopeKey {
            user_id: self.key.first().cloned().unwrap_or_default(),
            org_id: self.key.get(1).cloned().unwrap_or_default(),
        }
    }
}

impl SealedTable {
    /// The primary key of `row` for reports, e.g. `user_id=alice, org_id=, name=TOKEN`.
    /// Keys hold names and ids, never secret values.
    pub fn describe_key(&self, row: &Row) -> String {
        self.key
            .iter()
            .zip(&row.key)
            .map(|(column, value)| format!("{column}={value}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The associated-data context of sealed column `index` of `row` (layout `Columns`).
    pub fn context(&self, row: &Row, index: usize) -> Result<String, String> {
        let third = row.key.get(2).map(String::as_str).unwrap_or_default();
        match (self.name, index) {
            ("custom_secrets", 0) => Ok(sealing::custom_secret(third)),
            ("provider_tokens", 0 | 1) => {
                let provider = ProviderType::ALL
                    .into_iter()
                    .find(|p| p.as_str() == third)
                    .ok_or_else(|| format!("unknown provider `{third}`"))?;
                Ok(if index == 0 {
                    sealing::provider_token(provider)
                } else {
                    sealing::provider_refresh_token(provider)
                })
            }
            _ => Err(format!("no context for column {index} of {}", self.name)),
        }
    }

    /// Up to `limit` rows matching `filter` after the primary key `after`, in key order.
    pub async fn page<C: ConnectionTrait>(
        &self,
        conn: &C,
        filter: Expr,
        after: Option<&[String]>,
        limit: usize,
    ) -> Result<Vec<Row>, DbErr> {
        let mut query = self.select(filter);
        query.columns(self.key.iter().copied());
        query.columns(self.columns.iter().copied());
        if let Some(after) = after {
            query.and_where(
                Expr::tuple(self.key.iter().map(|c| Expr::col(*c)))
                    .gt(Expr::tuple(after.iter().map(|v| Expr::val(v.as_str())))),
            );
        }
        for column in self.key {
            query.order_by(*column, sea_orm::sea_query::Order::Asc);
        }
        query.limit(u64::try_from(limit).unwrap_or(u64::MAX));
        let rows = conn.query_all(&query).await?;
        rows.iter()
            .map(|result| {
                let key = self
                    .key
                    .iter()
                    .map(|c| result.try_get::<String>("", c))
                    .collect::<Result<Vec<_>, _>>()?;
                let values = self
                    .columns
                    .iter()
                    .map(|c| result.try_get::<Option<String>>("", c))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Row { key, values })
            })
            .collect()
    }

    /// How many rows match `filter`.
    pub async fn count<C: ConnectionTrait>(&self, conn: &C, filter: Expr) -> Result<u64, DbErr> {
        let mut query = self.select(filter);
        query.expr_as(Expr::cust("COUNT(*)"), "n");
        let n = match conn.query_one(&query).await? {
            Some(row) => row.try_get::<i64>("", "n")?,
            None => 0,
        };
        Ok(u64::try_from(n).unwrap_or_default())
    }

    /// Rewrites the sealed columns of `row` to `new`, but only while they still hold the
    /// values that were read (compare-and-set). Returns whether the row was rewritten.
    pub async fn compare_and_set<C: ConnectionTrait>(
        &self,
        conn: &C,
        row: &Row,
        new: &[Option<String>],
    ) -> Result<bool, DbErr> {
        let mut update = Query::update();
        update.table(self.name);
        for (column, value) in self.columns.iter().zip(new) {
            update.value(*column, Value::from(value.clone()));
        }
        for (column, value) in self.key.iter().zip(&row.key) {
            update.and_where(Expr::col(*column).eq(value.as_str()));
        }
        for (column, old) in self.columns.iter().zip(&row.values) {
            update.and_where(match old {
                Some(old) => Expr::col(*column).eq(old.as_str()),
                None => Expr::col(*column).is_null(),
            });
        }
        Ok(conn.execute(&update).await?.rows_affected() == 1)
    }

    fn select(&self, filter: Expr) -> SelectStatement {
        let mut query = Query::select();
        query.from(self.name).and_where(filter);
        query
    }

    /// Rows that may hold a value not sealed under `newest_key_id`. Exact for `Columns`
    /// (a value whose prefix is not `enc:<newest>:`, compared case-sensitively on both
    /// databases); for the settings document, every row holding a sealed value (the
    /// fields are checked in Rust).
    pub fn candidates(&self, newest_key_id: &str) -> Expr {
        match self.layout {
            Layout::SettingsDocument => Expr::col(self.columns[0]).like("%\"enc:%"),
            Layout::Columns => {
                let prefix = format!("enc:{newest_key_id}:");
                // Not LIKE: SQLite's LIKE ignores case and `_` would need escaping.
                let len = i32::try_from(prefix.len()).unwrap_or(i32::MAX);
                let mut any: Option<Expr> = None;
                for column in self.columns {
                    let stale = Expr::expr(
                        Func::cust("substr")
                            .arg(Expr::col(*column))
                            .arg(Expr::val(1i32))
                            .arg(Expr::val(len)),
                    )
                    .ne(prefix.as_str());
                    any = Some(match any {
                        Some(expr) => expr.or(stale),
                        None => stale,
                    });
                }
                any.unwrap_or_else(|| Expr::cust("1 = 0"))
            }
        }
    }

    /// Every row.
    pub fn all_rows() -> Expr {
        Expr::cust("1 = 1")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_starts_its_key_with_the_scope() {
        for table in &TABLES {
            assert_eq!(&table.key[..2], ["user_id", "org_id"], "{}", table.name);
        }
    }

    #[test]
    fn provider_contexts_match_the_store() {
        let row = Row {
            key: vec!["u".into(), "o".into(), "github".into()],
            values: vec![None, None],
        };
        assert_eq!(
            TABLES[2].context(&row, 0).as_deref(),
            Ok(sealing::provider_token(ProviderType::Github).as_str())
        );
        assert_eq!(
            TABLES[2].context(&row, 1).as_deref(),
            Ok(sealing::provider_refresh_token(ProviderType::Github).as_str())
        );
        let unknown = Row {
            key: vec!["u".into(), "o".into(), "nope".into()],
            values: vec![None, None],
        };
        assert!(TABLES[2].context(&unknown, 0).is_err());
    }
}
