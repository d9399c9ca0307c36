//! The request middleware every service runs, in one fixed order: request id, a tracing span
//! whose parent is the caller's `traceparent`, and the HTTP metrics.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::web;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::metrics::{Metrics, RouteLabel};

/// Header carrying the request id (taken from the caller when sane, else generated).
pub const REQUEST_ID_HEADER: &str = "x-request-id";

struct ActixHeaders<'a>(&'a actix_web::http::header::HeaderMap);

impl opentelemetry::propagation::Extractor for ActixHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

fn request_id(req: &ServiceRequest) -> String {
    req.headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| hex::encode(rand::random::<[u8; 16]>()))
}

/// The route template a response was served for: the handler's [`RouteLabel`], else the router's
/// pattern. Never the request's own path, so a client cannot add series.
fn route_of<B>(res: &ServiceResponse<B>) -> Option<String> {
    if let Some(label) = res.response().extensions().get::<RouteLabel>() {
        return Some(label.0.to_owned());
    }
    res.request().match_pattern()
}

/// Request id, trace span (child of the caller's trace) and metrics for every request.
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let id = request_id(&req);
    let method = req.method().to_string();
    let parent = opentelemetry::global::get_text_map_propagator(|p| p.extract(&ActixHeaders(req.headers())));
    let span = tracing::info_span!(
        "http.request",
        http.method = %method,
        http.route = tracing::field::Empty,
        http.status_code = tracing::field::Empty,
        request.id = %id,
        duration_ms = tracing::field::Empty,
    );
    let _ = span.set_parent(parent);
    let metrics = req.app_data::<web::Data<Metrics>>().cloned();
    let result = next.call(req).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let (status, route) = match &result {
        Ok(res) => (res.status().as_u16(), route_of(res)),
        Err(e) => (e.as_response_error().status_code().as_u16(), None),
    };
    let route = route.unwrap_or_else(|| "unmatched".to_owned());
    span.record("http.route", route.as_str());
    span.record("http.status_code", status);
    span.record("duration_ms", elapsed.as_secs_f64() * 1000.0);
    if let Some(m) = metrics {
        m.observe_http(&method, &route, status, elapsed.as_secs_f64());
    }
    let mut res = result?;
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(HeaderName::from_static(REQUEST_ID_HEADER), v);
    }
    Ok(res)
}
