//! The workspace of a conversation: list, read, upload, download, git changes.
//!
//! Every operation goes to the conversation's tool server inside its sandbox
//! (`openhands_core::tool_protocol`): this process never opens a path inside a workspace
//! nor runs `git` there, so a symlink or a `.git/config` the agent planted acts, at worst,
//! inside the sandbox the agent already controls. They work whether or not the agent is
//! running (the sandbox starts a tool server for them when needed).
//!
//! A path with a NUL character is refused here with a 422 naming the query parameter: no
//! file has such a name, and the tool server's file system call would fail on it (a 500).

use super::conversations::conversation_id_from;
use crate::error::ApiError;
use crate::error::schema::{ErrorDetail, ErrorText};
use crate::state::AppState;
use crate::user::CurrentUser;
use actix_multipart::Multipart;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use futures_util::StreamExt;
use openhands_core::tool_protocol::{
    FailureCode, FileContent, GitChange, GitDiff, Request, ToolCallError, ToolClient, WriteReply,
    ZipReply, limits,
};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

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

/// The tool server of a conversation the user owns, or 404.
pub async fn tools_of(
    state: &AppState,
    user: &CurrentUser,
    path: web::Path<String>,
) -> Result<Arc<ToolClient>, ApiError> {
    let id = conversation_id_from(path)?;
    let exists = state
        .ext
        .conversation_store
        .get(user.scope(), &id)
        .await
        .map_err(|e| ApiError::store(e, json!({"error": "Storage failed"})))?
        .is_some();
    if !exists {
        return Err(ApiError::detail(
            StatusCode::NOT_FOUND,
            format!("Conversation {id} not found"),
        ));
    }
    state
        .ext
        .sandbox
        .tools(user.scope(), &id)
        .await
        .map_err(|e| {
            ApiError::error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("The sandbox could not be started: {e}"),
            )
        })?
        .ok_or_else(|| ApiError::error(StatusCode::NOT_FOUND, "Runtime not yet initialized"))
}

/// The status a tool server's refusal maps to, with its message.
fn tool_error(e: ToolCallError) -> ApiError {
    match e {
        ToolCallError::Failed(failure) => {
            let status = match failure.code {
                FailureCode::NotFound | FailureCode::NotARepository => StatusCode::NOT_FOUND,
                FailureCode::OutsideWorkspace
                | FailureCode::InvalidPath
                | FailureCode::InvalidArgument
                | FailureCode::IsDirectory
                | FailureCode::AlreadyExists => StatusCode::BAD_REQUEST,
                FailureCode::NotText => StatusCode::UNSUPPORTED_MEDIA_TYPE,
                FailureCode::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            ApiError::error(status, failure.message)
        }
        ToolCallError::Disconnected(reason) => ApiError::error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("The sandbox is not running: {reason}"),
        ),
        ToolCallError::Protocol(reason) => ApiError::internal(
            &reason,
            json!({"error": "The sandbox's tool server misbehaved"}),
        ),
    }
}

/// An error of the workspace routes: `{"detail"}` before the sandbox is reached (an invalid
/// id, no such conversation), `{"error"}` from the sandbox (only the OpenAPI document uses
/// this type).
#[derive(ToSchema)]
#[allow(dead_code)]
#[serde(untagged)]
enum WorkspaceError {
    Detail(ErrorDetail),
    Sandbox(ErrorText),
}

/// `GET .../select-file` (only the OpenAPI document uses this type).
#[derive(ToSchema)]
#[allow(dead_code)]
struct FileCode {
    /// The file's text.
    code: String,
}

/// `GET .../git/diff` (only the OpenAPI document uses this type).
#[derive(ToSchema)]
#[allow(dead_code)]
struct FileDiff {
    /// The text now (empty when the file was deleted).
    modified: String,
    /// The text at `HEAD` (empty when the file is new).
    original: String,
}

