//! The OpenAPI document, generated from the handlers' `#[utoipa::path]` annotations and the
//! types' `ToSchema` derives, rendered once at start-up and served at `/openapi.json`.
//! Provider crates add their routes' descriptions with
//! [`OpenApiContribution`](crate::contribution::OpenApiContribution).
//!
//! The document describes the server that serves it (schema fuzzing checks that in CI,
//! `crates/openhands-server/tests/schema_fuzz.rs`): only mounted routes, and every status an
//! operation can answer. A handler's annotation declares what the handler itself answers;
//! what the shared middleware and extractors answer is added here, in one place, from the
//! operation's shape ([`add_shared_responses`]):
//!
//! - every operation: 421 `host_not_allowed`, 429 (rate limits) and 503 (a rate limiter
//!   whose backend is down fails closed);
//! - `POST`, `PUT`, `PATCH`, `DELETE`: 403 `csrf_rejected` (a request from another site's
//!   page);
//! - an operation with the security requirement [`USER`] (its handler takes `CurrentUser`):
//!   401, 403 (the login's gates), 429 (the per-user limit) and 503 (the login's backend);
//! - a request body: 400 (unreadable), 408 (stopped arriving) and 413 (too large); a JSON
//!   body also 415 (not `application/json`) and 422 (invalid JSON or fields). An operation
//!   marked [`RAW_BODY`] reads its body itself and declares these statuses itself;
//! - a query parameter: 422 (a malformed query string).
//!
//! Annotations name the security requirement [`USER`] (`security(("user" = []))`) for "a
//! signed-in user"; [`render`] replaces it with the credentials this server's mode takes.

use crate::error::schema::{
    ErrorDetail, ErrorText, Message, StatusError, Success, SuccessError, ValidationErrors,
    ValidationIssue,
};
use crate::routes::{
    control, conversations, events, files, git, health, options, runtime, secrets, settings,
};
use crate::state::AppState;
use actix_web::{HttpResponse, web};
use serde_json::{Map, Value, json};
use utoipa::OpenApi;

/// The security requirement of operations that need a signed-in user; see the module docs.
pub const USER: &str = "user";

/// The extension (`extensions(("x-raw-body" = json!(true)))`) of an operation whose handler
/// reads its body as bytes itself (a webhook): the JSON extractor's statuses do not apply.
pub const RAW_BODY: &str = "x-raw-body";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "OpenHands server (Rust)",
        description = "Open API of the agent-platform server, wire-compatible with the OpenHands server where the routes overlap. Errors are JSON objects; which field holds the message (`detail`, `error`, `message`) follows the route, as in OpenHands."
    ),
    paths(
        health::alive, health::health, health::server_info, health::ready,
        options::models, options::agents, options::security_analyzers, options::config,
        settings::get_settings, settings::post_settings, settings::reset_settings,
        secrets::list_secrets, secrets::create_secret, secrets::update_secret, secrets::delete_secret,
        secrets::add_git_providers, secrets::unset_provider_tokens, runtime::refresh_tokens,
        conversations::create_conversation, conversations::list_conversations,
        conversations::get_conversation, conversations::rename_conversation,
        conversations::delete_conversation, events::read_events,
        control::start, control::stop, control::message, control::post_event, crate::trajectory::trajectory,
        files::list_files, files::select_file, files::zip_directory, files::upload_files,
        files::git_changes, files::git_diff,
        git::user_info, git::repositories, git::search_repositories, git::branches,
        git::installations,
    ),
    components(schemas(
        ErrorDetail, ErrorText, Message, StatusError, Success, SuccessError, ValidationErrors,
        ValidationIssue,
    )),
    tags(
        (name = "health", description = "Liveness, readiness and process figures (no auth)"),
        (name = "options", description = "Choices offered to the web app"),
        (name = "settings", description = "User settings; secrets are write-only"),
        (name = "secrets", description = "Custom secrets and git-provider tokens; values are write-only"),
        (name = "conversations", description = "Conversations and their events; live events at GET /api/conversations/{conversation_id}/events/socket (WebSocket)"),
        (name = "files", description = "A conversation's workspace"),
        (name = "git", description = "The user's git-provider data, read with their linked tokens"),
    )
)]
pub struct ApiDoc;

/// The document of this server as JSON bytes: the open API's routes, plus those of every
/// contribution mounted for `state` (SaaS routes, integrations), with the shared statuses
/// and this mode's credentials (see the module docs).
pub fn render(state: &AppState) -> Vec<u8> {
    let mut document = ApiDoc::openapi();
    for contribution in crate::contribution::OpenApiContribution::registered() {
        if (contribution.enabled)(state) {
            document.merge((contribution.document)());
        }
    }
    let rendered = serde_json::to_value(&document).map(|mut value| {
        add_shared_responses(&mut value);
        apply_credentials(&mut value, &credentials_of(state));
        value
    });
    rendered
        .and_then(|value| serde_json::to_vec(&value))
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "OpenAPI document could not be rendered");
            b"{}".to_vec()
        })
}

