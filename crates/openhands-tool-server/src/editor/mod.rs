//! The `str_replace`-style file editor (as in OpenHands and Anthropic's text editor tool).
//!
//! Commands: `view` (numbered lines, or a directory listing two levels deep without hidden
//! entries), `create` (never overwrites), `str_replace` (the old text must occur exactly
//! once), `insert` (after a line; 0 = top) and `undo_edit` (per-file history, kept per
//! connection; undoing a `create` removes the file). Every path first goes through the
//! workspace confinement of [`crate::workspace`]; messages show paths as the tools see them.

mod text;

use crate::error::ToolError;
use crate::output::{MAX_OUTPUT_CHARS, truncate_middle};
use crate::workspace::Workspace;
use openhands_core::tool_protocol::{EditorCommand, EditorOutcome};
use std::collections::HashMap;
use std::path::PathBuf;
use text::{numbered, snippet};

/// A resolved path: where it is and how it is shown.
struct Target {
    real: PathBuf,
    shown: String,
}

/// The editor of one workspace, with its undo history.
#[derive(Debug)]
pub struct FileEditor {
    workspace: Workspace,
    /// Per file, the contents before each edit (`None`: the file did not exist).
    history: HashMap<PathBuf, Vec<Option<String>>>,
}

impl FileEditor {
    /// An editor confined to `workspace`.
    pub fn new(workspace: Workspace) -> Self {
        Self {
            workspace,
            history: HashMap::new(),
        }
    }

    /// Runs `cmd`.
    pub async fn execute(&mut self, cmd: EditorCommand) -> Result<EditorOutcome, ToolError> {
        let real = self.workspace.resolve(cmd.path())?;
        let path = &Target {
            shown: self.workspace.show(&real),
            real,
        };
        match cmd {
            EditorCommand::View { view_range, .. } => view(&self.workspace, path, view_range).await,
            EditorCommand::Create { file_text, .. } => self.create(path, file_text).await,
            EditorCommand::StrReplace {
                old_str, new_str, ..
            } => self.str_replace(path, &old_str, &new_str).await,
            EditorCommand::Insert {
                insert_line,
                new_str,
                ..
            } => self.insert(path, insert_line, &new_str).await,
            EditorCommand::UndoEdit { .. } => self.undo(path).await,
        }
    }

    async fn create(&mut self, path: &Target, text: String) -> Result<EditorOutcome, ToolError> {
        if tokio::fs::symlink_metadata(&path.real).await.is_ok() {
            return Err(ToolError::AlreadyExists {
                path: path.shown.clone(),
            });
        }
        if let Some(parent) = path.real.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| ToolError::io(self.workspace.show(parent), e))?;
        }
        write(path, &text).await?;
        self.history
            .entry(path.real.clone())
            .or_default()
            .push(None);
        Ok(EditorOutcome {
            path: path.shown.clone(),
            output: format!("File created successfully at: {}", path.shown),
            diff: Some(diff(path, "", &text)),
            old_content: None,
            new_content: Some(text),
            prev_exist: false,
        })
    }

    async fn str_replace(
        &mut self,
        path: &Target,
        old_str: &str,
        new_str: &str,
    ) -> Result<EditorOutcome, ToolError> {
        if old_str.is_empty() {
            return Err(ToolError::InvalidArgument(
                "`old_str` must not be empty for `str_replace`".into(),
            ));
        }
        let old = read_file(path).await?;
        let starts: Vec<usize> = old.match_indices(old_str).map(|(i, _)| i).collect();
        let shown = text::excerpt(old_str);
        let start = match starts.as_slice() {
            [] => {
                return Err(ToolError::NoMatch {
                    path: path.shown.clone(),
                    old_str: shown,
                });
            }
            [one] => *one,
            many => {
                let lines: Vec<String> = many
                    .iter()
                    .map(|&i| text::line_of(&old, i).to_string())
                    .collect();
                return Err(ToolError::MultipleMatches {
                    path: path.shown.clone(),
                    old_str: shown,
                    count: many.len(),
                    lines: lines.join(", "),
                });
            }
        };
        let new = format!(
            "{}{new_str}{}",
            &old[..start],
            &old[start + old_str.len()..]
        );
        let first_line = text::line_of(&old, start);
        let last_line = first_line + new_str.matches('\n').count();
        self.commit(path, old, new, first_line, last_line).await
    }

    async fn insert(
        &mut self,
        path: &Target,
        insert_line: i64,
        new_str: &str,
    ) -> Result<EditorOutcome, ToolError> {
        let old = read_file(path).await?;
        let lines = text::split_lines(&old);
        let at = usize::try_from(insert_line)
            .ok()
            .filter(|&n| n <= lines.len())
            .ok_or_else(|| {
                ToolError::InvalidArgument(format!(
                    "`insert_line` {insert_line} is out of range: it must be between 0 and {} (the number of lines of {})",
                    lines.len(),
                    path.shown
                ))
            })?;
        let inserted = text::split_lines(new_str);
        let mut all: Vec<&str> = Vec::with_capacity(lines.len() + inserted.len());
        all.extend_from_slice(&lines[..at]);
        all.extend_from_slice(&inserted);
        all.extend_from_slice(&lines[at..]);
        let mut new = all.join("\n");
        if old.ends_with('\n') || old.is_empty() {
            new.push('\n');
        }
        let last_line = at + inserted.len().max(1);
        self.commit(path, old, new, at + 1, last_line).await
    }

    /// Writes `new`, records `old` for undo, and describes the change around the given lines.
    async fn commit(
        &mut self,
        path: &Target,
        old: String,
        new: String,
        first_line: usize,
        last_line: usize,
    ) -> Result<EditorOutcome, ToolError> {
        write(path, &new).await?;
        self.history
            .entry(path.real.clone())
            .or_default()
            .push(Some(old.clone()));
        let output = format!(
            "The file {p} has been edited. Here's the result of running `cat -n` on a snippet of {p}:\n{}\nReview the changes and make sure they are as expected. Edit the file again if necessary.",
            snippet(&new, first_line, last_line),
            p = path.shown
        );
        Ok(EditorOutcome {
            path: path.shown.clone(),
            output,
            diff: Some(diff(path, &old, &new)),
            old_content: Some(old),
            new_content: Some(new),
            prev_exist: true,
        })
    }

    async fn undo(&mut self, path: &Target) -> Result<EditorOutcome, ToolError> {
        let no_history = || ToolError::NoHistory {
            path: path.shown.clone(),
        };
        let previous = self
            .history
            .get_mut(&path.real)
            .and_then(Vec::pop)
            .ok_or_else(no_history)?;
        let current = read_file(path).await.ok();
        let output = match &previous {
            Some(content) => {
                write(path, content).await?;
                format!(
                    "Last edit to {p} undone successfully. Here's the result of running `cat -n` on {p}:\n{}",
                    numbered(content, 1),
                    p = path.shown
                )
            }
            None => {
                tokio::fs::remove_file(&path.real)
                    .await
                    .map_err(|e| ToolError::io(&path.shown, e))?;
                format!(
                    "Last edit to {} undone successfully: the file was created by it and has been removed.",
                    path.shown
                )
            }
        };
        Ok(EditorOutcome {
            path: path.shown.clone(),
            output,
            diff: Some(diff(
                path,
                current.as_deref().unwrap_or(""),
                previous.as_deref().unwrap_or(""),
            )),
            prev_exist: current.is_some(),
            old_content: current,
            new_content: previous,
        })
    }
}

