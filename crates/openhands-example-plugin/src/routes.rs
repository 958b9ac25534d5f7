//! A route contributed by a provider crate: mounted through
//! [`openhands_api::contribution::RouteContribution`] only when this crate's settings store
//! is selected, so the server answers 404 for it otherwise.

use actix_web::{HttpResponse, web};
use openhands_api::AppState;
use openhands_api::contribution::RouteContribution;
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

/// Which settings store is in use, as proof that the route sees the server's state.
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
