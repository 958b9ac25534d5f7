//! The workspace of a conversation: list, read, upload, download, git changes.
//!
//! These read the workspace directly through the sandbox, so they work whether or not the
//! agent is running (OpenHands needs a running runtime). Every user path goes through
//! [`crate::workspace_path::resolve`].

use super::conversations::conversation_id_from;
use crate::error::ApiError;
use crate::state::AppState;
use crate::user::CurrentUser;
use crate::workspace_path;
use actix_multipart::Multipart;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::json;
use std::path::{Path, PathBuf};
use utoipa::IntoParams;

/// Entries never listed (OpenHands' list).
const HIDDEN_ENTRIES: [&str; 6] = [
    ".git/",
    ".DS_Store",
    "node_modules/",
    "__pycache__/",
    "lost+found/",
    ".vscode/",
];

pub fn configure(cfg: &mut web::ServiceConfig) {
    let base = "/api/conversations/{conversation_id}";
    cfg.route(&format!("{base}/list-files"), web::get().to(list_files))
        .route(&format!("{base}/select-file"), web::get().to(select_file))
        .route(
            &format!("{base}/zip-directory"),
            web::get().to(zip_directory),
        )
        .route(
            &format!("{base}/upload-files"),
            web::post().to(upload_files),
        )
        .route(&format!("{base}/git/changes"), web::get().to(git_changes))
        .route(&format!("{base}/git/diff"), web::get().to(git_diff));
}

/// The workspace of a conversation the user owns, or 404.
pub async fn workspace_of(
    state: &AppState,
    user: &CurrentUser,
    path: web::Path<String>,
) -> Result<PathBuf, ApiError> {
    let id = conversation_id_from(path)?;
    let not_found = || {
        ApiError::detail(
            StatusCode::NOT_FOUND,
            format!("Conversation {id} not found"),
        )
    };
    let exists = state
        .ext
        .conversation_store
        .get(user.scope(), &id)
        .await
        .map_err(|e| ApiError::internal(&e, json!({"error": "Storage failed"})))?
        .is_some();
    if !exists {
        return Err(not_found());
    }
    state
        .ext
        .sandbox
        .workspace(user.scope(), &id)
        .await
        .map_err(|e| ApiError::internal(&e, json!({"error": "Sandbox failed"})))?
        .ok_or_else(|| ApiError::error(StatusCode::NOT_FOUND, "Runtime not yet initialized"))
}

fn resolve(root: &Path, user_path: &str) -> Result<PathBuf, ApiError> {
    workspace_path::resolve(root, user_path)
        .map_err(|e| ApiError::error(StatusCode::BAD_REQUEST, e.to_string()))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ListFilesQuery {
    /// Directory relative to the workspace.
    pub path: Option<String>,
}

/// Entries of a workspace directory (directories end with `/`), `.gitignore`d ones left out.
#[utoipa::path(get, path = "/api/conversations/{conversation_id}/list-files", tag = "files",
    params(("conversation_id" = String, Path), ListFilesQuery),
    responses((status = 200, body = Vec<String>), (status = 400, description = "Path outside the workspace"), (status = 404)))]
pub async fn list_files(
    user: CurrentUser,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<ListFilesQuery>,
) -> Result<HttpResponse, ApiError> {
    let root = workspace_of(&state, &user, path).await?;
    let prefix = query.path.clone().unwrap_or_default();
    let dir = resolve(&root, &prefix)?;
    let listing_error = |e: &dyn std::fmt::Display| {
        ApiError::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("Error listing files: {e}"),
        )
    };
    let mut read = tokio::fs::read_dir(&dir)
        .await
        .map_err(|e| listing_error(&e))?;
    let mut entries = Vec::new();
    while let Some(entry) = read.next_entry().await.map_err(|e| listing_error(&e))? {
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_dir = entry.file_type().await.map(|t| t.is_dir()).unwrap_or(false);
        let shown = if is_dir { format!("{name}/") } else { name };
        if HIDDEN_ENTRIES.contains(&shown.as_str()) {
            continue;
        }
        let prefix = prefix.trim_matches('/');
        entries.push(if prefix.is_empty() {
            shown
        } else {
            format!("{prefix}/{shown}")
        });
    }
    let ignored = git_ignored(&root, &entries).await;
    entries.retain(|e| !ignored.contains(e.trim_end_matches('/')));
    entries.sort_by(|a, b| (!a.ends_with('/'), a).cmp(&(!b.ends_with('/'), b)));
    Ok(HttpResponse::Ok().json(entries))
}

