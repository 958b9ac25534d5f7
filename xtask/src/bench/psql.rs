//! One SQL command through the `psql` command-line tool.
//!
//! xtask has no database driver (the measurements that need one live next to the
//! stores, see `store` and `saas_auth`); counting rows or making a throw-away
//! database only takes `psql`.

use std::process::{Command, Stdio};

use anyhow::{Context, Result, ensure};

/// Runs `sql` on `database_url`, failing on the first error; returns the unaligned,
/// tuples-only output (`psql -A -t`: one row a line, columns split by `|`). `what`
/// says what the command is for, in errors.
pub fn run(database_url: &str, sql: &str, what: &str) -> Result<String> {
    let output = Command::new("psql")
        .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d"])
        .arg(database_url)
        .args(["-c", sql])
        .env("PGCONNECT_TIMEOUT", "5")
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running `psql` {what} (is the PostgreSQL client installed?)"))?;
    ensure!(
        output.status.success(),
        "`psql` could not {what}: {}",
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
