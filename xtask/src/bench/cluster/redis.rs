//! The few Redis commands the cluster measurements send, through the `redis-cli`
//! command-line tool: `PING` (is Redis there), `GET` of a conversation's owner key (which
//! replica runs it), and deleting the run's keys afterwards.
//!
//! A dozen commands per run, none of them timed, so xtask needs no Redis client, as it
//! needs no database driver for its few SQL commands (see `psql`).

use std::process::{Command, Stdio};

use anyhow::{Context, Result, ensure};

/// Deletes the keys matching `ARGV[1]` in one call (a bench's few hundred keys).
const DELETE_MATCHING: &str = "local n = 0 for _, k in ipairs(redis.call('KEYS', ARGV[1])) do n = n + redis.call('DEL', k) end return n";

/// The Redis at one URL.
pub struct Redis {
    url: String,
}

impl Redis {
    /// The Redis at `url`, after checking that it answers `PING`.
    pub fn connect(url: &str) -> Result<Self> {
        let redis = Self {
            url: url.to_owned(),
        };
        let pong = redis.run(&["PING"], "answer PING")?;
        ensure!(
            pong.trim() == "PONG",
            "Redis at {url} answered PING with `{}`",
            pong.trim()
        );
        Ok(redis)
    }

    /// The value of `key`, `None` when it does not exist.
    pub fn get(&mut self, key: &str) -> Result<Option<String>> {
        let value = self.run(&["GET", key], "read a key")?;
        Ok(Some(value.trim_end_matches('\n').to_owned()).filter(|v| !v.is_empty()))
    }

    /// Deletes every key starting with `prefix` (which must not hold glob characters);
    /// returns how many were deleted.
    pub fn delete_prefixed(&mut self, prefix: &str) -> Result<u64> {
        ensure!(
            !prefix.is_empty() && !prefix.contains(['*', '?', '[', ']', '\\']),
            "refusing to delete keys by the pattern `{prefix}*`"
        );
        let pattern = format!("{prefix}*");
        let deleted = self.run(
            &["EVAL", DELETE_MATCHING, "0", &pattern],
            "delete the run's keys",
        )?;
        deleted
            .trim()
            .parse()
            .with_context(|| format!("Redis answered the delete with `{}`", deleted.trim()))
    }

    /// Runs one command; its raw output (an error reply is an error naming `what`).
    fn run(&self, args: &[&str], what: &str) -> Result<String> {
        let output = Command::new("redis-cli")
            .args(["-u", &self.url, "--raw", "-e"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .with_context(|| {
                format!("running `redis-cli` to {what} (is the Redis client installed?)")
            })?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        ensure!(
            output.status.success(),
            "Redis at {} did not {what}: {} {}",
            self.url,
            stdout.trim(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
        Ok(stdout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_redis_is_an_error_naming_the_address() {
        let err = Redis::connect("redis://127.0.0.1:9/0")
            .err()
            .map(|e| format!("{e:#}"))
            .unwrap_or_default();
        assert!(err.contains("127.0.0.1:9"), "{err}");
    }

    #[test]
    fn glob_prefixes_are_refused() {
        let mut redis = Redis {
            url: "redis://127.0.0.1:9/0".to_owned(),
        };
        let err = redis
            .delete_prefixed("oh_*")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("refusing"), "{err}");
    }
}
