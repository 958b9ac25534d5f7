//! One proxy connection: read the request, decide, connect, relay.
//!
//! The order is what keeps a hostile sandbox in: the policy sees the name and port first,
//! then every address DNS returned, and the proxy connects only to those checked addresses
//! (it never resolves twice, so a rebinding DNS server cannot swap in 127.0.0.1 after the
//! check). Refusals are answered in plain words so an agent, or the person reading its
//! transcript, learns why instead of retrying.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

use super::decision::Refusal;
use super::head::{HeadError, Request, read_request};
use super::policy::{CompiledPolicy, Host};
use super::proxy::ProxyLimits;
use super::relay::{RelayEnd, Until, relay};

/// How long the proxy waits to hand the sandbox an error response.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// After an error response: how long, how much, and after how long a pause the proxy
/// keeps reading (and discarding) the rest of the request before it closes.
const LINGER: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 256 * 1024;
const LINGER_QUIET: Duration = Duration::from_millis(100);

/// What every connection of one proxy shares.
pub(crate) struct Shared {
    pub(crate) policy: Arc<CompiledPolicy>,
    pub(crate) conversation_id: String,
    pub(crate) limits: ProxyLimits,
}

/// The answers the proxy gives itself (anything else comes from the origin).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Status {
    BadRequest,
    Forbidden,
    RequestTimeout,
    HeadTooLarge,
    BadGateway,
    Unavailable,
    GatewayTimeout,
}

impl Status {
    fn line(self) -> &'static str {
        match self {
            Self::BadRequest => "400 Bad Request",
            Self::Forbidden => "403 Forbidden",
            Self::RequestTimeout => "408 Request Timeout",
            Self::HeadTooLarge => "431 Request Header Fields Too Large",
            Self::BadGateway => "502 Bad Gateway",
            Self::Unavailable => "503 Service Unavailable",
            Self::GatewayTimeout => "504 Gateway Timeout",
        }
    }
}

/// A complete `Connection: close` response whose text body starts with the proxy's name.
/// Refusals carry `X-Openhands-Egress: refused`, the proxy's other errors `error`.
pub(crate) fn response(status: Status, message: &str) -> Vec<u8> {
    let body = format!("openhands egress proxy: {message}\n");
    let marker = match status {
        Status::Forbidden => "refused",
        _ => "error",
    };
    format!(
        "HTTP/1.1 {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\
         Connection: close\r\nX-Openhands-Egress: {marker}\r\n\r\n{body}",
        status.line(),
        body.len()
    )
    .into_bytes()
}

