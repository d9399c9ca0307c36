//! The first thing every request meets: its path is replaced by the canonical form
//! ([`crate::routing::canonical_request_path`]) before any guard, route or handler sees it. So a
//! guard and the router can never disagree about a path (`/%6Detrics` is `/metrics` for both),
//! `/internal` is refused however spelled, and mAPI paths match case-insensitively.

use actix_web::HttpMessage;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Uri;
use actix_web::middleware::Next;
use service_kit::ApiError;

use crate::routing::{CanonicalRequest, PathRefusal, canonical_request, encode_path};

/// The canonical path of the request, decoded (what routing and forwarding use), and its
/// operation's template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanonicalPath(pub CanonicalRequest);

/// Middleware (outermost): rewrites the request's path to its canonical form; 404 for internal
/// paths, 400 for paths that cannot be decoded.
pub async fn canonical_path(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let raw = req.uri().path().to_owned();
    let canonical = match canonical_request(&raw) {
        Ok(c) => c,
        Err(PathRefusal::Internal) => return Err(ApiError::not_found(format!("no resource at {raw}")).into()),
        Err(PathRefusal::Malformed) => return Err(ApiError::bad_request("malformed path").into()),
    };
    let encoded = encode_path(&canonical.path);
    if encoded != raw {
        let path_and_query = match req.uri().query() {
            Some(q) => format!("{encoded}?{q}"),
            None => encoded,
        };
        let mut parts = req.head().uri.clone().into_parts();
        parts.path_and_query =
            Some(path_and_query.parse().map_err(|_| ApiError::bad_request("malformed path"))?);
        let uri = Uri::from_parts(parts).map_err(|_| ApiError::bad_request("malformed path"))?;
        req.match_info_mut().get_mut().update(&uri);
        req.head_mut().uri = uri;
    }
    req.extensions_mut().insert(CanonicalPath(canonical));
    Ok(next.call(req).await?.map_into_boxed_body())
}
