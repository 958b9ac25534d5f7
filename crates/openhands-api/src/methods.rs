//! HEAD and OPTIONS on every route, without a handler for either.
//!
//! Routes are registered per method (`web::get()`, `web::post()`, ...), so a HEAD or an
//! OPTIONS request matched no route and fell through to the web-app fallback's 404. Two
//! small pieces answer them for every route, contributed ones included, with nothing to add
//! per route:
//!
//! * [`head_and_options`], a middleware mounted innermost (so the router sees what it
//!   changes): HEAD is served as GET, and the HTTP/1 and HTTP/2 codecs, which remember that
//!   the request was HEAD, send the head without the body (`Content-Length` kept). An
//!   OPTIONS answer of 405 with `Allow` becomes 204 with that `Allow` (HEAD added where GET
//!   is, and OPTIONS); one without `Allow` (no route has the path) becomes the usual 404.
//! * [`fallback`], a catch-all resource mounted after every route: other requests go to
//!   [`spa::fallback`] as before, while OPTIONS gets actix's own resource answer, a 405
//!   whose `Allow` lists the methods of every route whose path matched (actix's method
//!   guards record them on the request while the router tries each route).
//!
//! CORS preflights (OPTIONS with `Origin` and `Access-Control-Request-Method`) never get
//! here: the CORS middleware, outside this one, answers them.

use crate::error::ApiError;
use crate::spa;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{ALLOW, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{Error, HttpResponse, Resource, ResponseError, guard, web};

/// Serves HEAD as GET and turns the catch-all's 405 for OPTIONS into 204 + `Allow` (see
/// the module docs).
pub async fn head_and_options(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let method = req.method().clone();
    if method == Method::HEAD {
        req.head_mut().method = Method::GET;
    }
    let res = next.call(req).await?;
    if method != Method::OPTIONS || res.status() != StatusCode::METHOD_NOT_ALLOWED {
        return Ok(res.map_into_left_body());
    }
    let allow = res
        .headers()
        .get(ALLOW)
        .and_then(|v| v.to_str().ok())
        .map(with_head_and_options)
        .filter(|methods| !methods.is_empty());
    let (req, _) = res.into_parts();
    let answer = match allow.and_then(|m| HeaderValue::from_str(&m).ok()) {
        Some(methods) => HttpResponse::NoContent()
            .insert_header((ALLOW, methods))
            .finish(),
        None => ApiError::detail(StatusCode::NOT_FOUND, "Not Found").error_response(),
    };
    Ok(ServiceResponse::new(req, answer).map_into_right_body())
}

/// `listed` (an `Allow` value) with HEAD wherever GET is, and OPTIONS; empty when nothing
/// was listed.
fn with_head_and_options(listed: &str) -> String {
    let mut methods: Vec<&str> = listed
        .split(',')
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .collect();
    if methods.is_empty() {
        return String::new();
    }
    if methods.contains(&"GET") {
        methods.push("HEAD");
    }
    methods.push("OPTIONS");
    methods.sort_unstable();
    methods.dedup();
    methods.join(", ")
}

/// The catch-all resource, mounted after every route: the web-app fallback for every
/// method but OPTIONS, which gets actix's 405 with the matched routes' `Allow`.
pub fn fallback() -> Resource {
    web::resource("/{tail:.*}").route(
        web::route()
            .guard(guard::fn_guard(|ctx| ctx.head().method != Method::OPTIONS))
            .to(spa::fallback),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::App;
    use actix_web::middleware::from_fn;
    use actix_web::test::{TestRequest, call_service, init_service};

    #[test]
    fn allow_gains_head_where_get_is_and_always_options() {
        assert_eq!(
            with_head_and_options("GET, POST"),
            "GET, HEAD, OPTIONS, POST"
        );
        assert_eq!(with_head_and_options("DELETE"), "DELETE, OPTIONS");
        assert_eq!(with_head_and_options(""), "");
    }

    #[actix_web::test]
    async fn head_is_get_without_a_body_and_options_lists_the_routes_methods() {
        let app = init_service(
            App::new()
                .route("/thing", web::get().to(|| async { "body" }))
                .route("/thing", web::delete().to(HttpResponse::Ok))
                .service(
                    web::resource("/{tail:.*}").route(
                        web::route()
                            .guard(guard::fn_guard(|ctx| ctx.head().method != Method::OPTIONS))
                            .to(HttpResponse::NotFound),
                    ),
                )
                .wrap(from_fn(head_and_options)),
        )
        .await;
        let head = TestRequest::default()
            .method(Method::HEAD)
            .uri("/thing")
            .to_request();
        let res = call_service(&app, head).await;
        assert_eq!(res.status(), StatusCode::OK);
        let options = TestRequest::default()
            .method(Method::OPTIONS)
            .uri("/thing")
            .to_request();
        let res = call_service(&app, options).await;
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        assert_eq!(
            res.headers().get(ALLOW).and_then(|v| v.to_str().ok()),
            Some("DELETE, GET, HEAD, OPTIONS")
        );
        let options = TestRequest::default()
            .method(Method::OPTIONS)
            .uri("/nothing")
            .to_request();
        let res = call_service(&app, options).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
    }
}
