//! The egress proxy end to end: bound on a temporary Unix socket, spoken to the way the
//! sandbox's relay does, with real TCP servers on loopback as origins.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use openhands_core::sandbox_config::NetworkPolicy;
use openhands_sandbox::egress::{CompiledPolicy, EgressError, EgressProxy, ProxyLimits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UnixStream};
use tokio::sync::oneshot;

const WAIT: Duration = Duration::from_secs(10);

struct Proxy {
    proxy: EgressProxy,
    path: PathBuf,
    _dir: tempfile::TempDir,
}

fn compile(allow: &[&str], deny: &[&str], ports: &[u16]) -> Arc<CompiledPolicy> {
    let policy = NetworkPolicy {
        allow: allow.iter().map(|s| s.to_string()).collect(),
        deny: deny.iter().map(|s| s.to_string()).collect(),
        ports: ports.to_vec(),
        ..NetworkPolicy::default()
    };
    Arc::new(CompiledPolicy::compile(&policy).expect("valid policy"))
}

fn start_with(policy: Arc<CompiledPolicy>, limits: ProxyLimits) -> Proxy {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("egress.sock");
    let proxy = EgressProxy::bind_with_limits(&path, policy, "conv-test".into(), limits)
        .expect("bind proxy");
    Proxy {
        proxy,
        path,
        _dir: dir,
    }
}

fn start(allow: &[&str], deny: &[&str]) -> Proxy {
    start_with(compile(allow, deny, &[]), ProxyLimits::default())
}

async fn send(proxy: &Proxy, request: &[u8]) -> UnixStream {
    let mut stream = UnixStream::connect(&proxy.path)
        .await
        .expect("connect to proxy");
    stream.write_all(request).await.expect("send request");
    stream
}

/// A response the proxy closes after: status code, head, body.
async fn whole_response(mut stream: UnixStream) -> (u16, String, String) {
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut raw))
        .await
        .expect("response in time")
        .expect("read response");
    let text = String::from_utf8(raw).expect("utf-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("a response head");
    let status = head
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    (status, head.to_owned(), body.to_owned())
}

/// Reads a response head only (the connection stays open after it).
async fn response_head(stream: &mut UnixStream) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let byte = tokio::time::timeout(WAIT, stream.read_u8())
            .await
            .expect("head in time")
            .expect("read head");
        head.push(byte);
    }
    String::from_utf8(head).expect("utf-8 head")
}

/// A TCP echo server on 127.0.0.1; its port.
async fn echo_server() -> (u16, TcpListener) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind echo");
    let port = listener.local_addr().expect("echo address").port();
    (port, listener)
}

fn serve_echo(listener: TcpListener) {
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = socket.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
}

/// Asserts nothing connected to `listener` (the proxy refused before connecting).
async fn assert_untouched(listener: &TcpListener) {
    let accepted = tokio::time::timeout(Duration::from_millis(200), listener.accept()).await;
    assert!(accepted.is_err(), "the origin was contacted");
}

#[tokio::test]
async fn connect_to_host_loopback_is_refused_and_says_why() {
    let (port, origin) = echo_server().await;
    let proxy = start(&[], &[]);
    let request = format!("CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: x\r\n\r\n");
    let (status, head, body) = whole_response(send(&proxy, request.as_bytes()).await).await;
    assert_eq!(status, 403);
    assert!(head.contains("X-Openhands-Egress: refused"), "{head}");
    assert!(body.contains("127.0.0.1 is a loopback address"), "{body}");
    assert_untouched(&origin).await;
}

#[tokio::test]
async fn localhost_and_mapped_loopback_are_refused() {
    let (port, origin) = echo_server().await;
    let proxy = start(&[], &[]);
    for target in [
        format!("localhost:{port}"),
        format!("[::ffff:127.0.0.1]:{port}"),
    ] {
        let request = format!("CONNECT {target} HTTP/1.1\r\n\r\n");
        let (status, _, body) = whole_response(send(&proxy, request.as_bytes()).await).await;
        assert_eq!(status, 403, "{target}");
        assert!(body.contains("loopback"), "{target}: {body}");
    }
    assert_untouched(&origin).await;
}

