//! A JSON body extractor with OpenHands-style errors.
//!
//! Unlike `actix_web::web::Json` it does not insist on a JSON content type (OpenHands'
//! clients do not always send one), it answers an oversized body with 413 and a malformed
//! one with 422 in FastAPI's `{"detail": [{"type", "loc", "msg"}]}` shape, naming the field
//! (through `serde_path_to_error`).

use crate::error::ApiError;
use crate::state::AppState;
use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::web::{BytesMut, Data};
use actix_web::{FromRequest, HttpRequest};
use futures_util::StreamExt;
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;

/// Body limit used when no [`AppState`] is registered (unit tests).
const FALLBACK_LIMIT: usize = 1024 * 1024;

/// A request body parsed as JSON into `T`.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for JsonBody<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = req
            .app_data::<Data<AppState>>()
            .map(|s| s.config.max_body_bytes)
            .unwrap_or(FALLBACK_LIMIT);
        let declared = req
            .headers()
            .get(actix_web::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let mut payload = payload.take();
        Box::pin(async move {
            if declared.is_some_and(|len| len > limit) {
                return Err(too_large(limit));
            }
            let mut buf = BytesMut::new();
            while let Some(chunk) = payload.next().await {
                let chunk = chunk.map_err(|e| {
                    ApiError::detail(StatusCode::BAD_REQUEST, format!("could not read body: {e}"))
                })?;
                if buf.len() + chunk.len() > limit {
                    return Err(too_large(limit));
                }
                buf.extend_from_slice(&chunk);
            }
            parse_json(&buf).map(JsonBody)
        })
    }
}

fn too_large(limit: usize) -> ApiError {
    ApiError::detail(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("Request body is larger than the limit of {limit} bytes"),
    )
}

/// Parses `bytes` as `T`, describing the first problem with its field path.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::validation(
            "",
            "Field required: the body is empty",
            "missing",
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.inner();
        let kind = match inner.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                "json_invalid"
            }
            _ => "value_error",
        };
        let field = if path == "." { String::new() } else { path };
        let message = if field.is_empty() {
            inner.to_string()
        } else {
            format!("{field}: {inner}")
        };
        ApiError::validation(&field, message, kind)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        count: u32,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Outer {
        name: String,
        inner: Inner,
    }

    #[test]
    fn wrong_type_names_the_nested_field() {
        let err = parse_json::<Outer>(br#"{"name":"a","inner":{"count":"x"}}"#).expect_err("bad");
        assert_eq!(err.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            err.body["detail"][0]["loc"],
            serde_json::json!(["body", "inner", "count"])
        );
        assert!(
            err.body["detail"][0]["msg"]
                .as_str()
                .is_some_and(|m| m.contains("inner.count"))
        );
    }

    #[test]
    fn missing_field_is_named_in_the_message() {
        let err = parse_json::<Outer>(br#"{"inner":{"count":1}}"#).expect_err("bad");
        assert!(err.body.to_string().contains("name"));
    }

    #[test]
    fn syntax_error_is_json_invalid() {
        let err = parse_json::<Outer>(b"{not json").expect_err("bad");
        assert_eq!(err.body["detail"][0]["type"], "json_invalid");
    }
}
