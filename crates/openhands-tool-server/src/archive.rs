//! The workspace as a zip archive (the download), built in memory.
//!
//! `.git` at the root is left out, symlinks are skipped (never followed: a link to a file
//! outside must not bring that file into the archive), files are opened with `O_NOFOLLOW`,
//! and building stops with `TooLarge` as soon as the archive passes the requested size.

use crate::error::ToolError;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The archive of the workspace at `root`, at most `max_bytes` long.
pub async fn zip(root: &Path, max_bytes: u64) -> Result<Vec<u8>, ToolError> {
    let root = root.to_owned();
    tokio::task::spawn_blocking(move || build(&root, max_bytes))
        .await
        .map_err(|e| ToolError::Command(format!("zipping failed: {e}")))?
}

/// An in-memory archive that refuses to grow past its limit. After the first refusal it
/// keeps only its length and position, so that the zip writer's final flush on drop has
/// nothing to complain of (and the memory is released at once).
#[derive(Default)]
struct Bounded {
    data: Vec<u8>,
    position: u64,
    len: u64,
    max_bytes: u64,
    over: bool,
}

/// The error [`Bounded`] fails writes with.
#[derive(Debug, thiserror::Error)]
#[error("the archive is larger than the limit")]
struct OverLimit;

impl Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let end = self.position.saturating_add(buf.len() as u64);
        if !self.over && end > self.max_bytes {
            self.over = true;
            self.data = Vec::new();
            return Err(std::io::Error::other(OverLimit));
        }
        if !self.over {
            // Within the limit, so within memory: the conversions cannot fail.
            let start = usize::try_from(self.position).map_err(std::io::Error::other)?;
            let stop = start + buf.len();
            if self.data.len() < stop {
                self.data.resize(stop, 0);
            }
            self.data[start..stop].copy_from_slice(buf);
        }
        self.position = end;
        self.len = self.len.max(end);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Seek for Bounded {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        let target = match pos {
            SeekFrom::Start(offset) => Some(offset),
            SeekFrom::End(delta) => self.len.checked_add_signed(delta),
            SeekFrom::Current(delta) => self.position.checked_add_signed(delta),
        };
        self.position = target.ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "seek before the start")
        })?;
        Ok(self.position)
    }
}

fn is_over_limit(e: &std::io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<OverLimit>())
}

fn build(root: &Path, max_bytes: u64) -> Result<Vec<u8>, ToolError> {
    let too_large = || {
        ToolError::TooLarge(format!(
            "the workspace archive is larger than the limit of {max_bytes} bytes"
        ))
    };
    let zip_error = |e: zip::result::ZipError| match e {
        zip::result::ZipError::Io(io) if is_over_limit(&io) => too_large(),
        other => ToolError::Command(format!("zipping failed: {other}")),
    };
    let io_error = |path: &Path, e: std::io::Error| {
        if is_over_limit(&e) {
            too_large()
        } else {
            ToolError::io(path, e)
        }
    };
    let mut zip = zip::ZipWriter::new(Bounded {
        max_bytes,
        ..Bounded::default()
    });
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    let mut stack: Vec<PathBuf> = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .map_err(|e| io_error(&dir, e))?
            .filter_map(Result::ok)
            .collect();
        entries.sort_by_key(std::fs::DirEntry::file_name);
        for entry in entries {
            let path = entry.path();
            // The entry itself: a symlink is a symlink here, whatever it points to.
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let Ok(relative) = path.strip_prefix(root) else {
                continue;
            };
            let name = relative.to_string_lossy().into_owned();
            if name == ".git" || kind.is_symlink() {
                continue;
            }
            if kind.is_dir() {
                zip.add_directory(format!("{name}/"), options)
                    .map_err(zip_error)?;
                stack.push(path);
            } else if kind.is_file() {
                let Ok(mut source) = std::fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&path)
                else {
                    continue;
                };
                let large = source
                    .metadata()
                    .is_ok_and(|m| m.len() >= u64::from(u32::MAX));
                zip.start_file(name, options.large_file(large))
                    .map_err(zip_error)?;
                std::io::copy(&mut source, &mut zip).map_err(|e| io_error(&path, e))?;
            }
        }
    }
    let archive = zip.finish().map_err(zip_error)?;
    if archive.over {
        return Err(too_large());
    }
    Ok(archive.data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Cursor, Read};

    fn names(archive: &[u8]) -> Vec<String> {
        let mut zip = zip::ZipArchive::new(Cursor::new(archive)).expect("a zip");
        let mut names: Vec<String> = (0..zip.len())
            .map(|i| {
                let entry = zip.by_index(i).expect("entry");
                entry.name().expect("a name").into_owned()
            })
            .collect();
        names.sort();
        names
    }

    #[test]
    fn the_archive_has_the_files_without_git_or_symlinks() {
        let tmp = tempfile::tempdir().expect("dir");
        let outside = tempfile::tempdir().expect("dir");
        std::fs::write(outside.path().join("secret"), "s").expect("write");
        let root = tmp.path();
        std::fs::create_dir_all(root.join(".git/objects")).expect("mkdir");
        std::fs::create_dir(root.join("src")).expect("mkdir");
        std::fs::write(root.join("src/a.rs"), "fn a() {}").expect("write");
        std::fs::write(root.join(".env"), "X=1").expect("write");
        std::os::unix::fs::symlink(outside.path().join("secret"), root.join("link"))
            .expect("symlink");
        std::os::unix::fs::symlink(outside.path(), root.join("dirlink")).expect("symlink");
        let archive = build(root, 1 << 20).expect("zips");
        assert_eq!(names(&archive), [".env", "src/", "src/a.rs"]);
        let mut zip = zip::ZipArchive::new(Cursor::new(&archive[..])).expect("a zip");
        let mut text = String::new();
        zip.by_name("src/a.rs")
            .expect("entry")
            .read_to_string(&mut text)
            .expect("read");
        assert_eq!(text, "fn a() {}");
    }

    #[test]
    fn an_archive_over_the_limit_is_refused() {
        let tmp = tempfile::tempdir().expect("dir");
        let mut state = 12345u32;
        let noise: Vec<u8> = (0..200_000)
            .map(|_| {
                state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                (state >> 16) as u8
            })
            .collect();
        std::fs::write(tmp.path().join("noise"), noise).expect("write");
        assert!(matches!(
            build(tmp.path(), 10_000),
            Err(ToolError::TooLarge(_))
        ));
    }
}