/// The entries git ignores (none when the workspace is not a repository).
async fn git_ignored(root: &Path, entries: &[String]) -> std::collections::HashSet<String> {
    use tokio::io::AsyncWriteExt;
    if entries.is_empty() || !root.join(".git").exists() {
        return Default::default();
    }
    let child = tokio::process::Command::new("git")
        .args(["check-ignore", "--stdin"])
        .current_dir(root)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn();
    let Ok(mut child) = child else {
        return Default::default();
    };
    if let Some(mut stdin) = child.stdin.take() {
        let input: String = entries
            .iter()
            .map(|e| format!("{}\n", e.trim_end_matches('/')))
            .collect();
        let _ = stdin.write_all(input.as_bytes()).await;
    }
    match child.wait_with_output().await {
        Ok(output) => String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(str::to_owned)
            .collect(),
        Err(_) => Default::default(),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct SelectFileQuery {
    /// File relative to the workspace.
    pub file: String,
}

/// The text of a workspace file as `{"code": ...}`.
#[utoipa::path(get, path = "/api/conversations/{conversation_id}/select-file", tag = "files",
    params(("conversation_id" = String, Path), SelectFileQuery),
    responses((status = 200, body = Object), (status = 415, description = "Binary file"), (status = 404), (status = 400)))]
pub async fn select_file(
    user: CurrentUser,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<SelectFileQuery>,
) -> Result<HttpResponse, ApiError> {
    let root = workspace_of(&state, &user, path).await?;
    let file = resolve(&root, &query.file)?;
    let bytes = tokio::fs::read(&file).await.map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ApiError::error(
            StatusCode::NOT_FOUND,
            format!("File not found: {}", query.file),
        ),
        _ => ApiError::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("Error opening file: {e}"),
        ),
    })?;
    let code = String::from_utf8(bytes).map_err(|_| {
        ApiError::error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Unable to open binary file: {}", query.file),
        )
    })?;
    Ok(HttpResponse::Ok().json(json!({ "code": code })))
}

/// The workspace as `workspace.zip` (the `.git` directory left out).
#[utoipa::path(get, path = "/api/conversations/{conversation_id}/zip-directory", tag = "files",
    params(("conversation_id" = String, Path)), responses((status = 200, content_type = "application/zip"), (status = 404)))]
pub async fn zip_directory(
    req: HttpRequest,
    user: CurrentUser,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let root = workspace_of(&state, &user, path).await?;
    let tmp_dir = state.config.data_dir().join("tmp");
    let archive = web::block(move || write_zip(&root, &tmp_dir))
        .await
        .map_err(|e| ApiError::internal(&e, json!({"detail": "Failed to zip workspace"})))?
        .map_err(|e| ApiError::internal(&e, json!({"detail": "Failed to zip workspace"})))?;
    let file = actix_files::NamedFile::open(&archive)
        .map_err(|e| ApiError::internal(&e, json!({"detail": "Failed to zip workspace"})))?;
    // The open handle keeps the data readable after the name is gone.
    let _ = std::fs::remove_file(&archive);
    // The `.zip` extension gives the `application/zip` content type.
    Ok(file
        .set_content_disposition(actix_web::http::header::ContentDisposition::attachment(
            "workspace.zip",
        ))
        .into_response(&req))
}

fn write_zip(root: &Path, tmp_dir: &Path) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(tmp_dir)?;
    let archive = tmp_dir.join(format!("workspace-{}.zip", uuid::Uuid::new_v4().simple()));
    let file = std::fs::File::create(&archive)?;
    let mut zip = zip::ZipWriter::new(file);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let path = entry.path();
            let kind = entry.file_type()?;
            let relative = path.strip_prefix(root).map_err(std::io::Error::other)?;
            let name = relative.to_string_lossy().replace('\\', "/");
            if name == ".git" {
                continue;
            }
            if kind.is_dir() {
                zip.add_directory(format!("{name}/"), options)
                    .map_err(std::io::Error::other)?;
                stack.push(path);
            } else if kind.is_file() {
                zip.start_file(name, options)
                    .map_err(std::io::Error::other)?;
                let mut source = std::fs::File::open(&path)?;
                std::io::copy(&mut source, &mut zip)?;
            }
        }
    }
    zip.finish().map_err(std::io::Error::other)?;
    Ok(archive)
}

/// Saves uploaded files (multipart field `files`) at the workspace root.
#[utoipa::path(post, path = "/api/conversations/{conversation_id}/upload-files", tag = "files",
    params(("conversation_id" = String, Path)), responses((status = 200, body = Object,
    example = json!({"uploaded_files": ["/workspace/notes.txt"], "skipped_files": [{"name": "x", "reason": "..."}]}))))]