#[tokio::test]
async fn cloud_metadata_is_refused() {
    let proxy = start(&[], &[]);
    for request in [
        "CONNECT 169.254.169.254:80 HTTP/1.1\r\n\r\n",
        "GET http://169.254.169.254/latest/meta-data/ HTTP/1.1\r\n\r\n",
        "CONNECT [fd00:ec2::254]:80 HTTP/1.1\r\n\r\n",
    ] {
        let (status, _, body) = whole_response(send(&proxy, request.as_bytes()).await).await;
        assert_eq!(status, 403, "{request}");
        assert!(body.contains("cloud metadata"), "{body}");
    }
}

#[tokio::test]
async fn an_allowed_tunnel_carries_bytes_both_ways() {
    let (port, origin) = echo_server().await;
    serve_echo(origin);
    let proxy = start(&["127.0.0.1"], &[]);
    // The first bytes of the tunnel arrive with the head, as a TLS client may send them.
    let request = format!("CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\nearly;");
    let mut stream = send(&proxy, request.as_bytes()).await;
    let head = response_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    stream
        .write_all(b"ping")
        .await
        .expect("write through tunnel");
    let mut echoed = [0u8; 10];
    tokio::time::timeout(WAIT, stream.read_exact(&mut echoed))
        .await
        .expect("echo in time")
        .expect("read echo");
    assert_eq!(&echoed, b"early;ping");
}

/// A one-shot HTTP origin: sends back the head it received, answers `hello`.
async fn http_origin() -> (u16, oneshot::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind origin");
    let port = listener.local_addr().expect("origin address").port();
    let (tx, rx) = oneshot::channel();
    tokio::spawn(async move {
        let Ok((mut socket, _)) = listener.accept().await else {
            return;
        };
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            match socket.read_u8().await {
                Ok(byte) => head.push(byte),
                Err(_) => return,
            }
        }
        let _ = tx.send(String::from_utf8_lossy(&head).into_owned());
        let reply = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        let _ = socket.write_all(reply).await;
    });
    (port, rx)
}

#[tokio::test]
async fn plain_http_is_forwarded_in_origin_form_without_proxy_headers() {
    let (port, received) = http_origin().await;
    let proxy = start(&["127.0.0.1"], &[]);
    let request = format!(
        "GET http://127.0.0.1:{port}/x?y=1 HTTP/1.1\r\nHost: elsewhere\r\n\
         Proxy-Authorization: Basic c2VjcmV0\r\nProxy-Connection: keep-alive\r\n\
         Accept: */*\r\n\r\n"
    );
    let (status, _, body) = whole_response(send(&proxy, request.as_bytes()).await).await;
    assert_eq!((status, body.as_str()), (200, "hello"));
    let head = tokio::time::timeout(WAIT, received)
        .await
        .expect("origin in time")
        .expect("origin saw a request");
    assert!(head.starts_with("GET /x?y=1 HTTP/1.1\r\n"), "{head}");
    assert!(
        head.contains(&format!("Host: 127.0.0.1:{port}\r\n")),
        "{head}"
    );
    assert!(head.contains("Accept: */*\r\n"), "{head}");
    assert!(head.contains("Connection: close\r\n"), "{head}");
    assert!(!head.to_ascii_lowercase().contains("proxy-"), "{head}");
    assert!(!head.contains("elsewhere"), "{head}");
}

#[tokio::test]
async fn an_oversize_head_gets_431() {
    let proxy = start(&[], &[]);
    let request = format!(
        "GET http://example.com/ HTTP/1.1\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20 * 1024)
    );
    let mut stream = UnixStream::connect(&proxy.path).await.expect("connect");
    // The proxy may answer before reading it all; a failed write is fine.
    let _ = stream.write_all(request.as_bytes()).await;
    let (status, head, _) = whole_response(stream).await;
    assert_eq!(status, 431, "{head}");
}

#[tokio::test]
async fn deny_beats_allow() {
    let (port, origin) = echo_server().await;
    let proxy = start(&["127.0.0.0/8", "localhost"], &["127.0.0.1"]);
    for target in ["127.0.0.1", "localhost"] {
        let request = format!("CONNECT {target}:{port} HTTP/1.1\r\n\r\n");
        let (status, _, body) = whole_response(send(&proxy, request.as_bytes()).await).await;
        assert_eq!(status, 403, "{target}");
        assert!(body.contains("denies"), "{target}: {body}");
    }
    assert_untouched(&origin).await;
}

