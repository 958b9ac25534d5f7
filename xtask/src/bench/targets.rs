//! The performance targets the server is held to, checked against a bench run.
//!
//! Written down as data next to the bench so the goals are versioned with the
//! code and every run says plainly which ones it met. A scenario that saw any
//! error meets none of its targets: a fast stream of 404s is not throughput.

use serde::Serialize;

use super::agent::AgentResults;
use super::cluster::ClusterResults;
use super::report::ScenarioResult;
use super::saas_auth::SaasResults;
use super::scenarios::{CONVERSATIONS, SETTINGS};
use super::store::StoreResults;
use super::webhooks::WebhookResults;

/// One target and how this run did against it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Target {
    pub name: String,
    /// The goal, human-readable (e.g. `>= 40000 req/s`).
    pub target: String,
    /// The measured value; `None` when the run did not produce it.
    pub value: Option<f64>,
    pub met: bool,
    /// Why the measurement did not run (no `bwrap`, a `--skip-*` flag); such a target is
    /// not met, and the report says so instead of showing a failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

/// The whole-server figures the targets look at besides the scenarios.
#[derive(Debug, Clone, Copy)]
pub struct ServerFigures {
    pub startup_ms_median: Option<f64>,
    pub idle_rss_mb: f64,
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Goal {
    AtLeast(f64),
    Below(f64),
}

impl Goal {
    fn met_by(self, value: f64) -> bool {
        match self {
            Goal::AtLeast(bound) => value >= bound,
            Goal::Below(bound) => value < bound,
        }
    }

