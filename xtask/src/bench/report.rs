//! The bench's output: `results.json` for tools and trend tracking,
//! `results.md` for people (and pull requests).
//!
//! Both are rendered from one [`Results`] value, so they cannot disagree.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

use super::agent::AgentResults;
use super::cluster::{ClusterResults, Handover};
use super::saas_auth::SaasResults;
use super::sandbox::SandboxResults;
use super::store::StoreResults;
use super::targets::Target;
use super::webhooks::WebhookResults;

/// One measured scenario.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ScenarioResult {
    pub name: String,
    pub method: String,
    pub path: String,
    pub requests: u64,
    pub errors: u64,
    pub req_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Machine {
    /// Available parallelism of the machine the bench ran on.
    pub nproc: usize,
}

/// Everything one bench run measured.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Results {
    /// Unix time in seconds.
    pub generated_at: u64,
    pub machine: Machine,
    /// Tokio worker threads of the load generator (the rest is the server's).
    pub client_worker_threads: usize,
    pub connections: usize,
    pub duration_s: u64,
    pub scenarios: Vec<ScenarioResult>,
    pub startup_ms_median: Option<f64>,
    pub startup_ms_runs: Vec<f64>,
    pub startup_rss_mb: f64,
    pub idle_rss_mb: f64,
    /// The agent measurements (fresh server, fake LLM); `null` with `--skip-agent`.
    pub agent: Option<AgentResults>,
    /// The SQL store figures on PostgreSQL; `null` with `--skip-store`.
    pub store: Option<StoreResults>,
    /// Authenticated `GET /api/settings` of a SaaS server on PostgreSQL; `null` with
    /// `--skip-saas`.
    pub saas: Option<SaasResults>,
    /// Signed GitHub deliveries recorded by a SaaS server on PostgreSQL, worker off; `null`
    /// with `--skip-webhooks`.
    pub webhooks: Option<WebhookResults>,
    /// Three SaaS replicas on PostgreSQL and Redis: cross-replica delivery delay and
    /// takeover time after `kill -9`; `null` with `--skip-cluster` (or without
    /// PostgreSQL or Redis).
    pub cluster: Option<ClusterResults>,
    /// Tool servers in `saas.bwrap` and `oss.process` sandboxes: start, round trip, idle
    /// memory, agent events/s. Always present: a figure not measured says why.
    pub sandbox: SandboxResults,
    pub targets: Vec<Target>,
}

/// Writes `results.json` and `results.md` into `dir`; returns the markdown.
pub fn write(dir: &Path, results: &Results) -> Result<String> {
    let json_path = dir.join("results.json");
    let json = serde_json::to_string_pretty(results).context("serialising results")?;
    std::fs::write(&json_path, json + "\n")
        .with_context(|| format!("writing {}", json_path.display()))?;
    let markdown = render_markdown(results);
    let md_path = dir.join("results.md");
    std::fs::write(&md_path, &markdown)
        .with_context(|| format!("writing {}", md_path.display()))?;
    Ok(markdown)
}

/// The human-readable report: scenarios, server figures, targets.
pub fn render_markdown(results: &Results) -> String {
    let mut md = String::new();
    // `write!` to a String cannot fail; the results are ignored below.
    let _ = writeln!(md, "# Bench results\n");
    let _ = writeln!(
        md,
        "{} connections, {} s measured per scenario, {} load-generator thread(s), {} CPUs.\n",
        results.connections,
        results.duration_s,
        results.client_worker_threads,
        results.machine.nproc
    );
    let _ = writeln!(
        md,
        "| scenario | requests | req/s | p50 (ms) | p99 (ms) | errors |"
    );
    let _ = writeln!(md, "| --- | ---: | ---: | ---: | ---: | ---: |");
    for s in &results.scenarios {
        scenario_row(&mut md, s);
    }
    let runs: Vec<String> = results
        .startup_ms_runs
        .iter()
        .map(|ms| format!("{ms:.1}"))
        .collect();
    let _ = writeln!(md, "\n| server | value |");
    let _ = writeln!(md, "| --- | ---: |");
    let _ = writeln!(
        md,
        "| start-up, median (ms) | {} |",
        optional(results.startup_ms_median, 1)
    );
    let _ = writeln!(md, "| start-up runs (ms) | {} |", runs.join(", "));
    let _ = writeln!(
        md,
        "| RSS after start-up (MB) | {:.1} |",
        results.startup_rss_mb
    );
    let _ = writeln!(
        md,
        "| RSS idle after load (MB) | {:.1} |",
        results.idle_rss_mb
    );
    if let Some(agent) = &results.agent {
        render_agent(&mut md, agent);
    }
    if let Some(store) = &results.store {
        render_store(&mut md, store);
    }
    if let Some(saas) = &results.saas {
        render_saas(&mut md, saas);
    }
    if let Some(webhooks) = &results.webhooks {
        render_webhooks(&mut md, webhooks);
    }
    if let Some(cluster) = &results.cluster {
        render_cluster(&mut md, cluster);
    }
    super::sandbox::report::render(&mut md, &results.sandbox);
    render_targets(&mut md, &results.targets);
    md
}

