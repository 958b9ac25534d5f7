//! Issue 25, item 3: nothing a client sends or asks for may grow the server without bound.
//! A WebSocket message reassembled from continuation frames is capped like a single frame,
//! an events page is capped in bytes as well as in events, the trajectory is streamed, and
//! a request body that stops arriving is answered with 408 instead of holding its
//! connection forever.

use futures_util::{SinkExt, StreamExt};
use openhands_test_support::{TestServer, json_body as body};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};

const WAIT: Duration = Duration::from_secs(30);
/// The events API's byte cap per page (routes/events.rs).
const PAGE_BYTES: usize = 4 * 1024 * 1024;

/// This process's resident set in bytes (the server runs in this process).
fn rss_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<usize>()
                .ok()
        })
        .expect("VmRSS")
        * 1024
}

/// A conversation whose agent has finished, with `n` stored events; returns (server, id, n).
async fn finished_conversation(
    adjust: impl FnOnce(&mut openhands_core::config::Config),
) -> (TestServer, String, u64) {
    let server = TestServer::spawn_with(adjust).await;
    server.store_default_settings().await;
    let res = server
        .post_json("/api/conversations", &json!({"initial_user_msg": "hi"}))
        .await;
    assert_eq!(res.status(), 200);
    let id = body(res).await["conversation_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let events = server.wait_for_agent_state(&id, "finished", -1, WAIT).await;
    (server, id, events.len() as u64)
}

#[tokio::test]
async fn continuation_frames_past_the_message_limit_close_with_1009_and_memory_stays_bounded() {
    let (server, id, _) = finished_conversation(|_| {}).await;
    let url = format!(
        "ws://{}/api/conversations/{id}/events/socket",
        server.address
    );
    let (socket, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("websocket");
    let (mut sink, mut stream) = socket.split();
    let closed = tokio::spawn(async move {
        while let Some(message) = stream.next().await {
            match message {
                Ok(Message::Close(frame)) => return frame.map(|f| f.code),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
        None
    });

    let before = rss_bytes();
    // 64 MiB of one text message in 64 KiB pieces: every frame is under the per-frame
    // limit, the message is 64 times the message limit.
    let piece = vec![b'a'; 64 * 1024];
    let mut sent = 0usize;
    for n in 0..1024 {
        let opcode = if n == 0 { Data::Text } else { Data::Continue };
        let frame = Frame::message(piece.clone(), OpCode::Data(opcode), false);
        match tokio::time::timeout(WAIT, sink.send(Message::Frame(frame))).await {
            Ok(Ok(())) => sent += piece.len(),
            // The server closed the socket: what this test wants.
            Ok(Err(_)) => break,
            Err(_) => panic!("sending stalled after {sent} bytes"),
        }
        if closed.is_finished() {
            break;
        }
    }
    let grown = rss_bytes().saturating_sub(before);
    eprintln!("sent {sent} bytes of one message; resident memory grew by {grown} bytes");
    let code = tokio::time::timeout(Duration::from_secs(10), closed)
        .await
        .ok()
        .and_then(Result::ok)
        .flatten();
    assert_eq!(
        code,
        Some(CloseCode::Size),
        "after {sent} bytes sent (resident memory grew by {grown} bytes)"
    );
    assert!(
        grown < 32 * 1024 * 1024,
        "resident memory grew by {grown} bytes for a refused message ({sent} bytes sent)"
    );
    // The server is fine afterwards.
    assert_eq!(server.get("/alive").await.status(), 200);
}

/// Sends a request head announcing `length` body bytes and `sent` of them.
async fn stalled_request(server: &TestServer, length: usize, sent: &str) -> tokio::net::TcpStream {
    let mut tcp = tokio::net::TcpStream::connect(server.address)
        .await
        .expect("connect");
    let head = format!(
        "POST /api/settings HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Content-Length: {length}\r\n\r\n{sent}",
        server.address
    );
    tcp.write_all(head.as_bytes()).await.expect("write");
    tcp
}

#[tokio::test]
async fn a_body_that_stops_arriving_gets_408_while_the_server_keeps_answering() {
    let server = TestServer::spawn_with(|c| c.body_read_timeout_ms = 1000).await;
    let mut stalled = Vec::new();
    for _ in 0..20 {
        stalled.push(stalled_request(&server, 100, r#"{"language":"#).await);
    }
    let res = tokio::time::timeout(Duration::from_secs(2), server.get("/alive"))
        .await
        .expect("/alive answers while bodies are stalled");
    assert_eq!(res.status(), 200);

    for mut tcp in stalled {
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut answer))
            .await
            .expect("answered and closed within the timeout")
            .expect("read");
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    }
    assert_eq!(
        server.get("/api/settings").await.status(),
        404,
        "nothing was stored"
    );
}

#[tokio::test]
async fn a_slow_but_steady_body_is_read_to_the_end() {
    // 5 bytes every 250 ms is 20 B/s: above a 10 B/s minimum rate.
    let server = TestServer::spawn_with(|c| {
        c.body_read_timeout_ms = 1000;
        c.body_min_bytes_per_second = 10;
    })
    .await;
    let payload = r#"{"language":"fr","max_iterations":42}"#;
    let (first, rest) = payload.split_at(10);
    let mut tcp = stalled_request(&server, payload.len(), first).await;
    // Longer in total than the timeout, but no gap between pieces comes near it.
    for piece in rest.as_bytes().chunks(5) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        tcp.write_all(piece).await.expect("write");
    }
    let mut answer = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut answer))
        .await
        .expect("answered")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn a_body_dripped_inside_every_timeout_gets_408_on_its_rate() {
    // One byte every 500 ms never leaves the 1 s read timeout idle, but averages 2 B/s.
    let server = TestServer::spawn_with(|c| {
        c.body_read_timeout_ms = 1000;
        c.body_min_bytes_per_second = 10;
    })
    .await;
    let payload = format!(r#"{{"language":"{}"}}"#, "x".repeat(40));
    let mut tcp = stalled_request(&server, payload.len(), "").await;
    let started = std::time::Instant::now();
    let mut answer = Vec::new();
    for byte in payload.as_bytes() {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if tcp.write_all(&[*byte]).await.is_err() {
            break;
        }
        let mut buf = [0u8; 1024];
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(1), tcp.read(&mut buf)).await
        {
            answer.extend_from_slice(&buf[..n]);
            break;
        }
    }
    if answer.is_empty() {
        let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut answer)).await;
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "cut off after {:?}, not after the whole {} s drip",
        started.elapsed(),
        payload.len() / 2
    );
    assert_eq!(
        server.get("/api/settings").await.status(),
        404,
        "nothing stored"
    );
}

