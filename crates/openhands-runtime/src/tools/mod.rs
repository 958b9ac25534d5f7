//! What the agent can do to its workspace.
//!
//! * [`bash::BashSession`]: one persistent shell per conversation, so `cd` and `export` carry
//!   over between commands, with timeouts that cannot hang the session;
//! * [`editor::FileEditor`]: the `str_replace`-style file editor, confined to the workspace;
//! * [`tool_specs`]: the JSON-schema definitions the LLM sees ([`tool_specs_json`]: serialized
//!   once per process).

pub mod bash;
pub mod editor;
mod error;
mod output;
mod specs;

pub use error::ToolError;
pub use output::{MAX_OUTPUT_CHARS, truncate_middle};
pub use specs::{
    EDITOR_TOOL, EXECUTE_BASH_TOOL, FINISH_TOOL, THINK_TOOL, tool_specs, tool_specs_json,
};