/// `POST .../upload-files` (only the OpenAPI document uses these types).
#[derive(ToSchema)]
#[allow(dead_code)]
struct UploadResult {
    /// Where each saved file is, in the workspace.
    uploaded_files: Vec<String>,
    skipped_files: Vec<SkippedFile>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
struct SkippedFile {
    name: String,
    reason: String,
}

/// The multipart form of `POST .../upload-files` (only the OpenAPI document uses this type).
#[derive(ToSchema)]
#[allow(dead_code)]
struct UploadForm {
    #[schema(value_type = Vec<String>, format = Binary)]
    files: Vec<Vec<u8>>,
}

async fn call<T: DeserializeOwned>(tools: &ToolClient, request: Request) -> Result<T, ApiError> {
    tools.call(request).await.map_err(tool_error)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListFilesQuery {
    /// Directory relative to the workspace.
    pub path: Option<String>,
}

/// Entries of a workspace directory (directories end with `/`), `.gitignore`d ones left out.
#[utoipa::path(get, path = "/api/conversations/{conversation_id}/list-files", tag = "files",
    params(("conversation_id" = String, Path), ListFilesQuery), security(("user" = [])), responses(
    (status = 200, body = Vec<String>),
    (status = 400, description = "Invalid conversation id or path", body = WorkspaceError),
    (status = 404, description = "No such conversation or file", body = WorkspaceError),
    (status = 503, description = "The sandbox could not be started or stopped answering, or storage is unavailable", body = WorkspaceError)))]
pub async fn list_files(
    user: CurrentUser,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<ListFilesQuery>,
) -> Result<HttpResponse, ApiError> {
    let dir = query.path.clone().unwrap_or_default();
    ApiError::refuse_nul("query", "path", &dir)?;
    let tools = tools_of(&state, &user, path).await?;
    let request = Request::ListFiles { path: dir };
    let entries: Vec<String> = call(&tools, request).await?;
    Ok(HttpResponse::Ok().json(entries))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SelectFileQuery {
    /// File relative to the workspace.
    pub file: String,
}

/// The text of a workspace file as `{"code": ...}`.
#[utoipa::path(get, path = "/api/conversations/{conversation_id}/select-file", tag = "files",
    params(("conversation_id" = String, Path), SelectFileQuery), security(("user" = [])), responses(
    (status = 200, body = FileCode),
    (status = 413, description = "Larger than 8 MiB", body = ErrorText),
    (status = 415, description = "Binary file", body = ErrorText),
    (status = 400, description = "Invalid conversation id or path", body = WorkspaceError),
    (status = 404, description = "No such conversation or file", body = WorkspaceError),
    (status = 503, description = "The sandbox could not be started or stopped answering, or storage is unavailable", body = WorkspaceError)))]
pub async fn select_file(
    user: CurrentUser,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<SelectFileQuery>,
) -> Result<HttpResponse, ApiError> {
    ApiError::refuse_nul("query", "file", &query.file)?;
    let tools = tools_of(&state, &user, path).await?;
    let request = Request::ReadFile {
        path: query.file.clone(),
        max_bytes: limits::MAX_READ_BYTES,
    };
    let content: FileContent = call(&tools, request).await?;
    let code = String::from_utf8(content.data).map_err(|_| {
        ApiError::error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Unable to open binary file: {}", query.file),
        )
    })?;
    Ok(HttpResponse::Ok().json(json!({ "code": code })))
}

/// The workspace as `workspace.zip` (the `.git` directory left out).
#[utoipa::path(get, path = "/api/conversations/{conversation_id}/zip-directory", tag = "files",
    params(("conversation_id" = String, Path)), security(("user" = [])), responses(
    (status = 200, description = "`workspace.zip`", body = Vec<u8>, content_type = "application/zip"),
    (status = 413, description = "The archive is larger than 40 MiB", body = ErrorText),
    (status = 400, description = "Invalid conversation id or path", body = WorkspaceError),
    (status = 404, description = "No such conversation or file", body = WorkspaceError),
    (status = 503, description = "The sandbox could not be started or stopped answering, or storage is unavailable", body = WorkspaceError)))]
pub async fn zip_directory(
    user: CurrentUser,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let tools = tools_of(&state, &user, path).await?;
    let request = Request::Zip {
        max_bytes: limits::MAX_ZIP_BYTES,
    };
    let archive: ZipReply = call(&tools, request).await?;
    Ok(HttpResponse::Ok()
        .content_type("application/zip")
        .insert_header((
            actix_web::http::header::CONTENT_DISPOSITION,
            "attachment; filename=\"workspace.zip\"",
        ))
        .body(archive.data))
}

