//! Copying bytes both ways between the sandbox and the origin, with an idle timeout.
//!
//! `tokio::io::copy_bidirectional` has no notion of idleness, and a hostile or buggy agent
//! can hold a tunnel open forever, taking one of the proxy's connection slots; here any
//! byte in either direction keeps the tunnel alive, and a quiet one is closed.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

/// When a relay is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Until {
    /// Both sides have closed (a tunnel; each side's close is passed on to the other).
    BothClosed,
    /// The origin has closed (a forwarded request with `Connection: close`: the response is
    /// complete, whatever the client still has open).
    OriginClosed,
}

/// How a relay ended.
#[derive(Debug)]
pub(crate) enum RelayEnd {
    Finished,
    Idle,
    Failed(io::Error),
}

/// The time of the last byte, in milliseconds since `start`.
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Completes once `idle` has passed without a byte.
    async fn quiet_for(&self, idle: Duration) {
        loop {
            let last = self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let deadline = last + idle;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// Relays between `client` and `origin` until `until`, an error, or `idle` without bytes.
pub(crate) async fn relay<C, O>(client: C, origin: O, idle: Duration, until: Until) -> RelayEnd
where
    C: AsyncRead + AsyncWrite + Unpin,
    O: AsyncRead + AsyncWrite + Unpin,
{
    let activity = Activity {
        start: Instant::now(),
        last_ms: AtomicU64::new(0),
    };
    let (mut client_read, mut client_write) = tokio::io::split(client);
    let (mut origin_read, mut origin_write) = tokio::io::split(origin);
    let transfer = async {
        let up = pump(&mut client_read, &mut origin_write, &activity);
        let down = pump(&mut origin_read, &mut client_write, &activity);
        match until {
            Until::BothClosed => tokio::try_join!(up, down).map(|_| ()),
            Until::OriginClosed => {
                // The client's side may stay open; only its errors end the relay early.
                let up = async {
                    up.await?;
                    std::future::pending::<io::Result<()>>().await
                };
                tokio::select! {
                    result = up => result,
                    result = down => result,
                }
            }
        }
    };
    tokio::select! {
        result = transfer => match result {
            Ok(()) => RelayEnd::Finished,
            Err(e) => RelayEnd::Failed(e),
        },
        () = activity.quiet_for(idle) => RelayEnd::Idle,
    }
}

/// Copies `from` to `to` until end of file, then shuts `to` down for writing.
async fn pump<R, W>(from: &mut R, to: &mut W, activity: &Activity) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            return to.shutdown().await;
        }
        activity.touch();
        to.write_all(&buf[..n]).await?;
        activity.touch();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_quiet_tunnel_is_closed() {
        let (client, _client_peer) = tokio::io::duplex(64);
        let (origin, _origin_peer) = tokio::io::duplex(64);
        let end = relay(client, origin, Duration::from_secs(600), Until::BothClosed).await;
        assert!(matches!(end, RelayEnd::Idle), "{end:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn bytes_keep_a_tunnel_open_and_both_closes_end_it() {
        let (client, mut client_peer) = tokio::io::duplex(64);
        let (origin, mut origin_peer) = tokio::io::duplex(64);
        let task = tokio::spawn(relay(
            client,
            origin,
            Duration::from_secs(10),
            Until::BothClosed,
        ));
        for i in 0..5u8 {
            tokio::time::sleep(Duration::from_secs(8)).await;
            client_peer.write_all(&[i]).await.expect("write");
            let mut got = [0u8; 1];
            origin_peer.read_exact(&mut got).await.expect("read");
            assert_eq!(got, [i]);
        }
        client_peer.shutdown().await.expect("client close");
        let mut rest = Vec::new();
        origin_peer
            .read_to_end(&mut rest)
            .await
            .expect("origin sees close");
        origin_peer.shutdown().await.expect("origin close");
        let end = task.await.expect("relay task");
        assert!(matches!(end, RelayEnd::Finished), "{end:?}");
    }
}
