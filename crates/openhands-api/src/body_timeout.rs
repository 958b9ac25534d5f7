//! A per-read timeout on request bodies.
//!
//! actix-web bounds the request head (`client_request_timeout`) but not the body: a client
//! that announces a body and stops sending held its connection, and a file descriptor,
//! for good (1,100 such requests exhausted the server's descriptors and `/alive` stopped
//! answering; issue 25). [`BodyReadTimeout`] wraps every request body in a stream that
//! fails with a `TimedOut` I/O error when no data arrives for `body_read_timeout_ms` while
//! a handler waits for it. The JSON extractor answers that with 408 ([`crate::body`]),
//! other extractors with their own 400; either way actix closes the connection, since the
//! body was not read to its end.
//!
//! A client can still drip a byte just inside every timeout and hold the connection for
//! hours. So once the handler has waited as long as one timeout in all, the body must have
//! arrived at `body_min_bytes_per_second` on average over the waiting time, or it fails the
//! same way.
//!
//! The clock runs only while a handler waits: a handler that authenticates first does not
//! eat into the client's time, and a slow but steady upload above the minimum rate is never
//! cut off. Requests without a body cost nothing, and WebSocket upgrades are exempt (their
//! "body" is the socket, kept alive by pings).

use actix_web::HttpMessage;
use actix_web::dev::{Payload, Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::error::PayloadError;
use actix_web::http::header;
use actix_web::web::Bytes;
use futures_util::Stream;
use futures_util::future::{Ready, ready};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// How long a body may make the server wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyPace {
    /// Longest wait for the next chunk.
    pub timeout: Duration,
    /// Slowest average rate once the waits add up to `timeout`; `0`: any.
    pub min_bytes_per_second: u64,
}

/// The middleware; `None` leaves bodies alone.
#[derive(Debug, Clone, Copy)]
pub struct BodyReadTimeout {
    pace: Option<BodyPace>,
}

impl BodyReadTimeout {
    /// From `body_read_timeout_ms` (`0`: no limits at all) and `body_min_bytes_per_second`.
    pub fn new(timeout_millis: u64, min_bytes_per_second: u64) -> Self {
        Self {
            pace: (timeout_millis > 0).then(|| BodyPace {
                timeout: Duration::from_millis(timeout_millis),
                min_bytes_per_second,
            }),
        }
    }
}

impl<S, B> Transform<S, ServiceRequest> for BodyReadTimeout
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Transform = BodyReadTimeoutService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(BodyReadTimeoutService {
            service,
            pace: self.pace,
        }))
    }
}

pub struct BodyReadTimeoutService<S> {
    service: S,
    pace: Option<BodyPace>,
}

impl<S, B> Service<ServiceRequest> for BodyReadTimeoutService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Future = S::Future;

    forward_ready!(service);

    fn call(&self, mut req: ServiceRequest) -> Self::Future {
        if let Some(pace) = self.pace {
            match req.take_payload() {
                Payload::None => {}
                payload if req.headers().contains_key(header::UPGRADE) => req.set_payload(payload),
                payload => req.set_payload(Payload::Stream {
                    payload: Box::pin(TimedPayload::new(payload, pace)),
                }),
            }
        }
        self.service.call(req)
    }
}

/// A body whose next chunk must arrive within `timeout` of being asked for, and whose
/// chunks must keep up the minimum average rate over the time spent waiting for them.
pub struct TimedPayload {
    inner: Payload,
    pace: BodyPace,
    /// Armed when the consumer starts waiting; disarmed by each chunk.
    timer: Option<Pin<Box<Sleep>>>,
    /// When the current wait began (`Some` exactly while armed).
    waiting_since: Option<Instant>,
    /// Time spent waiting for earlier chunks.
    waited: Duration,
    received: u64,
    done: bool,
}

impl TimedPayload {
    pub fn new(inner: Payload, pace: BodyPace) -> Self {
        Self {
            inner,
            pace,
            timer: None,
            waiting_since: None,
            waited: Duration::ZERO,
            received: 0,
            done: false,
        }
    }

    /// Whether the body has fallen below the minimum rate (judged once the waits add up to
    /// a whole timeout, so a slow start is forgiven).
    fn too_slow(&self) -> bool {
        let rate = self.pace.min_bytes_per_second;
        rate > 0
            && self.waited >= self.pace.timeout
            && (self.received as f64) < rate as f64 * self.waited.as_secs_f64()
    }

    fn fail(&mut self, message: String) -> Poll<Option<Result<Bytes, PayloadError>>> {
        self.done = true;
        Poll::Ready(Some(Err(PayloadError::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            message,
        )))))
    }
}

