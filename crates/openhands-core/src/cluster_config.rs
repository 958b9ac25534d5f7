//! The `[cluster]` section: timings of the clustered conversation manager
//! (`saas.clustered`), which several replicas sharing one Redis use to own, renew, route
//! and take over conversations. Other managers ignore it.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Clustered conversation manager settings (`[cluster]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// How long, in milliseconds, a replica owns a conversation without renewing it; a
    /// replica that stops renewing (it died) loses its conversations to another replica
    /// after this long. Also the lifetime of a replica's heartbeat.
    /// Env: `OPENHANDS_CLUSTER__LEASE_MS`.
    pub lease_ms: u64,
    /// How often, in milliseconds, a replica writes its heartbeat, publishes status changes
    /// of its conversations and looks for conversations whose owner died. Renewals happen
    /// at least every third of `lease_ms`. Env: `OPENHANDS_CLUSTER__RENEW_INTERVAL_MS`.
    pub renew_interval_ms: u64,
    /// How long, in milliseconds, a command routed to the replica owning a conversation
    /// (send, stop) may take to be answered. Env: `OPENHANDS_CLUSTER__COMMAND_TIMEOUT_MS`.
    pub command_timeout_ms: u64,
    /// This replica's id in Redis; unset picks a random one at each start (a restarted
    /// process is then a new replica). Env: `OPENHANDS_CLUSTER__REPLICA_ID`.
    pub replica_id: Option<String>,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            lease_ms: 3_000,
            renew_interval_ms: 250,
            command_timeout_ms: 10_000,
            replica_id: None,
        }
    }
}

impl ClusterConfig {
    /// `lease_ms` as a duration.
    pub fn lease(&self) -> Duration {
        Duration::from_millis(self.lease_ms)
    }

    /// `renew_interval_ms` as a duration.
    pub fn renew_interval(&self) -> Duration {
        Duration::from_millis(self.renew_interval_ms)
    }

    /// `command_timeout_ms` as a duration.
    pub fn command_timeout(&self) -> Duration {
        Duration::from_millis(self.command_timeout_ms)
    }

    /// What is wrong with the section, if anything: every duration at least 1 ms, renewals
    /// more often than a third of the lease, a replica id that is not blank.
    pub fn problem(&self) -> Option<String> {
        if self.lease_ms == 0 || self.renew_interval_ms == 0 || self.command_timeout_ms == 0 {
            return Some(format!(
                "keys `cluster.lease_ms` = `{}`, `cluster.renew_interval_ms` = `{}` and \
                 `cluster.command_timeout_ms` = `{}`: expected each to be at least 1",
                self.lease_ms, self.renew_interval_ms, self.command_timeout_ms
            ));
        }
        if self.renew_interval_ms.saturating_mul(3) > self.lease_ms {
            return Some(format!(
                "key `cluster.renew_interval_ms` = `{}`: expected at most a third of \
                 `cluster.lease_ms` (`{}`), so a lease is renewed before it runs out",
                self.renew_interval_ms, self.lease_ms
            ));
        }
        if self
            .replica_id
            .as_deref()
            .is_some_and(|id| id.trim().is_empty() || id.contains(['{', '}']))
        {
            return Some(
                "key `cluster.replica_id`: expected a non-blank id without `{` or `}` (or unset)"
                    .into(),
            );
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use figment::Jail;

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail closures return figment::Error
    fn the_section_loads_from_toml_and_env_and_a_bad_one_is_refused() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "openhands.toml",
                "[cluster]\nlease_ms = 3000\nreplica_id = \"web-1\"\n",
            )?;
            jail.set_env("OPENHANDS_CLUSTER__RENEW_INTERVAL_MS", "500");
            let file = jail.directory().join("openhands.toml");
            let c = Config::from_figment(Config::figment(&file)).expect("load");
            assert_eq!(c.cluster.lease(), Duration::from_secs(3));
            assert_eq!(c.cluster.renew_interval(), Duration::from_millis(500));
            assert_eq!(c.cluster.command_timeout(), Duration::from_secs(10));
            assert_eq!(c.cluster.replica_id.as_deref(), Some("web-1"));
            jail.set_env("OPENHANDS_CLUSTER__RENEW_INTERVAL_MS", "2000");
            let message = Config::from_figment(Config::figment(&file))
                .expect_err("renewal slower than a third of the lease")
                .to_string();
            assert!(message.contains("cluster.renew_interval_ms"), "{message}");
            Ok(())
        });
    }

    #[test]
    fn defaults_are_valid_and_bad_timings_are_named() {
        assert_eq!(ClusterConfig::default().problem(), None);
        let slow_renewal = ClusterConfig {
            lease_ms: 1_000,
            renew_interval_ms: 500,
            ..ClusterConfig::default()
        };
        let message = slow_renewal.problem().expect("a problem");
        assert!(message.contains("cluster.renew_interval_ms"), "{message}");
        let blank_id = ClusterConfig {
            replica_id: Some(" ".into()),
            ..ClusterConfig::default()
        };
        assert!(
            blank_id
                .problem()
                .is_some_and(|m| m.contains("cluster.replica_id"))
        );
    }
}
