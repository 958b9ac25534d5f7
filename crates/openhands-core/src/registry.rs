//! The plugin registry: implementations register by name, a config class picks them.
//!
//! Each extension point is a *slot* ([`Slot`]). An implementation registers a [`Plugin`] for
//! its slot with `inventory::submit!`, next to the type it builds, under a stable dotted
//! name (`oss.file_settings`). A [`ConfigClass`] (`oss`, `saas`, ...) names one
//! implementation per slot; config can override any slot. [`resolve`] runs once at
//! start-up and fails with a message naming the slot, the requested name and every
//! registered name. There is no central list: linking a crate is enough to register it.

use crate::config::Config;
use crate::crypto::Cipher;
use crate::extension::{
    AuditLog, ChangeFeed, ConversationManager, ConversationStore, EventStore, MonitoringListener,
    ProviderTokenSource, RateLimiter, Sandbox, SecretsStore, SettingsStore, UserAuth,
};
use crate::runtime_keys::RuntimeKeys;
use crate::settings_views::{NotifyingSecretsStore, NotifyingSettingsStore, SettingsViews};
use futures_util::future::BoxFuture;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// What a plugin constructor receives.
#[derive(Clone)]
pub struct PluginContext {
    pub config: Arc<Config>,
    /// The data directory (`file_store_path`, expanded).
    pub data_dir: PathBuf,
    /// Seals secrets at rest.
    pub cipher: Arc<Cipher>,
    /// The stores, sandbox and monitoring, already built; set only for the slots built
    /// after them: the provider-token source (whose own place in them holds the OSS
    /// pass-through while it is being built) and the conversation manager.
    pub services: Option<Services>,
    /// Resources the plugins of this server share (e.g. one database pool).
    pub shared: crate::shared::SharedResources,
}

/// The extension points a conversation manager works with.
#[derive(Clone)]
pub struct Services {
    pub settings_store: Arc<dyn SettingsStore>,
    pub secrets_store: Arc<dyn SecretsStore>,
    pub conversation_store: Arc<dyn ConversationStore>,
    pub event_store: Arc<dyn EventStore>,
    pub sandbox: Arc<dyn Sandbox>,
    pub monitoring: Arc<dyn MonitoringListener>,
    /// Usable (refreshed when due) git-provider tokens for starting conversations.
    pub provider_tokens: Arc<dyn ProviderTokenSource>,
    /// The `GET /api/settings` bodies of this replica; the two stores above report every
    /// write to it.
    pub settings_views: Arc<SettingsViews>,
    /// Mints and checks the session keys that conversation runtimes present to
    /// `/api/refresh-tokens`.
    pub runtime_keys: RuntimeKeys,
    /// Which `repository` values conversations may clone (SaaS mode: provider
    /// repositories only).
    pub repository_policy: crate::repository::RepositoryPolicy,
}

impl PluginContext {
    /// The services, for constructors of slots that need them.
    pub fn services(&self) -> Result<Services, PluginError> {
        self.services
            .clone()
            .ok_or_else(|| PluginError("stores are not built yet for this slot".into()))
    }
}

/// Why a constructor failed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PluginError(pub String);

/// The async constructor of a plugin.
pub type BuildFn<T> = fn(PluginContext) -> BoxFuture<'static, Result<Arc<T>, PluginError>>;

/// One registered implementation of the extension point `T`.
pub struct Plugin<T: ?Sized + 'static> {
    /// Stable dotted name, e.g. `oss.file_settings`.
    pub name: &'static str,
    /// One line for `openhands plugins`.
    pub description: &'static str,
    pub build: BuildFn<T>,
}

inventory::collect!(Plugin<dyn SettingsStore>);
inventory::collect!(Plugin<dyn SecretsStore>);
inventory::collect!(Plugin<dyn ConversationStore>);
inventory::collect!(Plugin<dyn EventStore>);
inventory::collect!(Plugin<dyn UserAuth>);
inventory::collect!(Plugin<dyn ConversationManager>);
inventory::collect!(Plugin<dyn MonitoringListener>);
inventory::collect!(Plugin<dyn RateLimiter>);
inventory::collect!(Plugin<dyn Sandbox>);
inventory::collect!(Plugin<dyn AuditLog>);
inventory::collect!(Plugin<dyn ProviderTokenSource>);
inventory::collect!(Plugin<dyn ChangeFeed>);

