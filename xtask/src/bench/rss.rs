//! Resident memory of the server process, from `/proc/<pid>/status`.
//!
//! `VmRSS` is what the "idle RSS" target is about: memory actually resident, not
//! the virtual size a multi-threaded allocator inflates. Parsing is a pure
//! function so it is tested without a live process.

use anyhow::{Context, Result};

/// The `VmRSS` value in kB from the text of a `/proc/<pid>/status` file.
pub fn parse_vm_rss_kb(status: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let rest = line.strip_prefix("VmRSS:")?;
        let mut fields = rest.split_whitespace();
        let value = fields.next()?.parse().ok()?;
        (fields.next()? == "kB").then_some(value)
    })
}

/// Kilobytes (as the kernel counts them, KiB) to megabytes (MiB), two decimals.
pub fn kb_to_mb(kb: u64) -> f64 {
    (kb as f64 / 1024.0 * 100.0).round() / 100.0
}

/// The current resident set size of process `pid` in MB.
pub fn rss_mb(pid: u32) -> Result<f64> {
    rss_kb(pid).map(kb_to_mb)
}

/// The current resident set size of process `pid` in kB, for per-item figures
/// too small to survive rounding to MB.
pub fn rss_kb(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_vm_rss_kb(&status).with_context(|| format!("no VmRSS line in {path}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Name:\topenhands\nState:\tS (sleeping)\nPid:\t4242\n\
VmPeak:\t  812344 kB\nVmSize:\t  812340 kB\nVmHWM:\t   24576 kB\n\
VmRSS:\t   20480 kB\nRssAnon:\t    8192 kB\nThreads:\t3\n";

    #[test]
    fn reads_vm_rss_not_neighbouring_fields() {
        assert_eq!(parse_vm_rss_kb(STATUS), Some(20480));
    }

    #[test]
    fn missing_or_malformed_vm_rss_is_none() {
        assert_eq!(parse_vm_rss_kb("Name:\tx\nVmSize:\t 10 kB\n"), None);
        assert_eq!(parse_vm_rss_kb("VmRSS:\t lots kB\n"), None);
        assert_eq!(parse_vm_rss_kb("VmRSS:\t 10 MB\n"), None);
        assert_eq!(parse_vm_rss_kb(""), None);
    }

    #[test]
    fn kb_convert_to_mb() {
        assert_eq!(kb_to_mb(20480), 20.0);
        assert_eq!(kb_to_mb(1536), 1.5);
    }

    #[test]
    fn own_process_has_an_rss() -> Result<()> {
        assert!(rss_mb(std::process::id())? > 0.0);
        Ok(())
    }
}