impl Stream for TimedPayload {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                if let Some(since) = this.waiting_since.take() {
                    this.waited += since.elapsed();
                }
                this.received += chunk.len() as u64;
                if this.too_slow() {
                    let message = format!(
                        "request body arriving slower than {} bytes per second",
                        this.pace.min_bytes_per_second
                    );
                    return this.fail(message);
                }
                return Poll::Ready(Some(Ok(chunk)));
            }
            Poll::Ready(other) => {
                this.done = other.is_none();
                return Poll::Ready(other);
            }
            Poll::Pending => {}
        }
        let now = Instant::now();
        let deadline = now + this.pace.timeout;
        let armed = this.waiting_since.is_some();
        let timer = match &mut this.timer {
            Some(timer) => {
                if !armed {
                    timer.as_mut().reset(deadline);
                }
                timer
            }
            None => this
                .timer
                .insert(Box::pin(tokio::time::sleep_until(deadline))),
        };
        if !armed {
            this.waiting_since = Some(now);
        }
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => {
                let message = format!(
                    "no request body data for {} ms",
                    this.pace.timeout.as_millis()
                );
                this.fail(message)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    fn channel_with(
        min_bytes_per_second: u64,
    ) -> (
        tokio::sync::mpsc::Sender<Result<Bytes, PayloadError>>,
        TimedPayload,
    ) {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
        let payload = Payload::Stream {
            payload: Box::pin(stream) as actix_http::BoxedPayloadStream,
        };
        let pace = BodyPace {
            timeout: Duration::from_millis(100),
            min_bytes_per_second,
        };
        (tx, TimedPayload::new(payload, pace))
    }

    fn channel() -> (
        tokio::sync::mpsc::Sender<Result<Bytes, PayloadError>>,
        TimedPayload,
    ) {
        channel_with(0)
    }

    #[tokio::test]
    async fn a_drip_inside_every_timeout_fails_on_the_average_rate() {
        // 1 byte every 60 ms: never 100 ms without data, but ~17 B/s against 1,000.
        let (tx, mut body) = channel_with(1000);
        let sender = tokio::spawn(async move {
            for _ in 0..20 {
                tokio::time::sleep(Duration::from_millis(60)).await;
                if tx.send(Ok(Bytes::from_static(b"x"))).await.is_err() {
                    break;
                }
            }
        });
        let mut got = 0;
        let failure = loop {
            match body.next().await {
                Some(Ok(_)) => got += 1,
                Some(Err(PayloadError::Io(e))) => break e,
                other => panic!("expected a rate failure, got {other:?} after {got} chunks"),
            }
        };
        assert_eq!(failure.kind(), std::io::ErrorKind::TimedOut);
        assert!(
            failure.to_string().contains("bytes per second"),
            "{failure}"
        );
        assert!((1..5).contains(&got), "failed after {got} chunks");
        assert!(body.next().await.is_none());
        sender.abort();
    }

    #[tokio::test]
    async fn a_steady_body_above_the_rate_is_read_whole() {
        let (tx, mut body) = channel_with(1000);
        let sender = tokio::spawn(async move {
            for _ in 0..10 {
                tokio::time::sleep(Duration::from_millis(30)).await;
                tx.send(Ok(Bytes::from(vec![b'x'; 512])))
                    .await
                    .expect("send");
            }
        });
        let mut got = 0;
        while let Some(chunk) = body.next().await {
            got += chunk
                .expect("512 bytes per 30 ms is well above 1,000 B/s")
                .len();
        }
        assert_eq!(got, 5120);
        sender.await.expect("sender");
    }

    #[tokio::test]
    async fn a_stalled_body_times_out_and_then_ends() {
        let (tx, mut body) = channel();
        tx.send(Ok(Bytes::from_static(b"{"))).await.expect("send");
        assert_eq!(
            body.next().await.and_then(Result::ok),
            Some(Bytes::from_static(b"{"))
        );
        match body.next().await {
            Some(Err(PayloadError::Io(e))) => assert_eq!(e.kind(), std::io::ErrorKind::TimedOut),
            other => panic!("expected a timeout, got {other:?}"),
        }
        assert!(body.next().await.is_none());
        drop(tx);
    }

    #[tokio::test]
    async fn the_clock_runs_only_while_waiting_and_restarts_per_chunk() {
        let (tx, mut body) = channel();
        // Nobody reads for a long time: that is not the client's fault.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let sender = tokio::spawn(async move {
            for _ in 0..5 {
                tokio::time::sleep(Duration::from_millis(30)).await;
                tx.send(Ok(Bytes::from_static(b"x"))).await.expect("send");
            }
        });
        let mut got = 0;
        while let Some(chunk) = body.next().await {
            chunk.expect("no timeout between chunks 30 ms apart");
            got += 1;
        }
        assert_eq!(got, 5);
        sender.await.expect("sender");
    }
}