/// `GET /openapi.json`.
pub async fn serve(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(state.openapi_json.clone())
}

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

/// Adds the statuses of the shared middleware and extractors to every operation of the
/// document `doc` (JSON), from each operation's shape; see the module docs. A status the
/// handler declared keeps its description and gets the shared body as an alternative.
pub fn add_shared_responses(doc: &mut Value) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for item in paths.values_mut() {
        for method in METHODS {
            if let Some(operation) = item.get_mut(method) {
                for (status, description, schema) in shared_responses(method, operation) {
                    add_response(operation, status, description, schema);
                }
            }
        }
    }
}

/// `(status, description, body schema)` of every shared answer of `operation`.
fn shared_responses(method: &str, operation: &Value) -> Vec<(&'static str, &'static str, Value)> {
    let user = operation["security"]
        .as_array()
        .is_some_and(|s| s.iter().any(|r| r.get(USER).is_some()));
    let raw = operation[RAW_BODY] == true;
    let body = operation["requestBody"]["content"]
        .as_object()
        .filter(|_| !raw);
    let json_body = body.is_some_and(|c| c.keys().any(|k| k.contains("json")));
    let query = operation["parameters"]
        .as_array()
        .is_some_and(|p| p.iter().any(|p| p["in"] == "query"));
    let state_changing = matches!(method, "post" | "put" | "patch" | "delete");
    let detail = || schema_ref("ErrorDetail");
    let mut out = vec![(
        "421",
        "The `Host` names a site this server does not serve (`host_not_allowed`)",
        detail(),
    )];
    if state_changing {
        out.push((
            "403",
            "Sent by another site's page (`csrf_rejected`)",
            detail(),
        ));
    }
    if body.is_some() {
        out.push(("400", "The request body could not be read", detail()));
        out.push(("408", "The request body stopped arriving", detail()));
        out.push(("413", "The request body is larger than the limit", detail()));
    }
    if json_body {
        out.push((
            "415",
            "The body is not sent as `Content-Type: application/json`",
            detail(),
        ));
        out.push((
            "422",
            "The body is not valid JSON, or a field is missing or invalid; `detail[0].loc` names it",
            schema_ref("ValidationErrors"),
        ));
    }
    if query {
        out.push((
            "422",
            "A query parameter is malformed; `detail[0].loc` names it",
            schema_ref("ValidationErrors"),
        ));
    }
    out.push((
        "429",
        "A rate limit (per client address) was reached; `Retry-After` says when to retry",
        schema_ref("Message"),
    ));
    out.push((
        "503",
        "Rate limiting is unavailable and set to fail closed; `Retry-After` says when to retry",
        schema_ref("Message"),
    ));
    if user {
        out.push(("401", "Credentials missing, wrong or expired", detail()));
        out.push((
            "403",
            "Signed in, but refused by the login's rules; `code` says which",
            detail(),
        ));
        out.push((
            "429",
            "The user's rate limit was reached; `Retry-After` says when to retry",
            schema_ref("ErrorText"),
        ));
        out.push((
            "503",
            "Authentication or the user's rate limit is unavailable for now",
            detail(),
        ));
        out.push((
            "503",
            "The user's rate limit is unavailable for now",
            schema_ref("ErrorText"),
        ));
    }
    out
}

/// Adds `status` with a JSON body of `schema` to `operation`'s responses; when the status
/// is there already, `schema` becomes an alternative of its body (`anyOf`).
fn add_response(operation: &mut Value, status: &str, description: &str, schema: Value) {
    let Some(operation) = operation.as_object_mut() else {
        return;
    };
    let responses = operation
        .entry("responses")
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(responses) = responses.as_object_mut() else {
        return;
    };
    let Some(existing) = responses.get_mut(status) else {
        responses.insert(
            status.to_owned(),
            json!({
                "description": description,
                "content": {"application/json": {"schema": schema}},
            }),
        );
        return;
    };
    if let Some(text) = existing["description"].as_str()
        && !text.contains(description)
    {
        let joined = if text.is_empty() {
            description.to_owned()
        } else {
            format!("{text}; or: {description}")
        };
        existing["description"] = Value::from(joined);
    }
    let Some(content) = existing.as_object_mut().map(|r| {
        r.entry("content")
            .or_insert_with(|| Value::Object(Map::new()))
    }) else {
        return;
    };
    let Some(content) = content.as_object_mut() else {
        return;
    };
    let Some(media) = content.get_mut("application/json") else {
        content.insert("application/json".to_owned(), json!({ "schema": schema }));
        return;
    };
    match media.get_mut("schema") {
        None => media["schema"] = schema,
        Some(current) if *current == schema => {}
        Some(current) => match current.get_mut("anyOf").and_then(Value::as_array_mut) {
            Some(alternatives) => {
                if !alternatives.contains(&schema) {
                    alternatives.push(schema);
                }
            }
            None => *current = json!({ "anyOf": [current.take(), schema] }),
        },
    }
}

