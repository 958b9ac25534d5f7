//! A fresh SQLite database file per test.
//!
//! The file lives in its own temporary directory, removed when the [`TestSqlite`] is
//! dropped; the URL has `mode=rwc` so the driver creates the file on first connect.

/// A temporary SQLite database file.
#[derive(Debug)]
pub struct TestSqlite {
    url: String,
    _dir: tempfile::TempDir,
}

impl TestSqlite {
    /// `sqlite://<temp dir>/test.db?mode=rwc`.
    pub fn url(&self) -> &str {
        &self.url
    }
}

/// A new, not yet created, database file in a fresh temporary directory.
pub fn fresh_database() -> std::io::Result<TestSqlite> {
    let dir = tempfile::Builder::new()
        .prefix("oh-test-sqlite-")
        .tempdir()?;
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display());
    Ok(TestSqlite { url, _dir: dir })
}
