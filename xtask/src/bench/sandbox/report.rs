//! The sandbox section of `results.md`, and its targets.
//!
//! Every figure has a row whether or not it was measured: a skipped one says why (no
//! `bwrap`, `--skip-sandbox`, ...), so a machine that could not measure isolation never
//! reads as one that passed.

use std::fmt::Write as _;

use super::{Figure, Latency, SandboxResults};
use crate::bench::report::one_line;
use crate::bench::targets::{Goal, Target, skipped_target, target};

/// Issue targets: an isolated conversation starts quickly, answers tool calls quickly,
/// costs little while idle, and the agent loop keeps its pace with isolation on.
pub fn targets(results: &SandboxResults) -> Vec<Target> {
    let mut targets = Vec::new();
    let mut add = |name: &str, goal: Goal, unit: &str, value: Result<Option<f64>, &str>| {
        targets.push(match value {
            Ok(value) => target(name, goal, unit, value),
            Err(reason) => skipped_target(name, goal, unit, reason),
        });
    };
    add(
        "isolated sandbox start to first output p99",
        Goal::Below(150.0),
        "ms",
        value(&results.isolated_start, Latency::measured_p99),
    );
    add(
        "tool call round trip p99 (`true`, isolated)",
        Goal::Below(5.0),
        "ms",
        value(&results.isolated_bash, Latency::measured_p99),
    );
    add(
        "memory per idle conversation's sandbox (PSS)",
        Goal::Below(8.0),
        "MB",
        value(&results.memory, |m| Some(m.pss_kb_per_sandbox / 1024.0)),
    );
    add(
        "agent events/s (saas.bwrap)",
        Goal::AtLeast(2_000.0),
        "events/s",
        value(&results.agent_think, |e| Some(e.events_per_s)),
    );
    targets
}

fn value<T>(figure: &Figure<T>, read: impl Fn(&T) -> Option<f64>) -> Result<Option<f64>, &str> {
    match figure {
        Figure::Measured(measured) => Ok(read(measured)),
        Figure::Skipped { reason } => Err(reason),
    }
}

/// The sandbox table, each row saying what was run.
pub fn render(md: &mut String, results: &SandboxResults) {
    let _ = writeln!(
        md,
        "\n| sandbox (tool server {}; {}, cgroups {}, egress proxy) | value |",
        results.tool_server, results.bwrap, results.cgroups
    );
    let _ = writeln!(md, "| --- | ---: |");
    let start = "ms; workspace, launch, hello, configure, `echo ready`; stop not timed";
    latency_row(
        md,
        &format!("start to first output, saas.bwrap, p50 / p99 / max ({start})"),
        &results.isolated_start,
        1,
    );
    latency_row(
        md,
        &format!("start to first output, oss.process, p50 / p99 / max ({start})"),
        &results.process_start,
        1,
    );
    for (name, figure) in [
        ("`bash_run true`, saas.bwrap", &results.isolated_bash),
        ("`ping`, saas.bwrap", &results.isolated_ping),
        ("`bash_run true`, oss.process", &results.process_bash),
        ("`ping`, oss.process", &results.process_ping),
    ] {
        latency_row(
            md,
            &format!("{name} round trip, p50 / p99 / max (ms; one running sandbox)"),
            figure,
            3,
        );
    }
    match &results.memory {
        Figure::Measured(m) => {
            let _ = writeln!(
                md,
                "| memory per idle sandbox, PSS / RSS (MB; {} saas.bwrap sandboxes, one command \
                 run in each, {} processes in all; the server's own share is the agent \
                 section's) | {:.2} / {:.2} |",
                m.sandboxes,
                m.processes,
                m.pss_kb_per_sandbox / 1024.0,
                m.rss_kb_per_sandbox / 1024.0
            );
            let kinds: Vec<String> = m
                .by_process
                .iter()
                .map(|k| {
                    format!(
                        "{} ×{}: {:.0} / {:.0}",
                        k.name, k.per_sandbox, k.pss_kb_per_sandbox, k.rss_kb_per_sandbox
                    )
                })
                .collect();
            let _ = writeln!(
                md,
                "| memory per idle sandbox by process, PSS / RSS (KB) | {} |",
                kinds.join("; ")
            );
        }
        Figure::Skipped { reason } => skipped_row(md, "memory per idle sandbox", reason),
    }
    for (steps, figure) in [
        ("think", &results.agent_think),
        ("`execute_bash true`", &results.agent_bash),
    ] {
        match figure {
            Figure::Measured(e) => {
                let _ = writeln!(
                    md,
                    "| agent events/s, saas.bwrap ({} {steps} steps: {} events in {:.3} s) | {:.0} |",
                    e.think_calls, e.events, e.seconds, e.events_per_s
                );
            }
            Figure::Skipped { reason } => {
                skipped_row(
                    md,
                    &format!("agent events/s, saas.bwrap ({steps} steps)"),
                    reason,
                );
            }
        }
    }
}

fn latency_row(md: &mut String, name: &str, figure: &Figure<Latency>, decimals: usize) {
    match figure {
        Figure::Measured(l) => {
            let _ = writeln!(
                md,
                "| {name}; {} samples | {:.decimals$} / {:.decimals$} / {:.decimals$} |",
                l.samples, l.p50_ms, l.p99_ms, l.max_ms
            );
        }
        Figure::Skipped { reason } => skipped_row(md, name, reason),
    }
}

