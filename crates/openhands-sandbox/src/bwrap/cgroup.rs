//! Per-sandbox cgroups: limits for all of a sandbox's processes together, a way to find and
//! kill every one of them, and the counters that tell which limit ended it.
//!
//! rlimits bound one process at a time; a sandbox that forks or spawns many processes
//! needs its total bounded, which only cgroups do. Two layouts exist in the wild:
//!
//! - **v2** (unified): one hierarchy. The launcher needs the `memory` and `pids`
//!   controllers (`cpu` when available) delegated to its own cgroup. Because a v2 cgroup
//!   with enabled controllers may not hold processes itself, the server moves itself into
//!   a `server` leaf of its cgroup when needed (as systemd `Delegate=` services do), then
//!   creates `openhands/<sandbox>` next to it with `memory.max`, `memory.swap.max = 0`,
//!   `pids.max` and `cpu.max`. Killing writes `cgroup.kill`.
//! - **v1**: one hierarchy per controller. `openhands/<sandbox>` is created under the
//!   server's own cgroup in each of `memory` (`memory.limit_in_bytes`, and
//!   `memory.memsw.limit_in_bytes` when swap accounting exists), `pids` (`pids.max`) and
//!   `cpu` (`cpu.cfs_quota_us`). Killing signals every pid in `cgroup.procs` through a
//!   pidfd until the groups are empty.
//!
//! Sandbox cgroups are nested under the server's own cgroup, never at a hierarchy's
//! root, so limits set on the server (a container's, a systemd unit's) still bound them.

use super::error::BwrapError;
use openhands_core::sandbox_config::SandboxLimits;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Which cgroup hierarchy the launcher uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cgroups {
    /// cgroup v2: sandboxes are created under `base`.
    V2 { base: PathBuf },
    /// cgroup v1: sandboxes are created under each available controller's `base`.
    V1 {
        memory: Option<PathBuf>,
        pids: Option<PathBuf>,
        cpu: Option<PathBuf>,
    },
    /// No usable hierarchy: only the tool server's rlimits bound the sandbox.
    None,
}

impl Cgroups {
    /// "v2", "v1" or "none", for logs and reports.
    pub fn version(&self) -> &'static str {
        match self {
            Cgroups::V2 { .. } => "v2",
            Cgroups::V1 { .. } => "v1",
            Cgroups::None => "none",
        }
    }
}

/// One mount of `/proc/self/mountinfo`.
#[derive(Debug, Clone)]
struct CgroupMount {
    root: String,
    mount_point: PathBuf,
    fstype: String,
    super_options: Vec<String>,
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|d| {
            std::str::from_utf8(d)
                .ok()
                .and_then(|s| u8::from_str_radix(s, 8).ok())
        });
        match (bytes[i], octal) {
            (b'\\', Some(b)) => {
                out.push(b);
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn cgroup_mounts(mountinfo: &str) -> Vec<CgroupMount> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (before, after) = line.split_once(" - ")?;
            let fields: Vec<&str> = before.split(' ').collect();
            let mut after = after.split(' ');
            let fstype = after.next()?.to_owned();
            let _source = after.next();
            let super_options = after
                .next()
                .unwrap_or("")
                .split(',')
                .map(str::to_owned)
                .collect();
            if fstype != "cgroup" && fstype != "cgroup2" {
                return None;
            }
            Some(CgroupMount {
                root: unescape(fields.get(3)?),
                mount_point: unescape(fields.get(4)?).into(),
                fstype,
                super_options,
            })
        })
        .collect()
}

/// The directory of the server's own cgroup `path` (from `/proc/self/cgroup`) in `mount`.
fn own_dir(mount: &CgroupMount, path: &str) -> PathBuf {
    let relative = if mount.root == "/" {
        path
    } else {
        path.strip_prefix(mount.root.as_str()).unwrap_or(path)
    };
    mount.mount_point.join(relative.trim_start_matches('/'))
}

