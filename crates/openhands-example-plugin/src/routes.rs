//! A route contributed by a provider crate: mounted through
//! [`openhands_api::contribution::RouteContribution`] only when this crate's settings store
//! is selected, so the server answers 404 for it otherwise.

use actix_web::{HttpResponse, web};
use openhands_api::AppState;
use openhands_api::contribution::{OpenApiContribution, RouteContribution};
use openhands_core::registry::Slot;

/// The name under which [`crate::MemorySettingsStore`] is registered.
const SETTINGS_STORE: &str = "example.memory_settings";

fn enabled(state: &AppState) -> bool {
    state
        .ext
        .selected
        .iter()
        .any(|(slot, name)| *slot == Slot::SettingsStore && name == SETTINGS_STORE)
}

fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/example/status", web::get().to(status));
}

/// `GET /api/example/status` (only the OpenAPI document uses these types).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct ExampleStatus {
    #[schema(example = "example")]
    plugin: String,
    /// The implementation selected for each extension point.
    selected: Vec<Selected>,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct Selected {
    slot: String,
    implementation: String,
}

/// The OpenAPI description of the route, merged into `/openapi.json` while it is mounted.
#[derive(utoipa::OpenApi)]
#[openapi(paths(status), tags((name = "example", description = "The example provider crate's route")))]
struct ExampleDoc;

inventory::submit! {
    OpenApiContribution {
        name: "example.status",
        enabled,
        document: <ExampleDoc as utoipa::OpenApi>::openapi,
    }
}

/// Which settings store is in use, as proof that the route sees the server's state.
#[utoipa::path(get, path = "/api/example/status", tag = "example", responses((status = 200, body = ExampleStatus)))]
async fn status(state: web::Data<AppState>) -> HttpResponse {
    let selected: Vec<_> = state
        .ext
        .selected
        .iter()
        .map(|(slot, name)| serde_json::json!({"slot": slot.to_string(), "implementation": name}))
        .collect();
    HttpResponse::Ok().json(serde_json::json!({"plugin": "example", "selected": selected}))
}

inventory::submit! {
    RouteContribution {
        name: "example.status",
        description: "GET /api/example/status, while example.memory_settings is selected",
        enabled,
        configure,
    }
}
