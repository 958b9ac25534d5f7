//! The egress relay: a TCP listener inside the sandbox (e.g. `127.0.0.1:3128`, where the
//! shells' proxy variables point) whose connections are relayed byte for byte to a Unix
//! socket that the sandbox was given (the server's egress proxy outside).
//!
//! An isolated sandbox has no network of its own; this is its only way out, and the proxy at
//! the other end decides what may pass. The relay itself understands nothing of what it
//! carries.

use std::path::PathBuf;
use tokio::net::{TcpListener, UnixStream};

/// Relays every connection accepted on `listener` to the Unix socket `socket`; runs until
/// dropped.
pub async fn run(listener: TcpListener, socket: PathBuf) {
    loop {
        let (mut inbound, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // E.g. out of file descriptors: keep serving once some are free.
                tracing::warn!(error = %e, "relay: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let socket = socket.clone();
        tokio::spawn(async move {
            let mut outbound = match UnixStream::connect(&socket).await {
                Ok(stream) => stream,
                Err(e) => {
                    tracing::warn!(%peer, error = %e, "relay: the proxy socket is unreachable");
                    return;
                }
            };
            if let Err(e) = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await {
                tracing::debug!(%peer, error = %e, "relay: connection ended");
            }
        });
    }
}