/// Writes events `first..first + count` straight into the OSS store's layout (the API only
/// records what agents do), each a `think` action with a thought of `size` bytes.
fn write_events(server: &TestServer, id: &str, first: u64, count: u64, size: usize) {
    let thought = "t".repeat(size);
    for n in first..first + count {
        let event = json!({"id": n, "timestamp": "2025-01-01T00:00:00", "source": "agent",
                           "message": format!("m{n}"), "action": "think",
                           "args": {"thought": thought}});
        std::fs::write(
            server
                .data_dir()
                .join(format!("sessions/{id}/events/{n}.json")),
            event.to_string(),
        )
        .expect("write event");
    }
}

fn ids_of(page: &Value) -> Vec<u64> {
    page["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["id"].as_u64())
        .collect()
}

#[tokio::test]
async fn an_events_page_over_the_byte_cap_ends_early_and_says_there_is_more() {
    let (server, id, stored) = finished_conversation(|_| {}).await;
    // Six events of 1 MiB: more than the byte cap, far fewer than the count limit.
    write_events(&server, &id, stored, 6, 1024 * 1024);
    let server = server.restart().await;

    let mut seen: Vec<u64> = Vec::new();
    let mut start = stored;
    loop {
        let res = server
            .get(&format!(
                "/api/conversations/{id}/events?start_id={start}&limit=20"
            ))
            .await;
        assert_eq!(res.status(), 200);
        let text = res.text().await.expect("body");
        assert!(
            text.len() <= PAGE_BYTES + 64 * 1024,
            "a page of {} bytes",
            text.len()
        );
        let page: Value = serde_json::from_str(&text).expect("json");
        let ids = ids_of(&page);
        assert!(!ids.is_empty(), "every page makes progress");
        seen.extend(&ids);
        if page["has_more"] != true {
            break;
        }
        assert!(ids.len() < 6, "the first page ended early: {ids:?}");
        start = ids[ids.len() - 1] + 1;
    }
    assert_eq!(seen, (stored..stored + 6).collect::<Vec<_>>());

    // Newest first ends early the same way.
    let page = body(
        server
            .get(&format!(
                "/api/conversations/{id}/events?reverse=true&limit=20"
            ))
            .await,
    )
    .await;
    let ids = ids_of(&page);
    assert_eq!(page["has_more"], true);
    assert_eq!(ids[0], stored + 5);
    assert!(ids.len() < 6);
}

#[tokio::test]
async fn the_trajectory_is_streamed_and_complete() {
    let (server, id, stored) = finished_conversation(|_| {}).await;
    // Enough events for several store pages, some of them large.
    write_events(&server, &id, stored, 3, 512 * 1024);
    write_events(&server, &id, stored + 3, 250, 100);
    let server = server.restart().await;

    let res = server
        .get(&format!("/api/conversations/{id}/trajectory"))
        .await;
    assert_eq!(res.status(), 200);
    assert!(
        res.headers().get("content-length").is_none(),
        "streamed, not buffered: {:?}",
        res.headers()
    );
    assert_eq!(res.headers()["content-type"], "application/json");
    let trajectory = body(res).await;
    let ids: Vec<u64> = trajectory["trajectory"]
        .as_array()
        .expect("trajectory")
        .iter()
        .filter_map(|e| e["id"].as_u64())
        .collect();
    assert_eq!(ids, (0..stored + 253).collect::<Vec<_>>());
    assert_eq!(
        trajectory["trajectory"][stored as usize + 1]["args"]["thought"]
            .as_str()
            .map(str::len),
        Some(512 * 1024)
    );

    let res = server
        .get("/api/conversations/doesnotexist/trajectory")
        .await;
    assert_eq!(res.status(), 404);
}
