//! The database this crate works on: the server's pool, shared with the SQL stores.
//!
//! The pool is opened once per server (in `SharedResources`, schema checked or migrated as
//! configured) by whichever plugin asks first; the audit log and the routes get the same
//! one.

use openhands_api::AppState;
use openhands_core::registry::{PluginContext, PluginError};
use openhands_sql_store::Database;

/// The server's pool, for a route handler.
pub async fn for_request(state: &AppState) -> Result<Database, PluginError> {
    openhands_sql_store::server_database(&state.ext.shared, &state.config, &state.config.data_dir())
        .await
}

/// The server's pool, for a plugin constructor.
pub async fn for_plugin(ctx: &PluginContext) -> Result<Database, PluginError> {
    openhands_sql_store::plugin_database(ctx).await
}
