//! Reading and understanding the one request head a proxy connection starts with.
//!
//! The proxy needs only the target of a request: `CONNECT host:port` for tunnels (HTTPS and
//! anything else), or an absolute URI (`GET http://host/path`) for plain HTTP, whose head it
//! rewrites for the origin server. Everything after the head is relayed as bytes, so a small
//! parser over `httparse` is all there is; no HTTP stack sits between sandbox and network.
//! The head is bounded in size because the sandbox is hostile.

use tokio::io::{AsyncRead, AsyncReadExt};

use super::policy::Host;

/// Most headers a request may carry.
const MAX_HEADERS: usize = 100;

/// What a request asks the proxy to do.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Request {
    /// `CONNECT host:port`: open a tunnel.
    Connect { host: Host, port: u16 },
    /// An absolute-form request; `head` is the rewritten head to send upstream.
    Forward {
        host: Host,
        port: u16,
        head: Vec<u8>,
    },
}

impl Request {
    pub(crate) fn target(&self) -> (&Host, u16) {
        match self {
            Self::Connect { host, port } | Self::Forward { host, port, .. } => (host, *port),
        }
    }
}

/// Why no request could be read.
#[derive(Debug)]
pub(crate) enum HeadError {
    /// Larger than the limit, or too many headers: 431.
    TooLarge,
    /// Not a request this proxy serves: 400, with the reason.
    Malformed(String),
    /// The client went away (or its connection failed) before sending a whole head.
    Closed,
}

/// Reads until a complete head has arrived and parses it. Returns the request and the bytes
/// read past the head (a request body or a pipelined TLS hello), which belong upstream.
pub(crate) async fn read_request<R: AsyncRead + Unpin>(
    reader: &mut R,
    max_bytes: usize,
) -> Result<(Request, Vec<u8>), HeadError> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        let room = (max_bytes + 1).saturating_sub(buf.len()).min(chunk.len());
        let n = reader
            .read(&mut chunk[..room])
            .await
            .map_err(|_| HeadError::Closed)?;
        if n == 0 {
            return Err(HeadError::Closed);
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some((request, len)) = parse(&buf)? {
            return Ok((request, buf.split_off(len)));
        }
        if buf.len() > max_bytes {
            return Err(HeadError::TooLarge);
        }
    }
}

/// Parses `buf` as a request head; `None` while it is incomplete.
fn parse(buf: &[u8]) -> Result<Option<(Request, usize)>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Partial) => return Ok(None),
        Ok(httparse::Status::Complete(len)) => len,
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(e) => return Err(malformed(&format!("not an HTTP request head ({e})"))),
    };
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return Err(malformed("incomplete request line"));
    };
    if method.eq_ignore_ascii_case("CONNECT") {
        let (host, port) = parse_authority(target, None)?;
        return Ok(Some((Request::Connect { host, port }, len)));
    }
    let scheme_len = "http://".len();
    let scheme = target.get(..scheme_len).unwrap_or_default();
    if !scheme.eq_ignore_ascii_case("http://") {
        let hint = if target
            .get(..8)
            .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
        {
            "https URLs go through CONNECT"
        } else {
            "this is a proxy: send an absolute URI (http://host/path) or CONNECT host:port"
        };
        return Err(malformed(hint));
    }
    let rest = &target[scheme_len..];
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    let (host, port) = parse_authority(authority, Some(80))?;
    let path = path.split('#').next().unwrap_or_default();
    let origin_form = match path.chars().next() {
        Some('/') => path.to_owned(),
        _ => format!("/{path}"),
    };
    let head = rewrite_head(method, &origin_form, version, authority, req.headers);
    Ok(Some((Request::Forward { host, port, head }, len)))
}

fn malformed(why: &str) -> HeadError {
    HeadError::Malformed(why.to_owned())
}

/// `host:port`, `[v6]:port`, or without `:port` when there is a default.
fn parse_authority(authority: &str, default_port: Option<u16>) -> Result<(Host, u16), HeadError> {
    if authority.contains('@') {
        return Err(malformed("credentials in the URL are not supported"));
    }
    let (host, port) = match authority.rfind(':') {
        // `[::1]` alone: the colon is inside the brackets.
        Some(i) if !authority[i..].contains(']') => (&authority[..i], Some(&authority[i + 1..])),
        _ => (authority, None),
    };
    let port = match (port, default_port) {
        (Some(p), _) => {
            let valid = !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit());
            valid
                .then(|| p.parse::<u16>().ok())
                .flatten()
                .filter(|p| *p != 0)
                .ok_or_else(|| malformed(&format!("bad port in {authority:?}")))?
        }
        (None, Some(default)) => default,
        (None, None) => return Err(malformed("CONNECT needs host:port")),
    };
    let host = Host::parse(host).map_err(|e| malformed(&e.to_string()))?;
    Ok((host, port))
}