fn skipped_row(md: &mut String, name: &str, reason: &str) {
    let _ = writeln!(md, "| {name} | skipped: {} |", one_line(reason));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::agent::EventThroughput;
    use crate::bench::sandbox::SandboxMemory;
    use crate::bench::sandbox::memory::ProcessKind;

    fn latency(p99_ms: f64) -> Figure<Latency> {
        Figure::Measured(Latency {
            samples: 100,
            p50_ms: 1.5,
            p99_ms,
            max_ms: 200.0,
        })
    }

    fn example() -> SandboxResults {
        SandboxResults {
            tool_server: "/t/release/openhands-tool-server".to_owned(),
            bwrap: "bubblewrap 0.8.0".to_owned(),
            cgroups: "v1".to_owned(),
            isolated_start: latency(60.4),
            process_start: latency(9.5),
            isolated_bash: latency(0.875),
            isolated_ping: latency(0.125),
            process_bash: latency(0.5),
            process_ping: latency(0.1),
            memory: Figure::Measured(SandboxMemory {
                sandboxes: 20,
                processes: 80,
                rss_kb_per_sandbox: 12_288.0,
                pss_kb_per_sandbox: 4_096.0,
                by_process: vec![ProcessKind {
                    name: "bash".to_owned(),
                    per_sandbox: 1.0,
                    rss_kb_per_sandbox: 4_000.0,
                    pss_kb_per_sandbox: 1_500.0,
                }],
            }),
            agent_think: Figure::Measured(EventThroughput {
                think_calls: 500,
                events: 1004,
                seconds: 0.25,
                events_per_s: 4012.0,
            }),
            agent_bash: Figure::skipped("no server"),
        }
    }

    #[test]
    fn measured_figures_are_held_to_their_targets() {
        let targets = targets(&example());
        let verdicts: Vec<_> = targets
            .iter()
            .map(|t| (t.value, t.met, t.skipped.is_some()))
            .collect();
        assert_eq!(
            verdicts,
            [
                (Some(60.4), true, false),
                (Some(0.875), true, false),
                (Some(4.0), true, false),
                (Some(4012.0), true, false),
            ]
        );
    }

    #[test]
    fn skipped_figures_keep_their_rows_and_targets_with_the_reason() {
        let results = SandboxResults::skipped("bubblewrap is not usable here: no bwrap");
        let targets = targets(&results);
        assert_eq!(targets.len(), 4);
        assert!(targets.iter().all(|t| !t.met && t.value.is_none()));
        assert!(
            targets.iter().all(|t| {
                t.skipped.as_deref() == Some("bubblewrap is not usable here: no bwrap")
            })
        );
        let mut md = String::new();
        render(&mut md, &results);
        assert_eq!(
            md.matches("| skipped: bubblewrap is not usable here: no bwrap |")
                .count(),
            9,
            "{md}"
        );
    }

    #[test]
    fn rows_say_what_was_run() {
        let mut md = String::new();
        render(&mut md, &example());
        assert!(
            md.contains(
                "(tool server /t/release/openhands-tool-server; bubblewrap 0.8.0, cgroups v1"
            ),
            "{md}"
        );
        assert!(md.contains("100 samples | 1.5 / 60.4 / 200.0 |"), "{md}");
        assert!(
            md.contains("100 samples | 1.500 / 0.875 / 200.000 |"),
            "{md}"
        );
        assert!(md.contains("section's) | 4.00 / 12.00 |"), "{md}");
        assert!(md.contains("| bash ×1: 1500 / 4000 |"), "{md}");
        assert!(
            md.contains("(500 think steps: 1004 events in 0.250 s) | 4012 |"),
            "{md}"
        );
        assert!(
            md.contains("(`execute_bash true` steps) | skipped: no server |"),
            "{md}"
        );
    }

    #[test]
    fn skipped_targets_say_why_instead_of_failing() -> anyhow::Result<()> {
        let results = SandboxResults::skipped("--skip-sandbox");
        let md = crate::bench::report::render_sandbox_only(&results);
        assert!(
            md.contains(
                "| agent events/s (saas.bwrap) | >= 2000 events/s | skipped: --skip-sandbox | ⏭️ |"
            ),
            "{md}"
        );
        assert_eq!(
            md.matches("skipped: --skip-sandbox | ⏭️ |").count(),
            4,
            "{md}"
        );
        let measured = serde_json::to_value(targets(&example()))?;
        assert_eq!(measured[0].get("skipped"), None);
        let skipped = serde_json::to_value(targets(&results))?;
        assert_eq!(skipped[0]["skipped"], "--skip-sandbox");
        Ok(())
    }

    #[test]
    fn json_says_which_figures_were_skipped() -> anyhow::Result<()> {
        let value = serde_json::to_value(example())?;
        assert_eq!(value["isolated_start"]["status"], "measured");
        assert_eq!(value["isolated_start"]["p99_ms"], 60.4);
        assert_eq!(value["memory"]["pss_kb_per_sandbox"], 4096.0);
        assert_eq!(value["agent_bash"]["status"], "skipped");
        assert_eq!(value["agent_bash"]["reason"], "no server");
        Ok(())
    }
}
