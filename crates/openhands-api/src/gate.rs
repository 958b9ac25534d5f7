//! One middleware shape for the checks that decide on a request from its head alone and
//! either pass it on untouched or answer it themselves (the `Host` allow-list, the origin
//! check): a [`Gate`] gives the verdict, [`GateMiddleware`] does the actix plumbing once.
//!
//! Hand-written rather than `from_fn`, which boxes a future per request: a request that
//! passes costs the verdict and nothing else.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::{Error, HttpResponse};
use futures_util::TryFutureExt;
use futures_util::future::{Either, MapOk, Ready, ready};
use std::rc::Rc;

/// A check on a request's method, path and headers.
pub trait Gate: 'static {
    /// `None` serves the request; `Some(response)` answers it instead.
    fn verdict(&self, req: &ServiceRequest) -> Option<HttpResponse>;
}

/// Runs a [`Gate`] in front of the wrapped service.
pub struct GateMiddleware<G> {
    gate: Rc<G>,
}

impl<G: Gate> GateMiddleware<G> {
    pub fn new(gate: G) -> Self {
        Self {
            gate: Rc::new(gate),
        }
    }
}

impl<S, B, G> Transform<S, ServiceRequest> for GateMiddleware<G>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
    B: MessageBody,
    G: Gate,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Transform = GateService<S, G>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(GateService {
            service,
            gate: Rc::clone(&self.gate),
        }))
    }
}

pub struct GateService<S, G> {
    service: S,
    gate: Rc<G>,
}

type IntoLeft<B> = fn(ServiceResponse<B>) -> ServiceResponse<EitherBody<B>>;

impl<S, B, G> Service<ServiceRequest> for GateService<S, G>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
    B: MessageBody,
    G: Gate,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Future = Either<MapOk<S::Future, IntoLeft<B>>, Ready<Result<Self::Response, Error>>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        match self.gate.verdict(&req) {
            None => {
                let into_left: IntoLeft<B> = ServiceResponse::map_into_left_body;
                Either::Left(self.service.call(req).map_ok(into_left))
            }
            Some(response) => {
                Either::Right(ready(Ok(req.into_response(response).map_into_right_body())))
            }
        }
    }
}
