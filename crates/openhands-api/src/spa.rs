//! The web app and everything no route matched.
//!
//! GET/HEAD of a file under the web directory serves it; any other GET outside `/api` and
//! `/assets` serves `index.html` (history fallback for client-side routes). Unknown `/api`
//! paths get a JSON 404 instead of the page (OpenHands answers them with the page). When the
//! web app is not built, a placeholder page says how to build it.

use crate::error::ApiError;
use crate::state::AppState;
use actix_files::NamedFile;
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, web};
use std::path::{Path, PathBuf};

/// Shown when `web/dist/index.html` does not exist.
const PLACEHOLDER: &str = include_str!("placeholder.html");

/// The default service: static files, history fallback, JSON 404s.
pub async fn fallback(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let path = req.path();
    let is_read = req.method() == Method::GET || req.method() == Method::HEAD;
    if path == "/api" || path.starts_with("/api/") || !is_read || !state.config.serve_frontend {
        return Err(ApiError::detail(StatusCode::NOT_FOUND, "Not Found"));
    }
    let web_dir = PathBuf::from(&state.config.web_dir);
    if let Some(file) = safe_join(&web_dir, path).filter(|f| f.is_file()) {
        return serve_file(&req, &file).await;
    }
    if path.starts_with("/assets/") {
        return Err(ApiError::detail(StatusCode::NOT_FOUND, "Not Found"));
    }
    let index = web_dir.join("index.html");
    if index.is_file() {
        return serve_file(&req, &index).await;
    }
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(PLACEHOLDER))
}

async fn serve_file(req: &HttpRequest, file: &Path) -> Result<HttpResponse, ApiError> {
    let owned = file.to_path_buf();
    let unreadable = |e: &dyn std::fmt::Display| {
        ApiError::internal(e, serde_json::json!({"detail": "Could not read the file"}))
    };
    let named = web::block(move || NamedFile::open(owned))
        .await
        .map_err(|e| unreadable(&e))?
        .map_err(|e| unreadable(&e))?;
    Ok(named.into_response(req))
}

/// Joins a URL path onto `root`, refusing anything that could leave it.
pub fn safe_join(root: &Path, url_path: &str) -> Option<PathBuf> {
    let mut out = root.to_path_buf();
    for segment in url_path.split('/').filter(|s| !s.is_empty()) {
        let refused = segment.starts_with('.')
            || segment.contains(['\\', '%', '\0'])
            || segment.chars().any(char::is_control);
        if refused {
            return None;
        }
        out.push(segment);
    }
    (out != root).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traversal_and_hidden_segments_are_refused() {
        let root = Path::new("/srv/web");
        assert_eq!(
            safe_join(root, "/assets/app.js"),
            Some(root.join("assets/app.js"))
        );
        assert_eq!(safe_join(root, "/../etc/passwd"), None);
        assert_eq!(safe_join(root, "/a/%2e%2e/b"), None);
        assert_eq!(safe_join(root, "/.env"), None);
        assert_eq!(safe_join(root, "/"), None);
    }
}