    fn describe(self, unit: &str) -> String {
        match self {
            Goal::AtLeast(bound) => format!(">= {bound} {unit}"),
            Goal::Below(bound) => format!("< {bound} {unit}"),
        }
    }
}

/// Evaluates every target against a run; the agent, store, SaaS, webhook and cluster
/// targets only when those measurements ran (`--skip-agent`, `--skip-store`,
/// `--skip-saas`, `--skip-webhooks`, `--skip-cluster` leave them out rather than failing
/// them).
pub fn evaluate(
    scenarios: &[ScenarioResult],
    server: ServerFigures,
    agent: Option<&AgentResults>,
    store: Option<&StoreResults>,
    saas: Option<&SaasResults>,
    webhooks: Option<&WebhookResults>,
    cluster: Option<&ClusterResults>,
) -> Vec<Target> {
    let get = |path: &str| {
        scenarios
            .iter()
            .find(|s| s.method == "GET" && s.path == path && s.errors == 0)
    };
    let mut targets = vec![
        target(
            "GET /api/settings throughput",
            Goal::AtLeast(40_000.0),
            "req/s",
            get(SETTINGS).map(|s| s.req_per_s),
        ),
        target(
            "GET /api/settings p99 latency",
            Goal::Below(5.0),
            "ms",
            get(SETTINGS).map(|s| s.p99_ms),
        ),
        target(
            "GET /api/conversations throughput",
            Goal::AtLeast(10_000.0),
            "req/s",
            get(CONVERSATIONS).map(|s| s.req_per_s),
        ),
        target(
            "idle RSS",
            Goal::Below(30.0),
            "MB",
            Some(server.idle_rss_mb),
        ),
        target(
            "start-up (median)",
            Goal::Below(200.0),
            "ms",
            server.startup_ms_median,
        ),
    ];
    if let Some(agent) = agent {
        targets.extend(agent_targets(agent));
    }
    if let Some(store) = store {
        targets.extend(store_targets(store));
    }
    if let Some(saas) = saas {
        targets.extend(saas_targets(saas));
    }
    if let Some(webhooks) = webhooks {
        targets.extend(webhook_targets(webhooks));
    }
    if let Some(cluster) = cluster {
        targets.extend(cluster_targets(cluster));
    }
    targets
}

/// The handover target's name.
const HANDOVER_TARGET: &str = "handover on SIGTERM, signal to next step (p99)";

/// Issue 6: an event reaches a watcher on another replica than its owner with p99 < 10 ms
/// (1,000 watchers over 3 replicas), and a conversation whose owner was killed (`kill -9`)
/// runs on another replica within 5 s, default lease, in every run. At SIGTERM, a
/// replica's 100 working conversations take their next step on another replica within
/// 1 s of the signal (p99); a run where any was not handed over meets none.
pub fn cluster_targets(cluster: &ClusterResults) -> [Target; 3] {
    [
        target(
            "cross-replica delivery p99",
            Goal::Below(10.0),
            "ms",
            cluster.delivery.cross_replica.measured_p99(),
        ),
        target(
            "takeover after kill -9 (worst run)",
            Goal::Below(5.0),
            "s",
            cluster.takeover.worst_ms().map(|ms| ms / 1000.0),
        ),
        target(
            HANDOVER_TARGET,
            Goal::Below(1.0),
            "s",
            cluster.handover.clean_p99_ms().map(|ms| ms / 1000.0),
        ),
    ]
}

/// Issue 7: signed deliveries verified, recorded and enqueued (jobs not run) at >= 10,000/s
/// on PostgreSQL, p99 < 20 ms. A run with an error, a delivery missing from the log or one
/// that was processed meets neither.
fn webhook_targets(webhooks: &WebhookResults) -> [Target; 2] {
    let clean = webhooks.clean().then_some(&webhooks.deliveries);
    [
        target(
            "signed GitHub deliveries recorded (PostgreSQL)",
            Goal::AtLeast(10_000.0),
            "deliveries/s",
            clean.map(|s| s.req_per_s),
        ),
        target(
            "signed GitHub delivery p99 answer time",
            Goal::Below(20.0),
            "ms",
            clean.map(|s| s.p99_ms),
        ),
    ]
}

/// Issue 5: each way of authenticating, on PostgreSQL, at >= 20,000 req/s with p99 < 5 ms.
fn saas_targets(saas: &SaasResults) -> Vec<Target> {
    [&saas.cookie, &saas.api_key]
        .into_iter()
        .flat_map(|scenario| {
            let clean = (scenario.errors == 0 && scenario.requests > 0).then_some(scenario);
            [
                target(
                    &format!("{} throughput", scenario.name),
                    Goal::AtLeast(20_000.0),
                    "req/s",
                    clean.map(|s| s.req_per_s),
                ),
                target(
                    &format!("{} p99 latency", scenario.name),
                    Goal::Below(5.0),
                    "ms",
                    clean.map(|s| s.p99_ms),
                ),
            ]
        })
        .collect()
}

fn store_targets(store: &StoreResults) -> [Target; 2] {
    [
        target(
            "SQL settings load (PostgreSQL)",
            Goal::AtLeast(15_000.0),
            "loads/s",
            (store.settings_load.operations > 0).then_some(store.settings_load.ops_per_s),
        ),
        target(
            "SQL conversation list p99 (50 per page)",
            Goal::Below(10.0),
            "ms",
            (store.conversation_list.operations > 0).then_some(store.conversation_list.p99_ms),
        ),
    ]
}

fn agent_targets(agent: &AgentResults) -> [Target; 3] {
    [
        target(
            "agent events/s",
            Goal::AtLeast(2_000.0),
            "events/s",
            Some(agent.events.events_per_s),
        ),
        target(
            "memory per idle conversation (1 watcher)",
            Goal::Below(100.0),
            "KB",
            Some(agent.idle_memory.kb_per_conversation),
        ),
        target(
            "fan-out delay p99",
            Goal::Below(20.0),
            "ms",
            // No delivery at all is a failure, not a 0 ms delay.
            agent.fanout.delays.measured_p99(),
        ),
    ]
}

pub(super) fn target(name: &str, goal: Goal, unit: &str, value: Option<f64>) -> Target {
    Target {
        name: name.to_owned(),
        target: goal.describe(unit),
        value,
        met: value.is_some_and(|v| goal.met_by(v)),
        skipped: None,
    }
}

/// A target whose measurement did not run, and why.
pub(super) fn skipped_target(name: &str, goal: Goal, unit: &str, reason: &str) -> Target {
    Target {
        skipped: Some(reason.to_owned()),
        ..target(name, goal, unit, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::agent::{EventThroughput, FanOut, IdleMemory};

    fn settings(req_per_s: f64, p99_ms: f64, errors: u64) -> ScenarioResult {
        ScenarioResult {
            name: "GET /api/settings".to_owned(),
            method: "GET".to_owned(),
            path: SETTINGS.to_owned(),
            requests: 100,
            errors,
            req_per_s,
            p50_ms: 1.0,
            p99_ms,
        }
    }

    fn figures(startup: f64, rss: f64) -> ServerFigures {
        ServerFigures {
            startup_ms_median: Some(startup),
            idle_rss_mb: rss,
        }
    }

    fn met(targets: &[Target], name: &str) -> Option<bool> {
        targets.iter().find(|t| t.name == name).map(|t| t.met)
    }

    #[test]
    fn bounds_are_applied_per_target() {
        let targets = evaluate(
            &[settings(40_000.0, 5.0, 0)],
            figures(199.0, 30.0),
            None,
            None,
            None,
            None,
            None,
        );
        assert_eq!(met(&targets, "GET /api/settings throughput"), Some(true));
        assert_eq!(met(&targets, "GET /api/settings p99 latency"), Some(false));
        assert_eq!(met(&targets, "start-up (median)"), Some(true));
        assert_eq!(met(&targets, "idle RSS"), Some(false));
    }

    #[test]
    fn a_missing_scenario_is_not_met() {
        let targets = evaluate(&[], figures(10.0, 10.0), None, None, None, None, None);
        let conversations = targets
            .iter()
            .find(|t| t.name == "GET /api/conversations throughput");
        assert_eq!(conversations.map(|t| (t.value, t.met)), Some((None, false)));
    }

    #[test]
    fn a_scenario_with_errors_meets_nothing() {
        let targets = evaluate(
            &[settings(90_000.0, 0.5, 3)],
            figures(10.0, 10.0),
            None,
            None,
            None,
            None,
            None,
        );
        assert_eq!(met(&targets, "GET /api/settings throughput"), Some(false));
        assert_eq!(met(&targets, "GET /api/settings p99 latency"), Some(false));
    }

    fn agent(events_per_s: f64, kb: f64, deliveries: usize, p99_ms: f64) -> AgentResults {
        AgentResults {
            events: EventThroughput {
                think_calls: 500,
                events: 1003,
                seconds: 0.5,
                events_per_s,
            },
            idle_memory: IdleMemory {
                conversations: 1000,
                rss_before_kb: 10_000,
                rss_after_kb: 60_000,
                kb_per_conversation: kb,
            },
            fanout: FanOut {
                watchers: 1000,
                think_calls: 200,
                delays: crate::bench::stats::DelaySummary {
                    deliveries,
                    p50_ms: 1.0,
                    p99_ms,
                    max_ms: 30.0,
                },
                // As read by the bench: always over the target, and never what it is checked on.
                read: crate::bench::stats::DelaySummary {
                    deliveries,
                    p50_ms: 15.0,
                    p99_ms: 25.0,
                    max_ms: 40.0,
                },
                usage: crate::bench::cpu::CpuUsage::default(),
            },
        }
    }

    #[test]
    fn agent_targets_only_when_measured() {
        let skipped = evaluate(&[], figures(10.0, 10.0), None, None, None, None, None);
        assert_eq!(met(&skipped, "agent events/s"), None);
        let good = agent(2_000.0, 99.9, 400_000, 19.9);
        let targets = evaluate(
            &[],
            figures(10.0, 10.0),
            Some(&good),
            None,
            None,
            None,
            None,
        );
        assert_eq!(met(&targets, "agent events/s"), Some(true));
        assert_eq!(
            met(&targets, "memory per idle conversation (1 watcher)"),
            Some(true)
        );
        assert_eq!(met(&targets, "fan-out delay p99"), Some(true));
        let bad = agent(1_999.0, 100.0, 400_000, 20.0);
        let targets = evaluate(&[], figures(10.0, 10.0), Some(&bad), None, None, None, None);
        assert_eq!(met(&targets, "agent events/s"), Some(false));
        assert_eq!(
            met(&targets, "memory per idle conversation (1 watcher)"),
            Some(false)
        );
        assert_eq!(met(&targets, "fan-out delay p99"), Some(false));
    }

    #[test]
    fn fan_out_without_deliveries_is_not_met() {
        let none = agent(5_000.0, 10.0, 0, 0.0);
        let targets = evaluate(
            &[],
            figures(10.0, 10.0),
            Some(&none),
            None,
            None,
            None,
            None,
        );
        assert_eq!(met(&targets, "fan-out delay p99"), Some(false));
    }

    #[test]
    fn store_targets_need_throughput_and_list_latency() {
        use crate::bench::store::{StoreFigure, StoreResults};
        let figure = |ops_per_s: f64, p99_ms: f64| StoreFigure {
            operations: 100,
            ops_per_s,
            p50_ms: 1.0,
            p99_ms,
        };
        let store = |load: f64, list_p99: f64| StoreResults {
            database: "postgresql".into(),
            users: 10_000,
            conversations: 100_000,
            measured_user_conversations: 10_000,
            concurrency: 32,
            list_concurrency: 8,
            seed_s: 1.0,
            settings_load: figure(load, 2.0),
            settings_store: figure(1_000.0, 9.0),
            secrets_load: figure(9_000.0, 3.0),
            conversation_list: figure(5_000.0, list_p99),
        };
        let good = store(16_000.0, 9.0);
        let targets = evaluate(
            &[],
            figures(10.0, 10.0),
            None,
            Some(&good),
            None,
            None,
            None,
        );
        assert_eq!(met(&targets, "SQL settings load (PostgreSQL)"), Some(true));
        assert_eq!(
            met(&targets, "SQL conversation list p99 (50 per page)"),
            Some(true)
        );
        let slow = store(14_999.0, 10.0);
        let targets = evaluate(
            &[],
            figures(10.0, 10.0),
            None,
            Some(&slow),
            None,
            None,
            None,
        );
        assert_eq!(met(&targets, "SQL settings load (PostgreSQL)"), Some(false));
        assert_eq!(
            met(&targets, "SQL conversation list p99 (50 per page)"),
            Some(false)
        );
    }

    #[test]
    fn saas_targets_hold_each_credential_to_throughput_and_p99() {
        use crate::bench::scenarios::{SAAS_API_KEY, SAAS_COOKIE};
        let run = |name: &str, req_per_s: f64, p99_ms: f64, errors: u64| ScenarioResult {
            name: name.to_owned(),
            errors,
            req_per_s,
            p99_ms,
            ..settings(0.0, 0.0, 0)
        };
        let saas = |cookie: ScenarioResult, api_key: ScenarioResult| SaasResults {
            database: "postgresql".into(),
            cookie,
            api_key,
        };
        let skipped = evaluate(&[], figures(10.0, 10.0), None, None, None, None, None);
        assert_eq!(
            met(&skipped, "GET /api/settings (SaaS, cookie) throughput"),
            None
        );

        let good = saas(
            run(SAAS_COOKIE, 20_000.0, 4.99, 0),
            run(SAAS_API_KEY, 25_000.0, 1.0, 0),
        );
        let targets = evaluate(
            &[],
            figures(10.0, 10.0),
            None,
            None,
            Some(&good),
            None,
            None,
        );
        for name in [
            "GET /api/settings (SaaS, cookie) throughput",
            "GET /api/settings (SaaS, cookie) p99 latency",
            "GET /api/settings (SaaS, API key) throughput",
            "GET /api/settings (SaaS, API key) p99 latency",
        ] {
            assert_eq!(met(&targets, name), Some(true), "{name}");
        }
        let target = targets
            .iter()
            .find(|t| t.name == "GET /api/settings (SaaS, API key) throughput");
        assert_eq!(
            target.map(|t| (t.target.as_str(), t.value)),
            Some((">= 20000 req/s", Some(25_000.0)))
        );

        let bad = saas(
            run(SAAS_COOKIE, 19_999.0, 5.0, 0),
            run(SAAS_API_KEY, 90_000.0, 0.5, 7),
        );
        let targets = evaluate(&[], figures(10.0, 10.0), None, None, Some(&bad), None, None);
        for name in [
            "GET /api/settings (SaaS, cookie) throughput",
            "GET /api/settings (SaaS, cookie) p99 latency",
            "GET /api/settings (SaaS, API key) throughput",
            "GET /api/settings (SaaS, API key) p99 latency",
        ] {
            assert_eq!(met(&targets, name), Some(false), "{name}");
        }
    }

    #[test]
    fn webhook_targets_need_a_clean_run_at_throughput_and_p99() {
        use crate::bench::webhooks::{GITHUB_EVENTS, SCENARIO, WebhookResults};
        let run = |req_per_s: f64, p99_ms: f64, recorded: u64, queued: u64| WebhookResults {
            database: "postgresql".into(),
            payload_bytes: 4000,
            deliveries: ScenarioResult {
                name: SCENARIO.to_owned(),
                method: "POST".to_owned(),
                path: GITHUB_EVENTS.to_owned(),
                requests: 100,
                errors: 0,
                req_per_s,
                p50_ms: 1.0,
                p99_ms,
            },
            rows_recorded: recorded,
            rows_queued: queued,
        };
        const RATE: &str = "signed GitHub deliveries recorded (PostgreSQL)";
        const P99: &str = "signed GitHub delivery p99 answer time";
        let skipped = evaluate(&[], figures(10.0, 10.0), None, None, None, None, None);
        assert_eq!(met(&skipped, RATE), None);

        let good = run(10_000.0, 19.9, 103, 103);
        let targets = evaluate(
            &[],
            figures(10.0, 10.0),
            None,
            None,
            None,
            Some(&good),
            None,
        );
        assert_eq!(met(&targets, RATE), Some(true));
        assert_eq!(met(&targets, P99), Some(true));
        let target = targets.iter().find(|t| t.name == RATE);
        assert_eq!(
            target.map(|t| t.target.as_str()),
            Some(">= 10000 deliveries/s")
        );

        let slow = run(9_999.0, 20.0, 103, 103);
        let targets = evaluate(
            &[],
            figures(10.0, 10.0),
            None,
            None,
            None,
            Some(&slow),
            None,
        );
        assert_eq!(met(&targets, RATE), Some(false));
        assert_eq!(met(&targets, P99), Some(false));

        let processed = run(50_000.0, 1.0, 103, 50);
        let targets = evaluate(
            &[],
            figures(10.0, 10.0),
            None,
            None,
            None,
            Some(&processed),
            None,
        );
        assert_eq!(met(&targets, RATE), Some(false), "jobs ran");
        assert_eq!(met(&targets, P99), Some(false), "jobs ran");
    }

    /// Every target of a run that measured only the cluster figures (and the server's).
    fn cluster_only(cluster: &ClusterResults) -> Vec<Target> {
        evaluate(
            &[],
            figures(10.0, 10.0),
            None,
            None,
            None,
            None,
            Some(cluster),
        )
    }

    #[test]
    fn cluster_targets_need_cross_replica_p99_and_every_takeover_in_time() {
        const DELIVERY: &str = "cross-replica delivery p99";
        const TAKEOVER: &str = "takeover after kill -9 (worst run)";
        let skipped = evaluate(&[], figures(10.0, 10.0), None, None, None, None, None);
        assert_eq!(met(&skipped, DELIVERY), None);
        assert_eq!(met(&skipped, TAKEOVER), None);

        let good = crate::bench::cluster::example(9.9, &[3_100.0, 4_999.0, 2_500.0]);
        let targets = cluster_only(&good);
        assert_eq!(met(&targets, DELIVERY), Some(true));
        assert_eq!(met(&targets, TAKEOVER), Some(true));
        let takeover = targets.iter().find(|t| t.name == TAKEOVER);
        assert_eq!(
            takeover.map(|t| (t.target.as_str(), t.value)),
            Some(("< 5 s", Some(4.999)))
        );

        let slow = crate::bench::cluster::example(10.0, &[3_000.0, 5_000.0, 3_000.0]);
        let targets = cluster_only(&slow);
        assert_eq!(met(&targets, DELIVERY), Some(false));
        assert_eq!(met(&targets, TAKEOVER), Some(false), "one run too slow");

        let mut nothing = crate::bench::cluster::example(1.0, &[]);
        nothing.delivery.cross_replica.deliveries = 0;
        let targets = cluster_only(&nothing);
        assert_eq!(met(&targets, DELIVERY), Some(false), "nothing delivered");
        assert_eq!(met(&targets, TAKEOVER), Some(false), "no run");
    }

    #[test]
    fn handover_target_needs_p99_below_a_second_and_every_conversation_handed_over() {
        let skipped = evaluate(&[], figures(10.0, 10.0), None, None, None, None, None);
        assert_eq!(met(&skipped, HANDOVER_TARGET), None);

        let mut cluster = crate::bench::cluster::example(9.0, &[3_000.0]);
        cluster.handover.next_step.p99_ms = 999.0;
        let targets = cluster_only(&cluster);
        assert_eq!(met(&targets, HANDOVER_TARGET), Some(true));
        let handover = targets.iter().find(|t| t.name == HANDOVER_TARGET);
        assert_eq!(
            handover.map(|t| (t.target.as_str(), t.value)),
            Some(("< 1 s", Some(0.999)))
        );

        cluster.handover.next_step.p99_ms = 1_000.0;
        assert_eq!(
            met(&cluster_only(&cluster), HANDOVER_TARGET),
            Some(false),
            "p99 too slow"
        );

        cluster.handover.next_step.p99_ms = 500.0;
        cluster.handover.failures = 1;
        assert_eq!(
            met(&cluster_only(&cluster), HANDOVER_TARGET),
            Some(false),
            "a conversation was not handed over"
        );

        cluster.handover.failures = 0;
        cluster.handover.next_step.deliveries = 0;
        assert_eq!(
            met(&cluster_only(&cluster), HANDOVER_TARGET),
            Some(false),
            "nothing measured"
        );
    }

    #[test]
    fn goals_read_naturally() {
        assert_eq!(Goal::AtLeast(40_000.0).describe("req/s"), ">= 40000 req/s");
        assert_eq!(Goal::Below(5.0).describe("ms"), "< 5 ms");
    }
}
