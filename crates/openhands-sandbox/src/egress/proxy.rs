//! One conversation's egress proxy: a Unix socket the sandbox's relay connects to.
//!
//! A Unix socket rather than a TCP port, because the sandbox has no network: the socket's
//! directory is bind-mounted into it, and only that sandbox can reach its proxy (which is
//! also how the proxy knows the conversation without any authentication). The proxy lives
//! exactly as long as its handle: dropping it stops the accept loop and every tunnel.

use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UnixListener;
use tokio::sync::Semaphore;
use tokio::task::{JoinHandle, JoinSet};

use super::connection::{Shared, Status, response, serve};
use super::policy::CompiledPolicy;

/// Why a proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum EgressError {
    #[error("egress proxy socket {path}: {action}: {source}")]
    Socket {
        path: PathBuf,
        action: &'static str,
        source: io::Error,
    },
    #[error("egress proxy socket {path}: a file that is not a socket is in the way")]
    NotASocket { path: PathBuf },
}

/// The bounds of one proxy. The defaults suit a sandbox; tests shorten them.
#[derive(Debug, Clone)]
pub struct ProxyLimits {
    /// Largest request head; bigger ones get 431.
    pub max_head_bytes: usize,
    /// How long a client has to send its request head (408 after).
    pub head_timeout: Duration,
    /// How long DNS may take (502 after).
    pub dns_timeout: Duration,
    /// How long connecting to the origin may take, over all its addresses (504 after).
    pub connect_timeout: Duration,
    /// A tunnel or forwarded request with no byte either way for this long is closed.
    pub idle_timeout: Duration,
    /// Connections at once; more are answered 503.
    pub max_connections: usize,
}

impl Default for ProxyLimits {
    fn default() -> Self {
        Self {
            max_head_bytes: 16 * 1024,
            head_timeout: Duration::from_secs(30),
            dns_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(600),
            max_connections: 256,
        }
    }
}

/// A running proxy. Dropping it (or [`EgressProxy::shutdown`]) stops it, closes every
/// connection and removes the socket file.
#[derive(Debug)]
pub struct EgressProxy {
    socket_path: PathBuf,
    accept: JoinHandle<()>,
}

impl EgressProxy {
    /// [`EgressProxy::bind_with_limits`] with the default limits.
    pub fn bind(
        socket_path: &Path,
        policy: Arc<CompiledPolicy>,
        conversation_id: String,
    ) -> Result<Self, EgressError> {
        Self::bind_with_limits(socket_path, policy, conversation_id, ProxyLimits::default())
    }

    /// Binds `socket_path` (replacing a stale socket there, never another kind of file),
    /// makes it connectable by any user (the sandbox's user differs from the server's; the
    /// directory is what keeps other sandboxes out) and serves on it. Must be called within
    /// a Tokio runtime.
    pub fn bind_with_limits(
        socket_path: &Path,
        policy: Arc<CompiledPolicy>,
        conversation_id: String,
        limits: ProxyLimits,
    ) -> Result<Self, EgressError> {
        let fail = |action, source| EgressError::Socket {
            path: socket_path.to_owned(),
            action,
            source,
        };
        match std::fs::symlink_metadata(socket_path) {
            Ok(meta) if meta.file_type().is_socket() => {
                std::fs::remove_file(socket_path)
                    .map_err(|e| fail("removing the stale socket", e))?;
            }
            Ok(_) => {
                return Err(EgressError::NotASocket {
                    path: socket_path.to_owned(),
                });
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(fail("inspecting the path", e)),
        }
        let listener = UnixListener::bind(socket_path).map_err(|e| fail("binding", e))?;
        let mode = std::fs::Permissions::from_mode(0o666);
        std::fs::set_permissions(socket_path, mode).map_err(|e| fail("setting its mode", e))?;
        let shared = Arc::new(Shared {
            policy,
            conversation_id,
            limits,
        });
        Ok(Self {
            socket_path: socket_path.to_owned(),
            accept: tokio::spawn(accept_loop(listener, shared)),
        })
    }

    /// Where the proxy listens.
    pub fn socket_path(&self) -> &Path {
        &self.socket_path
    }

    /// Stops the proxy and waits until its tasks are gone.
    pub async fn shutdown(mut self) {
        self.accept.abort();
        let _ = (&mut self.accept).await;
    }
}

impl Drop for EgressProxy {
    fn drop(&mut self) {
        self.accept.abort();
        let _ = std::fs::remove_file(&self.socket_path);
    }
}

/// Accepts until aborted. Connection tasks live in a `JoinSet` owned by this task, so
/// aborting it drops the set, which aborts them all.
async fn accept_loop(listener: UnixListener, shared: Arc<Shared>) {
    let slots = Arc::new(Semaphore::new(shared.limits.max_connections));
    let busy = response(
        Status::Unavailable,
        "too many connections from this sandbox",
    );
    let mut tasks = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => match Arc::clone(&slots).try_acquire_owned() {
                    Ok(slot) => {
                        let shared = Arc::clone(&shared);
                        tasks.spawn(async move {
                            serve(stream, shared).await;
                            drop(slot);
                        });
                    }
                    Err(_) => {
                        tracing::debug!(
                            conversation_id = shared.conversation_id.as_str(),
                            "egress proxy at its connection limit"
                        );
                        // A fresh socket's buffer takes this whole; never wait on it.
                        let _ = stream.try_write(&busy);
                    }
                },
                Err(e) => {
                    // Out of descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "egress proxy accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
}
