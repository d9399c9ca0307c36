//! Forwarding of public requests to the internal services: method, path (canonical), query,
//! headers and body go through; bodies stream both ways with per-route limits; an upstream that
//! is down or slow gets a JSON 503/504 instead of a hang.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use bytes::Bytes;
use futures_util::StreamExt;
use service_kit::metrics::RouteLabel;
use service_kit::{ApiError, ErrorKind};

use crate::AppState;
use crate::auth::{Caller, authenticate};
use crate::canonical::CanonicalPath;
use crate::routing::{CanonicalRequest, Route, Upstream, canonical_request, classify};
use crate::upstream::{self, HOP_BY_HOP};

/// Bodies up to this size (with a Content-Length) are sent in one piece; larger or chunked ones
/// stream.
const BUFFER_LIMIT: u64 = 64 * 1024;

/// The canonical path the [`crate::canonical`] middleware decided for this request.
fn canonical_path(req: &HttpRequest) -> Result<CanonicalRequest, ApiError> {
    if let Some(c) = req.extensions().get::<CanonicalPath>() {
        return Ok(c.0.clone());
    }
    canonical_request(req.path()).map_err(|_| ApiError::bad_request("malformed path"))
}

/// Routes and authenticates a request; the common first half of HTTP and websocket forwarding.
pub async fn admit(
    req: &HttpRequest,
    state: &AppState,
) -> Result<(CanonicalRequest, Route, Caller), ApiError> {
    let canonical = canonical_path(req)?;
    let route = classify(&canonical.path, state.settings.headers_enabled(), state.settings.indexer_apis())
        .ok_or_else(|| ApiError::not_found(format!("no resource at {}", canonical.path)))?;
    let caller = authenticate(req, route.class, state).await?;
    Ok((canonical, route, caller))
}

fn body_limit(state: &AppState, route: &Route) -> u64 {
    match route.upstream {
        Upstream::Mapi => state.settings.mapi_max_body_bytes,
        _ => state.settings.max_body_bytes,
    }
}

fn too_large(limit: u64) -> ApiError {
    ApiError::new(ErrorKind::PayloadTooLarge, format!("Maximum request body size {limit} exceeded"))
}

/// Turns the client's body into a request body, enforcing the route's limit.
async fn request_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: u64,
    exceeded: Arc<AtomicBool>,
) -> Result<reqwest::Body, ApiError> {
    let length =
        req.headers().get("content-length").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    let chunked = req.headers().contains_key("transfer-encoding");
    if length.is_some_and(|l| l > limit) {
        return Err(too_large(limit));
    }
    match length {
        Some(0) => return Ok(reqwest::Body::from(Bytes::new())),
        None if !chunked => return Ok(reqwest::Body::from(Bytes::new())),
        Some(l) if l <= BUFFER_LIMIT => {
            let mut buf = web::BytesMut::with_capacity(l as usize);
            while let Some(chunk) = payload.next().await {
                let chunk = chunk.map_err(|e| ApiError::bad_request(format!("reading the body: {e}")))?;
                buf.extend_from_slice(&chunk);
                if buf.len() as u64 > limit {
                    return Err(too_large(limit));
                }
            }
            return Ok(reqwest::Body::from(buf.freeze()));
        }
        _ => {}
    }
    // Stream: actix's payload lives on this worker thread, so a local task pumps it into a
    // channel that the (Send) upstream body reads from.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    actix_web::rt::spawn(async move {
        let mut total = 0u64;
        while let Some(chunk) = payload.next().await {
            let item = match chunk {
                Ok(c) => {
                    total += c.len() as u64;
                    if total > limit {
                        exceeded.store(true, Ordering::Relaxed);
                        Err(std::io::Error::other("body limit exceeded"))
                    } else {
                        Ok(c)
                    }
                }
                Err(e) => Err(std::io::Error::other(e.to_string())),
            };
            let stop = item.is_err();
            if tx.send(item).await.is_err() || stop {
                break;
            }
        }
    });
    let stream =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    Ok(reqwest::Body::wrap_stream(stream))
}