/// The credentials a server takes for a signed-in user: `(scheme name, scheme)` pairs, any
/// one of which will do; none when the API is open (OSS mode without `SESSION_API_KEY`).
pub fn credentials_of(state: &AppState) -> Vec<(&'static str, Value)> {
    let session_api_key = (
        "session_api_key",
        json!({"type": "apiKey", "in": "header", "name": "X-Session-API-Key",
               "description": "The server's `SESSION_API_KEY` (OSS mode), or an API key (SaaS mode)"}),
    );
    if state.ext.app_mode == "saas" {
        vec![
            (
                "api_key",
                json!({"type": "http", "scheme": "bearer",
                       "description": "An API key (`ohk_...`) made with POST /api/keys"}),
            ),
            (
                "session_cookie",
                json!({"type": "apiKey", "in": "cookie", "name": "keycloak_auth",
                       "description": "The session cookie the login sets"}),
            ),
            session_api_key,
        ]
    } else if state.config.session_api_key.is_some() {
        vec![session_api_key]
    } else {
        Vec::new()
    }
}

/// Replaces the [`USER`] requirement of every operation with `credentials` (dropping it
/// when there are none) and declares them in `components.securitySchemes`.
pub fn apply_credentials(doc: &mut Value, credentials: &[(&'static str, Value)]) {
    let alternatives: Vec<Value> = credentials
        .iter()
        .map(|(name, _)| json!({ *name: [] }))
        .collect();
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for item in paths.values_mut() {
            for method in METHODS {
                let Some(operation) = item.get_mut(method).and_then(Value::as_object_mut) else {
                    continue;
                };
                let Some(security) = operation.get_mut("security").and_then(Value::as_array_mut)
                else {
                    continue;
                };
                let before = security.len();
                security.retain(|r| r.get(USER).is_none());
                if security.len() != before {
                    for alternative in &alternatives {
                        if !security.contains(alternative) {
                            security.push(alternative.clone());
                        }
                    }
                }
                if security.is_empty() {
                    operation.remove("security");
                }
            }
        }
    }
    if credentials.is_empty() {
        return;
    }
    let Some(root) = doc.as_object_mut() else {
        return;
    };
    let components = root
        .entry("components")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Some(components) = components.as_object_mut() {
        let schemes = components
            .entry("securitySchemes")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(schemes) = schemes.as_object_mut() {
            for (name, scheme) in credentials {
                schemes.insert((*name).to_owned(), scheme.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document() -> Value {
        serde_json::to_value(ApiDoc::openapi()).expect("json")
    }

    fn operations(doc: &Value) -> Vec<(String, String, Value)> {
        let mut out = Vec::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for method in METHODS {
                if let Some(op) = item.get(method) {
                    out.push((path.clone(), method.to_owned(), op.clone()));
                }
            }
        }
        out
    }

    #[test]
    fn query_parameters_are_declared_in_the_query_and_path_ones_in_the_path() {
        let doc = document();
        for (path, method, op) in operations(&doc) {
            for param in op["parameters"].as_array().into_iter().flatten() {
                let name = param["name"].as_str().expect("name");
                let placeholder = format!("{{{name}}}");
                if param["in"] == "path" {
                    assert!(path.contains(&placeholder), "{method} {path}: {name}");
                } else {
                    assert!(!path.contains(&placeholder), "{method} {path}: {name}");
                }
            }
        }
    }

    #[test]
    fn shared_statuses_follow_the_operations_shape() {
        let mut doc = document();
        add_shared_responses(&mut doc);
        let op = |path: &str, method: &str| doc["paths"][path][method]["responses"].clone();
        let post_settings = op("/api/settings", "post");
        for status in [
            "401", "403", "408", "413", "415", "421", "422", "429", "503",
        ] {
            assert!(post_settings.get(status).is_some(), "{status}");
        }
        let alive = op("/alive", "get");
        for status in ["401", "403", "415", "422"] {
            assert!(alive.get(status).is_none(), "{status}");
        }
        assert!(alive.get("429").is_some());
        // A handler's own body stays, the shared one becomes an alternative.
        let ready = op("/ready", "get");
        assert!(ready["503"]["content"]["application/json"]["schema"]["anyOf"].is_array());
    }

    #[test]
    fn the_user_requirement_becomes_the_modes_credentials() {
        let mut doc = document();
        let credentials = vec![("api_key", json!({"type": "http", "scheme": "bearer"}))];
        apply_credentials(&mut doc, &credentials);
        assert_eq!(
            doc["paths"]["/api/settings"]["get"]["security"],
            json!([{"api_key": []}])
        );
        assert!(doc["paths"]["/alive"]["get"].get("security").is_none());
        assert_eq!(
            doc["components"]["securitySchemes"]["api_key"]["scheme"],
            "bearer"
        );

        let mut open = document();
        apply_credentials(&mut open, &[]);
        assert!(
            open["paths"]["/api/settings"]["get"]
                .get("security")
                .is_none()
        );
    }
}
