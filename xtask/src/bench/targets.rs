//! The performance targets the server is held to, checked against a bench run.
//!
//! Written down as data next to the bench so the goals are versioned with the
//! code and every run says plainly which ones it met. A scenario that saw any
//! error meets none of its targets: a fast stream of 404s is not throughput.

use serde::Serialize;

use super::report::ScenarioResult;
use super::scenarios::{CONVERSATIONS, SETTINGS};

/// One target and how this run did against it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Target {
    pub name: String,
    /// The goal, human-readable (e.g. `>= 40000 req/s`).
    pub target: String,
    /// The measured value; `None` when the run did not produce it.
    pub value: Option<f64>,
    pub met: bool,
}

/// The whole-server figures the targets look at besides the scenarios.
#[derive(Debug, Clone, Copy)]
pub struct ServerFigures {
    pub startup_ms_median: Option<f64>,
    pub idle_rss_mb: f64,
}

#[derive(Debug, Clone, Copy)]
enum Goal {
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

/// Evaluates every target against a run.
pub fn evaluate(scenarios: &[ScenarioResult], server: ServerFigures) -> Vec<Target> {
    let get = |path: &str| {
        scenarios
            .iter()
            .find(|s| s.method == "GET" && s.path == path && s.errors == 0)
    };
    vec![
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
    ]
}

fn target(name: &str, goal: Goal, unit: &str, value: Option<f64>) -> Target {
    Target {
        name: name.to_owned(),
        target: goal.describe(unit),
        value,
        met: value.is_some_and(|v| goal.met_by(v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let targets = evaluate(&[settings(40_000.0, 5.0, 0)], figures(199.0, 30.0));
        assert_eq!(met(&targets, "GET /api/settings throughput"), Some(true));
        assert_eq!(met(&targets, "GET /api/settings p99 latency"), Some(false));
        assert_eq!(met(&targets, "start-up (median)"), Some(true));
        assert_eq!(met(&targets, "idle RSS"), Some(false));
    }

    #[test]
    fn a_missing_scenario_is_not_met() {
        let targets = evaluate(&[], figures(10.0, 10.0));
        let conversations = targets
            .iter()
            .find(|t| t.name == "GET /api/conversations throughput");
        assert_eq!(conversations.map(|t| (t.value, t.met)), Some((None, false)));
    }

    #[test]
    fn a_scenario_with_errors_meets_nothing() {
        let targets = evaluate(&[settings(90_000.0, 0.5, 3)], figures(10.0, 10.0));
        assert_eq!(met(&targets, "GET /api/settings throughput"), Some(false));
        assert_eq!(met(&targets, "GET /api/settings p99 latency"), Some(false));
    }

    #[test]
    fn goals_read_naturally() {
        assert_eq!(Goal::AtLeast(40_000.0).describe("req/s"), ">= 40000 req/s");
        assert_eq!(Goal::Below(5.0).describe("ms"), "< 5 ms");
    }
}
