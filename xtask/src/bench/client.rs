//! A minimal keep-alive HTTP/1.1 client connection on hyper.
//!
//! The load generator must add as little overhead of its own as possible and be
//! explicit about connections (one per worker, reused for every request), so it
//! talks to hyper's connection-level API directly rather than going through a
//! pooling client. The same type serves the readiness probe and the data set-up.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{CONTENT_TYPE, HOST, HeaderName, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// One request to send, possibly many times; cloned once per connection, not
/// per request.
#[derive(Debug, Clone)]
pub struct RequestSpec {
    pub method: Method,
    pub path: String,
    /// A JSON body; sent with `content-type: application/json`.
    pub json_body: Option<Bytes>,
    /// Sent on every request (credentials, e.g. `cookie` or `authorization`).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// A header sent with a value unique to each request (UUID-shaped, see
    /// [`HttpConn::send`]), e.g. a webhook's delivery id.
    pub unique_header: Option<HeaderName>,
    /// The one status that counts as success; `None` accepts any 2xx.
    pub expected: Option<StatusCode>,
}

impl RequestSpec {
    pub fn get(path: impl Into<String>) -> Self {
        Self {
            method: Method::GET,
            path: path.into(),
            json_body: None,
            headers: Vec::new(),
            unique_header: None,
            expected: None,
        }
    }

    pub fn post_json(path: impl Into<String>, body: impl Into<Bytes>) -> Self {
        Self {
            method: Method::POST,
            path: path.into(),
            json_body: Some(body.into()),
            headers: Vec::new(),
            unique_header: None,
            expected: None,
        }
    }

    /// The same request with `name: value` added to every send.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// The same request with `name` set to a new unique value on every send.
    pub fn with_unique_header(mut self, name: HeaderName) -> Self {
        self.unique_header = Some(name);
        self
    }

    /// The same request, successful only when answered with `status`.
    pub fn expecting(mut self, status: StatusCode) -> Self {
        self.expected = Some(status);
        self
    }

    /// Whether `status` answers this request successfully.
    pub fn succeeded(&self, status: StatusCode) -> bool {
        self.expected
            .map_or_else(|| status.is_success(), |expected| status == expected)
    }
}

/// Numbers connections across the process, so unique header values never repeat.
static CONNECTIONS: AtomicU64 = AtomicU64::new(0);

/// An open HTTP/1.1 connection to the server under test.
pub struct HttpConn {
    sender: SendRequest<Full<Bytes>>,
    host: HeaderValue,
    /// This connection's number in the process, and how many unique values it made.
    serial: u64,
    uniques: u64,
}

/// A response: status and the full body (read so the connection can be reused).
pub struct Reply {
    pub status: StatusCode,
    pub body: Bytes,
}

impl HttpConn {
    pub async fn connect(addr: SocketAddr) -> Result<Self> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true).context("setting TCP_NODELAY")?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .with_context(|| format!("HTTP/1.1 handshake with {addr}"))?;
        // The connection future drives the socket; it ends when the sender is
        // dropped or the server closes, and either is reported through `send`.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let host = HeaderValue::from_str(&addr.to_string()).context("building Host header")?;
        Ok(Self {
            sender,
            host,
            serial: CONNECTIONS.fetch_add(1, Ordering::Relaxed),
            uniques: 0,
        })
    }

    /// The next value of a unique header: UUID-shaped (as GitHub's delivery ids are) from
    /// the process id, the connection's number and a counter, so no two sends of one
    /// bench run share it.
    pub(super) fn next_unique(&mut self) -> Result<HeaderValue> {
        self.uniques += 1;
        let value = format!(
            "{:08x}-{:04x}-4{:03x}-8000-{:012x}",
            std::process::id(),
            (self.serial >> 12) & 0xffff,
            self.serial & 0xfff,
            self.uniques & 0xffff_ffff_ffff
        );
        HeaderValue::from_str(&value).context("building a unique header value")
    }

    /// Sends one request and reads the whole response body.
    pub async fn send(&mut self, spec: &RequestSpec) -> Result<Reply> {
        let mut builder = Request::builder()
            .method(spec.method.clone())
            .uri(spec.path.as_str())
            .header(HOST, self.host.clone());
        if spec.json_body.is_some() {
            builder = builder.header(CONTENT_TYPE, "application/json");
        }
        for (name, value) in &spec.headers {
            builder = builder.header(name, value.clone());
        }
        if let Some(name) = &spec.unique_header {
            builder = builder.header(name, self.next_unique()?);
        }
        let request = builder
            .body(Full::new(spec.json_body.clone().unwrap_or_default()))
            .with_context(|| format!("building {} {}", spec.method, spec.path))?;
        self.sender
            .ready()
            .await
            .context("connection closed before sending")?;
        let response = self
            .sender
            .send_request(request)
            .await
            .with_context(|| format!("sending {} {}", spec.method, spec.path))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .with_context(|| format!("reading response to {} {}", spec.method, spec.path))?
            .to_bytes();
        Ok(Reply { status, body })
    }
}

/// Sends `spec` on a fresh connection and fails unless the status is `expected`.
pub async fn expect_status(
    addr: SocketAddr,
    spec: &RequestSpec,
    expected: StatusCode,
) -> Result<Bytes> {
    let reply = HttpConn::connect(addr).await?.send(spec).await?;
    ensure_status(spec, &reply, expected)?;
    Ok(reply.body)
}

/// Fails with the method, path, status and (a prefix of) the body on a mismatch.
pub fn ensure_status(spec: &RequestSpec, reply: &Reply, expected: StatusCode) -> Result<()> {
    if reply.status != expected {
        let body = String::from_utf8_lossy(&reply.body);
        let body: String = body.chars().take(500).collect();
        anyhow::bail!(
            "{} {} answered {} (expected {expected}): {body}",
            spec.method,
            spec.path,
            reply.status
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::COOKIE;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// Answers two requests on one connection with 200 and returns both request heads.
    async fn capture_two_heads(listener: TcpListener) -> Result<Vec<String>> {
        let (mut stream, _) = listener.accept().await?;
        let mut heads = Vec::new();
        let mut buffer = Vec::new();
        let mut chunk = [0_u8; 4096];
        while heads.len() < 2 {
            if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                let head: Vec<u8> = buffer.drain(..end + 4).collect();
                heads.push(String::from_utf8_lossy(&head).to_lowercase());
                stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await?;
                continue;
            }
            let read = stream.read(&mut chunk).await?;
            anyhow::ensure!(read > 0, "client closed early");
            buffer.extend_from_slice(chunk.get(..read).context("read past buffer")?);
        }
        Ok(heads)
    }

    #[tokio::test]
    async fn extra_headers_go_with_every_request() -> Result<()> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(capture_two_heads(listener));
        let spec = RequestSpec::get("/api/settings")
            .with_header(COOKIE, HeaderValue::from_static("keycloak_auth=sealed"));
        let mut conn = HttpConn::connect(addr).await?;
        for _ in 0..2 {
            let reply = conn.send(&spec).await?;
            assert_eq!(reply.status, StatusCode::OK);
        }
        let heads = server.await??;
        for head in heads {
            assert!(head.starts_with("get /api/settings "), "{head}");
            assert!(
                head.contains("\r\ncookie: keycloak_auth=sealed\r\n"),
                "{head}"
            );
        }
        Ok(())
    }
}
