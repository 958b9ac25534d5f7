//! The agent API with the isolated sandbox (`saas.bwrap`: bubblewrap, seccomp, limits,
//! egress through the proxy); the cases are shared with `agent_api.rs`.

const SANDBOX: &str = "saas.bwrap";

#[path = "agent_api/cases.rs"]
mod cases;