/// An extension point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Slot {
    SettingsStore,
    SecretsStore,
    ConversationStore,
    EventStore,
    UserAuth,
    ConversationManager,
    MonitoringListener,
    RateLimiter,
    Sandbox,
    AuditLog,
    ProviderTokenSource,
    ChangeFeed,
}

impl Slot {
    /// Every slot, in resolution order.
    pub const ALL: [Slot; 12] = [
        Slot::SettingsStore,
        Slot::SecretsStore,
        Slot::ConversationStore,
        Slot::EventStore,
        Slot::UserAuth,
        Slot::ConversationManager,
        Slot::MonitoringListener,
        Slot::RateLimiter,
        Slot::Sandbox,
        Slot::AuditLog,
        Slot::ProviderTokenSource,
        Slot::ChangeFeed,
    ];

    /// The config key of the slot (`[plugins] settings_store = "..."`).
    pub fn key(self) -> &'static str {
        match self {
            Slot::SettingsStore => "settings_store",
            Slot::SecretsStore => "secrets_store",
            Slot::ConversationStore => "conversation_store",
            Slot::EventStore => "event_store",
            Slot::UserAuth => "user_auth",
            Slot::ConversationManager => "conversation_manager",
            Slot::MonitoringListener => "monitoring_listener",
            Slot::RateLimiter => "rate_limiter",
            Slot::Sandbox => "sandbox",
            Slot::AuditLog => "audit_log",
            Slot::ProviderTokenSource => "provider_token_source",
            Slot::ChangeFeed => "change_feed",
        }
    }

    /// Registered `(name, description)` pairs, sorted by name.
    pub fn registered(self) -> Vec<(&'static str, &'static str)> {
        fn list<T: ?Sized + 'static>() -> Vec<(&'static str, &'static str)>
        where
            Plugin<T>: inventory::Collect,
        {
            let mut v: Vec<_> = inventory::iter::<Plugin<T>>
                .into_iter()
                .map(|p| (p.name, p.description))
                .collect();
            v.sort_unstable();
            v
        }
        match self {
            Slot::SettingsStore => list::<dyn SettingsStore>(),
            Slot::SecretsStore => list::<dyn SecretsStore>(),
            Slot::ConversationStore => list::<dyn ConversationStore>(),
            Slot::EventStore => list::<dyn EventStore>(),
            Slot::UserAuth => list::<dyn UserAuth>(),
            Slot::ConversationManager => list::<dyn ConversationManager>(),
            Slot::MonitoringListener => list::<dyn MonitoringListener>(),
            Slot::RateLimiter => list::<dyn RateLimiter>(),
            Slot::Sandbox => list::<dyn Sandbox>(),
            Slot::AuditLog => list::<dyn AuditLog>(),
            Slot::ProviderTokenSource => list::<dyn ProviderTokenSource>(),
            Slot::ChangeFeed => list::<dyn ChangeFeed>(),
        }
    }

    fn override_in(self, config: &Config) -> Option<&str> {
        let p = &config.plugins;
        match self {
            Slot::SettingsStore => p.settings_store.as_deref(),
            Slot::SecretsStore => p.secrets_store.as_deref(),
            Slot::ConversationStore => p.conversation_store.as_deref(),
            Slot::EventStore => p.event_store.as_deref(),
            Slot::UserAuth => p.user_auth.as_deref(),
            Slot::ConversationManager => p.conversation_manager.as_deref(),
            Slot::MonitoringListener => p.monitoring_listener.as_deref(),
            Slot::RateLimiter => p.rate_limiter.as_deref(),
            Slot::Sandbox => p.sandbox.as_deref(),
            Slot::AuditLog => p.audit_log.as_deref(),
            Slot::ProviderTokenSource => p.provider_token_source.as_deref(),
            Slot::ChangeFeed => p.change_feed.as_deref(),
        }
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// A named selection of one implementation per slot (OpenHands' `ServerConfig` subclass).
pub struct ConfigClass {
    /// `oss`, `saas`, ...
    pub name: &'static str,
    pub description: &'static str,
    /// `APP_MODE` reported by `/api/options/config`.
    pub app_mode: &'static str,
    /// `(slot, plugin name)` for every slot.
    pub slots: &'static [(Slot, &'static str)],
}