/// Sends `status` and closes, reading what the client still sends for a moment first:
/// closing a Unix socket with unread input resets it, and the client would lose the answer.
async fn reply<S: AsyncRead + AsyncWrite + Unpin>(client: &mut S, status: Status, message: &str) {
    let bytes = response(status, message);
    let write = async {
        client.write_all(&bytes).await?;
        client.shutdown().await
    };
    // The sandbox may not read; it then simply loses the explanation.
    if !matches!(tokio::time::timeout(REPLY_TIMEOUT, write).await, Ok(Ok(()))) {
        return;
    }
    let drain = async {
        let mut buf = [0u8; 4096];
        let mut drained = 0;
        while drained < LINGER_BYTES {
            match tokio::time::timeout(LINGER_QUIET, client.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => drained += n,
                _ => return,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

/// Serves one connection from the sandbox to its end.
pub(crate) async fn serve(mut client: UnixStream, shared: Arc<Shared>) {
    let limits = &shared.limits;
    let id = shared.conversation_id.as_str();
    let read = read_request(&mut client, limits.max_head_bytes);
    let (request, early_bytes) = match tokio::time::timeout(limits.head_timeout, read).await {
        Ok(Ok(parsed)) => parsed,
        Ok(Err(HeadError::TooLarge)) => {
            tracing::debug!(conversation_id = id, "egress request head too large");
            let message = format!("request head over {} bytes", limits.max_head_bytes);
            return reply(&mut client, Status::HeadTooLarge, &message).await;
        }
        Ok(Err(HeadError::Malformed(why))) => {
            tracing::debug!(conversation_id = id, "egress request malformed");
            return reply(&mut client, Status::BadRequest, &why).await;
        }
        Ok(Err(HeadError::Closed)) => return,
        Err(_) => {
            let message = "no complete request head in time";
            return reply(&mut client, Status::RequestTimeout, message).await;
        }
    };
    let (host, port) = request.target();
    let origin = match open(&shared, host, port).await {
        Ok(origin) => origin,
        Err((status, message)) => return reply(&mut client, status, &message).await,
    };
    let (mut origin, until) = match request {
        Request::Connect { .. } => {
            let established = b"HTTP/1.1 200 Connection established\r\n\r\n";
            if client.write_all(established).await.is_err() {
                return;
            }
            (origin, Until::BothClosed)
        }
        Request::Forward { ref head, .. } => {
            let mut origin = origin;
            if origin.write_all(head).await.is_err() {
                return reply(&mut client, Status::BadGateway, "the origin closed").await;
            }
            (origin, Until::OriginClosed)
        }
    };
    if !early_bytes.is_empty() && origin.write_all(&early_bytes).await.is_err() {
        return;
    }
    let end = relay(client, origin, limits.idle_timeout, until).await;
    let (host, port) = request.target();
    match end {
        RelayEnd::Finished => {}
        RelayEnd::Idle => {
            tracing::debug!(conversation_id = id, %host, port, "egress tunnel idle, closed");
        }
        RelayEnd::Failed(e) => {
            tracing::debug!(conversation_id = id, %host, port, error = %e, "egress relay failed");
        }
    }
}

/// Checks the target, resolves it, checks every address, and connects to one of them; or
/// the response that explains why not.
async fn open(shared: &Shared, host: &Host, port: u16) -> Result<TcpStream, (Status, String)> {
    let id = shared.conversation_id.as_str();
    let limits = &shared.limits;
    let refused = |refusal: Refusal| {
        tracing::debug!(
            conversation_id = id,
            %host,
            port,
            decision = "refused",
            reason = refusal.reason.code(),
            address = refusal.address.map(|a| a.to_string()),
            "egress request refused"
        );
        (Status::Forbidden, refusal.to_string())
    };
    shared.policy.check_target(host, port).map_err(refused)?;
    let addrs = resolve(host, port, limits.dns_timeout).await.map_err(|why| {
        tracing::debug!(conversation_id = id, %host, port, decision = "unresolved", "egress request failed");
        (Status::BadGateway, why)
    })?;
    let reasons = shared
        .policy
        .check_resolved(host, port, &addrs)
        .map_err(refused)?;
    let reason = reasons.first().map(|r| r.code()).unwrap_or_default();
    tracing::debug!(conversation_id = id, %host, port, decision = "allowed", reason, "egress request allowed");
    connect(&addrs, port, limits.connect_timeout)
        .await
        .map_err(|(status, why)| (status, format!("{host} port {port}: {why}")))
}

/// The addresses `host` stands for, without duplicates; a literal is its own address.
async fn resolve(host: &Host, port: u16, timeout: Duration) -> Result<Vec<IpAddr>, String> {
    let name = match host {
        Host::Ip(ip) => return Ok(vec![*ip]),
        Host::Name(name) => name.as_str(),
    };
    let found = match tokio::time::timeout(timeout, tokio::net::lookup_host((name, port))).await {
        Ok(Ok(found)) => found,
        Ok(Err(_)) => return Err(format!("cannot resolve {name}")),
        Err(_) => return Err(format!("resolving {name} timed out")),
    };
    let mut addrs: Vec<IpAddr> = Vec::new();
    for addr in found {
        if !addrs.contains(&addr.ip()) {
            addrs.push(addr.ip());
        }
    }
    if addrs.is_empty() {
        return Err(format!("{name} has no addresses"));
    }
    Ok(addrs)
}

/// Connects to the first of `addrs` that answers, all within `timeout`.
async fn connect(
    addrs: &[IpAddr],
    port: u16,
    timeout: Duration,
) -> Result<TcpStream, (Status, String)> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last_error: Option<io::Error> = None;
    for addr in addrs {
        let attempt = TcpStream::connect(SocketAddr::new(*addr, port));
        match tokio::time::timeout_at(deadline, attempt).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Ok(Err(e)) => last_error = Some(e),
            Err(_) => {
                let why = format!("no connection within {} s", timeout.as_secs());
                return Err((Status::GatewayTimeout, why));
            }
        }
    }
    let why = match last_error {
        Some(e) => format!("connection failed ({e})"),
        None => "no address to connect to".to_owned(),
    };
    Err((Status::BadGateway, why))
}
