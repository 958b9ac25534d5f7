//! Registration of the four SQL stores by name, for the `saas` config class.
//!
//! Each constructor reads the database URL from `[database]` (see
//! `DatabaseConfig::connection_url`: `DATABASE_URL`, else the `DB_*` variables, else SQLite
//! under the data dir) and takes the process-wide pool for that URL, so the four stores
//! share one pool. Schema migrations are not run here: `openhands migrate` owns them.

use crate::database::{Database, PoolOptions};
use crate::{SqlConversationStore, SqlEventStore, SqlSecretsStore, SqlSettingsStore};
use openhands_core::registry::{PluginContext, PluginError};
use std::sync::Arc;

/// The shared pool for the configured database.
async fn database(ctx: &PluginContext) -> Result<Database, PluginError> {
    let config = &ctx.config.database;
    let url = config.connection_url(&ctx.data_dir);
    if url.expose().starts_with("sqlite:") {
        std::fs::create_dir_all(&ctx.data_dir).map_err(|e| {
            PluginError(format!(
                "creating the data dir {} for SQLite: {e}",
                ctx.data_dir.display()
            ))
        })?;
    }
    Database::shared(url.expose(), PoolOptions::from(config))
        .await
        .map_err(|e| PluginError(e.to_string()))
}

openhands_core::register_plugin!(
    openhands_core::extension::SettingsStore,
    "saas.sql_settings",
    "Settings in SQL (PostgreSQL or SQLite), per user and org, API keys sealed",
    |ctx| Ok(Arc::new(SqlSettingsStore::new(
        database(ctx).await?,
        ctx.cipher.clone()
    )))
);

openhands_core::register_plugin!(
    openhands_core::extension::SecretsStore,
    "saas.sql_secrets",
    "Custom secrets and git tokens in SQL, per user and org, values sealed",
    |ctx| Ok(Arc::new(SqlSecretsStore::new(
        database(ctx).await?,
        ctx.cipher.clone()
    )))
);

openhands_core::register_plugin!(
    openhands_core::extension::ConversationStore,
    "saas.sql_conversations",
    "Conversation metadata in SQL, per user and org",
    |ctx| Ok(Arc::new(SqlConversationStore::new(database(ctx).await?)))
);

openhands_core::register_plugin!(
    openhands_core::extension::EventStore,
    "saas.sql_events",
    "Append-only events in SQL",
    |ctx| Ok(Arc::new(SqlEventStore::new(database(ctx).await?)))
);
