//! The agent API with the laptop default sandbox (`oss.process`); the cases are shared
//! with `agent_api_isolated.rs`.

const SANDBOX: &str = "oss.process";

#[path = "agent_api/cases.rs"]
mod cases;