inventory::collect!(ConfigClass);

impl ConfigClass {
    /// Every registered config class, sorted by name.
    pub fn registered() -> Vec<&'static ConfigClass> {
        let mut v: Vec<_> = inventory::iter::<ConfigClass>.into_iter().collect();
        v.sort_unstable_by_key(|c| c.name);
        v
    }

    /// The class with this name.
    pub fn find(name: &str) -> Option<&'static ConfigClass> {
        inventory::iter::<ConfigClass>
            .into_iter()
            .find(|c| c.name == name)
    }

    /// The plugin this class names for `slot`.
    pub fn default_for(&self, slot: Slot) -> Option<&'static str> {
        self.slots.iter().find(|(s, _)| *s == slot).map(|(_, n)| *n)
    }
}

/// Names that exist in the project but live in crates behind a Cargo feature, so that a
/// binary built without them can say so instead of "unknown".
/// `(name or name prefix before a dot, Cargo feature of the server crate)`.
const FEATURE_GATED: &[(&str, &str)] = &[("saas", "saas"), ("example", "example-plugin")];

/// Why resolution failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(
        "unknown config class `{requested}` (from OPENHANDS_CONFIG_CLS or config_class); registered config classes: {}",
        list(registered)
    )]
    UnknownClass {
        requested: String,
        registered: Vec<&'static str>,
    },
    #[error(
        "{what} `{requested}` is part of OpenHands but this binary was built without it; rebuild with `--features {feature}`"
    )]
    NotBuilt {
        what: &'static str,
        requested: String,
        feature: &'static str,
    },
    #[error(
        "unknown implementation `{requested}` for slot `{slot}`; registered names for `{slot}`: {}",
        list(registered)
    )]
    UnknownPlugin {
        slot: Slot,
        requested: String,
        registered: Vec<&'static str>,
    },
    #[error(
        "config class `{class}` names no implementation for slot `{slot}`; set `plugins.{slot}`"
    )]
    Unassigned { class: &'static str, slot: Slot },
    #[error("building `{name}` for slot `{slot}` failed: {source}")]
    Build {
        slot: Slot,
        name: String,
        #[source]
        source: PluginError,
    },
}

fn list(names: &[&str]) -> String {
    if names.is_empty() {
        "(none)".to_owned()
    } else {
        names
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// `NotBuilt` when `requested` belongs to a feature-gated family of which nothing is linked
/// into this binary (a linked family with a wrong name is an ordinary unknown name).
fn not_built(what: &'static str, requested: &str) -> Option<RegistryError> {
    let family = requested.split('.').next().unwrap_or(requested);
    let prefix = format!("{family}.");
    let linked = ConfigClass::registered().iter().any(|c| c.name == family)
        || Slot::ALL.iter().any(|slot| {
            slot.registered()
                .iter()
                .any(|(n, _)| n.starts_with(&prefix))
        });
    if linked {
        return None;
    }
    FEATURE_GATED
        .iter()
        .find(|(prefix, _)| family == *prefix)
        .map(|(_, feature)| RegistryError::NotBuilt {
            what,
            requested: requested.to_owned(),
            feature,
        })
}

/// The selected implementation of every slot. The stores, sandbox and monitoring are in
/// [`Services`], reachable directly through `Deref` (`ext.settings_store`).
#[derive(Clone)]
pub struct Extensions {
    pub class_name: &'static str,
    pub app_mode: &'static str,
    /// `(slot, selected plugin name)`, for logs and `openhands plugins`.
    pub selected: Vec<(Slot, String)>,
    pub services: Services,
    pub user_auth: Arc<dyn UserAuth>,
    pub conversation_manager: Arc<dyn ConversationManager>,
    pub rate_limiter: Arc<dyn RateLimiter>,
    /// Records org, role and secret changes.
    pub audit_log: Arc<dyn AuditLog>,
    /// The resources the plugins share (the same as their `PluginContext::shared`), for
    /// routes of provider crates that need them (e.g. the database pool).
    pub shared: crate::shared::SharedResources,
}

impl std::ops::Deref for Extensions {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.services
    }
}

/// The config class named by `config`, or an error listing the registered ones.
pub fn select_class(config: &Config) -> Result<&'static ConfigClass, RegistryError> {
    let requested = config.config_class.trim();
    ConfigClass::find(requested).ok_or_else(|| {
        not_built("config class", requested).unwrap_or_else(|| RegistryError::UnknownClass {
            requested: requested.to_owned(),
            registered: ConfigClass::registered().iter().map(|c| c.name).collect(),
        })
    })
}