#[tokio::test]
async fn ports_outside_the_list_are_refused() {
    let (port, origin) = echo_server().await;
    let proxy = start_with(compile(&["127.0.0.1"], &[], &[443]), ProxyLimits::default());
    let request = format!("CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n");
    let (status, _, body) = whole_response(send(&proxy, request.as_bytes()).await).await;
    assert_eq!(status, 403);
    assert!(
        body.contains(&format!("port {port} is not an allowed port")),
        "{body}"
    );
    assert_untouched(&origin).await;
}

#[tokio::test]
async fn requests_that_are_not_proxy_requests_get_400() {
    let proxy = start(&[], &[]);
    for request in [
        "GET /x HTTP/1.1\r\nHost: example.com\r\n\r\n",
        "CONNECT example.com HTTP/1.1\r\n\r\n",
        "hello\r\n\r\n",
    ] {
        let (status, _, _) = whole_response(send(&proxy, request.as_bytes()).await).await;
        assert_eq!(status, 400, "{request:?}");
    }
}

#[tokio::test]
async fn an_unresolvable_host_gets_502() {
    let limits = ProxyLimits {
        dns_timeout: Duration::from_secs(3),
        ..ProxyLimits::default()
    };
    let proxy = start_with(compile(&[], &[], &[]), limits);
    let request = b"CONNECT no-such-host.invalid:443 HTTP/1.1\r\n\r\n";
    let (status, _, body) = whole_response(send(&proxy, request).await).await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("no-such-host.invalid"), "{body}");
}

#[tokio::test]
async fn connections_beyond_the_limit_get_503() {
    let limits = ProxyLimits {
        max_connections: 1,
        ..ProxyLimits::default()
    };
    let proxy = start_with(compile(&[], &[], &[]), limits);
    let _first = UnixStream::connect(&proxy.path).await.expect("first");
    let second = UnixStream::connect(&proxy.path).await.expect("second");
    let (status, _, _) = whole_response(second).await;
    assert_eq!(status, 503);
}

#[tokio::test]
async fn dropping_the_proxy_ends_its_tunnels() {
    let (port, origin) = echo_server().await;
    serve_echo(origin);
    let proxy = start(&["127.0.0.1"], &[]);
    let request = format!("CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n");
    let mut stream = send(&proxy, request.as_bytes()).await;
    let head = response_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    let path = proxy.path.clone();
    drop(proxy.proxy);
    let mut rest = Vec::new();
    let read = tokio::time::timeout(WAIT, stream.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the tunnel outlived the proxy");
    assert!(rest.is_empty());
    assert!(!path.exists(), "the socket file is left behind");
}

#[tokio::test]
async fn a_quiet_tunnel_is_closed() {
    let (port, origin) = echo_server().await;
    serve_echo(origin);
    let limits = ProxyLimits {
        idle_timeout: Duration::from_millis(300),
        ..ProxyLimits::default()
    };
    let proxy = start_with(compile(&["127.0.0.1"], &[], &[]), limits);
    let request = format!("CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n");
    let mut stream = send(&proxy, request.as_bytes()).await;
    response_head(&mut stream).await;
    let mut rest = Vec::new();
    let read = tokio::time::timeout(WAIT, stream.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the idle tunnel stayed open");
}

#[tokio::test]
async fn the_socket_is_world_connectable_and_replaces_a_stale_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("egress.sock");
    drop(std::os::unix::net::UnixListener::bind(&path).expect("stale socket"));
    assert!(path.exists());
    let proxy = EgressProxy::bind(&path, compile(&[], &[], &[]), "c".into()).expect("bind");
    let mode = std::fs::metadata(&path)
        .expect("socket metadata")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o666);
    assert!(UnixStream::connect(&path).await.is_ok());
    proxy.shutdown().await;
    assert!(!path.exists());
}

#[tokio::test]
async fn bind_refuses_to_replace_a_file_that_is_not_a_socket() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("egress.sock");
    std::fs::write(&path, "not a socket").expect("write file");
    let result = EgressProxy::bind(&path, compile(&[], &[], &[]), "c".into());
    assert!(
        matches!(result, Err(EgressError::NotASocket { .. })),
        "{result:?}"
    );
    assert_eq!(
        std::fs::read_to_string(&path).expect("file kept"),
        "not a socket"
    );
}
