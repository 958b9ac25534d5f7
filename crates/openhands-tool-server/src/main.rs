//! The tool server program: one per conversation, inside its sandbox, speaking the tool
//! protocol on stdin/stdout (see `openhands_tool_server::cli` for the flags).

fn main() -> std::process::ExitCode {
    openhands_tool_server::cli::run(std::env::args().skip(1))
}
