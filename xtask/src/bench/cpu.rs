//! CPU time of a process, from `/proc/<pid>/stat`.
//!
//! The fan-out run saturates a small machine, so its delay figure means little
//! without knowing who used the CPU: the server delivering frames or the bench
//! reading them. `utime` and `stime` (fields 14 and 15) count every thread of the
//! process in clock ticks. Parsing is a pure function, tested without a process.

use anyhow::{Context, Result};
use serde::Serialize;

/// Clock ticks per second of `/proc` times (`USER_HZ`, 100 on every Linux ABI
/// this project targets).
const TICKS_PER_SECOND: f64 = 100.0;

/// User plus system ticks from the text of a `/proc/<pid>/stat` file. The
/// command name (field 2) may hold spaces and parentheses, so fields are
/// counted after its last `)`.
pub fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace();
    // After the name come field 3 (state) ..; utime is field 14, stime 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// CPU seconds (user + system) process `pid` has used so far.
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let ticks = parse_cpu_ticks(&stat).with_context(|| format!("malformed {path}"))?;
    Ok(ticks as f64 / TICKS_PER_SECOND)
}

/// Who used the CPU during a measured window.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct CpuUsage {
    pub wall_s: f64,
    pub server_cpu_s: f64,
    pub bench_cpu_s: f64,
}

/// CPU counters taken at the start of a window; [`CpuWindow::finish`] gives the usage.
pub struct CpuWindow {
    /// Each server process and its CPU seconds at the start.
    servers: Vec<(u32, f64)>,
    started: std::time::Instant,
    bench_cpu_s: f64,
}

impl CpuWindow {
    /// A window over one or more server processes (replicas); their CPU is summed.
    pub fn start(server_pids: &[u32]) -> Result<Self> {
        let servers = server_pids
            .iter()
            .map(|&pid| Ok((pid, cpu_seconds(pid)?)))
            .collect::<Result<_>>()?;
        Ok(Self {
            servers,
            started: std::time::Instant::now(),
            bench_cpu_s: cpu_seconds(std::process::id())?,
        })
    }

    pub fn finish(self) -> Result<CpuUsage> {
        let mut server_cpu_s = 0.0;
        for (pid, at_start) in &self.servers {
            server_cpu_s += cpu_seconds(*pid)? - at_start;
        }
        Ok(CpuUsage {
            wall_s: self.started.elapsed().as_secs_f64(),
            server_cpu_s,
            bench_cpu_s: cpu_seconds(std::process::id())? - self.bench_cpu_s,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_utime_plus_stime_after_a_tricky_name() {
        let stat = "4242 (open) hands) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 3 0";
        assert_eq!(parse_cpu_ticks(stat), Some(325));
    }

    #[test]
    fn malformed_stat_is_none() {
        assert_eq!(parse_cpu_ticks("4242 (x) S 1 2"), None);
        assert_eq!(parse_cpu_ticks("no name here"), None);
    }

    #[test]
    fn own_process_cpu_grows_while_it_works() -> Result<()> {
        let before = cpu_seconds(std::process::id())?;
        let started = std::time::Instant::now();
        let mut spin = 0u64;
        while started.elapsed() < std::time::Duration::from_millis(100) {
            spin = std::hint::black_box(spin.wrapping_add(1));
        }
        let after = cpu_seconds(std::process::id())?;
        assert!(after > before, "{before} -> {after} after 100 ms of work");
        Ok(())
    }
}