pub async fn upload_files(
    user: CurrentUser,
    state: web::Data<AppState>,
    path: web::Path<String>,
    mut payload: Multipart,
) -> Result<HttpResponse, ApiError> {
    let root = workspace_of(&state, &user, path).await?;
    let limit = state.config.max_body_bytes;
    let mut uploaded = Vec::new();
    let mut skipped = Vec::new();
    let mut total = 0usize;
    while let Some(field) = payload.next().await {
        let mut field = field.map_err(|e| {
            ApiError::detail(StatusCode::BAD_REQUEST, format!("Invalid upload: {e}"))
        })?;
        let name = field
            .content_disposition()
            .and_then(|d| d.get_filename())
            .map(str::to_owned)
            .unwrap_or_default();
        let mut bytes = Vec::new();
        while let Some(chunk) = field.next().await {
            let chunk = chunk.map_err(|e| {
                ApiError::detail(StatusCode::BAD_REQUEST, format!("Invalid upload: {e}"))
            })?;
            total += chunk.len();
            if total > limit {
                return Err(ApiError::detail(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("Request body is larger than the limit of {limit} bytes"),
                ));
            }
            bytes.extend_from_slice(&chunk);
        }
        if field.name() != Some("files") {
            continue;
        }
        let plain = Path::new(&name)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned());
        let target = match plain.filter(|n| !n.is_empty() && *n == name) {
            Some(file_name) => resolve(&root, &file_name),
            None => Err(ApiError::detail(StatusCode::BAD_REQUEST, "bad name")),
        };
        match target {
            Ok(target) => match tokio::fs::write(&target, &bytes).await {
                Ok(()) => uploaded.push(target.display().to_string()),
                Err(e) => skipped.push(json!({"name": name, "reason": format!("could not be written: {e}")})),
            },
            Err(_) => skipped.push(json!({"name": name, "reason": "the file name must be a plain name inside the workspace"})),
        }
    }
    Ok(HttpResponse::Ok().json(json!({"uploaded_files": uploaded, "skipped_files": skipped})))
}

async fn git(root: &Path, args: &[&str]) -> Result<std::process::Output, ApiError> {
    tokio::process::Command::new("git")
        .args(args)
        .current_dir(root)
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| {
            ApiError::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("git failed: {e}"),
            )
        })
}

fn require_repo(root: &Path) -> Result<(), ApiError> {
    if root.join(".git").exists() {
        Ok(())
    } else {
        Err(ApiError::error(
            StatusCode::NOT_FOUND,
            "Not a git repository",
        ))
    }
}

/// Changed files against `HEAD`, untracked ones as added.
#[utoipa::path(get, path = "/api/conversations/{conversation_id}/git/changes", tag = "files",
    params(("conversation_id" = String, Path)), responses((status = 200, body = Object,
    example = json!([{"status": "M", "path": "src/main.rs"}])), (status = 404, description = "Not a git repository")))]
pub async fn git_changes(
    user: CurrentUser,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let root = workspace_of(&state, &user, path).await?;
    require_repo(&root)?;
    let output = git(
        &root,
        &["status", "--porcelain=v1", "--untracked-files=all"],
    )
    .await?;
    if !output.status.success() {
        return Err(ApiError::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        ));
    }
    let changes: Vec<serde_json::Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(parse_porcelain_line)
        .map(|(status, path)| json!({"status": status, "path": path}))
        .collect();
    Ok(HttpResponse::Ok().json(changes))
}

/// `(status letter, path)` of one `git status --porcelain=v1` line.
pub fn parse_porcelain_line(line: &str) -> Option<(&'static str, String)> {
    if line.len() < 4 {
        return None;
    }
    let (code, path) = line.split_at(3);
    let code = code.trim();
    let status = match code {
        "??" | "A" | "AM" => "A",
        c if c.contains('D') => "D",
        c if c.starts_with('R') => "R",
        c if c.contains('U') => "U",
        _ => "M",
    };
    let path = path
        .rsplit(" -> ")
        .next()
        .unwrap_or(path)
        .trim_matches('"')
        .to_owned();
    Some((status, path))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct GitDiffQuery {
    /// File relative to the workspace.
    pub path: String,
}

/// A file's text now (`modified`) and at `HEAD` (`original`).
#[utoipa::path(get, path = "/api/conversations/{conversation_id}/git/diff", tag = "files",
    params(("conversation_id" = String, Path), GitDiffQuery), responses((status = 200, body = Object,
    example = json!({"modified": "new text", "original": "old text"})), (status = 404), (status = 400)))]
pub async fn git_diff(
    user: CurrentUser,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<GitDiffQuery>,
) -> Result<HttpResponse, ApiError> {
    let root = workspace_of(&state, &user, path).await?;
    require_repo(&root)?;
    let file = resolve(&root, &query.path)?;
    let canonical_root = root.canonicalize().unwrap_or(root.clone());
    let relative = file
        .strip_prefix(&canonical_root)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|_| query.path.clone());
    let modified = tokio::fs::read_to_string(&file).await.unwrap_or_default();
    let spec = format!("HEAD:{relative}");
    let output = git(&root, &["show", spec.as_str()]).await?;
    let original = if output.status.success() {
        String::from_utf8_lossy(&output.stdout).into_owned()
    } else {
        String::new()
    };
    Ok(HttpResponse::Ok().json(json!({"modified": modified, "original": original})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn porcelain_lines_map_to_openhands_letters() {
        assert_eq!(
            parse_porcelain_line("?? new.txt"),
            Some(("A", "new.txt".to_owned()))
        );
        assert_eq!(
            parse_porcelain_line(" M src/a.rs"),
            Some(("M", "src/a.rs".to_owned()))
        );
        assert_eq!(
            parse_porcelain_line(" D gone.txt"),
            Some(("D", "gone.txt".to_owned()))
        );
        assert_eq!(
            parse_porcelain_line("R  old -> new"),
            Some(("R", "new".to_owned()))
        );
    }
}
