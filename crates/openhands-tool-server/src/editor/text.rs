//! Text helpers of the editor: line splitting, `cat -n` numbering, snippets, listings.

use crate::error::ToolError;
use std::path::Path;

/// Lines shown before and after an edit in its snippet.
const SNIPPET_LINES: usize = 4;
/// Longest `old_str` quoted in an error.
const EXCERPT_CHARS: usize = 200;

/// The lines of `text`; a final newline does not start an extra empty line.
pub(super) fn split_lines(text: &str) -> Vec<&str> {
    if text.is_empty() {
        return Vec::new();
    }
    text.strip_suffix('\n')
        .unwrap_or(text)
        .split('\n')
        .collect()
}

/// `cat -n` style numbering starting at `first`.
pub(super) fn numbered(text: &str, first: usize) -> String {
    split_lines(text)
        .iter()
        .enumerate()
        .map(|(i, line)| format!("{:>6}\t{line}", i + first))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Lines `first..=last` of `text` with [`SNIPPET_LINES`] of context, numbered.
pub(super) fn snippet(text: &str, first: usize, last: usize) -> String {
    let lines = split_lines(text);
    let start = first.saturating_sub(SNIPPET_LINES).max(1);
    let end = (last + SNIPPET_LINES).min(lines.len());
    let shown = lines.get(start - 1..end).unwrap_or_default().join("\n");
    numbered(&shown, start)
}

/// The 1-based line of byte offset `index`.
pub(super) fn line_of(text: &str, index: usize) -> usize {
    text[..index].matches('\n').count() + 1
}

/// `text` shortened for an error message.
pub(super) fn excerpt(text: &str) -> String {
    if text.chars().count() <= EXCERPT_CHARS {
        return text.to_owned();
    }
    let cut: String = text.chars().take(EXCERPT_CHARS).collect();
    format!("{cut}...")
}

/// Validates a 1-based `view_range` on a file of `len` lines; `end == -1` means the last line.
pub(super) fn check_range(start: i64, end: i64, len: usize) -> Result<(usize, usize), ToolError> {
    let invalid = |why: String| {
        ToolError::InvalidArgument(format!("invalid `view_range` [{start}, {end}]: {why}"))
    };
    let first = usize::try_from(start)
        .ok()
        .filter(|&s| s >= 1 && s <= len.max(1))
        .ok_or_else(|| invalid(format!("the start must be between 1 and {len}")))?;
    let last = if end == -1 {
        len
    } else {
        usize::try_from(end)
            .ok()
            .filter(|&e| e >= first)
            .ok_or_else(|| invalid("the end must be -1 or at least the start".into()))?
            .min(len)
    };
    Ok((first, last))
}

/// Non-hidden entries of `dir` up to two levels deep, one per line (as `show` names them),
/// directories with a `/`. Symlinked directories are listed but not entered.
pub(super) async fn list_dir(
    dir: &Path,
    show: impl Fn(&Path) -> String,
) -> Result<String, ToolError> {
    let mut out = Vec::new();
    for (entry, is_dir) in entries(dir).await? {
        out.push(format!("{}{}", show(&entry), if is_dir { "/" } else { "" }));
        if is_dir {
            for (child, child_is_dir) in entries(&entry).await? {
                out.push(format!(
                    "{}{}",
                    show(&child),
                    if child_is_dir { "/" } else { "" }
                ));
            }
        }
    }
    Ok(out.join("\n"))
}

async fn entries(dir: &Path) -> Result<Vec<(std::path::PathBuf, bool)>, ToolError> {
    let mut read = tokio::fs::read_dir(dir)
        .await
        .map_err(|e| ToolError::io(dir, e))?;
    let mut found = Vec::new();
    while let Some(entry) = read.next_entry().await.map_err(|e| ToolError::io(dir, e))? {
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let is_dir = entry
            .file_type()
            .await
            .map_err(|e| ToolError::io(entry.path(), e))?
            .is_dir();
        found.push((entry.path(), is_dir));
    }
    found.sort();
    Ok(found)
}
