//! `/alive`, `/health`, `/server_info` (no auth, as OpenHands) and `/ready` (ours).

use crate::state::AppState;
use crate::system_stats;
use actix_web::{HttpResponse, web};
use openhands_core::StoreError;
use openhands_core::readiness::ReadinessChecks;
use openhands_core::sandbox_host::{Isolation, UNISOLATED_WARNING};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::time::Duration;
use utoipa::ToSchema;

/// How long `/ready` waits for each store.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/alive", web::get().to(alive))
        .route("/health", web::get().to(health))
        .route("/server_info", web::get().to(server_info))
        .route("/ready", web::get().to(ready));
}

/// `{"status": "ok"}` (only the OpenAPI document uses this type).
#[derive(ToSchema)]
#[allow(dead_code)]
struct Alive {
    #[schema(example = "ok")]
    status: String,
}

/// `GET /server_info` (only the OpenAPI document uses these types).
#[derive(ToSchema)]
#[allow(dead_code)]
struct ServerInfo {
    /// Seconds since start.
    uptime: f64,
    /// Seconds since the last request.
    idle_time: f64,
    resources: Resources,
}

#[derive(ToSchema)]
#[allow(dead_code)]
struct Resources {
    cpu_percent: f64,
    memory: Memory,
    disk: Disk,
    io: Io,
}

#[derive(ToSchema)]
#[allow(dead_code)]
struct Memory {
    rss: u64,
    vms: u64,
    percent: f64,
}

#[derive(ToSchema)]
#[allow(dead_code)]
struct Disk {
    total: u64,
    used: u64,
    free: u64,
    percent: f64,
}

#[derive(ToSchema)]
#[allow(dead_code)]
struct Io {
    read_bytes: u64,
    write_bytes: u64,
}

/// `GET /ready` (only the OpenAPI document uses this type).
#[derive(ToSchema)]
#[allow(dead_code)]
struct Readiness {
    /// `ok`, or `error` when a check failed.
    status: String,
    /// Each check's result, `ok` or `error`, by name (`settings_store`, `redis`...).
    checks: BTreeMap<String, String>,
    /// Why each failed check failed (only when one did).
    #[schema(nullable = false)]
    failed: Option<BTreeMap<String, String>>,
    /// Deployment warnings (e.g. SaaS mode without an isolated sandbox).
    #[schema(nullable = false)]
    warnings: Option<Vec<String>>,
}

/// Liveness.
#[utoipa::path(get, path = "/alive", tag = "health",
    responses((status = 200, description = "The process answers", body = Alive)))]
pub async fn alive() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(r#"{"status":"ok"}"#)
}

/// Health, as the JSON string `"OK"`.
#[utoipa::path(get, path = "/health", tag = "health", responses(
    (status = 200, body = String, content_type = "application/json", example = json!("OK"))))]
pub async fn health() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(r#""OK""#)
}

/// Uptime, idle time and resource use of the server process.
#[utoipa::path(get, path = "/server_info", tag = "health", responses((status = 200, body = ServerInfo)))]
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
/// (Redis in SaaS mode) answers, else 503 naming what failed; 503 (`failed.server`) from the
/// moment a shutdown begins.
#[utoipa::path(get, path = "/ready", tag = "health", responses(
    (status = 200, description = "Every store and backend answers", body = Readiness),
    (status = 503, description = "Some store or backend failed, or the server is shutting down; `failed` names it", body = Readiness)))]
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    if state.lifecycle.is_draining() {
        // Out of the load balancer's pool at once; the checks would not change that.
        return HttpResponse::ServiceUnavailable().json(json!({
            "status": "error", "checks": {},
            "failed": {"server": "shutting down: its conversations are moving to other servers"},
        }));
    }
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
