//! The command line of the tool server: flags, the limits and seccomp filter it applies to
//! itself (so every process it starts inherits them), the egress relay, and serving the
//! protocol on stdin/stdout.
//!
//! In a library so that the server binary can offer the same program as a subcommand. The
//! flags are parsed by hand: the binary stays small, and it runs once per conversation.

use crate::limits::{self, ProcessLimits};
use crate::serve::{ServeOptions, serve, server_name};
use crate::{relay, seccomp};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str = "usage: openhands-tool-server [--workspace DIR] [--shown-as PATH]
    [--rlimit-nofile N] [--rlimit-fsize BYTES] [--rlimit-nproc N] [--rlimit-cpu SECONDS]
    [--max-workspace-bytes N] [--seccomp] [--proxy-socket PATH --proxy-listen ADDR]

Serves the tool protocol on stdin/stdout for the workspace DIR (default: the current
directory). Logs go to stderr.";

/// The parsed command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Args {
    pub workspace: Option<PathBuf>,
    pub shown_as: Option<String>,
    pub limits: ProcessLimits,
    /// `--rlimit-cpu`: applied to each shell's processes (see [`ServeOptions`]).
    pub cpu_seconds: u64,
    pub max_workspace_bytes: u64,
    pub seccomp: bool,
    pub proxy_socket: Option<PathBuf>,
    pub proxy_listen: Option<String>,
}

/// Why the command line was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ArgsError {
    #[error("unknown argument `{0}`")]
    Unknown(String),
    #[error("`{0}` needs a value")]
    MissingValue(String),
    #[error("`{flag}` needs a whole number, not `{value}`")]
    NotANumber { flag: String, value: String },
    #[error("--proxy-socket and --proxy-listen go together")]
    HalfRelay,
    /// `--help` or `--version`: print this and exit successfully.
    #[error("{0}")]
    Info(String),
}

impl Args {
    /// Parses the arguments after the program name.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Self, ArgsError> {
        let mut parsed = Self::default();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((flag, value)) if flag.starts_with("--") => {
                    (flag.to_owned(), Some(value.to_owned()))
                }
                _ => (arg.clone(), None),
            };
            let mut value = || {
                inline
                    .clone()
                    .or_else(|| args.next())
                    .ok_or_else(|| ArgsError::MissingValue(flag.clone()))
            };
            let number = |value: String| {
                value.parse::<u64>().map_err(|_| ArgsError::NotANumber {
                    flag: flag.clone(),
                    value,
                })
            };
            match flag.as_str() {
                "--workspace" => parsed.workspace = Some(value()?.into()),
                "--shown-as" => parsed.shown_as = Some(value()?),
                "--rlimit-nofile" => parsed.limits.open_files = number(value()?)?,
                "--rlimit-fsize" => parsed.limits.file_size_bytes = number(value()?)?,
                "--rlimit-nproc" => parsed.limits.processes = number(value()?)?,
                "--rlimit-cpu" => parsed.cpu_seconds = number(value()?)?,
                "--max-workspace-bytes" => parsed.max_workspace_bytes = number(value()?)?,
                "--seccomp" if inline.is_none() => parsed.seccomp = true,
                "--proxy-socket" => parsed.proxy_socket = Some(value()?.into()),
                "--proxy-listen" => parsed.proxy_listen = Some(value()?),
                "--help" | "-h" => return Err(ArgsError::Info(USAGE.into())),
                "--version" | "-V" => return Err(ArgsError::Info(server_name())),
                _ => return Err(ArgsError::Unknown(arg)),
            }
        }
        if parsed.proxy_socket.is_some() != parsed.proxy_listen.is_some() {
            return Err(ArgsError::HalfRelay);
        }
        Ok(parsed)
    }
}

