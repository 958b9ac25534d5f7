//! Limits: the tool server's own resource limits, which every process it starts inherits,
//! the workspace's disk limit, and the notes that tell the LLM which limit stopped a
//! command (a bare "exit code 153" teaches it nothing).

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Exit status of a process killed by SIGXFSZ.
const EXIT_FSIZE: i32 = 128 + libc::SIGXFSZ;
/// Exit status of a process killed by SIGXCPU.
const EXIT_CPU: i32 = 128 + libc::SIGXCPU;
/// Exit status of a process killed by SIGKILL.
const EXIT_KILLED: i32 = 128 + libc::SIGKILL;

/// Resource limits a process applies to itself before serving (0 leaves one unchanged).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcessLimits {
    /// Open files per process (`RLIMIT_NOFILE`).
    pub open_files: u64,
    /// Largest file a process may write, bytes (`RLIMIT_FSIZE`).
    pub file_size_bytes: u64,
    /// Processes and threads of the user (`RLIMIT_NPROC`).
    pub processes: u64,
}

/// Why a limit could not be applied.
#[derive(Debug, thiserror::Error)]
#[error("setting {name} to {value} failed: {source}")]
pub struct LimitError {
    name: &'static str,
    value: u64,
    #[source]
    source: std::io::Error,
}

/// Applies `limits` (soft = hard, so no child can raise them) and turns core dumps off.
pub fn apply(limits: &ProcessLimits) -> Result<(), LimitError> {
    use rlimit::Resource;
    let set = |name, resource: Resource, value: u64| {
        resource.set(value, value).map_err(|source| LimitError {
            name,
            value,
            source,
        })
    };
    set("RLIMIT_CORE", Resource::CORE, 0)?;
    for (name, resource, value) in [
        ("RLIMIT_NOFILE", Resource::NOFILE, limits.open_files),
        ("RLIMIT_FSIZE", Resource::FSIZE, limits.file_size_bytes),
        ("RLIMIT_NPROC", Resource::NPROC, limits.processes),
    ] {
        if value > 0 {
            set(name, resource, value)?;
        }
    }
    Ok(())
}

/// The soft `RLIMIT_FSIZE` of this process, when one is set.
pub fn file_size_limit() -> Option<u64> {
    rlimit::Resource::FSIZE
        .get_soft()
        .ok()
        .filter(|&soft| soft != rlimit::INFINITY)
}

/// A note explaining which limit stopped a command that exited with `exit_code`, if one did.
pub fn exit_note(exit_code: i32, file_size_limit: Option<u64>, cpu_seconds: u64) -> Option<String> {
    match exit_code {
        EXIT_FSIZE => Some(match file_size_limit {
            Some(limit) => format!(
                "\n[File size limit exceeded: the command was stopped (SIGXFSZ) because it wrote a file larger than the sandbox's limit of {limit} bytes per file.]"
            ),
            None => "\n[File size limit exceeded: the command was stopped (SIGXFSZ) because it wrote a file larger than the sandbox's per-file limit.]".to_owned(),
        }),
        EXIT_CPU => Some(if cpu_seconds > 0 {
            format!(
                "\n[CPU time limit exceeded: the command was stopped (SIGXCPU) after using the sandbox's limit of {cpu_seconds} CPU seconds per process.]"
            )
        } else {
            "\n[CPU time limit exceeded: the command was stopped (SIGXCPU).]".to_owned()
        }),
        EXIT_KILLED => Some(
            "\n[The command was killed (SIGKILL), possibly by the sandbox's memory or process limit.]"
                .to_owned(),
        ),
        _ => None,
    }
}

/// The note added to a command's output while the workspace is over its disk limit.
pub fn disk_note(limit: u64) -> String {
    format!(
        "\n[The workspace uses more than {limit} bytes, the limit; delete files to continue. Until then files cannot be written by the editor or uploaded.]"
    )
}

/// Whether the disk use under `root` (allocated blocks, symlinks not followed) exceeds
/// `limit` bytes. Stops counting as soon as it does. Blocking.
pub fn usage_exceeds(root: &Path, limit: u64) -> bool {
    let mut total = 0u64;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            // `DirEntry::metadata` does not follow symlinks.
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            total = total.saturating_add(meta.blocks().saturating_mul(512));
            if total > limit {
                return true;
            }
            if meta.is_dir() {
                stack.push(entry.path());
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_exit_codes_get_a_note_naming_the_limit() {
        let fsize = exit_note(153, Some(1000), 0).expect("note");
        assert!(fsize.contains("File size limit exceeded") && fsize.contains("1000 bytes"));
        let cpu = exit_note(152, None, 30).expect("note");
        assert!(cpu.contains("CPU time limit") && cpu.contains("30 CPU seconds"));
        let killed = exit_note(137, None, 0).expect("note");
        assert!(killed.contains("memory or process limit"));
        assert_eq!(exit_note(0, None, 0), None);
        assert_eq!(exit_note(1, Some(1), 1), None);
        assert_eq!(exit_note(-1, None, 0), None);
    }

    #[test]
    fn usage_counts_blocks_and_does_not_follow_symlinks() {
        let tmp = tempfile::tempdir().expect("dir");
        let outside = tempfile::tempdir().expect("dir");
        std::fs::write(outside.path().join("big"), vec![1u8; 1 << 20]).expect("write");
        std::os::unix::fs::symlink(outside.path(), tmp.path().join("link")).expect("symlink");
        std::fs::create_dir(tmp.path().join("d")).expect("mkdir");
        std::fs::write(tmp.path().join("d/f"), vec![1u8; 64 << 10]).expect("write");
        assert!(
            !usage_exceeds(tmp.path(), 512 << 10),
            "the link's target is not counted"
        );
        assert!(usage_exceeds(tmp.path(), 32 << 10));
    }
}
