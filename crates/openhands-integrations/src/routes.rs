//! `POST /integration/{provider}/events`: verify, record, wake the worker, answer. Nothing
//! slow happens here, so the provider's delivery deadline is always met.
//!
//! - 404 `unknown_integration`: no enabled integration has that name.
//! - 200 `{"message": ...}`: the provider is configured but its webhooks are switched off
//!   (`Integration::disabled_message`); nothing is looked at or stored.
//! - 403 `bad_signature`: verification failed; nothing is stored.
//! - 400 `invalid_payload`: the provider's `check_payload` refused the verified body (e.g. a
//!   GitHub delivery without an installation id); nothing is stored.
//! - 400 `missing_delivery_id`: the provider's delivery id header is absent.
//! - 200 `{"message": "duplicate delivery ignored"}`: the delivery id was seen before, or
//!   the same signed body arrived within the last 24 hours under another delivery id (a
//!   replay: the id is not signed); nothing is stored.
//! - 202 `{"message": "accepted", "id": ...}`: stored as `queued`.

use crate::deliveries::{NewDelivery, Recorded};
use crate::intake::Intake;
use crate::worker::{self, Runtime};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use openhands_api::AppState;
use openhands_api::contribution::{OpenApiContribution, RouteContribution, saas_mode};
use openhands_api::error::ApiError;
use openhands_core::extension::{IntegrationRegistration, WebhookHeaders};
use openhands_core::registry::PluginError;
use serde_json::json;
use std::sync::Arc;
use utoipa::{OpenApi, ToSchema};

/// The `SharedResources` key of the server's [`Runtime`].
pub const RUNTIME_KEY: &str = "integrations.runtime";

/// Header names never stored with a delivery (signatures and credentials).
const NOT_STORED: [&str; 6] = [
    "authorization",
    "cookie",
    "x-gitea-signature",
    "x-hub-signature",
    "x-hub-signature-256",
    "x-gitlab-token",
];

fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/integration/{provider}/events", web::post().to(receive));
}

/// SaaS mode with at least one integration enabled by its flags. Also starts the worker of
/// this server (once), so queued and retried deliveries are processed after a restart
/// without waiting for a new webhook.
fn enabled(state: &AppState) -> bool {
    if !saas_mode(state) {
        return false;
    }
    match IntegrationRegistration::enabled(&state.config) {
        Ok(list) if list.is_empty() => false,
        Ok(_) => {
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                let ext = state.ext.clone();
                let config = state.config.clone();
                handle.spawn(async move {
                    if let Err(err) = runtime_of(&ext, &config).await {
                        tracing::error!(error = %err, "integrations: starting the worker failed");
                    }
                });
            }
            true
        }
        Err(err) => {
            tracing::error!(error = %err, "integrations: not mounted");
            false
        }
    }
}

inventory::submit! {
    RouteContribution {
        name: "integrations.webhooks",
        description: "POST /integration/{provider}/events for each enabled integration (Gitea, ...)",
        enabled,
        configure,
    }
}

inventory::submit! {
    OpenApiContribution {
        name: "integrations.webhooks",
        enabled,
        document: <WebhooksDoc as OpenApi>::openapi,
    }
}

/// The OpenAPI description of the webhook route, merged into `/openapi.json` when it is
/// mounted.
#[derive(OpenApi)]
#[openapi(
    paths(receive),
    components(schemas(WebhookError, WebhookErrorBody, Accepted)),
    tags((name = "integrations", description = "Webhooks of git hosts (Gitea, GitHub...), SaaS mode")),
)]
struct WebhooksDoc;

/// `{"error": {"code", "message"}}`, this route's errors (only the OpenAPI document uses the
/// types down to `receive`).
#[derive(ToSchema)]
#[allow(dead_code)]
struct WebhookError {
    error: WebhookErrorBody,
}

#[derive(ToSchema)]
#[allow(dead_code)]
struct WebhookErrorBody {
    /// `unknown_integration`, `bad_signature`, `invalid_payload`, `missing_delivery_id`,
    /// `unreadable_body`, `body_timeout`, `payload_too_large`.
    code: String,
    message: String,
}

/// A delivery stored, or one ignored (`id` absent).
#[derive(ToSchema)]
#[allow(dead_code)]
struct Accepted {
    /// `accepted`, `duplicate delivery ignored`, or why the provider's webhooks are off.
    message: String,
    /// The stored delivery's id.
    #[schema(nullable = false)]
    id: Option<i64>,
}

/// The server's runtime, built (and its worker started, unless `webhook_worker` is off) on
/// first use.
pub async fn runtime_of(
    ext: &openhands_core::registry::Extensions,
    config: &Arc<openhands_core::config::Config>,
) -> Result<Arc<Runtime>, PluginError> {
    // Taken before the runtime's own entry: `SharedResources` holds one lock while an
    // entry is built, so building the pool inside that would wait for itself.
    let data_dir = config.data_dir();
    let db = openhands_sql_store::server_database(&ext.shared, config, &data_dir).await?;
    ext.shared
        .get_or_try_init::<Arc<Runtime>, PluginError, _, _>(RUNTIME_KEY, || async {
            let integrations = IntegrationRegistration::enabled(config)?;
            let names: Vec<_> = integrations.iter().map(|i| i.name()).collect();
            let runtime = Arc::new(Runtime {
                intake: Intake::start(db.clone()),
                db,
                integrations,
                ext: ext.clone(),
                wake: tokio::sync::Notify::new(),
            });
            if config.webhook_worker {
                tracing::info!(integrations = ?names, "integrations: worker started");
                tokio::spawn(worker::run(runtime.clone()));
            } else {
                tracing::info!(integrations = ?names,
                    "integrations: receiving only (webhook_worker = false): deliveries stay \
                     queued for a server whose worker is on");
            }
            Ok(runtime)
        })
        .await
}