/// Saves uploaded files (multipart field `files`) at the workspace root.
#[utoipa::path(post, path = "/api/conversations/{conversation_id}/upload-files", tag = "files",
    params(("conversation_id" = String, Path)), security(("user" = [])),
    request_body(content = UploadForm, content_type = "multipart/form-data"), responses(
    (status = 200, body = UploadResult,
    example = json!({"uploaded_files": ["/workspace/notes.txt"], "skipped_files": [{"name": "x", "reason": "..."}]})),
    (status = 413, description = "The files are larger than the limit", body = ErrorDetail),
    (status = 400, description = "Invalid conversation id or path", body = WorkspaceError),
    (status = 404, description = "No such conversation or file", body = WorkspaceError),
    (status = 503, description = "The sandbox could not be started or stopped answering, or storage is unavailable", body = WorkspaceError)))]
pub async fn upload_files(
    user: CurrentUser,
    state: web::Data<AppState>,
    path: web::Path<String>,
    mut payload: Multipart,
) -> Result<HttpResponse, ApiError> {
    let tools = tools_of(&state, &user, path).await?;
    let limit = state
        .config
        .max_body_bytes
        .min(usize::try_from(limits::MAX_UPLOAD_BYTES).unwrap_or(usize::MAX));
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
        let request = Request::WriteFile {
            name: name.clone(),
            data: bytes,
        };
        match tools.call::<WriteReply>(request).await {
            Ok(written) => uploaded.push(written.path),
            Err(ToolCallError::Failed(failure)) => {
                skipped.push(json!({"name": name, "reason": failure.message}))
            }
            Err(e) => return Err(tool_error(e)),
        }
    }
    Ok(HttpResponse::Ok().json(json!({"uploaded_files": uploaded, "skipped_files": skipped})))
}

/// One changed file as `git/changes` lists it (the tool protocol's `GitChange`); only the
/// OpenAPI document uses this type.
#[derive(ToSchema)]
#[schema(as = GitChange)]
#[allow(dead_code)]
struct GitChangeSchema {
    /// `A` (added or untracked), `M`, `D`, `R` or `U`.
    status: String,
    /// Relative to the workspace.
    path: String,
}

/// Changed files against `HEAD`, untracked ones as added; 404 when the workspace holds no
/// repository (none was cloned, or the clone failed and left it empty).
#[utoipa::path(get, path = "/api/conversations/{conversation_id}/git/changes", tag = "files",
    params(("conversation_id" = String, Path)), security(("user" = [])), responses(
    (status = 200, body = Vec<GitChangeSchema>, example = json!([{"status": "M", "path": "src/main.rs"}])),
    (status = 400, description = "Invalid conversation id or path", body = WorkspaceError),
    (status = 404, description = "No such conversation or file", body = WorkspaceError),
    (status = 503, description = "The sandbox could not be started or stopped answering, or storage is unavailable", body = WorkspaceError)))]
pub async fn git_changes(
    user: CurrentUser,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let tools = tools_of(&state, &user, path).await?;
    let changes: Vec<GitChange> = call(&tools, Request::GitChanges).await?;
    Ok(HttpResponse::Ok().json(changes))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GitDiffQuery {
    /// File relative to the workspace.
    pub path: String,
}

/// A file's text now (`modified`) and at `HEAD` (`original`).
#[utoipa::path(get, path = "/api/conversations/{conversation_id}/git/diff", tag = "files",
    params(("conversation_id" = String, Path), GitDiffQuery), security(("user" = [])), responses(
    (status = 200, body = FileDiff, example = json!({"modified": "new text", "original": "old text"})),
    (status = 413, description = "Larger than the limit", body = ErrorText),
    (status = 415, description = "Binary file", body = ErrorText),
    (status = 400, description = "Invalid conversation id or path", body = WorkspaceError),
    (status = 404, description = "No such conversation or file", body = WorkspaceError),
    (status = 503, description = "The sandbox could not be started or stopped answering, or storage is unavailable", body = WorkspaceError)))]
pub async fn git_diff(
    user: CurrentUser,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<GitDiffQuery>,
) -> Result<HttpResponse, ApiError> {
    ApiError::refuse_nul("query", "path", &query.path)?;
    let tools = tools_of(&state, &user, path).await?;
    let request = Request::GitDiff {
        path: query.path.clone(),
    };
    let diff: GitDiff = call(&tools, request).await?;
    Ok(HttpResponse::Ok().json(diff))
}
