//! Finding a sandbox's processes and reading what memory each holds, from `/proc`.
//!
//! A sandbox is several processes (`bwrap` outside and as the namespace's init, the tool
//! server, its shells), so its memory is a sum. Two ways find them and the bench takes
//! both: the descendants of the launched child (everything in the pid namespace descends
//! from it, orphans included, since they are re-parented to the namespace's init) and the
//! `cgroup.procs` of the sandbox's cgroup. Each process is read for `VmRSS` (its resident
//! pages, shared ones counted in full) and `Pss` (shared pages divided among the processes
//! that map them, so a sum over processes does not count a shared library twice). Parsing
//! is pure, tested without a live sandbox; every file may vanish while read (a process
//! ends), which skips that process rather than failing.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use crate::bench::rss::parse_vm_rss_kb;

/// What one process holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessMemory {
    pub pid: u32,
    /// `/proc/<pid>/comm` (at most 15 bytes, as the kernel keeps it).
    pub name: String,
    pub rss_kb: u64,
    pub pss_kb: u64,
}

/// The parent pid from the text of `/proc/<pid>/stat`: the fourth field, counted after the
/// last `)` because the command name in parentheses may hold spaces and parentheses.
pub fn parse_ppid(stat: &str) -> Option<u32> {
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    let _state = fields.next()?;
    fields.next()?.parse().ok()
}

/// The sum of the `key` lines (e.g. `Pss:`) in kB of a `smaps_rollup` (one line) or
/// `smaps` (one per mapping) text; `None` when there is no such line.
pub fn sum_kb(text: &str, key: &str) -> Option<u64> {
    let mut total = None;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(key) else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let value: u64 = fields.next()?.parse().ok()?;
        if fields.next()? != "kB" {
            return None;
        }
        total = Some(total.unwrap_or(0) + value);
    }
    total
}

/// `root` and every process below it, from a `pid -> parent` map.
pub fn descendants_in(parents: &HashMap<u32, u32>, root: u32) -> BTreeSet<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for (&pid, &parent) in parents {
        children.entry(parent).or_default().push(pid);
    }
    let mut found = BTreeSet::from([root]);
    let mut queue = vec![root];
    while let Some(pid) = queue.pop() {
        for &child in children.get(&pid).into_iter().flatten() {
            if found.insert(child) {
                queue.push(child);
            }
        }
    }
    found
}

/// `pid -> parent` of every process now running.
pub fn parents() -> HashMap<u32, u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return HashMap::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            Some((pid, parse_ppid(&stat)?))
        })
        .collect()
}

/// The pids listed in a `cgroup.procs` file (empty when it cannot be read).
pub fn cgroup_procs(dir: &Path) -> BTreeSet<u32> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .map(|text| text.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// What `pid` holds now; `None` when it ended or holds no memory (a zombie).
pub fn read(pid: u32) -> Option<ProcessMemory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kb = parse_vm_rss_kb(&status)?;
    // `smaps_rollup` (Linux 4.14) sums `smaps` in the kernel; `smaps` is the fallback.
    let pss_kb = ["smaps_rollup", "smaps"].iter().find_map(|file| {
        let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).ok()?;
        sum_kb(&text, "Pss:")
    })?;
    let name = std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|comm| comm.trim().to_owned())
        .unwrap_or_else(|_| "?".to_owned());
    Some(ProcessMemory {
        pid,
        name,
        rss_kb,
        pss_kb,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ppid_is_read_after_the_command_name() {
        let plain = "4242 (bash) S 4200 4242 4242 0 -1 4194560 0 0";
        assert_eq!(parse_ppid(plain), Some(4200));
        let odd = "77 (a) b (c) S) R 76 77 77 0";
        assert_eq!(parse_ppid(odd), Some(76));
        assert_eq!(parse_ppid("77 (bash"), None);
        assert_eq!(parse_ppid("77 (bash) S x"), None);
    }

    #[test]
    fn pss_lines_are_summed_and_other_keys_ignored() {
        let rollup = "00400000-7fff [rollup]\nRss:  3000 kB\nPss:  1200 kB\n\
                      Pss_Anon:  800 kB\nPss_File:  400 kB\n";
        assert_eq!(sum_kb(rollup, "Pss:"), Some(1200));
        let smaps = "Pss:  10 kB\nRss: 99 kB\nPss:  32 kB\n";
        assert_eq!(sum_kb(smaps, "Pss:"), Some(42));
        assert_eq!(sum_kb("Rss: 1 kB\n", "Pss:"), None);
        assert_eq!(sum_kb("Pss: 1 MB\n", "Pss:"), None);
        assert_eq!(sum_kb("Pss: lots kB\n", "Pss:"), None);
    }

    #[test]
    fn descendants_follow_every_generation_and_nothing_else() {
        let parents = HashMap::from([(10, 1), (11, 10), (12, 11), (13, 11), (20, 1), (21, 20)]);
        assert_eq!(
            descendants_in(&parents, 10),
            BTreeSet::from([10, 11, 12, 13])
        );
        assert_eq!(descendants_in(&parents, 99), BTreeSet::from([99]));
    }

    #[test]
    fn own_process_is_read_with_rss_and_pss() -> anyhow::Result<()> {
        use anyhow::Context;
        let me = read(std::process::id()).context("reading the test process")?;
        assert!(me.rss_kb > 0 && me.pss_kb > 0, "{me:?}");
        assert!(descendants_in(&parents(), 1).contains(&std::process::id()));
        Ok(())
    }
}
