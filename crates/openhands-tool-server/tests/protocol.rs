//! The protocol itself: in-process over a duplex stream (as the agent's tests use it), the
//! answer to an unknown operation, and the egress relay of the binary.

mod common;

use openhands_core::tool_protocol::framing::{read_frame, write_frame};
use openhands_core::tool_protocol::{
    CommandOutput, Done, FailureCode, Hello, PROTOCOL_VERSION, Request, ResponseFrame, ToolClient,
};
use openhands_tool_server::{ServeOptions, serve};
use serde_json::json;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn serve_works_in_process_and_kills_its_shells_when_the_input_ends() {
    let tmp = tempfile::tempdir().expect("dir");
    let (client_write, server_read) = tokio::io::duplex(1 << 16);
    let (server_write, client_read) = tokio::io::duplex(1 << 16);
    let options = ServeOptions::new(tmp.path());
    let serving = tokio::spawn(async move { serve(server_read, server_write, options).await });
    let client = ToolClient::connect(client_read, client_write)
        .await
        .expect("hello");
    assert!(client.hello().server.starts_with("openhands-tool-server "));
    let _: Done = client.call(Request::Ping).await.expect("ping");
    let out: CommandOutput = client
        .call(Request::BashRun {
            session: "s".into(),
            command: "sleep 300 >/dev/null 2>&1 & echo $!".into(),
            timeout_ms: 10_000,
        })
        .await
        .expect("run");
    let pid: u32 = out.output.trim().parse().expect("a pid");
    drop(client);
    tokio::time::timeout(Duration::from_secs(5), serving)
        .await
        .expect("serve returns")
        .expect("joins")
        .expect("a clean end");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !common::is_gone(pid) {
        assert!(Instant::now() < deadline, "the background process survived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn an_unknown_operation_gets_unsupported_and_the_connection_goes_on() {
    let tmp = tempfile::tempdir().expect("dir");
    // One stream per direction, so that closing the client's writer is an end of input.
    let (mut client_write, server_read) = tokio::io::duplex(1 << 16);
    let (server_write, mut client_read) = tokio::io::duplex(1 << 16);
    let mut options = ServeOptions::new(tmp.path());
    options.shown_workspace = "/workspace".into();
    let serving = tokio::spawn(async move { serve(server_read, server_write, options).await });
    let hello: Hello = read_frame(&mut client_read).await.expect("hello");
    assert_eq!(
        (hello.protocol, hello.workspace.as_str()),
        (PROTOCOL_VERSION, "/workspace")
    );

    for frame in [
        json!({"id": 5, "op": "teleport", "to": "mars"}),
        json!({"id": 6, "op": "read_file", "path": 7}),
        json!({"op": "ping"}),
        json!({"id": 7, "op": "ping"}),
    ] {
        write_frame(&mut client_write, &frame).await.expect("write");
    }
    let mut answers = Vec::new();
    for _ in 0..3 {
        let answer: ResponseFrame = read_frame(&mut client_read).await.expect("answer");
        answers.push(answer);
    }
    answers.sort_by_key(|a| a.id);
    let code = |a: &ResponseFrame| a.error.as_ref().map(|e| e.code);
    assert_eq!(answers[0].id, 5);
    assert_eq!(code(&answers[0]), Some(FailureCode::Unsupported));
    assert!(
        answers[0]
            .error
            .as_ref()
            .is_some_and(|e| e.message.contains("teleport"))
    );
    assert_eq!(
        (answers[1].id, code(&answers[1])),
        (6, Some(FailureCode::InvalidArgument))
    );
    assert_eq!((answers[2].id, answers[2].ok.clone()), (7, Some(json!({}))));
    drop(client_write);
    tokio::time::timeout(Duration::from_secs(5), serving)
        .await
        .expect("serve returns")
        .expect("joins")
        .expect("a clean end");
}

#[tokio::test]
async fn the_relay_carries_bytes_both_ways_to_the_proxy_socket() {
    let tmp = tempfile::tempdir().expect("dir");
    let socket = tmp.path().join("proxy.sock");
    let proxy = tokio::net::UnixListener::bind(&socket).expect("unix listener");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let listen = format!("127.0.0.1:{port}");
    let socket_arg = socket.display().to_string();
    let server = common::start(&["--proxy-socket", &socket_arg, "--proxy-listen", &listen]).await;
    let mut tcp = tokio::net::TcpStream::connect(&listen)
        .await
        .expect("connect");
    tcp.write_all(b"CONNECT example.com:443 HTTP/1.1\r\n\r\n")
        .await
        .expect("send");
    let (mut unix, _) = proxy.accept().await.expect("relayed");
    let mut got = [0u8; 36];
    unix.read_exact(&mut got).await.expect("read");
    assert_eq!(&got, b"CONNECT example.com:443 HTTP/1.1\r\n\r\n");
    unix.write_all(b"HTTP/1.1 200 OK\r\n\r\n")
        .await
        .expect("answer");
    let mut back = [0u8; 19];
    tcp.read_exact(&mut back).await.expect("read back");
    assert_eq!(&back, b"HTTP/1.1 200 OK\r\n\r\n");
    drop(server);
}