/// The program: parses `args` (without the program name), applies the limits and the filter,
/// and serves stdin/stdout until stdin ends.
pub fn run(args: impl IntoIterator<Item = String>) -> ExitCode {
    let args = match Args::parse(args) {
        Ok(args) => args,
        Err(ArgsError::Info(text)) => {
            eprintln!("{text}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("openhands-tool-server: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false)
        .without_time()
        .try_init();
    match start(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// Everything that can stop the program, in words for the log.
type Failure = String;

fn start(args: Args) -> Result<(), Failure> {
    let workspace = match &args.workspace {
        Some(dir) => dir.clone(),
        None => std::env::current_dir().map_err(|e| format!("no current directory: {e}"))?,
    };
    let workspace = workspace
        .canonicalize()
        .map_err(|e| format!("the workspace {} cannot be used: {e}", workspace.display()))?;
    limits::apply(&args.limits).map_err(|e| e.to_string())?;
    if args.seccomp {
        seccomp::install().map_err(|e| e.to_string())?;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("the runtime cannot start: {e}"))?;
    let mut options = ServeOptions::new(&workspace);
    if let Some(shown) = args.shown_as.clone() {
        options.shown_workspace = shown;
    }
    options.max_workspace_bytes = args.max_workspace_bytes;
    options.shell_cpu_seconds = args.cpu_seconds;
    let result = runtime.block_on(async move {
        // Writing past RLIMIT_FSIZE must fail with EFBIG here rather than kill the tool
        // server; handled signals go back to their default in the programs it starts.
        let _file_size_signal =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::from_raw(libc::SIGXFSZ))
                .map_err(|e| format!("SIGXFSZ cannot be handled: {e}"))?;
        if let (Some(socket), Some(listen)) = (args.proxy_socket, args.proxy_listen) {
            let listener = tokio::net::TcpListener::bind(&listen)
                .await
                .map_err(|e| format!("the relay cannot listen on {listen}: {e}"))?;
            tokio::spawn(relay::run(listener, socket));
        }
        tracing::info!(
            workspace = %workspace.display(),
            seccomp = args.seccomp,
            "tool server ready"
        );
        serve(tokio::io::stdin(), tokio::io::stdout(), options)
            .await
            .map_err(|e| e.to_string())
    });
    // Blocking reads of stdin may still be parked in the runtime's pool.
    runtime.shutdown_timeout(Duration::from_millis(200));
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, ArgsError> {
        Args::parse(args.iter().map(|s| (*s).to_owned()))
    }

    #[test]
    fn flags_parse_with_spaces_or_equals() {
        let args = parse(&[
            "--workspace",
            "/w",
            "--shown-as=/workspace",
            "--rlimit-fsize",
            "1000",
            "--rlimit-nofile=64",
            "--rlimit-nproc",
            "10",
            "--rlimit-cpu",
            "5",
            "--max-workspace-bytes",
            "99",
            "--seccomp",
            "--proxy-socket",
            "/s.sock",
            "--proxy-listen",
            "127.0.0.1:3128",
        ])
        .expect("parses");
        assert_eq!(args.workspace, Some(PathBuf::from("/w")));
        assert_eq!(args.shown_as.as_deref(), Some("/workspace"));
        assert_eq!(
            args.limits,
            ProcessLimits {
                open_files: 64,
                file_size_bytes: 1000,
                processes: 10
            }
        );
        assert_eq!((args.cpu_seconds, args.max_workspace_bytes), (5, 99));
        assert!(args.seccomp);
        assert_eq!(args.proxy_listen.as_deref(), Some("127.0.0.1:3128"));
    }

    #[test]
    fn mistakes_are_named() {
        assert_eq!(
            parse(&["--bogus"]),
            Err(ArgsError::Unknown("--bogus".into()))
        );
        assert_eq!(
            parse(&["--rlimit-fsize"]),
            Err(ArgsError::MissingValue("--rlimit-fsize".into()))
        );
        assert!(matches!(
            parse(&["--rlimit-nproc", "many"]),
            Err(ArgsError::NotANumber { .. })
        ));
        assert_eq!(parse(&["--proxy-socket", "/s"]), Err(ArgsError::HalfRelay));
        assert_eq!(parse(&[]), Ok(Args::default()));
    }
}