fn write(path: &Path, value: &str) -> Result<(), BwrapError> {
    fs::write(path, value).map_err(|e| BwrapError::io("writing cgroup file", path, e))
}

fn mkdir(path: &Path) -> Result<(), BwrapError> {
    match fs::create_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) => Err(BwrapError::io("creating cgroup", path, e)),
    }
}

/// Finds a usable hierarchy. The strings are warnings for the operator.
pub fn detect() -> (Cgroups, Vec<String>) {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let own = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let mounts = cgroup_mounts(&mountinfo);
    let v2_problem = match detect_v2(&mounts, &own) {
        Ok(Some(base)) => {
            remove_stale(&base);
            return (Cgroups::V2 { base }, Vec::new());
        }
        Ok(None) => None,
        Err(why) => Some(why),
    };
    let mut v1_problems = Vec::new();
    let mut found = [None, None, None];
    for (slot, controller) in found.iter_mut().zip(["memory", "pids", "cpu"]) {
        match detect_v1(&mounts, &own, controller) {
            Ok(base) => {
                remove_stale(&base);
                *slot = Some(base);
            }
            Err(why) => v1_problems.push(why),
        }
    }
    let [memory, pids, cpu] = found;
    if memory.is_some() || pids.is_some() {
        // A usable v1 layout: a v2 problem (e.g. an empty hybrid hierarchy) is moot.
        return (Cgroups::V1 { memory, pids, cpu }, v1_problems);
    }
    // On a v2 system, the v2 problem is the one to fix; v1's absence is expected.
    let mut warnings = match v2_problem {
        Some(why) => vec![why],
        None => v1_problems,
    };
    warnings.push(
        "no usable cgroup hierarchy, so the sandbox's memory, process and CPU limits fall \
         back to per-process rlimits only (a sandbox can use up to `processes` times the \
         per-process limits)"
            .into(),
    );
    (Cgroups::None, warnings)
}

fn detect_v2(mounts: &[CgroupMount], own: &str) -> Result<Option<PathBuf>, String> {
    let Some(mount) = mounts.iter().find(|m| m.fstype == "cgroup2") else {
        return Ok(None);
    };
    let Some(path) = own.lines().find_map(|l| l.strip_prefix("0::")) else {
        return Ok(None);
    };
    let dir = own_dir(mount, path);
    let controllers = fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
    let has = |c: &str| controllers.split_whitespace().any(|x| x == c);
    if !has("memory") || !has("pids") {
        // Hybrid layouts mount an empty v2 hierarchy next to v1: not an error.
        return Ok(None);
    }
    let wanted: Vec<&str> = ["memory", "pids", "cpu"]
        .into_iter()
        .filter(|c| has(c))
        .collect();
    let enable = wanted
        .iter()
        .map(|c| format!("+{c}"))
        .collect::<Vec<_>>()
        .join(" ");
    let enable_in = |d: &Path| fs::write(d.join("cgroup.subtree_control"), &enable);
    if let Err(first) = enable_in(&dir) {
        // Processes in our cgroup block enabling controllers for children: move ourselves
        // into a leaf, then retry.
        let leaf = dir.join("server");
        let moved = fs::create_dir_all(&leaf)
            .and_then(|()| fs::write(leaf.join("cgroup.procs"), std::process::id().to_string()));
        if moved.and_then(|()| enable_in(&dir)).is_err() {
            return Err(format!(
                "cgroup v2 controllers cannot be enabled under {} ({first}); delegate the \
                 memory, pids and cpu controllers to the server's cgroup (systemd: \
                 Delegate=yes)",
                dir.display()
            ));
        }
    }
    let base = dir.join("openhands");
    fs::create_dir_all(&base)
        .and_then(|()| enable_in(&base))
        .map_err(|e| format!("cgroup v2: cannot prepare {}: {e}", base.display()))?;
    Ok(Some(base))
}

