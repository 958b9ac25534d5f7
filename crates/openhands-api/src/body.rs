//! A JSON body extractor with OpenHands-style errors.
//!
//! It answers an oversized body with 413, a body that stops arriving with 408 (see
//! [`crate::body_timeout`]) and a malformed one with 422 in FastAPI's
//! `{"detail": [{"type", "loc", "msg"}]}` shape, naming the field (through
//! `serde_path_to_error`).
//!
//! Unlike OpenHands it insists on a JSON content type (`application/json` or `*/*+json`):
//! a `text/plain` or form body is one a page on any site can send without a CORS
//! preflight, so accepting it as JSON let any site the user visited change settings
//! (issue 25). Every OpenHands client, and our web app, sends `application/json`. The
//! parser also refuses trailing characters and arrays in place of objects
//! ([`crate::strict_json`]).

use crate::error::ApiError;
use crate::state::AppState;
use crate::strict_json::StrictValue;
use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::http::StatusCode;
use actix_web::http::header;
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
        if let Err(err) = require_json(req) {
            return Box::pin(std::future::ready(Err(err)));
        }
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
                let chunk = chunk.map_err(read_failed)?;
                if buf.len() + chunk.len() > limit {
                    return Err(too_large(limit));
                }
                buf.extend_from_slice(&chunk);
            }
            parse_json(&buf).map(JsonBody)
        })
    }
}

/// True for `application/json` and `application/<anything>+json`, parameters aside.
pub fn is_json_content_type(value: &str) -> bool {
    let essence = value.split(';').next().unwrap_or_default().trim();
    let structured_json = essence
        .get(..12)
        .is_some_and(|t| t.eq_ignore_ascii_case("application/"))
        && essence
            .get(essence.len().saturating_sub(5)..)
            .is_some_and(|s| s.eq_ignore_ascii_case("+json"));
    structured_json || essence.eq_ignore_ascii_case("application/json")
}

/// 415 unless the request says its body is JSON.
fn require_json(req: &HttpRequest) -> Result<(), ApiError> {
    let content_type = req.headers().get(header::CONTENT_TYPE);
    let text = content_type.map(|v| v.to_str().unwrap_or("(not text)"));
    if text.is_some_and(is_json_content_type) {
        return Ok(());
    }
    let got = match text {
        Some(t) => format!("`{}`", t.chars().take(100).collect::<String>()),
        None => "no Content-Type".to_owned(),
    };
    Err(ApiError::detail(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        format!("Expected a JSON body with `Content-Type: application/json`; got {got}"),
    ))
}

fn read_failed(err: PayloadError) -> ApiError {
    match err {
        PayloadError::Io(e) if e.kind() == std::io::ErrorKind::TimedOut => ApiError::detail(
            StatusCode::REQUEST_TIMEOUT,
            format!("The request body stopped arriving: {e}"),
        ),
        other => ApiError::detail(
            StatusCode::BAD_REQUEST,
            format!("could not read body: {other}"),
        ),
    }
}

fn too_large(limit: usize) -> ApiError {
    ApiError::detail(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("Request body is larger than the limit of {limit} bytes"),
    )
}

/// Parses `bytes` as `T`, describing the first problem with its field path. Trailing
/// characters and arrays in place of objects are refused (see [`crate::strict_json`]).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::validation(
            "",
            "Field required: the body is empty",
            "missing",
        ));
    }
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|err| {
        let kind = match err.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                "json_invalid"
            }
            _ => "value_error",
        };
        ApiError::validation("", err.to_string(), kind)
    })?;
    serde_path_to_error::deserialize(StrictValue(&value)).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.inner();
        let field = if path == "." { String::new() } else { path };
        let message = if field.is_empty() {
            inner.to_string()
        } else {
            format!("{field}: {inner}")
        };
        ApiError::validation(&field, message, "value_error")
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

    #[test]
    fn trailing_characters_are_json_invalid() {
        let ok = br#"{"name":"a","inner":{"count":1}}"#;
        assert!(parse_json::<Outer>(ok).is_ok());
        for tail in [&b" x"[..], b"{}", b"]", b"\0"] {
            let body = [&ok[..], tail].concat();
            let err = parse_json::<Outer>(&body).expect_err("trailing");
            assert_eq!(err.body["detail"][0]["type"], "json_invalid", "{tail:?}");
        }
        assert!(parse_json::<Outer>(&[&ok[..], b" \r\n\t"].concat()).is_ok());
    }

    #[test]
    fn an_array_in_place_of_an_object_is_refused_with_its_path() {
        let err = parse_json::<Outer>(br#"["a", {"count": 1}]"#).expect_err("array");
        assert_eq!(err.status, StatusCode::UNPROCESSABLE_ENTITY);
        let err = parse_json::<Outer>(br#"{"name":"a","inner":[1]}"#).expect_err("array");
        assert_eq!(
            err.body["detail"][0]["loc"],
            serde_json::json!(["body", "inner"])
        );
    }

    #[test]
    fn json_content_types_are_recognised() {
        for yes in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/merge-patch+json",
        ] {
            assert!(is_json_content_type(yes), "{yes}");
        }
        for no in [
            "text/plain",
            "text/plain; application/json",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=json",
            "text/json+json",
            "application/jsonx",
            "",
        ] {
            assert!(!is_json_content_type(no), "{no}");
        }
    }
}
