//! The tool server (see `openhands_core::tool_protocol`).