async fn view(
    workspace: &Workspace,
    path: &Target,
    range: Option<(i64, i64)>,
) -> Result<EditorOutcome, ToolError> {
    let meta = tokio::fs::metadata(&path.real)
        .await
        .map_err(|e| not_found_or_io(path, e))?;
    let output = if meta.is_dir() {
        if range.is_some() {
            return Err(ToolError::InvalidArgument(
                "`view_range` is not allowed when `path` is a directory".into(),
            ));
        }
        let listing = text::list_dir(&path.real, |p| workspace.show(p)).await?;
        format!(
            "Here's the files and directories up to 2 levels deep in {}, excluding hidden items:\n{listing}",
            path.shown
        )
    } else {
        let content = read_file(path).await?;
        let lines = text::split_lines(&content);
        let (start, end) = match range {
            None => (1, lines.len()),
            Some((start, end)) => text::check_range(start, end, lines.len())?,
        };
        let selected = lines
            .get(start.saturating_sub(1)..end)
            .unwrap_or_default()
            .join("\n");
        format!(
            "Here's the result of running `cat -n` on {}:\n{}",
            path.shown,
            numbered(&selected, start)
        )
    };
    Ok(EditorOutcome {
        path: path.shown.clone(),
        output: truncate_middle(&output, MAX_OUTPUT_CHARS, 0).0,
        old_content: None,
        new_content: None,
        prev_exist: true,
        diff: None,
    })
}

fn not_found_or_io(path: &Target, e: std::io::Error) -> ToolError {
    if e.kind() == std::io::ErrorKind::NotFound {
        ToolError::NotFound {
            path: path.shown.clone(),
        }
    } else {
        ToolError::io(&path.shown, e)
    }
}

async fn read_file(path: &Target) -> Result<String, ToolError> {
    let meta = tokio::fs::metadata(&path.real)
        .await
        .map_err(|e| not_found_or_io(path, e))?;
    if meta.is_dir() {
        return Err(ToolError::IsDirectory {
            path: path.shown.clone(),
        });
    }
    let bytes = tokio::fs::read(&path.real)
        .await
        .map_err(|e| ToolError::io(&path.shown, e))?;
    String::from_utf8(bytes).map_err(|_| ToolError::NotText {
        path: path.shown.clone(),
    })
}

async fn write(path: &Target, content: &str) -> Result<(), ToolError> {
    tokio::fs::write(&path.real, content)
        .await
        .map_err(|e| ToolError::io(&path.shown, e))
}

fn diff(path: &Target, old: &str, new: &str) -> String {
    let name = &path.shown;
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(name, name)
        .to_string()
}

#[cfg(test)]
mod tests;
