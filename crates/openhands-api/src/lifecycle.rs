//! The server's shutdown, as the routes see it.
//!
//! A replica that gets SIGTERM first *drains*: `/ready` answers 503 so the load balancer
//! stops sending it traffic, and new conversations are refused with 503
//! `server_shutting_down` (the conversation manager hands its running ones to other
//! replicas meanwhile). Then its WebSockets *close* with code 1012 (service restart), which
//! tells clients to reconnect at once with `latest_event_id`: the load balancer sends them
//! to a live replica and they miss nothing. Only then does the HTTP server stop.

use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

/// Where the server is in its shutdown; shared by the routes and the binary's signal task.
#[derive(Debug, Default)]
pub struct Lifecycle {
    draining: CancellationToken,
    closing: CancellationToken,
}

/// The reason sent with the 1012 close frame.
pub const RESTART_CLOSE_REASON: &str = "server restarting; reconnect";

impl Lifecycle {
    /// The shutdown began: stop taking new work.
    pub fn begin_drain(&self) {
        self.draining.cancel();
    }

    /// Whether the shutdown began.
    pub fn is_draining(&self) -> bool {
        self.draining.is_cancelled()
    }

    /// The conversations are handed over: close every WebSocket with 1012.
    pub fn close_sockets(&self) {
        self.draining.cancel();
        self.closing.cancel();
    }

    /// Resolves when the WebSockets are to close.
    pub fn sockets_closing(&self) -> WaitForCancellationFuture<'_> {
        self.closing.cancelled()
    }
}