/// Maps a failed upstream exchange to the client's answer.
fn upstream_error(e: &reqwest::Error, exceeded: bool, limit: u64) -> ApiError {
    if exceeded {
        return too_large(limit);
    }
    if e.is_connect() {
        tracing::warn!(error = %e, "upstream unreachable");
        ApiError::unavailable("The service is unavailable, retry later.")
    } else if e.is_timeout() {
        ApiError::new(ErrorKind::GatewayTimeout, "The service did not answer in time.")
    } else {
        tracing::warn!(error = %e, "upstream exchange failed");
        ApiError::new(ErrorKind::BadGateway, "The service answered badly.")
    }
}

/// The proxy handler: every path the gateway does not serve itself.
pub async fn forward(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (canonical, route, caller) = admit(&req, &state).await?;
    if crate::ws_proxy::is_upgrade(&req) {
        return crate::ws_proxy::forward(req, payload, state, canonical, route, caller).await;
    }
    let limit = body_limit(&state, &route);
    let exceeded = Arc::new(AtomicBool::new(false));
    let body = request_body(&req, payload, limit, exceeded.clone()).await?;
    let url = upstream::url(
        upstream::base(&state, route.upstream),
        &canonical.path,
        &upstream::query(&req, &caller),
    );
    let method = reqwest::Method::from_bytes(req.method().as_str().as_bytes())
        .map_err(|_| ApiError::new(ErrorKind::MethodNotAllowed, "unsupported method"))?;
    let headers = upstream::headers_for(&req, &state, &route, &caller);
    let send = state.upstream.request(method, &url).headers(headers).body(body).send();
    let timeout = Duration::from_millis(state.settings.upstream_timeout_ms);
    let resp = match tokio::time::timeout(timeout, send).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return Err(upstream_error(&e, exceeded.load(Ordering::Relaxed), limit)),
        Err(_) => {
            return Err(ApiError::new(ErrorKind::GatewayTimeout, "The service did not answer in time."));
        }
    };
    let status = actix_web::http::StatusCode::from_u16(resp.status().as_u16())
        .map_err(|_| ApiError::new(ErrorKind::BadGateway, "The service answered badly."))?;
    let mut out = HttpResponse::build(status);
    // Clients of the channel APIs log the reason phrase (`400 10001: Channel is locked...`).
    if let Some(reason) =
        resp.extensions().get::<hyper::ext::ReasonPhrase>().and_then(|r| interned_reason(r.as_bytes()))
    {
        out.reason(reason);
    }
    for (name, value) in resp.headers() {
        let n = name.as_str();
        if HOP_BY_HOP.contains(&n) || n == "content-length" {
            continue;
        }
        if let (Ok(k), Ok(v)) =
            (HeaderName::from_bytes(n.as_bytes()), HeaderValue::from_bytes(value.as_bytes()))
        {
            out.append_header((k, v));
        }
    }
    let mut answer = match resp.content_length() {
        Some(0) => out.finish(),
        // Small bodies in one piece (cheaper than a stream per request); large ones stream.
        Some(len) if len <= BUFFER_LIMIT => {
            let body = resp.bytes().await.map_err(|e| upstream_error(&e, false, limit))?;
            out.body(body)
        }
        // Keep the upstream's Content-Length while streaming the body through.
        Some(len) => out.no_chunking(len).streaming(resp.bytes_stream()),
        None => out.streaming(resp.bytes_stream()),
    };
    // The upstream's error bodies reach the client as they are.
    answer.extensions_mut().insert(service_kit::app::Passthrough);
    if let Some(template) = canonical.template {
        answer.extensions_mut().insert(RouteLabel(template));
    }
    Ok(answer)
}

/// Upstream reason phrases as `&'static str` (what actix keeps): each distinct phrase is leaked
/// once, and only a bounded number of them (upstreams are our own services, with a fixed set).
fn interned_reason(bytes: &[u8]) -> Option<&'static str> {
    const MAX_PHRASES: usize = 256;
    static PHRASES: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
    let text = std::str::from_utf8(bytes).ok().filter(|t| t.len() <= 200)?;
    let mut phrases = PHRASES.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(found) = phrases.iter().find(|p| **p == text) {
        return Some(found);
    }
    if phrases.len() >= MAX_PHRASES {
        return None;
    }
    let leaked: &'static str = Box::leak(text.to_owned().into_boxed_str());
    phrases.push(leaked);
    Some(leaked)
}