/// The plugin name selected for `slot`: the override from config, else the class default.
pub fn selected_name(
    class: &'static ConfigClass,
    config: &Config,
    slot: Slot,
) -> Result<String, RegistryError> {
    match slot.override_in(config) {
        Some(name) => Ok(name.trim().to_owned()),
        None => class
            .default_for(slot)
            .map(str::to_owned)
            .ok_or(RegistryError::Unassigned {
                class: class.name,
                slot,
            }),
    }
}

/// Checks every slot's selection without building anything.
pub fn check_selection(config: &Config) -> Result<Vec<(Slot, String)>, RegistryError> {
    let class = select_class(config)?;
    Slot::ALL
        .iter()
        .map(|slot| {
            let name = selected_name(class, config, *slot)?;
            if !slot.registered().iter().any(|(n, _)| *n == name) {
                return Err(unknown(*slot, &name));
            }
            Ok((*slot, name))
        })
        .collect()
}

fn unknown(slot: Slot, requested: &str) -> RegistryError {
    not_built("implementation", requested).unwrap_or_else(|| RegistryError::UnknownPlugin {
        slot,
        requested: requested.to_owned(),
        registered: slot.registered().into_iter().map(|(n, _)| n).collect(),
    })
}

async fn build<T: ?Sized + 'static>(
    slot: Slot,
    name: &str,
    ctx: &PluginContext,
) -> Result<Arc<T>, RegistryError>
where
    Plugin<T>: inventory::Collect,
{
    let plugin = inventory::iter::<Plugin<T>>
        .into_iter()
        .find(|p| p.name == name)
        .ok_or_else(|| unknown(slot, name))?;
    (plugin.build)(ctx.clone())
        .await
        .map_err(|source| RegistryError::Build {
            slot,
            name: name.to_owned(),
            source,
        })
}

/// Resolves and builds every slot. Runs once at start-up; all names are checked before
/// anything is built, so a typo fails fast with the full list of names.
pub async fn resolve(ctx: &PluginContext) -> Result<Extensions, RegistryError> {
    let class = select_class(&ctx.config)?;
    let selected = check_selection(&ctx.config)?;
    let name = |slot: Slot| {
        selected
            .iter()
            .find(|(s, _)| *s == slot)
            .map(|(_, n)| n.clone())
            .unwrap_or_default()
    };
    let change_feed: Arc<dyn ChangeFeed> =
        build(Slot::ChangeFeed, &name(Slot::ChangeFeed), ctx).await?;
    let settings_views = SettingsViews::new(
        Duration::from_secs(ctx.config.settings_cache_seconds),
        change_feed,
    );
    settings_views.follow();
    let settings_store: Arc<dyn SettingsStore> =
        build(Slot::SettingsStore, &name(Slot::SettingsStore), ctx).await?;
    let secrets_store: Arc<dyn SecretsStore> =
        build(Slot::SecretsStore, &name(Slot::SecretsStore), ctx).await?;
    let stores = Services {
        settings_store: Arc::new(NotifyingSettingsStore::new(
            settings_store,
            settings_views.clone(),
        )),
        secrets_store: Arc::new(NotifyingSecretsStore::new(
            secrets_store,
            settings_views.clone(),
        )),
        settings_views,
        runtime_keys: RuntimeKeys::new(ctx.cipher.clone()),
        conversation_store: build(Slot::ConversationStore, &name(Slot::ConversationStore), ctx)
            .await?,
        event_store: build(Slot::EventStore, &name(Slot::EventStore), ctx).await?,
        sandbox: build(Slot::Sandbox, &name(Slot::Sandbox), ctx).await?,
        monitoring: build(
            Slot::MonitoringListener,
            &name(Slot::MonitoringListener),
            ctx,
        )
        .await?,
        provider_tokens: Arc::new(crate::oss::StoredProviderTokens),
        repository_policy: if class.app_mode == "saas" {
            crate::repository::RepositoryPolicy::Hosted {
                extra_https_hosts: ctx.config.sandbox.clone_hosts.clone(),
            }
        } else {
            crate::repository::RepositoryPolicy::Local
        },
    };
    // The token source refreshes through the secrets store, so it is built after it.
    let with_stores = PluginContext {
        services: Some(stores.clone()),
        ..ctx.clone()
    };
    let services = Services {
        provider_tokens: build(
            Slot::ProviderTokenSource,
            &name(Slot::ProviderTokenSource),
            &with_stores,
        )
        .await?,
        ..stores
    };
    let with_services = PluginContext {
        services: Some(services.clone()),
        ..ctx.clone()
    };
    Ok(Extensions {
        class_name: class.name,
        app_mode: class.app_mode,
        user_auth: build(Slot::UserAuth, &name(Slot::UserAuth), ctx).await?,
        conversation_manager: build(
            Slot::ConversationManager,
            &name(Slot::ConversationManager),
            &with_services,
        )
        .await?,
        rate_limiter: build(Slot::RateLimiter, &name(Slot::RateLimiter), ctx).await?,
        shared: ctx.shared.clone(),
        audit_log: build(Slot::AuditLog, &name(Slot::AuditLog), ctx).await?,
        services,
        selected,
    })
}