fn detect_v1(mounts: &[CgroupMount], own: &str, controller: &str) -> Result<PathBuf, String> {
    let mount = mounts
        .iter()
        .find(|m| m.fstype == "cgroup" && m.super_options.iter().any(|o| o == controller))
        .ok_or_else(|| format!("no cgroup v1 `{controller}` hierarchy is mounted"))?;
    let path = own
        .lines()
        .find_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            controllers
                .split(',')
                .any(|c| c == controller)
                .then_some(path)
        })
        .unwrap_or("/");
    let base = own_dir(mount, path).join("openhands");
    let probe = base.join(format!("probe-{}", std::process::id()));
    fs::create_dir_all(&probe)
        .and_then(|()| fs::remove_dir(&probe))
        .map_err(|e| {
            format!(
                "the cgroup v1 `{controller}` hierarchy is not writable at {} ({e}); its \
                 limit is not applied",
                base.display()
            )
        })?;
    Ok(base)
}

/// Removes empty sandbox cgroups left by servers that are no longer running.
fn remove_stale(base: &Path) {
    let Ok(entries) = fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.split('-').next()) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            let _ = fs::remove_dir(entry.path());
        }
    }
}

/// The cgroup(s) of one sandbox.
#[derive(Debug)]
pub struct SandboxCgroup {
    v2: bool,
    dirs: Vec<PathBuf>,
    memory: Option<PathBuf>,
    pids: Option<PathBuf>,
}

impl SandboxCgroup {
    /// Creates the sandbox's cgroup(s) named `name` and sets `limits` (0 = no limit).
    pub fn create(
        cgroups: &Cgroups,
        name: &str,
        limits: &SandboxLimits,
    ) -> Result<Option<Self>, BwrapError> {
        let memory = limits.memory_bytes.to_string();
        let processes = limits.processes.to_string();
        let period = 100_000u64;
        let quota = limits.cpu_millicores.saturating_mul(period) / 1000;
        let group = match cgroups {
            Cgroups::None => return Ok(None),
            Cgroups::V2 { base } => {
                let dir = base.join(name);
                mkdir(&dir)?;
                let group = Self {
                    v2: true,
                    dirs: vec![dir.clone()],
                    memory: Some(dir.clone()),
                    pids: Some(dir.clone()),
                };
                let limits_set = (|| {
                    if limits.memory_bytes > 0 {
                        write(&dir.join("memory.max"), &memory)?;
                        if dir.join("memory.swap.max").exists() {
                            write(&dir.join("memory.swap.max"), "0")?;
                        }
                    }
                    if limits.processes > 0 {
                        write(&dir.join("pids.max"), &processes)?;
                    }
                    if limits.cpu_millicores > 0 && dir.join("cpu.max").exists() {
                        write(&dir.join("cpu.max"), &format!("{quota} {period}"))?;
                    }
                    Ok(())
                })();
                (group, limits_set)
            }
            Cgroups::V1 {
                memory: m,
                pids: p,
                cpu: c,
            } => {
                let mut group = Self {
                    v2: false,
                    dirs: Vec::new(),
                    memory: None,
                    pids: None,
                };
                let limits_set = (|| {
                    if let Some(base) = m {
                        let dir = base.join(name);
                        mkdir(&dir)?;
                        group.dirs.push(dir.clone());
                        group.memory = Some(dir.clone());
                        if limits.memory_bytes > 0 {
                            write(&dir.join("memory.limit_in_bytes"), &memory)?;
                            let memsw = dir.join("memory.memsw.limit_in_bytes");
                            if memsw.exists() {
                                write(&memsw, &memory)?;
                            }
                        }
                    }
                    if let Some(base) = p {
                        let dir = base.join(name);
                        mkdir(&dir)?;
                        group.dirs.push(dir.clone());
                        group.pids = Some(dir.clone());
                        if limits.processes > 0 {
                            write(&dir.join("pids.max"), &processes)?;
                        }
                    }
                    if let Some(base) = c {
                        let dir = base.join(name);
                        mkdir(&dir)?;
                        group.dirs.push(dir.clone());
                        if limits.cpu_millicores > 0 {
                            write(&dir.join("cpu.cfs_period_us"), &period.to_string())?;
                            write(&dir.join("cpu.cfs_quota_us"), &quota.to_string())?;
                        }
                    }
                    Ok(())
                })();
                (group, limits_set)
            }
        };
        match group {
            (group, Ok(())) => Ok(Some(group)),
            (group, Err(e)) => {
                group.remove();
                Err(e)
            }
        }
    }

