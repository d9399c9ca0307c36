//! The admin API (the gateway's `Api-Key`): failed and dead-lettered notifications, and
//! redelivery of one or all of them.
//!
//! - `GET /api/v1/notifications/failed?after=&limit=`: failed at least once, still retried;
//! - `GET /api/v1/notifications/dead?after=&limit=`: given up on;
//! - `POST /api/v1/notifications/{id}/redeliver`: one, due now with a fresh retry count (404 when
//!   it is neither failed nor dead);
//! - `POST /api/v1/notifications/redeliver`: all failed and dead ones.

use std::sync::Arc;

use actix_web::{HttpResponse, web};
use service_kit::ApiError;
use service_kit::internal::TrustedCaller;

use crate::engine::Engine;
use crate::store::{self, Listing};

/// Paging of a listing.
#[derive(Debug, serde::Deserialize)]
pub struct Page {
    /// List ids above this one.
    #[serde(default)]
    pub after: i64,
    /// At most this many (default 100, at most 1000).
    #[serde(default)]
    pub limit: Option<i64>,
}

/// `GET /api/v1/notifications/{failed|dead}`.
pub async fn list(
    caller: TrustedCaller,
    engine: web::Data<Arc<Engine>>,
    which: web::Path<String>,
    page: web::Query<Page>,
) -> Result<HttpResponse, ApiError> {
    caller.require_admin()?;
    let which = match which.as_str() {
        "failed" => Listing::Failed,
        "dead" => Listing::Dead,
        _ => return Err(ApiError::not_found("Not found")),
    };
    let limit = page.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("limit must be between 1 and 1000"));
    }
    let rows = store::list(&engine.db, which, page.after, limit).await?;
    Ok(HttpResponse::Ok().json(rows))
}

/// `POST /api/v1/notifications/{id}/redeliver`.
pub async fn redeliver_one(
    caller: TrustedCaller,
    engine: web::Data<Arc<Engine>>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    caller.require_admin()?;
    let ids = store::redeliver(&engine.db, Some(*id)).await?;
    if ids.is_empty() {
        return Err(ApiError::not_found(format!("No failed or dead notification {id}")));
    }
    engine.wake_retry.notify_one();
    Ok(HttpResponse::Accepted().json(serde_json::json!({ "redelivered": ids })))
}

/// `POST /api/v1/notifications/redeliver`.
pub async fn redeliver_all(
    caller: TrustedCaller,
    engine: web::Data<Arc<Engine>>,
) -> Result<HttpResponse, ApiError> {
    caller.require_admin()?;
    let ids = store::redeliver(&engine.db, None).await?;
    engine.wake_retry.notify_one();
    Ok(HttpResponse::Accepted().json(serde_json::json!({ "redelivered": ids })))
}