/// The whole body, up to `limit` bytes (`max_body_bytes`), with this route's JSON errors:
/// 413 when larger, 408 when it stopped arriving (`body_read_timeout_ms`), 400 when it
/// could not be read. (actix's `Bytes` extractor answered plain text, and at 256 KiB.)
async fn read_body(payload: web::Payload, limit: usize) -> Result<web::Bytes, ApiError> {
    match payload.to_bytes_limited(limit).await {
        Ok(Ok(body)) => Ok(body),
        Err(_) => Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is larger than the limit of {limit} bytes"),
        )),
        Ok(Err(err)) => {
            let timed_out = matches!(
                err.as_error::<actix_web::error::PayloadError>(),
                Some(actix_web::error::PayloadError::Io(e)) if e.kind() == std::io::ErrorKind::TimedOut
            );
            Err(if timed_out {
                error(
                    StatusCode::REQUEST_TIMEOUT,
                    "body_timeout",
                    "the body stopped arriving",
                )
            } else {
                error(
                    StatusCode::BAD_REQUEST,
                    "unreadable_body",
                    format!("the body could not be read: {err}"),
                )
            })
        }
    }
}

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> ApiError {
    ApiError::new(
        status,
        json!({"error": {"code": code, "message": message.into()}}),
    )
}

/// Receives one delivery of a git host's webhook: verified by its signature, stored, and
/// processed by the worker.
#[utoipa::path(post, path = "/integration/{provider}/events", tag = "integrations",
    params(("provider" = String, Path, description = "The integration: `gitea`, `github`...", example = "gitea")),
    request_body(content = Object, content_type = "application/json", description = "The provider's payload, as it signed it (read as bytes, whatever its `Content-Type`)"),
    extensions(("x-raw-body" = json!(true))),
    responses(
    (status = 200, description = "A repeated delivery, or the provider's webhooks are off; nothing stored", body = Accepted),
    (status = 202, description = "Stored; the worker will process it", body = Accepted),
    (status = 400, description = "The payload was refused (`invalid_payload`), its delivery id is missing (`missing_delivery_id`), or the body could not be read (`unreadable_body`)", body = WebhookError),
    (status = 403, description = "The signature is missing or wrong (`bad_signature`); nothing stored", body = WebhookError),
    (status = 404, description = "No enabled integration of that name (`unknown_integration`)", body = WebhookError),
    (status = 408, description = "The body stopped arriving (`body_timeout`)", body = WebhookError),
    (status = 413, description = "The body is larger than `max_body_bytes` (`payload_too_large`)", body = WebhookError)))]
async fn receive(
    state: web::Data<AppState>,
    request: HttpRequest,
    provider: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(payload, state.config.max_body_bytes).await?;
    let runtime = runtime_of(&state.ext, &state.config).await.map_err(|e| {
        ApiError::internal(
            &e,
            json!({"error": {"code": "internal_error", "message": "integrations unavailable"}}),
        )
    })?;
    let provider = provider.into_inner();
    let integration = runtime.integration(&provider).ok_or_else(|| {
        error(
            StatusCode::NOT_FOUND,
            "unknown_integration",
            format!("no enabled integration `{provider}`"),
        )
    })?;
    if let Some(message) = integration.disabled_message() {
        return Ok(HttpResponse::Ok().json(json!({ "message": message })));
    }
    let headers = WebhookHeaders(
        request
            .headers()
            .iter()
            .filter_map(|(name, value)| {
                Some((
                    name.as_str().to_ascii_lowercase(),
                    value.to_str().ok()?.to_owned(),
                ))
            })
            .collect(),
    );
    if let Err(err) = integration.verify(&headers, &body) {
        tracing::warn!(provider = %provider, reason = %err, "webhook refused");
        return Err(error(
            StatusCode::FORBIDDEN,
            "bad_signature",
            err.to_string(),
        ));
    }
    if let Err(err) = integration.check_payload(&headers, &body) {
        tracing::info!(provider = %provider, reason = %err, "webhook payload refused");
        return Err(error(
            StatusCode::BAD_REQUEST,
            "invalid_payload",
            err.to_string(),
        ));
    }
    let delivery_id = integration.delivery_id(&headers, &body).ok_or_else(|| {
        error(
            StatusCode::BAD_REQUEST,
            "missing_delivery_id",
            "the delivery id is missing",
        )
    })?;
    let payload = integration.stored_payload(&body);
    let stored: Vec<(String, String)> = headers
        .0
        .into_iter()
        .filter(|(n, _)| !NOT_STORED.contains(&n.as_str()))
        .collect();
    let recorded = runtime
        .intake
        .record(NewDelivery {
            provider: provider.clone(),
            delivery_id: delivery_id.clone(),
            payload,
            headers: stored,
            payload_hash: Some(crate::deliveries::payload_hash(&body)),
        })
        .await
        .map_err(|e| {
            ApiError::internal(
                &e,
                json!({"error": {"code": "internal_error", "message": "storing the delivery failed"}}),
            )
        })?;
    match recorded {
        Recorded::Duplicate => {
            tracing::info!(provider = %provider, delivery_id = %delivery_id, "duplicate delivery");
            Ok(HttpResponse::Ok().json(json!({"message": "duplicate delivery ignored"})))
        }
        Recorded::New(id) => {
            runtime.wake.notify_one();
            Ok(HttpResponse::Accepted().json(json!({"message": "accepted", "id": id})))
        }
    }
}