    /// The `cgroup.procs` files a new process writes its pid to, to join every group.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|d| d.join("cgroup.procs")).collect()
    }

    fn pids_in(dir: &Path) -> Vec<i32> {
        fs::read_to_string(dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// Kills every process in the groups and waits (up to `patience`) until none is left.
    pub fn kill_all(&self, patience: Duration) {
        if self.v2
            && let Some(dir) = self.dirs.first()
        {
            let _ = fs::write(dir.join("cgroup.kill"), "1");
        }
        let deadline = Instant::now() + patience;
        loop {
            let mut any = false;
            for dir in &self.dirs {
                for pid in Self::pids_in(dir) {
                    any = true;
                    kill_if_still_in(dir, pid);
                }
            }
            if !any || Instant::now() >= deadline {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// How many times the kernel's OOM killer ended a process of the sandbox.
    pub fn oom_kills(&self) -> u64 {
        let Some(dir) = &self.memory else { return 0 };
        let file = if self.v2 {
            "memory.events"
        } else {
            "memory.oom_control"
        };
        counter(&dir.join(file), "oom_kill")
    }

    /// How many times a fork was refused because the process limit was reached.
    pub fn pids_limit_hits(&self) -> u64 {
        self.pids
            .as_ref()
            .map_or(0, |dir| counter(&dir.join("pids.events"), "max"))
    }

    /// Removes the groups (they must be empty; retried briefly while the kernel reaps).
    pub fn remove(&self) {
        for dir in &self.dirs {
            let deadline = Instant::now() + Duration::from_secs(1);
            loop {
                match fs::remove_dir(dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == ErrorKind::NotFound => break,
                    Err(e) if Instant::now() >= deadline => {
                        tracing::warn!(cgroup = %dir.display(), error = %e, "cgroup not removed");
                        break;
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        }
    }
}

/// Sends SIGKILL to `pid` if it is (still) in the group at `dir`: the pidfd pins the
/// process, so a pid reused after the check cannot be hit.
fn kill_if_still_in(dir: &Path, pid: i32) {
    use rustix::process::{Pid, PidfdFlags, Signal, pidfd_open, pidfd_send_signal};
    let Some(pid_t) = Pid::from_raw(pid) else {
        return;
    };
    let Ok(fd) = pidfd_open(pid_t, PidfdFlags::empty()) else {
        return;
    };
    if SandboxCgroup::pids_in(dir).contains(&pid) {
        let _ = pidfd_send_signal(&fd, Signal::KILL);
    }
}

/// The value of `key` in a flat-keyed cgroup file (`oom_kill 3`).
fn counter(file: &Path, key: &str) -> u64 {
    fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(' ')?;
            (k == key).then(|| v.trim().parse().ok()).flatten()
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
30 25 0:26 / /sys/fs/cgroup rw,nosuid - tmpfs tmpfs ro,mode=755
33 30 0:29 / /sys/fs/cgroup/memory rw,relatime shared:9 - cgroup cgroup rw,memory
34 30 0:30 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 30 0:31 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
36 30 0:32 /sub /mnt/my\\040cg rw - cgroup cgroup rw,pids";

    #[test]
    fn mountinfo_gives_cgroup_mounts_with_their_controllers() {
        let mounts = cgroup_mounts(MOUNTINFO);
        assert_eq!(mounts.len(), 4);
        assert!(mounts[1].super_options.contains(&"cpu".to_owned()));
        assert_eq!(mounts[3].mount_point, PathBuf::from("/mnt/my cg"));
        assert_eq!(mounts[2].fstype, "cgroup2");
    }

    #[test]
    fn the_own_cgroup_is_found_under_the_mount() {
        let mounts = cgroup_mounts(MOUNTINFO);
        assert_eq!(
            own_dir(&mounts[0], "/process_api/abc"),
            PathBuf::from("/sys/fs/cgroup/memory/process_api/abc")
        );
        assert_eq!(own_dir(&mounts[3], "/sub/x"), PathBuf::from("/mnt/my cg/x"));
    }

    fn fake_v2(controllers: &str) -> (tempfile::TempDir, Vec<CgroupMount>) {
        let root = tempfile::tempdir().expect("tempdir");
        let own = root.path().join("system.slice/openhands.service");
        fs::create_dir_all(&own).expect("own cgroup");
        fs::write(own.join("cgroup.controllers"), controllers).expect("controllers");
        let mountinfo = format!(
            "35 30 0:31 / {} rw - cgroup2 cgroup2 rw",
            root.path().display()
        );
        (root, cgroup_mounts(&mountinfo))
    }

    #[test]
    fn v2_is_used_below_the_own_cgroup_when_controllers_are_delegated() {
        let (root, mounts) = fake_v2("cpuset cpu io memory pids");
        let base = detect_v2(&mounts, "0::/system.slice/openhands.service\n")
            .expect("usable")
            .expect("v2");
        let own = root.path().join("system.slice/openhands.service");
        assert_eq!(base, own.join("openhands"));
        let enabled = fs::read_to_string(base.join("cgroup.subtree_control")).expect("enabled");
        assert_eq!(enabled, "+memory +pids +cpu");
    }

    #[test]
    fn a_v2_hierarchy_without_memory_and_pids_is_passed_over() {
        let (_root, mounts) = fake_v2("hugetlb");
        let found = detect_v2(&mounts, "0::/system.slice/openhands.service\n");
        assert_eq!(found, Ok(None));
    }

    #[test]
    fn limits_are_written_in_each_layout() {
        let dir = tempfile::tempdir().expect("tempdir");
        let limits = SandboxLimits {
            memory_bytes: 128 << 20,
            processes: 64,
            cpu_millicores: 1500,
            ..SandboxLimits::default()
        };
        let read = |p: PathBuf| fs::read_to_string(p).expect("limit file");
        let v2 = Cgroups::V2 {
            base: dir.path().join("v2"),
        };
        let group = SandboxCgroup::create(&v2, "s", &limits)
            .expect("created")
            .expect("a group");
        assert_eq!(read(dir.path().join("v2/s/memory.max")), "134217728");
        assert_eq!(read(dir.path().join("v2/s/pids.max")), "64");
        assert_eq!(group.procs_files(), [dir.path().join("v2/s/cgroup.procs")]);
        let v1 = Cgroups::V1 {
            memory: Some(dir.path().join("memory")),
            pids: Some(dir.path().join("pids")),
            cpu: Some(dir.path().join("cpu")),
        };
        let group = SandboxCgroup::create(&v1, "s", &limits)
            .expect("created")
            .expect("a group");
        assert_eq!(
            read(dir.path().join("memory/s/memory.limit_in_bytes")),
            "134217728"
        );
        assert_eq!(read(dir.path().join("pids/s/pids.max")), "64");
        assert_eq!(read(dir.path().join("cpu/s/cpu.cfs_quota_us")), "150000");
        assert_eq!(read(dir.path().join("cpu/s/cpu.cfs_period_us")), "100000");
        assert_eq!(group.procs_files().len(), 3);
        assert!(
            SandboxCgroup::create(&Cgroups::None, "s", &limits)
                .expect("nothing to create")
                .is_none()
        );
    }

    #[test]
    fn counters_are_read_by_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("memory.oom_control");
        fs::write(&file, "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n").expect("write");
        assert_eq!(counter(&file, "oom_kill"), 2);
        assert_eq!(counter(&file, "max"), 0);
    }
}
