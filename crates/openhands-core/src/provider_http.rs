//! Reading a provider's answer with a bound: a git host's API (or whatever answers at a
//! deployer's configured address) must not make the server buffer an unbounded body.
//!
//! [`read_json`] reads the body chunk by chunk and gives up past [`MAX_PROVIDER_BODY_BYTES`]
//! (or the body's declared length, when larger), then parses it. Errors never carry the
//! body or the URL (which may hold a token in its query).

use serde::de::DeserializeOwned;

/// The largest answer read from a provider's API: a page of 100 repositories is well
/// under a megabyte.
pub const MAX_PROVIDER_BODY_BYTES: usize = 8 * 1024 * 1024;

/// Why a provider's answer could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ProviderBodyError {
    #[error("the answer is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("reading the answer failed: {0}")]
    Read(String),
    #[error("the answer is not the JSON expected: {0}")]
    Invalid(String),
}

/// The whole body, refused past `limit` bytes.
pub async fn read_bounded(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, ProviderBodyError> {
    if response
        .content_length()
        .is_some_and(|length| length > limit as u64)
    {
        return Err(ProviderBodyError::TooLarge { limit });
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| ProviderBodyError::Read(e.without_url().to_string()))?
    {
        if body.len() + chunk.len() > limit {
            return Err(ProviderBodyError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The body parsed as `T`, read with [`MAX_PROVIDER_BODY_BYTES`] as the bound.
pub async fn read_json<T: DeserializeOwned>(
    response: reqwest::Response,
) -> Result<T, ProviderBodyError> {
    read_json_bounded(response, MAX_PROVIDER_BODY_BYTES).await
}

/// The body parsed as `T`, refused past `limit` bytes.
pub async fn read_json_bounded<T: DeserializeOwned>(
    response: reqwest::Response,
    limit: usize,
) -> Result<T, ProviderBodyError> {
    let body = read_bounded(response, limit).await?;
    serde_json::from_slice(&body).map_err(|e| ProviderBodyError::Invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Answers one request with `body`, chunked (no declared length) when `chunked`.
    async fn serve_once(body: Vec<u8>, chunked: bool) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.expect("accept");
            let mut request = [0u8; 4096];
            let _ = socket.read(&mut request).await;
            if chunked {
                let _ = socket
                    .write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n")
                    .await;
                for part in body.chunks(64 * 1024) {
                    let head = format!("{:x}\r\n", part.len());
                    if socket.write_all(head.as_bytes()).await.is_err()
                        || socket.write_all(part).await.is_err()
                        || socket.write_all(b"\r\n").await.is_err()
                    {
                        return;
                    }
                }
                let _ = socket.write_all(b"0\r\n\r\n").await;
            } else {
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = socket.write_all(head.as_bytes()).await;
                let _ = socket.write_all(&body).await;
            }
        });
        format!("http://{address}/")
    }

    async fn get(url: &str) -> reqwest::Response {
        reqwest::get(url).await.expect("answer")
    }

    #[tokio::test]
    async fn an_answer_within_the_bound_is_parsed() {
        let url = serve_once(br#"{"login": "ann"}"#.to_vec(), true).await;
        let value: serde_json::Value = read_json_bounded(get(&url).await, 1024)
            .await
            .expect("parsed");
        assert_eq!(value["login"], "ann");
    }

    #[tokio::test]
    async fn a_chunked_answer_past_the_bound_is_refused_while_reading() {
        let mut body = b"[".to_vec();
        body.extend(std::iter::repeat_n(b' ', 300 * 1024));
        body.push(b']');
        let url = serve_once(body, true).await;
        let err = read_json_bounded::<serde_json::Value>(get(&url).await, 256 * 1024)
            .await
            .expect_err("an oversized answer was read whole");
        assert!(
            matches!(err, ProviderBodyError::TooLarge { limit } if limit == 256 * 1024),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_declared_length_past_the_bound_is_refused_before_reading() {
        let url = serve_once(vec![b' '; 2048], false).await;
        let err = read_bounded(get(&url).await, 1024)
            .await
            .expect_err("an oversized declared answer was read");
        assert!(matches!(err, ProviderBodyError::TooLarge { .. }), "{err}");
    }

    #[tokio::test]
    async fn an_answer_that_is_not_json_says_so_without_the_body() {
        let url = serve_once(b"<html>secret-token-123</html>".to_vec(), false).await;
        let err = read_json::<serde_json::Value>(get(&url).await)
            .await
            .expect_err("HTML parsed as JSON");
        assert!(matches!(err, ProviderBodyError::Invalid(_)), "{err}");
        assert!(!err.to_string().contains("secret-token"), "{err}");
    }
}
