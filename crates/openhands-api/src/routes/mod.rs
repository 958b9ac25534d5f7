//! The route handlers, one module per area, and [`configure`] which mounts them all.

pub mod control;
pub mod conversations;
pub mod events;
pub mod files;
pub mod git;
pub mod health;
pub mod options;
pub mod runtime;
pub mod secrets;
pub mod settings;
pub mod socket;

use actix_web::web;

/// Mounts every route of the open API.
pub fn configure(cfg: &mut web::ServiceConfig) {
    health::configure(cfg);
    options::configure(cfg);
    settings::configure(cfg);
    secrets::configure(cfg);
    runtime::configure(cfg);
    conversations::configure(cfg);
    events::configure(cfg);
    control::configure(cfg);
    files::configure(cfg);
    git::configure(cfg);
    socket::configure(cfg);
    cfg.route("/openapi.json", web::get().to(crate::openapi::serve));
}