/// The sandbox table alone, for `--only-sandbox` runs, with its targets.
pub fn render_sandbox_only(sandbox: &SandboxResults) -> String {
    let mut md = String::new();
    super::sandbox::report::render(&mut md, sandbox);
    render_targets(&mut md, &super::sandbox::report::targets(sandbox));
    md
}

fn render_targets(md: &mut String, targets: &[Target]) {
    let _ = writeln!(md, "\n| target | goal | value | met |");
    let _ = writeln!(md, "| --- | --- | ---: | :---: |");
    for t in targets {
        let (value, mark) = match &t.skipped {
            Some(reason) => (format!("skipped: {}", one_line(reason)), "⏭️"),
            None => (optional(t.value, 2), if t.met { "✅" } else { "❌" }),
        };
        let _ = writeln!(md, "| {} | {} | {value} | {mark} |", t.name, t.target);
    }
}

/// The cluster table alone, for `--only-cluster` runs, with its targets.
pub fn render_cluster_only(cluster: &ClusterResults) -> String {
    let mut md = String::new();
    render_cluster(&mut md, cluster);
    render_targets(&mut md, &super::targets::cluster_targets(cluster));
    md
}

/// The cluster measurements' table, each row saying what was run.
fn render_cluster(md: &mut String, cluster: &ClusterResults) {
    let delivery = &cluster.delivery;
    let takeover = &cluster.takeover;
    let _ = writeln!(
        md,
        "\n| cluster ({} SaaS replicas, {}, Redis, fake LLM) | value |",
        cluster.replicas, cluster.database
    );
    let _ = writeln!(md, "| --- | ---: |");
    let setup = format!(
        "{} watchers round-robin over {} replicas, {} think calls answered in {} ms each",
        delivery.watchers, delivery.replicas, delivery.think_calls, delivery.llm_answer_ms
    );
    for (name, delays) in [
        ("cross-replica delivery delay", &delivery.cross_replica),
        (
            "cross-replica delivery delay as read by the bench",
            &delivery.cross_replica_read,
        ),
        ("owner-replica delivery delay", &delivery.owner_replica),
    ] {
        let _ = writeln!(
            md,
            "| {name} p50 / p99 / max (ms; {setup}; {} deliveries) | {:.2} / {:.2} / {:.2} |",
            delays.deliveries, delays.p50_ms, delays.p99_ms, delays.max_ms
        );
    }
    let usage = &delivery.usage;
    let _ = writeln!(
        md,
        "| delivery CPU seconds: 3 replicas / bench (in {:.2} s wall) | {:.2} / {:.2} |",
        usage.wall_s, usage.server_cpu_s, usage.bench_cpu_s
    );
    let runs = takeover.runs.len();
    let lease = format!(
        "default lease {} ms, renew {} ms, {runs} runs",
        takeover.lease_ms, takeover.renew_interval_ms
    );
    for (name, spread) in [
        (
            "kill -9 to status event at a watcher",
            &takeover.status_event,
        ),
        ("kill -9 to RUNNING on a survivor", &takeover.running),
    ] {
        let _ = writeln!(
            md,
            "| takeover: {name}, median / max (ms; {lease}) | {:.0} / {:.0} |",
            spread.median_ms, spread.max_ms
        );
    }
    let each: Vec<String> = takeover
        .runs
        .iter()
        .map(|run| {
            format!(
                "{} -> {}: {:.0} / {:.0}",
                run.killed, run.resumed_on, run.status_event_ms, run.running_ms
            )
        })
        .collect();
    let _ = writeln!(
        md,
        "| takeover runs (killed -> resumed on: status event / RUNNING, ms) | {} |",
        each.join("; ")
    );
    render_handover(md, &cluster.handover);
}