/// The future a [`BuildFn`] returns.
pub type BuildFuture<T> = BoxFuture<'static, Result<Arc<T>, PluginError>>;

impl From<crate::error::StoreError> for PluginError {
    fn from(err: crate::error::StoreError) -> Self {
        PluginError(err.to_string())
    }
}

impl From<crate::crypto::CryptoError> for PluginError {
    fn from(err: crate::crypto::CryptoError) -> Self {
        PluginError(err.to_string())
    }
}

/// Registers an implementation of an extension point under a name.
///
/// ```ignore
/// openhands_core::register_plugin!(
///     openhands_core::extension::SettingsStore,
///     "example.memory_settings",
///     "Settings kept in memory",
///     |ctx| Ok(std::sync::Arc::new(MemorySettings::default()))
/// );
/// ```
///
/// The body runs inside an `async` block with `ctx: &PluginContext`, may `.await` and use `?`
/// on errors convertible into [`PluginError`], and returns `Result<Arc<Impl>, PluginError>`.
#[macro_export]
macro_rules! register_plugin {
    ($trait:path, $name:expr, $description:expr, |$ctx:ident| $body:expr) => {
        $crate::inventory::submit! {
            $crate::registry::Plugin::<dyn $trait> {
                name: $name,
                description: $description,
                build: |owned_ctx| -> $crate::registry::BuildFuture<dyn $trait> {
                    ::std::boxed::Box::pin(async move {
                        #[allow(unused_variables)]
                        let $ctx: &$crate::registry::PluginContext = &owned_ctx;
                        let built: ::std::result::Result<_, $crate::registry::PluginError> =
                            async { $body }.await;
                        built.map(|plugin| plugin as ::std::sync::Arc<dyn $trait>)
                    })
                },
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    // This test binary links core alone: the `saas` and `example` families are not in it.

    #[test]
    fn an_unlinked_feature_family_says_which_feature_to_build() {
        let err = unknown(Slot::SettingsStore, "saas.sql_settings");
        assert!(
            matches!(
                &err,
                RegistryError::NotBuilt {
                    feature: "saas",
                    ..
                }
            ),
            "{err}"
        );
        let message = err.to_string();
        assert!(
            message.contains("built without it") && message.contains("--features saas"),
            "{message}"
        );
        let err = unknown(Slot::SettingsStore, "example.memory_settings");
        assert!(
            err.to_string().contains("--features example-plugin"),
            "{err}"
        );
    }

    #[test]
    fn a_wrong_name_in_a_linked_family_lists_the_registered_names() {
        let err = unknown(Slot::SettingsStore, "oss.nope");
        assert!(matches!(&err, RegistryError::UnknownPlugin { .. }), "{err}");
        assert!(err.to_string().contains("`oss.file_settings`"), "{err}");
    }
}
