//! Test-only: a tiny keep-alive HTTP/1.1 responder on a loopback port.
//!
//! Lets the client and the load generator be tested end to end (connections,
//! keep-alive, bodies, status counting) without the real server, which is not
//! a dependency of xtask. It answers every request with one fixed status.

use std::net::SocketAddr;

use anyhow::{Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Starts a responder answering every request with `status` (e.g. `200 OK`) and
/// the body `ok`; it runs until the test's runtime ends.
pub async fn spawn(status: &'static str) -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream, status));
        }
    });
    Ok(addr)
}

async fn serve(mut stream: TcpStream, status: &'static str) -> Result<()> {
    let response = format!("HTTP/1.1 {status}\r\ncontent-length: 2\r\n\r\nok");
    let mut buffer = Vec::new();
    let mut chunk = [0_u8; 4096];
    loop {
        while let Some(request_len) = complete_request_len(&buffer)? {
            buffer.drain(..request_len);
            stream.write_all(response.as_bytes()).await?;
        }
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            return Ok(());
        }
        buffer.extend_from_slice(chunk.get(..read).context("read past buffer")?);
    }
}

/// The length of the first complete request (head plus `content-length` body)
/// in `buffer`, if it holds one.
fn complete_request_len(buffer: &[u8]) -> Result<Option<usize>> {
    let Some(head_end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = std::str::from_utf8(buffer.get(..head_end).context("head")?)?;
    let body_len = head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .map(|(_, value)| value.trim().parse::<usize>())
        .transpose()?
        .unwrap_or(0);
    let total = head_end + 4 + body_len;
    Ok((buffer.len() >= total).then_some(total))
}
