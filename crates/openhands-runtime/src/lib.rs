//! The agent runtime: the LLM client, the tools, and the CodeAct-style agent loop.
//!
//! * [`llm`] talks to any OpenAI-compatible chat-completions endpoint (OpenAI itself or a
//!   LiteLLM proxy) with tool calling, retries and a small price table;
//! * [`tools`] holds what the agent can do to its workspace: a persistent bash session and a
//!   `str_replace`-style file editor confined to the workspace, plus the JSON-schema specs the
//!   LLM sees;
//! * [`agent`] runs the loop that turns LLM tool calls into OpenHands V0 events, executes them
//!   and feeds the observations back.
//!
//! The crate knows nothing about HTTP servers or storage: it emits events and records usage
//! through the [`agent::AgentIo`] trait the embedding server implements.

pub mod agent;
pub mod llm;
pub mod tools;

#[cfg(any(test, feature = "testing"))]
pub mod testing;
