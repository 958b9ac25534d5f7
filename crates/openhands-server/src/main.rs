//! The `openhands` binary.

use anyhow::Context;
use clap::Parser;
use openhands_core::config::Config;
use openhands_server::cli::{Cli, Command, config_report, plugins_report};
use std::process::ExitCode;

/// mimalloc instead of the system allocator: requests, webhook payloads and events are many
/// short-lived buffers, and glibc's malloc and free were a sixth of the server's CPU on the
/// webhook route. See [`keep_small_pages`] for its one setting.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Turns transparent huge pages off for the process. mimalloc's memory in 2 MiB pages took
/// an idle server from 19 MB to 36 MB resident; small pages cost it no measurable speed.
fn keep_small_pages() {
    #[cfg(target_os = "linux")]
    #[allow(unsafe_code)]
    // SAFETY: PR_SET_THP_DISABLE takes plain integers and changes only this process's flag.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

fn main() -> ExitCode {
    // `openhands tool-server ...` is the tool server of a sandbox (its own flags, no server
    // configuration), for deployments that ship this one binary.
    if std::env::args().nth(1).as_deref() == Some("tool-server") {
        return openhands_tool_server::cli::run(std::env::args().skip(2));
    }
    keep_small_pages();
    let cli = Cli::parse();
    let config = match Config::load() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(2);
        }
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::Plugins => {
            print!("{}", plugins_report(&config));
            ExitCode::SUCCESS
        }
        Command::Config => {
            println!("{}", config_report(&config));
            ExitCode::SUCCESS
        }
        #[cfg(feature = "saas")]
        Command::Migrate { action } => exit_code(block_on(async {
            openhands_server::saas::migrate(&config, action, |line| println!("{line}")).await?;
            Ok(true)
        })),
        #[cfg(feature = "saas")]
        Command::Keys { action } => exit_code(block_on(openhands_server::saas::keys(
            &config,
            action,
            |line| println!("{line}"),
        ))),
        #[cfg(feature = "saas")]
        Command::Db { action } => exit_code(block_on(async {
            openhands_server::saas::db(&config, action, |line| println!("{line}")).await?;
            Ok(true)
        })),
        #[cfg(feature = "saas")]
        Command::Webhooks { action } => exit_code(block_on(async {
            openhands_server::saas::webhooks(&config, action, |line| println!("{line}")).await?;
            Ok(true)
        })),
        Command::Serve => match serve(config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("error: {err:#}");
                ExitCode::from(1)
            }
        },
    }
}

/// Runs a command's future on the runtime the server uses.
#[cfg(feature = "saas")]
fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    actix_web::rt::System::new().block_on(future)
}

/// 0 when the command did all its work, 3 when it ran but left work (e.g. values still
/// to rotate), 1 on an error.
#[cfg(feature = "saas")]
fn exit_code(result: anyhow::Result<bool>) -> ExitCode {
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(3),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(1)
        }
    }
}

fn init_logging(config: &Config) {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| config.log_level.clone());
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if config.log_json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// How long requests still open after the WebSockets closed may take at shutdown.
const HTTP_SHUTDOWN_GRACE_SECONDS: u64 = 5;

fn serve(config: Config) -> anyhow::Result<()> {
    init_logging(&config);
    // Conversations (agent loops, the cluster's upkeep) run on a runtime of their own, where
    // the state is built: actix's HTTP workers each have a runtime that ends with the HTTP
    // server, and a conversation must outlive that to be drained and handed over.
    let work = tokio::runtime::Builder::new_multi_thread()
        .thread_name("openhands-work")
        .enable_all()
        .build()
        .context("starting the runtime for conversations")?;
    let state = work.block_on(openhands_server::build_state(config))?;
    let work_handle = work.handle().clone();
    let result = actix_web::rt::System::new().block_on(async move {
        let address = (state.config.host.clone(), state.config.port);
        let app_state = state.clone();
        let server =
            actix_web::HttpServer::new(move || openhands_server::create_app(app_state.clone()))
                // Events go out as small writes, one per burst: with Nagle on, a write
                // waits for the client's (delayed, up to 40 ms) ACK of the previous one.
                .tcp_nodelay(true)
                .bind(&address)
                .with_context(|| format!("binding {}:{}", address.0, address.1))?
                // Signals are ours: the conversations go first (see `shutdown`).
                .disable_signals()
                .shutdown_timeout(HTTP_SHUTDOWN_GRACE_SECONDS)
                .run();
        let http = server.handle();
        let mut server = actix_web::rt::spawn(server);
        tracing::info!(
            address = %format!("http://{}:{}", address.0, address.1),
            config_class = state.ext.class_name,
            data_dir = %state.config.data_dir().display(),
            "OpenHands server listening"
        );
        tokio::select! {
            ended = &mut server => {
                // The HTTP server ended by itself (it failed): stop the conversations too.
                work_handle.spawn(stop_conversations(state.clone())).await.ok();
                return ended.context("server task failed")?.context("server failed");
            }
            signal = shutdown_signal() => tracing::info!(signal, "shutting down"),
        }
        openhands_server::shutdown::shut_down(&state, &work_handle).await;
        http.stop(true).await;
        server
            .await
            .context("server task failed")?
            .context("server failed")
    });
    work.shutdown_timeout(std::time::Duration::from_secs(1));
    result
}

/// The first SIGTERM or SIGINT (Ctrl-C); a second one during the shutdown exits at once.
async fn shutdown_signal() -> &'static str {
    let received = next_signal().await;
    actix_web::rt::spawn(async {
        let again = next_signal().await;
        eprintln!("{again} again: exiting without finishing the shutdown");
        std::process::exit(130);
    });
    received
}

#[cfg(unix)]
async fn next_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}

#[cfg(not(unix))]
async fn next_signal() -> &'static str {
    let _ = tokio::signal::ctrl_c().await;
    "Ctrl-C"
}

async fn stop_conversations(state: actix_web::web::Data<openhands_api::AppState>) {
    state.ext.conversation_manager.shutdown().await;
}
