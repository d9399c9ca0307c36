//! The one place an actix `App` gets its shared parts: common routes (`/health`, `/ready`,
//! `/metrics`), JSON errors for bad bodies, queries and paths (and for any error the framework
//! answers by itself), a JSON 404, and the middleware.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers, from_fn};
use actix_web::{App, HttpRequest, HttpResponse, error, web};

use crate::error::{ApiError, ErrorKind};
use crate::health::{Readiness, health, ready};
use crate::internal::InternalCredential;
use crate::metrics::Metrics;

/// What every service's app shares. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Kit {
    /// The Prometheus registry.
    pub metrics: Metrics,
    /// Checks behind `/ready`.
    pub readiness: Readiness,
    /// The internal credential, for `/internal` scopes.
    pub credential: InternalCredential,
}

async fn metrics(m: web::Data<Metrics>) -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(m.render())
}

async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::not_found(format!("no resource at {}", req.path())))
}

fn json_error(err: error::JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
    let kind = match &err {
        error::JsonPayloadError::OverflowKnownLength { .. } | error::JsonPayloadError::Overflow { .. } => {
            ErrorKind::PayloadTooLarge
        }
        error::JsonPayloadError::ContentType => ErrorKind::UnsupportedMediaType,
        _ => ErrorKind::BadRequest,
    };
    ApiError::new(kind, err.to_string()).into()
}

fn query_error(err: error::QueryPayloadError, _req: &HttpRequest) -> actix_web::Error {
    ApiError::bad_request(err.to_string()).into()
}

fn path_error(err: error::PathError, _req: &HttpRequest) -> actix_web::Error {
    ApiError::bad_request(err.to_string()).into()
}

/// Marks a response whose error body must reach the client as it is (the gateway's proxied
/// answers): [`base_app`] otherwise turns every non-JSON error answer into problem details.
#[derive(Debug, Clone, Copy)]
pub struct Passthrough;

/// Errors the framework answers by itself (a body over the extractor's limit, a method the
/// resource does not take, ...) come as plain text or empty; clients get JSON problem details for
/// every error, so those are rewritten here with their status kept.
fn json_errors<B: MessageBody + 'static>(
    res: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_json = res
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.contains("json"));
    if is_json || res.response().extensions().get::<Passthrough>().is_some() {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let (req, original) = res.into_parts();
    let status = original.status();
    let mut json = crate::error::problem_response(status, status.canonical_reason().unwrap_or("Error"));
    for (name, value) in original.headers() {
        if name != actix_web::http::header::CONTENT_TYPE && name != actix_web::http::header::CONTENT_LENGTH {
            json.headers_mut().insert(name.clone(), value.clone());
        }
    }
    Ok(ErrorHandlerResponse::Response(ServiceResponse::new(req, json).map_into_right_body()))
}

/// Largest JSON body accepted by default (services override per route).
pub const DEFAULT_JSON_LIMIT: usize = 1024 * 1024;

/// The base `App`: shared data, extractor error handlers, middleware, common routes and a JSON 404.
/// Services add their routes to it.
pub fn base_app(
    kit: Kit,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .app_data(web::Data::new(kit.metrics))
        .app_data(web::Data::new(kit.readiness))
        .app_data(web::Data::new(kit.credential))
        .app_data(web::JsonConfig::default().limit(DEFAULT_JSON_LIMIT).error_handler(json_error))
        .app_data(web::QueryConfig::default().error_handler(query_error))
        .app_data(web::PathConfig::default().error_handler(path_error))
        .wrap(ErrorHandlers::new().default_handler(json_errors))
        .wrap(from_fn(crate::middleware::observe))
        .route("/health", web::get().to(health))
        .route("/ready", web::get().to(ready))
        .route("/metrics", web::get().to(metrics))
        .default_service(web::to(not_found))
}
