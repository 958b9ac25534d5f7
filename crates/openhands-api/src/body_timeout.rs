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
//! The clock runs only while a handler waits: a handler that authenticates first does not
//! eat into the client's time, and a slow but steady upload is never cut off. Requests
//! without a body cost nothing, and WebSocket upgrades are exempt (their "body" is the
//! socket, kept alive by pings).

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

/// The middleware; `None` leaves bodies alone.
#[derive(Debug, Clone, Copy)]
pub struct BodyReadTimeout {
    timeout: Option<Duration>,
}

impl BodyReadTimeout {
    /// From `body_read_timeout_ms` (`0`: no timeout).
    pub fn from_millis(millis: u64) -> Self {
        Self {
            timeout: (millis > 0).then(|| Duration::from_millis(millis)),
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
            timeout: self.timeout,
        }))
    }
}

pub struct BodyReadTimeoutService<S> {
    service: S,
    timeout: Option<Duration>,
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
        if let Some(timeout) = self.timeout {
            match req.take_payload() {
                Payload::None => {}
                payload if req.headers().contains_key(header::UPGRADE) => req.set_payload(payload),
                payload => req.set_payload(Payload::Stream {
                    payload: Box::pin(TimedPayload::new(payload, timeout)),
                }),
            }
        }
        self.service.call(req)
    }
}

/// A body whose next chunk must arrive within `timeout` of being asked for.
pub struct TimedPayload {
    inner: Payload,
    timeout: Duration,
    /// Armed when the consumer starts waiting; disarmed by each chunk.
    timer: Option<Pin<Box<Sleep>>>,
    armed: bool,
    done: bool,
}

impl TimedPayload {
    pub fn new(inner: Payload, timeout: Duration) -> Self {
        Self {
            inner,
            timeout,
            timer: None,
            armed: false,
            done: false,
        }
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
                this.armed = false;
                return Poll::Ready(Some(Ok(chunk)));
            }
            Poll::Ready(other) => {
                this.done = other.is_none();
                return Poll::Ready(other);
            }
            Poll::Pending => {}
        }
        let deadline = Instant::now() + this.timeout;
        let timer = match &mut this.timer {
            Some(timer) => {
                if !this.armed {
                    timer.as_mut().reset(deadline);
                }
                timer
            }
            None => this
                .timer
                .insert(Box::pin(tokio::time::sleep_until(deadline))),
        };
        this.armed = true;
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => {
                this.done = true;
                let message = format!("no request body data for {} ms", this.timeout.as_millis());
                Poll::Ready(Some(Err(PayloadError::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    message,
                )))))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    fn channel() -> (
        tokio::sync::mpsc::Sender<Result<Bytes, PayloadError>>,
        TimedPayload,
    ) {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
        let payload = Payload::Stream {
            payload: Box::pin(stream) as actix_http::BoxedPayloadStream,
        };
        (tx, TimedPayload::new(payload, Duration::from_millis(100)))
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