/// The handover rows of the cluster table.
fn render_handover(md: &mut String, handover: &Handover) {
    let setup = format!(
        "{} working conversations on {}, think answered in {} ms",
        handover.conversations, handover.stopped_replica, handover.llm_answer_ms
    );
    for (name, delays) in [
        ("signal to `stopped` at a watcher", &handover.drained),
        ("signal to the status event", &handover.status_event),
        (
            "signal to the next step on another replica",
            &handover.next_step,
        ),
    ] {
        let _ = writeln!(
            md,
            "| handover on SIGTERM: {name} p50 / p99 / max (ms; {setup}; {} seen) | {:.0} / {:.0} / {:.0} |",
            delays.deliveries, delays.p50_ms, delays.p99_ms, delays.max_ms
        );
    }
    for (name, delays) in [
        ("status event", &handover.status_event_lag),
        ("next step", &handover.next_step_lag),
    ] {
        let _ = writeln!(
            md,
            "| handover: {name}, its timestamp to the read at the watcher, p50 / p99 / max (ms) | {:.1} / {:.1} / {:.1} |",
            delays.p50_ms, delays.p99_ms, delays.max_ms
        );
    }
    let taken: Vec<String> = handover
        .resumed_on
        .iter()
        .map(|(replica, count)| format!("{replica} {count}"))
        .collect();
    let _ = writeln!(
        md,
        "| handover: handed over / failed (of {}; running on: {}) | {} / {} |",
        handover.conversations,
        taken.join(", "),
        handover.handed_over(),
        handover.failures
    );
    for failure in &handover.failure_examples {
        let _ = writeln!(md, "| handover failure | {} |", one_line(failure));
    }
    let _ = writeln!(
        md,
        "| handover: SIGTERM to the stopping replica's exit (ms) | {:.0} |",
        handover.exit_ms
    );
}

fn scenario_row(md: &mut String, s: &ScenarioResult) {
    let _ = writeln!(
        md,
        "| {} | {} | {:.0} | {:.2} | {:.2} | {} |",
        s.name, s.requests, s.req_per_s, s.p50_ms, s.p99_ms, s.errors
    );
}

/// The SaaS scenarios, in the scenario table's columns.
fn render_saas(md: &mut String, saas: &SaasResults) {
    let _ = writeln!(
        md,
        "\n| SaaS mode ({}, fresh server) | requests | req/s | p50 (ms) | p99 (ms) | errors |",
        saas.database
    );
    let _ = writeln!(md, "| --- | ---: | ---: | ---: | ---: | ---: |");
    scenario_row(md, &saas.cookie);
    scenario_row(md, &saas.api_key);
}

/// The webhook table alone, for `--only-webhooks` runs, with its two targets.
pub fn render_webhooks_only(webhooks: &WebhookResults) -> String {
    let mut md = String::new();
    render_webhooks(&mut md, webhooks);
    let verdict = |met: bool| if met { "met" } else { "NOT met" };
    let clean = webhooks.clean();
    let _ = writeln!(
        md,
        "\nTargets (issue 7): >= 10000 deliveries/s {}; p99 < 20 ms {}.",
        verdict(clean && webhooks.deliveries.req_per_s >= 10_000.0),
        verdict(clean && webhooks.deliveries.p99_ms < 20.0)
    );
    md
}

