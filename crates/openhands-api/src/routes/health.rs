//! `/alive`, `/health`, `/server_info` (no auth, as OpenHands) and `/ready` (ours).

use crate::state::AppState;
use crate::system_stats;
use actix_web::{HttpResponse, web};
use openhands_core::StoreError;
use openhands_core::readiness::ReadinessChecks;
use openhands_core::sandbox_host::{Isolation, UNISOLATED_WARNING};
use serde_json::{Map, Value, json};
use std::time::Duration;

/// How long `/ready` waits for each store.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/alive", web::get().to(alive))
        .route("/health", web::get().to(health))
        .route("/server_info", web::get().to(server_info))
        .route("/ready", web::get().to(ready));
}

/// Liveness.
#[utoipa::path(get, path = "/alive", tag = "health",
    responses((status = 200, description = "The process answers", example = json!({"status": "ok"}))))]
pub async fn alive() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(r#"{"status":"ok"}"#)
}

/// Health, as the JSON string `"OK"`.
#[utoipa::path(get, path = "/health", tag = "health", responses((status = 200, body = String)))]
pub async fn health() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(r#""OK""#)
}

/// Uptime, idle time and resource use of the server process.
#[utoipa::path(get, path = "/server_info", tag = "health", responses((status = 200, body = Object)))]
pub async fn server_info(state: web::Data<AppState>) -> HttpResponse {
    let (rss, vms) = system_stats::memory_bytes();
    let total_memory = system_stats::total_memory_bytes();
    let memory_percent = if total_memory > 0 {
        rss as f64 / total_memory as f64 * 100.0
    } else {
        0.0
    };
    let (disk_total, disk_used, disk_free) =
        system_stats::disk_bytes(&state.config.data_dir()).unwrap_or((0, 0, 0));
    let disk_percent = if disk_total > 0 {
        disk_used as f64 / disk_total as f64 * 100.0
    } else {
        0.0
    };
    let (read_bytes, write_bytes) = system_stats::io_bytes();
    HttpResponse::Ok().json(json!({
        "uptime": state.started.elapsed().as_secs_f64(),
        "idle_time": state.idle_seconds(),
        "resources": {
            "cpu_percent": state.cpu_sampler.cpu_percent(),
            "memory": {"rss": rss, "vms": vms, "percent": memory_percent},
            "disk": {"total": disk_total, "used": disk_used, "free": disk_free, "percent": disk_percent},
            "io": {"read_bytes": read_bytes, "write_bytes": write_bytes},
        }
    }))
}

/// Readiness: 200 when every store and every backend a plugin registered a check for
/// (Redis in SaaS mode) answers, else 503 naming what failed.
#[utoipa::path(get, path = "/ready", tag = "health", responses(
    (status = 200, description = "Every store and backend answers", body = Object),
    (status = 503, description = "Some store or backend failed; `failed` names it", body = Object)))]
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let ext = &state.ext;
    let (settings, secrets, conversations, events) = tokio::join!(
        with_timeout(ext.settings_store.health()),
        with_timeout(ext.secrets_store.health()),
        with_timeout(ext.conversation_store.health()),
        with_timeout(ext.event_store.health()),
    );
    let registered = ReadinessChecks::of(&ext.shared).await.all();
    let backends =
        futures_util::future::join_all(registered.iter().map(|(name, check)| async move {
            match tokio::time::timeout(READY_TIMEOUT, check()).await {
                Ok(result) => (name.clone(), result),
                Err(_) => (
                    name.clone(),
                    Err(format!("no answer within {} s", READY_TIMEOUT.as_secs())),
                ),
            }
        }))
        .await;
    let mut checks = Map::new();
    let mut failed = Map::new();
    let stores = [
        ("settings_store".to_owned(), settings),
        ("secrets_store".to_owned(), secrets),
        ("conversation_store".to_owned(), conversations),
        ("event_store".to_owned(), events),
    ];
    for (name, result) in stores.into_iter().chain(backends) {
        match result {
            Ok(()) => {
                checks.insert(name, Value::from("ok"));
            }
            Err(err) => {
                tracing::warn!(check = %name, error = %err, "readiness check failed");
                checks.insert(name.clone(), Value::from("error"));
                failed.insert(name, Value::from(err));
            }
        }
    }
    let mut warnings = ext.sandbox.warnings();
    if ext.app_mode == "saas" && ext.sandbox.isolation() == Isolation::None {
        warnings.push(UNISOLATED_WARNING.to_owned());
    }
    let mut body = if failed.is_empty() {
        json!({"status": "ok", "checks": checks})
    } else {
        json!({"status": "error", "checks": checks, "failed": failed})
    };
    if !warnings.is_empty() {
        body["warnings"] = json!(warnings);
    }
    if failed.is_empty() {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

async fn with_timeout(
    check: impl std::future::Future<Output = Result<(), StoreError>>,
) -> Result<(), String> {
    match tokio::time::timeout(READY_TIMEOUT, check).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(err)) => Err(err.to_string()),
        Err(_) => Err(format!("no answer within {} s", READY_TIMEOUT.as_secs())),
    }
}
