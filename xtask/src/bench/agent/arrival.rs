//! A TCP stream that knows when the bytes it reads arrived.
//!
//! The delivery figures are about the server: how long an event takes from being
//! stored to reaching a watcher. The watchers are 1,000 sockets that the bench reads
//! in turn on two threads of idle priority, so the moment the bench gets round to a
//! frame also holds its own queue: the last socket of a burst is read several
//! milliseconds after its bytes came in, while a browser on its own machine would have
//! read it at once. The kernel stamps each incoming segment (`SO_TIMESTAMPNS`, the wall
//! clock when the segment reached the socket); [`ArrivalStream`] reads with `recvmsg`
//! and keeps the stamp of its last read, which is when the frame just decoded arrived.
//! Frames that came in one read share its stamp, as they arrived together. A read that
//! takes in two segments carries the later one's stamp (the kernel keeps the stamp of
//! the last segment it copied from), so a reader that fell a burst behind makes the
//! earlier burst's delays too long, never too short.

use std::io::{self, IoSliceMut};
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg, setsockopt, sockopt};
use nix::sys::time::TimeSpec;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

/// A connected TCP stream whose reads record the kernel's arrival stamp.
pub struct ArrivalStream {
    inner: TcpStream,
    /// When the data of the last read that carried a stamp arrived.
    arrival: Option<SystemTime>,
    /// Room for one `SCM_TIMESTAMPNS` control message, reused by every read.
    control: Vec<u8>,
}

impl ArrivalStream {
    /// Turns on arrival stamps for `inner`.
    pub fn new(inner: TcpStream) -> io::Result<Self> {
        setsockopt(&inner, sockopt::ReceiveTimestampns, &true).map_err(io::Error::from)?;
        Ok(Self {
            inner,
            arrival: None,
            control: nix::cmsg_space!(TimeSpec),
        })
    }

    /// When the bytes of the last read arrived; `None` before the first read, or when the
    /// kernel did not stamp them (it turns stamping on in the background the first time a
    /// socket asks, so the first segments after that may come without).
    pub fn arrival(&self) -> Option<SystemTime> {
        self.arrival
    }
}

/// One `recvmsg` into `buf`: the bytes read and their arrival stamp, if the kernel gave one.
fn read_stamped(
    fd: RawFd,
    buf: &mut [u8],
    control: &mut [u8],
) -> io::Result<(usize, Option<SystemTime>)> {
    let mut iov = [IoSliceMut::new(buf)];
    let message =
        recvmsg::<()>(fd, &mut iov, Some(control), MsgFlags::empty()).map_err(io::Error::from)?;
    let mut arrival = None;
    for control in message.cmsgs().map_err(io::Error::from)? {
        if let ControlMessageOwned::ScmTimestampns(stamp) = control {
            arrival = wall_time(stamp);
        }
    }
    Ok((message.bytes, arrival))
}

fn wall_time(stamp: TimeSpec) -> Option<SystemTime> {
    let seconds = u64::try_from(stamp.tv_sec()).ok()?;
    let nanos = u32::try_from(stamp.tv_nsec()).ok()?;
    UNIX_EPOCH.checked_add(Duration::new(seconds, nanos))
}

impl AsyncRead for ArrivalStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let fd = this.inner.as_raw_fd();
        loop {
            ready!(this.inner.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            let room = unfilled.len();
            let control = this.control.as_mut_slice();
            let mut drained = None;
            let outcome = this.inner.try_io(Interest::READABLE, || {
                let (read, arrival) = read_stamped(fd, unfilled, control)?;
                if read > 0 && read < room {
                    // A short read took everything queued: report "would block" so that
                    // `try_io` forgets the readiness (only if no segment came in since,
                    // which it tells by the readiness event's tick). The next poll then
                    // waits for the next segment instead of calling `recvmsg` only to
                    // hear EAGAIN, which was one read in two, as tokio's own streams do.
                    drained = Some((read, arrival));
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                Ok((read, arrival))
            });
            let (read, arrival) = match (outcome, drained) {
                (_, Some(read)) | (Ok(read), None) => read,
                // Readiness was stale: `try_io` cleared it, so the next poll waits.
                (Err(err), None) if err.kind() == io::ErrorKind::WouldBlock => continue,
                (Err(err), None) => return Poll::Ready(Err(err)),
            };
            buf.advance(read);
            // An unstamped read clears the stamp: the previous one would be too early.
            this.arrival = arrival;
            return Poll::Ready(Ok(()));
        }
    }
}