/// The webhook scenario, in the scenario table's columns, and what the log holds after it.
fn render_webhooks(md: &mut String, webhooks: &WebhookResults) {
    let _ = writeln!(
        md,
        "\n| webhooks ({}, fresh server, worker off, {} B payload) | requests | req/s | p50 (ms) | p99 (ms) | errors |",
        webhooks.database, webhooks.payload_bytes
    );
    let _ = writeln!(md, "| --- | ---: | ---: | ---: | ---: | ---: |");
    scenario_row(md, &webhooks.deliveries);
    let _ = writeln!(
        md,
        "\nEach request: a new `X-GitHub-Delivery`, `X-Hub-Signature-256` verified, one row \
         inserted, 202 (anything else is an error). Log after the run: {} rows, {} still \
         `queued` (jobs not run).",
        webhooks.rows_recorded, webhooks.rows_queued
    );
}

/// The SQL store table, each row saying what was run.
fn render_store(md: &mut String, store: &StoreResults) {
    let _ = writeln!(
        md,
        "\n| SQL stores ({}, {} users, {} conversations, {} callers) | ops/s | p50 (ms) | p99 (ms) |",
        store.database, store.users, store.conversations, store.concurrency
    );
    let _ = writeln!(md, "| --- | ---: | ---: | ---: |");
    let rows = [
        ("settings load", &store.settings_load),
        (
            "settings store (merge, one transaction)",
            &store.settings_store,
        ),
        ("secrets load (3 custom secrets each)", &store.secrets_load),
    ];
    let list = format!(
        "conversation list, 50 per page, {} callers ({} of the user's)",
        store.list_concurrency, store.measured_user_conversations
    );
    let rows = rows
        .into_iter()
        .chain([(list.as_str(), &store.conversation_list)]);
    for (name, figure) in rows {
        let _ = writeln!(
            md,
            "| {name} | {:.0} | {:.2} | {:.2} |",
            figure.ops_per_s, figure.p50_ms, figure.p99_ms
        );
    }
}

/// The agent table alone, for `--only-agent` runs.
pub fn render_agent_only(agent: &AgentResults) -> String {
    let mut md = String::new();
    render_agent(&mut md, agent);
    md
}

/// The agent measurements' table, each row saying what was run.
fn render_agent(md: &mut String, agent: &AgentResults) {
    let events = &agent.events;
    let memory = &agent.idle_memory;
    let fanout = &agent.fanout;
    let _ = writeln!(md, "\n| agent (fresh server, fake LLM) | value |");
    let _ = writeln!(md, "| --- | ---: |");
    let _ = writeln!(
        md,
        "| events/s ({} think calls: {} events in {:.3} s) | {:.0} |",
        events.think_calls, events.events, events.seconds, events.events_per_s
    );
    let _ = writeln!(
        md,
        "| memory per idle conversation, 1 watcher each (KB; {} conversations, RSS {:.1} -> {:.1} MB) | {:.1} |",
        memory.conversations,
        memory.rss_before_kb as f64 / 1024.0,
        memory.rss_after_kb as f64 / 1024.0,
        memory.kb_per_conversation
    );
    let _ = writeln!(
        md,
        "| fan-out delay p50 / p99 / max (ms; {} watchers, {} think calls answered in 10 ms each, {} deliveries) | {:.2} / {:.2} / {:.2} |",
        fanout.watchers,
        fanout.think_calls,
        fanout.delays.deliveries,
        fanout.delays.p50_ms,
        fanout.delays.p99_ms,
        fanout.delays.max_ms
    );
    let _ = writeln!(
        md,
        "| fan-out delay as read by the bench p50 / p99 / max (ms; two idle-priority threads read the {} sockets in turn) | {:.2} / {:.2} / {:.2} |",
        fanout.watchers, fanout.read.p50_ms, fanout.read.p99_ms, fanout.read.max_ms
    );
    let usage = &fanout.usage;
    let _ = writeln!(
        md,
        "| fan-out CPU seconds: server / bench (in {:.2} s wall) | {:.2} / {:.2} |",
        usage.wall_s, usage.server_cpu_s, usage.bench_cpu_s
    );
}

/// `text` as one table cell: no line breaks, no column separators.
pub(super) fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ").replace('|', "/")
}

