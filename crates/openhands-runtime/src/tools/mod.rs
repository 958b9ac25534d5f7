//! What the agent can do to its workspace, as the LLM sees it.
//!
//! The tools themselves (the persistent shell and the file editor) run in the
//! conversation's tool server inside its sandbox (`openhands-tool-server`); the agent
//! calls them through `openhands_core::tool_protocol`. This module holds the JSON-schema
//! definitions the LLM sees ([`tool_specs_json`]: serialized once per process), and the
//! agent's handle on the tool server ([`SandboxTools`]).

mod sandbox;
mod specs;

pub use sandbox::SandboxTools;

pub use specs::{
    EDITOR_TOOL, EXECUTE_BASH_TOOL, FINISH_TOOL, THINK_TOOL, tool_specs, tool_specs_json,
};
