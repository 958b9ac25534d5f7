//! Process and machine figures for `/server_info`, read from `/proc` and `statvfs`.
//!
//! OpenHands samples CPU by sleeping 0.1 s per request; we compare with the previous call
//! instead, so the route answers at once.

use std::sync::Mutex;
use std::time::Instant;

/// Remembers the last CPU sample.
#[derive(Default)]
pub struct CpuSampler {
    last: Mutex<Option<(Instant, f64)>>,
}

impl CpuSampler {
    /// Percent of one core used by this process since the previous call (or since start).
    pub fn cpu_percent(&self) -> f64 {
        let now = Instant::now();
        let Some(cpu_seconds) = process_cpu_seconds() else {
            return 0.0;
        };
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let percent = match *last {
            Some((at, before)) => {
                let wall = now.duration_since(at).as_secs_f64();
                if wall > 0.0 {
                    (cpu_seconds - before) / wall * 100.0
                } else {
                    0.0
                }
            }
            None => 0.0,
        };
        *last = Some((now, cpu_seconds));
        percent.max(0.0)
    }
}

/// User + system CPU seconds of this process, from `/proc/self/stat`.
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after_name = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields after the name start at index 3 (state); utime is field 14, stime 15.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    let ticks = clock_ticks();
    Some((utime + stime) / ticks)
}

fn clock_ticks() -> f64 {
    #[allow(unsafe_code)]
    // SAFETY: sysconf only reads a system constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

/// `(rss, vms)` in bytes from `/proc/self/status`.
pub fn memory_bytes() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    (
        status_kb(&status, "VmRSS:") * 1024,
        status_kb(&status, "VmSize:") * 1024,
    )
}

/// The kB figure of one `/proc/*/status` line.
pub fn status_kb(status: &str, key: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Total memory of the machine in bytes.
pub fn total_memory_bytes() -> u64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    status_kb(&meminfo, "MemTotal:") * 1024
}

/// `(total, used, free)` bytes of the file system holding `path`.
pub fn disk_bytes(path: &std::path::Path) -> Option<(u64, u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    #[allow(unsafe_code)]
    // SAFETY: `stat` is a plain C struct that statvfs fills; `c_path` is NUL-terminated.
    let stat = unsafe {
        let mut stat: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(c_path.as_ptr(), &mut stat) != 0 {
            return None;
        }
        stat
    };
    let block = stat.f_frsize as u64;
    let total = stat.f_blocks as u64 * block;
    let free = stat.f_bavail as u64 * block;
    let used = total.saturating_sub(stat.f_bfree as u64 * block);
    Some((total, used, free))
}

/// `(read_bytes, write_bytes)` of this process from `/proc/self/io`.
pub fn io_bytes() -> (u64, u64) {
    let io = std::fs::read_to_string("/proc/self/io").unwrap_or_default();
    let field = |key: &str| {
        io.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    (field("read_bytes:"), field("write_bytes:"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_are_parsed_in_kb() {
        let text = "Name:\topenhands\nVmSize:\t  123456 kB\nVmRSS:\t   2048 kB\n";
        assert_eq!(status_kb(text, "VmRSS:"), 2048);
        assert_eq!(status_kb(text, "VmSize:"), 123_456);
        assert_eq!(status_kb(text, "Missing:"), 0);
    }

    #[test]
    fn own_process_has_memory_and_disk() {
        let (rss, vms) = memory_bytes();
        assert!(rss > 0 && vms >= rss);
        let (total, _, free) = disk_bytes(std::path::Path::new("/")).expect("statvfs");
        assert!(total > 0 && free <= total);
    }
}