fn optional(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.decimals$}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Results {
        let scenario = |name: &str, method: &str, path: &str| ScenarioResult {
            name: name.to_owned(),
            method: method.to_owned(),
            path: path.to_owned(),
            requests: 1000,
            errors: 0,
            req_per_s: 200.0,
            p50_ms: 1.25,
            p99_ms: 3.5,
        };
        Results {
            generated_at: 1_700_000_000,
            machine: Machine { nproc: 2 },
            client_worker_threads: 1,
            connections: 32,
            duration_s: 5,
            scenarios: vec![
                scenario("GET /alive", "GET", "/alive"),
                scenario("POST /api/settings", "POST", "/api/settings"),
                scenario(
                    "GET /api/conversations (1,000 stored)",
                    "GET",
                    "/api/conversations",
                ),
            ],
            startup_ms_median: Some(42.0),
            startup_ms_runs: vec![40.0, 42.0, 50.0],
            startup_rss_mb: 12.0,
            idle_rss_mb: 14.5,
            agent: None,
            store: None,
            saas: None,
            webhooks: None,
            cluster: None,
            sandbox: SandboxResults::skipped("--skip-sandbox"),
            targets: vec![
                Target {
                    name: "idle RSS".to_owned(),
                    target: "< 30 MB".to_owned(),
                    value: Some(14.5),
                    met: true,
                    skipped: None,
                },
                Target {
                    name: "GET /api/conversations throughput".to_owned(),
                    target: ">= 10000 req/s".to_owned(),
                    value: Some(200.0),
                    met: false,
                    skipped: None,
                },
            ],
        }
    }

    #[test]
    fn markdown_lists_every_scenario() {
        let results = sample();
        let md = render_markdown(&results);
        for scenario in &results.scenarios {
            assert!(
                md.contains(&format!(
                    "| {} | 1000 | 200 | 1.25 | 3.50 | 0 |",
                    scenario.name
                )),
                "missing row for {}:\n{md}",
                scenario.name
            );
        }
    }

    #[test]
    fn markdown_marks_targets_met_and_missed() {
        let md = render_markdown(&sample());
        assert!(md.contains("| idle RSS | < 30 MB | 14.50 | ✅ |"), "{md}");
        assert!(
            md.contains("| GET /api/conversations throughput | >= 10000 req/s | 200.00 | ❌ |"),
            "{md}"
        );
        assert!(
            md.contains("| start-up runs (ms) | 40.0, 42.0, 50.0 |"),
            "{md}"
        );
    }

    fn agent() -> AgentResults {
        use crate::bench::agent::{EventThroughput, FanOut, IdleMemory};
        use crate::bench::cpu::CpuUsage;
        use crate::bench::stats::DelaySummary;
        AgentResults {
            events: EventThroughput {
                think_calls: 500,
                events: 1004,
                seconds: 0.25,
                events_per_s: 4012.0,
            },
            idle_memory: IdleMemory {
                conversations: 1000,
                rss_before_kb: 20_480,
                rss_after_kb: 71_680,
                kb_per_conversation: 51.2,
            },
            fanout: FanOut {
                watchers: 1000,
                think_calls: 200,
                delays: DelaySummary {
                    deliveries: 402_000,
                    p50_ms: 1.5,
                    p99_ms: 7.25,
                    max_ms: 12.0,
                },
                read: DelaySummary {
                    deliveries: 402_000,
                    p50_ms: 4.5,
                    p99_ms: 14.75,
                    max_ms: 21.0,
                },
                usage: CpuUsage {
                    wall_s: 2.5,
                    server_cpu_s: 3.0,
                    bench_cpu_s: 1.75,
                },
            },
        }
    }

    #[test]
    fn sandbox_figures_show_even_when_skipped() {
        let md = render_markdown(&sample());
        assert!(
            md.contains("| start to first output, saas.bwrap, p50 / p99 / max"),
            "{md}"
        );
    }

    #[test]
    fn markdown_shows_agent_figures_only_when_measured() {
        let mut results = sample();
        assert!(!render_markdown(&results).contains("agent (fresh server"));
        results.agent = Some(agent());
        let md = render_markdown(&results);
        assert!(
            md.contains("| events/s (500 think calls: 1004 events in 0.250 s) | 4012 |"),
            "{md}"
        );
        assert!(md.contains("RSS 20.0 -> 70.0 MB) | 51.2 |"), "{md}");
        assert!(
            md.contains("402000 deliveries) | 1.50 / 7.25 / 12.00 |"),
            "{md}"
        );
        assert!(
            md.contains("server / bench (in 2.50 s wall) | 3.00 / 1.75 |"),
            "{md}"
        );
    }

    fn saas() -> SaasResults {
        let scenario = |name: &str, req_per_s: f64, p99_ms: f64| ScenarioResult {
            name: name.to_owned(),
            method: "GET".to_owned(),
            path: "/api/settings".to_owned(),
            requests: 50_000,
            errors: 0,
            req_per_s,
            p50_ms: 1.5,
            p99_ms,
        };
        SaasResults {
            database: "postgresql".to_owned(),
            cookie: scenario("GET /api/settings (SaaS, cookie)", 10_000.0, 4.25),
            api_key: scenario("GET /api/settings (SaaS, API key)", 8_000.0, 6.5),
        }
    }

    #[test]
    fn markdown_shows_saas_figures_only_when_measured() {
        let mut results = sample();
        assert!(!render_markdown(&results).contains("SaaS mode"));
        results.saas = Some(saas());
        let md = render_markdown(&results);
        assert!(
            md.contains("| SaaS mode (postgresql, fresh server) | requests | req/s |"),
            "{md}"
        );
        assert!(
            md.contains("| GET /api/settings (SaaS, cookie) | 50000 | 10000 | 1.50 | 4.25 | 0 |"),
            "{md}"
        );
        assert!(
            md.contains("| GET /api/settings (SaaS, API key) | 50000 | 8000 | 1.50 | 6.50 | 0 |"),
            "{md}"
        );
    }

    fn webhooks() -> WebhookResults {
        use crate::bench::webhooks::{GITHUB_EVENTS, SCENARIO};
        WebhookResults {
            database: "postgresql".to_owned(),
            payload_bytes: 3_500,
            deliveries: ScenarioResult {
                name: SCENARIO.to_owned(),
                method: "POST".to_owned(),
                path: GITHUB_EVENTS.to_owned(),
                requests: 60_000,
                errors: 0,
                req_per_s: 12_000.0,
                p50_ms: 2.5,
                p99_ms: 9.75,
            },
            rows_recorded: 70_002,
            rows_queued: 70_002,
        }
    }

    #[test]
    fn markdown_shows_webhook_figures_only_when_measured() -> Result<()> {
        let mut results = sample();
        assert!(!render_markdown(&results).contains("webhooks ("));
        assert!(serde_json::to_value(&results)?["webhooks"].is_null());
        results.webhooks = Some(webhooks());
        let md = render_markdown(&results);
        assert!(
            md.contains("| webhooks (postgresql, fresh server, worker off, 3500 B payload) |"),
            "{md}"
        );
        assert!(
            md.contains(
                "| POST /integration/github/events (signed, worker off) | 60000 | 12000 | 2.50 | 9.75 | 0 |"
            ),
            "{md}"
        );
        assert!(md.contains("70002 rows, 70002 still `queued`"), "{md}");
        let value = serde_json::to_value(&results)?;
        assert_eq!(value["webhooks"]["deliveries"]["req_per_s"], 12_000.0);
        assert_eq!(value["webhooks"]["rows_queued"], 70_002);

        let alone = render_webhooks_only(&webhooks());
        assert!(
            alone.contains(">= 10000 deliveries/s met; p99 < 20 ms met."),
            "{alone}"
        );
        Ok(())
    }

    #[test]
    fn markdown_and_json_show_cluster_figures_only_when_measured() -> Result<()> {
        let mut results = sample();
        assert!(!render_markdown(&results).contains("cluster ("));
        assert!(serde_json::to_value(&results)?["cluster"].is_null());
        results.cluster = Some(crate::bench::cluster::example(
            7.25,
            &[3_100.0, 2_600.0, 4_100.0],
        ));
        let md = render_markdown(&results);
        assert!(
            md.contains("| cluster (3 SaaS replicas, postgresql, Redis, fake LLM) | value |"),
            "{md}"
        );
        assert!(
            md.contains("| cross-replica delivery delay p50 / p99 / max (ms; 1000 watchers round-robin over 3 replicas, 200 think calls answered in 10 ms each; 268000 deliveries) | 1.50 / 7.25 / 20.00 |"),
            "{md}"
        );
        assert!(
            md.contains("134000 deliveries) | 1.50 / 4.00 / 20.00 |"),
            "{md}"
        );
        assert!(
            md.contains("| takeover: kill -9 to RUNNING on a survivor, median / max (ms; default lease 3000 ms, renew 250 ms, 3 runs) | 3100 / 4100 |"),
            "{md}"
        );
        assert!(
            md.contains("| a -> b: 3000 / 3100; b -> b: 2500 / 2600; c -> b: 4000 / 4100 |"),
            "{md}"
        );
        let value = serde_json::to_value(&results)?;
        assert_eq!(
            value["cluster"]["delivery"]["cross_replica"]["p99_ms"],
            7.25
        );
        assert_eq!(value["cluster"]["takeover"]["complete"]["max_ms"], 4_100.0);
        assert_eq!(value["cluster"]["takeover"]["runs"][0]["killed"], "a");
        assert!(
            md.contains("| handover on SIGTERM: signal to the next step on another replica p50 / p99 / max (ms; 100 working conversations on a, think answered in 100 ms; 100 seen) | 420 / 850 / 860 |"),
            "{md}"
        );
        assert!(
            md.contains(
                "| handover: handed over / failed (of 100; running on: b 50, c 50) | 100 / 0 |"
            ),
            "{md}"
        );
        assert!(
            md.contains("| handover: SIGTERM to the stopping replica's exit (ms) | 700 |"),
            "{md}"
        );
        assert!(
            md.contains("| handover: next step, its timestamp to the read at the watcher, p50 / p99 / max (ms) | 1.5 / 4.0 / 4.5 |"),
            "{md}"
        );
        assert_eq!(value["cluster"]["handover"]["next_step"]["p99_ms"], 850.0);

        let alone = render_cluster_only(&crate::bench::cluster::example(7.25, &[5_000.0]));
        assert!(
            alone.contains("| cross-replica delivery p99 | < 10 ms | 7.25 | ✅ |"),
            "{alone}"
        );
        assert!(
            alone.contains("| takeover after kill -9 (worst run) | < 5 s | 5.00 | ❌ |"),
            "{alone}"
        );
        assert!(
            alone
                .contains("| handover on SIGTERM, signal to next step (p99) | < 1 s | 0.85 | ✅ |"),
            "{alone}"
        );
        Ok(())
    }

    #[test]
    fn json_has_the_saas_figures() -> Result<()> {
        let mut results = sample();
        assert!(serde_json::to_value(&results)?["saas"].is_null());
        results.saas = Some(saas());
        let value = serde_json::to_value(&results)?;
        assert_eq!(value["saas"]["database"], "postgresql");
        assert_eq!(value["saas"]["cookie"]["req_per_s"], 10_000.0);
        assert_eq!(value["saas"]["api_key"]["p99_ms"], 6.5);
        Ok(())
    }

    #[test]
    fn json_has_the_documented_fields() -> Result<()> {
        let value = serde_json::to_value(sample())?;
        for field in [
            "generated_at",
            "machine",
            "connections",
            "duration_s",
            "scenarios",
            "startup_ms_median",
            "startup_ms_runs",
            "startup_rss_mb",
            "idle_rss_mb",
            "agent",
            "store",
            "saas",
            "webhooks",
            "cluster",
            "sandbox",
            "targets",
        ] {
            assert!(value.get(field).is_some(), "missing {field}");
        }
        assert_eq!(value["machine"]["nproc"], 2);
        assert_eq!(value["scenarios"][0]["req_per_s"], 200.0);
        assert_eq!(value["targets"][0]["met"], true);
        Ok(())
    }

    #[test]
    fn write_creates_both_files() -> Result<()> {
        let dir = std::env::temp_dir().join(format!("xtask-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let md = write(&dir, &sample())?;
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("results.json"))?)?;
        let md_on_disk = std::fs::read_to_string(dir.join("results.md"))?;
        std::fs::remove_dir_all(&dir)?;
        assert_eq!(json["connections"], 32);
        assert_eq!(md_on_disk, md);
        Ok(())
    }
}
