//! The command line: `openhands serve` (default), `openhands plugins`, `openhands config`,
//! `openhands migrate up|down|status`, `openhands keys rotate|status`, `openhands db copy --to <url>`,
//! `openhands webhooks list|replay <id>`.

use clap::{Parser, Subcommand};
use openhands_core::config::Config;
use openhands_core::registry::{self, ConfigClass, Slot};
use std::fmt::Write;

/// Agent-platform server, wire-compatible with OpenHands.
#[derive(Debug, Parser)]
#[command(name = "openhands", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default).
    Serve,
    /// List every extension point, its registered implementations and the selected one.
    Plugins,
    /// Print the effective configuration as TOML-like JSON, secrets redacted.
    Config,
    /// Apply, revert or list the SQL schema migrations of SaaS mode.
    #[cfg(feature = "saas")]
    Migrate {
        #[command(subcommand)]
        action: crate::saas::MigrateAction,
    },
    /// Re-seal stored secrets under the newest key, or count values per key (SQL stores).
    #[cfg(feature = "saas")]
    Keys {
        #[command(subcommand)]
        action: crate::saas::KeysAction,
    },
    /// Database maintenance: copy a deployment's data into another database.
    #[cfg(feature = "saas")]
    Db {
        #[command(subcommand)]
        action: crate::saas::DbAction,
    },
    /// The webhook delivery log of integrations: list deliveries, replay a dead one.
    #[cfg(feature = "saas")]
    Webhooks {
        #[command(subcommand)]
        action: crate::saas::WebhooksAction,
    },
}

/// The text of `openhands plugins`.
pub fn plugins_report(config: &Config) -> String {
    let mut out = String::new();
    let class = registry::select_class(config);
    let _ = writeln!(out, "config classes:");
    for c in ConfigClass::registered() {
        let mark = if c.name == config.config_class {
            "*"
        } else {
            " "
        };
        let _ = writeln!(out, "  {mark} {:<28} {}", c.name, c.description);
    }
    for slot in Slot::ALL {
        let selected = class
            .as_ref()
            .ok()
            .and_then(|c| registry::selected_name(c, config, slot).ok());
        let _ = writeln!(out, "{slot}:");
        for (name, description) in slot.registered() {
            let mark = if selected.as_deref() == Some(name) {
                "*"
            } else {
                " "
            };
            let _ = writeln!(out, "  {mark} {name:<28} {description}");
        }
    }
    let _ = writeln!(out, "routes:");
    for contribution in openhands_api::contribution::RouteContribution::registered() {
        let _ = writeln!(
            out,
            "    {:<28} {}",
            contribution.name, contribution.description
        );
    }
    let _ = writeln!(out, "integrations:");
    for integration in openhands_core::extension::IntegrationRegistration::registered() {
        let _ = writeln!(
            out,
            "    {:<28} {}",
            integration.name, integration.description
        );
    }
    if let Err(err) = registry::check_selection(config) {
        let _ = writeln!(out, "\nselection error: {err}");
    }
    out
}

/// The text of `openhands config`.
pub fn config_report(config: &Config) -> String {
    serde_json::to_string_pretty(config).unwrap_or_else(|e| format!("(cannot render: {e})"))
}