/// Headers that concern only the hop between client and proxy. `Transfer-Encoding` stays:
/// the body is relayed untouched, so its framing must reach the origin with it.
fn is_hop_by_hop(name: &str, connection_tokens: &[String]) -> bool {
    const HOP: [&str; 6] = [
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "host",
    ];
    let lower = name.to_ascii_lowercase();
    let framing = lower == "content-length" || lower == "transfer-encoding";
    HOP.contains(&lower.as_str())
        || lower.starts_with("proxy-")
        || (!framing && connection_tokens.contains(&lower))
}

/// The head sent upstream: origin-form target, `Host` from the URI, hop-by-hop and
/// `Proxy-*` headers dropped, `Connection: close` (one request per upstream connection).
fn rewrite_head(
    method: &str,
    origin_form: &str,
    version: u8,
    authority: &str,
    headers: &[httparse::Header<'_>],
) -> Vec<u8> {
    let mut connection_tokens = Vec::new();
    for header in headers {
        if header.name.eq_ignore_ascii_case("connection") {
            let value = String::from_utf8_lossy(header.value);
            connection_tokens.extend(value.split(',').map(|t| t.trim().to_ascii_lowercase()));
        }
    }
    let mut head =
        format!("{method} {origin_form} HTTP/1.{version}\r\nHost: {authority}\r\n").into_bytes();
    for header in headers {
        if is_hop_by_hop(header.name, &connection_tokens) {
            continue;
        }
        head.extend_from_slice(header.name.as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(header.value);
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"Connection: close\r\n\r\n");
    head
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv6Addr};

    fn parsed(raw: &str) -> Request {
        match parse(raw.as_bytes()) {
            Ok(Some((request, len))) => {
                assert_eq!(len, raw.len());
                request
            }
            other => panic!("{raw:?} did not parse: {other:?}"),
        }
    }

    fn rejected(raw: &str) -> String {
        match parse(raw.as_bytes()) {
            Err(HeadError::Malformed(why)) => why,
            other => panic!("{raw:?} was not rejected: {other:?}"),
        }
    }

    #[test]
    fn connect_targets_need_a_port() {
        assert_eq!(
            parsed("CONNECT [::1]:443 HTTP/1.1\r\n\r\n"),
            Request::Connect {
                host: Host::Ip(IpAddr::V6(Ipv6Addr::LOCALHOST)),
                port: 443
            }
        );
        assert!(rejected("CONNECT example.com HTTP/1.1\r\n\r\n").contains("host:port"));
        assert!(rejected("CONNECT example.com:0 HTTP/1.1\r\n\r\n").contains("bad port"));
        assert!(rejected("CONNECT example.com:99999 HTTP/1.1\r\n\r\n").contains("bad port"));
    }

    #[test]
    fn absolute_uri_is_rewritten_to_origin_form() {
        let raw = "GET http://Example.com:8080?q=1#frag HTTP/1.1\r\nHost: evil\r\n\
                   Proxy-Authorization: Basic c2VjcmV0\r\nConnection: keep-alive, X-Drop\r\n\
                   X-Drop: 1\r\nX-Keep: 2\r\nContent-Length: 0\r\n\r\n";
        let Request::Forward { host, port, head } = parsed(raw) else {
            panic!("not a forward");
        };
        assert_eq!((host, port), (Host::Name("example.com".into()), 8080));
        let head = String::from_utf8(head).expect("utf-8 head");
        assert_eq!(
            head,
            "GET /?q=1 HTTP/1.1\r\nHost: Example.com:8080\r\nX-Keep: 2\r\n\
             Content-Length: 0\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn non_proxy_requests_are_refused() {
        assert!(rejected("GET /x HTTP/1.1\r\n\r\n").contains("absolute URI"));
        assert!(rejected("GET https://a.com/ HTTP/1.1\r\n\r\n").contains("CONNECT"));
        assert!(rejected("GET http://u:p@a.com/ HTTP/1.1\r\n\r\n").contains("credentials"));
        assert!(rejected("GET http://a%2fb/ HTTP/1.1\r\n\r\n").contains("not a valid host"));
    }

    #[tokio::test]
    async fn bytes_past_the_head_are_kept_and_big_heads_refused() {
        let mut input: &[u8] = b"CONNECT a.com:443 HTTP/1.1\r\n\r\n\x16\x03\x01";
        let (_, rest) = read_request(&mut input, 1024).await.expect("request");
        assert_eq!(rest, b"\x16\x03\x01");
        let big = format!(
            "GET http://a.com/ HTTP/1.1\r\nX: {}\r\n\r\n",
            "a".repeat(2048)
        );
        let result = read_request(&mut big.as_bytes(), 1024).await;
        assert!(matches!(result, Err(HeadError::TooLarge)), "{result:?}");
    }
}
