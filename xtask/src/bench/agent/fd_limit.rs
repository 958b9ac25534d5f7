//! The open-file limit the agent measurements need, checked before they start.
//!
//! A thousand watchers are a thousand sockets in the bench and as many in the
//! server (a child, so it inherits the bench's limit). Raising the limit would
//! take `setrlimit` and `unsafe`, which the workspace denies; failing up front
//! with the fix beats an `EMFILE` halfway through a measurement.

use anyhow::{Context, Result, ensure};

/// Sockets and files beyond the watchers: HTTP connections, the fake LLM's
/// connections, stores, logs.
const HEADROOM: u64 = 512;

/// The soft `Max open files` limit from the text of `/proc/<pid>/limits`;
/// `None` for "unlimited" or unreadable text.
pub fn parse_soft_nofile(limits: &str) -> Option<u64> {
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Fails unless this process (and so the servers it spawns) may open `sockets`
/// sockets plus [`HEADROOM`]; the error names `skip_flag`, which leaves the
/// measurement out.
pub fn ensure_room_for(sockets: usize, skip_flag: &str) -> Result<()> {
    let limits = std::fs::read_to_string("/proc/self/limits")
        .context("reading /proc/self/limits for the open-file limit")?;
    let needed = sockets as u64 + HEADROOM;
    if let Some(soft) = parse_soft_nofile(&limits) {
        ensure!(
            soft >= needed,
            "the open-file limit is {soft}, {sockets} watchers need {needed}: \
             run `ulimit -n {needed}` (or more) first, or pass {skip_flag}"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: &str = "Limit                     Soft Limit           Hard Limit           Units     \n\
Max cpu time              unlimited            unlimited            seconds   \n\
Max open files            1024                 524288               files     \n\
Max locked memory         8388608              8388608              bytes     \n";

    #[test]
    fn reads_the_soft_open_files_limit() {
        assert_eq!(parse_soft_nofile(LIMITS), Some(1024));
    }

    #[test]
    fn unlimited_or_missing_is_none() {
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(parse_soft_nofile(unlimited), None);
        assert_eq!(parse_soft_nofile("Max cpu time  1  1  seconds\n"), None);
    }
}