impl AsyncWrite for ArrivalStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    const WAIT: Duration = Duration::from_secs(5);

    async fn connected() -> io::Result<(ArrivalStream, TcpStream)> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let client = TcpStream::connect(listener.local_addr()?).await?;
        let (server, _) = listener.accept().await?;
        Ok((ArrivalStream::new(client)?, server))
    }

    async fn read_within(stream: &mut ArrivalStream, buf: &mut [u8]) -> io::Result<usize> {
        tokio::time::timeout(WAIT, stream.read(buf))
            .await
            .map_err(|_| io::Error::other("a read waited for data that was already there"))?
    }

    #[tokio::test]
    async fn a_read_that_fills_the_buffer_leaves_the_rest_readable() -> io::Result<()> {
        let (mut stream, mut server) = connected().await?;
        server.write_all(b"0123456789abcdef").await?;
        // All sixteen bytes are in the socket before the first read.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut half = [0u8; 8];
        assert_eq!(read_within(&mut stream, &mut half).await?, 8);
        assert_eq!(&half, b"01234567");
        // No new segment will come: the rest must be read on the readiness still held.
        assert_eq!(read_within(&mut stream, &mut half).await?, 8);
        assert_eq!(&half, b"89abcdef");
        Ok(())
    }

    #[tokio::test]
    async fn after_a_read_that_drained_the_socket_the_next_segment_still_wakes_the_reader()
    -> io::Result<()> {
        let (mut stream, mut server) = connected().await?;
        let mut buf = [0u8; 64];
        for chunk in [&b"one"[..], b"two", b"three"] {
            server.write_all(chunk).await?;
            let read = read_within(&mut stream, &mut buf).await?;
            assert_eq!(&buf[..read], chunk);
        }
        // A segment that comes while nobody is reading is found by the next read.
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 64];
            let read = read_within(&mut stream, &mut buf).await?;
            io::Result::Ok(buf[..read].to_vec())
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        server.write_all(b"four").await?;
        let read = reader.await.map_err(io::Error::other)??;
        assert_eq!(read, b"four");
        Ok(())
    }

    #[tokio::test]
    async fn a_read_carries_the_arrival_time_of_its_bytes_not_the_time_it_was_read()
    -> io::Result<()> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let client = TcpStream::connect(listener.local_addr()?).await?;
        let (mut server, _) = listener.accept().await?;
        let mut stream = ArrivalStream::new(client)?;
        assert!(stream.arrival().is_none(), "no stamp before a read");
        let mut buf = [0u8; 16];
        // Stamping may still be turning on (see `arrival`): wait until a read is stamped.
        let mut stamped = false;
        for _ in 0..100 {
            server.write_all(b"w").await?;
            let read = stream.read(&mut buf).await?;
            assert_eq!(&buf[..read], b"w");
            if stream.arrival().is_some() {
                stamped = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(stamped, "the kernel never stamped a read");

        let sent = SystemTime::now();
        server.write_all(b"first").await?;
        // The bytes wait in the socket while the reader is busy elsewhere.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let read = stream.read(&mut buf).await?;
        let read_at = SystemTime::now();
        assert_eq!(&buf[..read], b"first");
        let arrival = stream
            .arrival()
            .ok_or_else(|| io::Error::other("no stamp"))?;
        // The stamp is the arrival, within a few ms of the write, and well before the read.
        let after_send = arrival
            .duration_since(sent)
            .map_err(|_| io::Error::other("arrived before it was sent"))?;
        assert!(after_send < Duration::from_millis(25), "{after_send:?}");
        let before_read = read_at
            .duration_since(arrival)
            .map_err(|_| io::Error::other("read before it arrived"))?;
        assert!(before_read >= Duration::from_millis(40), "{before_read:?}");

        // Writing through the wrapper reaches the other side, and the next read is re-stamped.
        stream.write_all(b"ping").await?;
        let read = server.read(&mut buf).await?;
        assert_eq!(&buf[..read], b"ping");
        server.write_all(b"second").await?;
        let read = stream.read(&mut buf).await?;
        assert_eq!(&buf[..read], b"second");
        assert!(
            stream.arrival() > Some(arrival),
            "the second read has its own stamp"
        );
        Ok(())
    }
}
