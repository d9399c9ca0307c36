//! The headers API, natively (no HeaderSV needed), in the ElectrumSV reference server's shapes:
//! `GET /api/v1/headers/{hash}`, `/by-height`, `/tips`, and the tips websocket. JSON by default;
//! with `Accept: application/octet-stream`, raw 80-byte headers (and 84-byte header + height
//! records for tips).

use std::time::Duration;

use actix_web::http::header::{ACCEPT, CONTENT_TYPE};
use actix_web::{HttpRequest, HttpResponse, web};
use bsv_primitives::BlockHash;
use serde::{Deserialize, Serialize};
use service_kit::ApiError;
use tokio::sync::broadcast::error::RecvError;

use crate::AppState;
use crate::chain::{self, StoredHeader, block_work, work_number};

/// Most headers one `by-height` request may ask for.
pub const MAX_COUNT: u64 = 2000;

/// A header as HeaderSV (and so the reference server) writes it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HeaderView {
    hash: String,
    version: i32,
    prev_block_hash: String,
    merkle_root: String,
    creation_timestamp: u32,
    difficulty_target: u32,
    nonce: u32,
    transaction_count: u64,
    work: u128,
}

impl From<&StoredHeader> for HeaderView {
    fn from(h: &StoredHeader) -> Self {
        let b = h.header.as_bytes();
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        Self {
            hash: h.hash().to_string(),
            version: i32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            prev_block_hash: h.header.prev_hash().to_string(),
            merkle_root: BlockHash::from_internal(h.header.merkle_root()).to_string(),
            creation_timestamp: u32_at(68),
            difficulty_target: u32_at(72),
            nonce: u32_at(76),
            transaction_count: h.tx_count,
            work: block_work(h.bits()),
        }
    }
}

/// A chain tip as HeaderSV writes it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TipView {
    header: HeaderView,
    state: &'static str,
    chain_work: u128,
    height: u64,
    confirmations: u64,
}

/// True when the client asked for the raw binary form (the reference compares exactly).
fn wants_binary(req: &HttpRequest) -> bool {
    req.headers()
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.trim() == "application/octet-stream")
}

fn binary(body: Vec<u8>) -> HttpResponse {
    HttpResponse::Ok().insert_header((CONTENT_TYPE, "application/octet-stream")).body(body)
}

/// `GET /api/v1/headers/{hash}`.
pub async fn by_hash(
    req: HttpRequest,
    state: web::Data<AppState>,
    hash: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let hash: BlockHash =
        hash.parse().map_err(|_| ApiError::bad_request("'hash' must be 64 hex characters"))?;
    let header = chain::by_hash(&state.db, &hash)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no header {hash}")))?;
    if wants_binary(&req) {
        return Ok(binary(header.header.as_bytes().to_vec()));
    }
    Ok(HttpResponse::Ok().json(HeaderView::from(&header)))
}

/// Query of `by-height` (the reference's defaults: height 0, count 1).
#[derive(Debug, Deserialize)]
pub struct ByHeight {
    #[serde(default)]
    height: u64,
    #[serde(default = "one")]
    count: u64,
}

fn one() -> u64 {
    1
}

/// `GET /api/v1/headers/by-height?height=&count=`: best-chain headers from `height` up.
pub async fn by_height(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<ByHeight>,
) -> Result<HttpResponse, ApiError> {
    if query.count == 0 || query.count > MAX_COUNT {
        return Err(ApiError::bad_request(format!("'count' must be between 1 and {MAX_COUNT}")));
    }
    let headers = chain::best_by_height(&state.db, query.height, query.count).await?;
    if wants_binary(&req) {
        return Ok(binary(headers.iter().flat_map(|h| h.header.as_bytes().to_vec()).collect()));
    }
    Ok(HttpResponse::Ok().json(headers.iter().map(HeaderView::from).collect::<Vec<_>>()))
}

/// Query of `tips`.
#[derive(Debug, Deserialize)]
pub struct TipsQuery {
    #[serde(default)]
    longest_chain: Option<String>,
}

/// The 84-byte record of a tip: the header and its height (`u32` little-endian).
fn tip_record(h: &StoredHeader) -> Vec<u8> {
    let mut out = h.header.as_bytes().to_vec();
    out.extend_from_slice(&u32::try_from(h.height).unwrap_or(u32::MAX).to_le_bytes());
    out
}

/// `GET /api/v1/headers/tips[?longest_chain=1]`: the best tip (`LONGEST_CHAIN`) and the tips of
/// forks within `MAX_BLOCK_CHAIN_LENGTH_FOR_FORK` (`STALE`).
pub async fn tips(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<TipsQuery>,
) -> Result<HttpResponse, ApiError> {
    let mut tips = chain::tips(&state.db, state.settings.max_block_chain_length_for_fork).await?;
    if query.longest_chain.as_deref() == Some("1") {
        tips.retain(|t| t.on_best_chain);
    }
    if wants_binary(&req) {
        return Ok(binary(tips.iter().flat_map(tip_record).collect()));
    }
    let best_height = tips.iter().find(|t| t.on_best_chain).map_or(0, |t| t.height);
    let views: Vec<TipView> = tips
        .iter()
        .map(|t| TipView {
            header: HeaderView::from(t),
            state: if t.on_best_chain { "LONGEST_CHAIN" } else { "STALE" },
            chain_work: work_number(&t.chain_work),
            height: t.height,
            confirmations: if t.on_best_chain { 1 } else { best_height.saturating_sub(t.height) + 1 },
        })
        .collect();
    Ok(HttpResponse::Ok().json(views))
}

/// `GET /api/v1/headers/tips/websocket`: an 84-byte binary frame on each new best tip; client
/// messages are ignored (the reference's one-way socket).
pub async fn tips_websocket(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (resp, mut session, mut incoming) = actix_ws::handle(&req, body)
        .map_err(|_| ApiError::bad_request("A websocket upgrade request is expected"))?;
    let mut tips = state.tips.subscribe();
    let heartbeat = Duration::from_secs(state.settings.websocket_heartbeat_secs);
    let shutdown = state.shutdown.clone();
    actix_web::rt::spawn(async move {
        use futures_util::StreamExt;
        let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
        loop {
            let ok = tokio::select! {
                tip = tips.recv() => match tip {
                    Ok(tip) => session.binary(tip_record(&tip)).await.is_ok(),
                    // Only the newest tip matters: skip what was missed.
                    Err(RecvError::Lagged(_)) => true,
                    Err(RecvError::Closed) => false,
                },
                frame = incoming.next() => match frame {
                    Some(Ok(actix_ws::Message::Ping(p))) => session.pong(&p).await.is_ok(),
                    Some(Ok(actix_ws::Message::Close(_))) | Some(Err(_)) | None => false,
                    Some(Ok(_)) => true,
                },
                _ = ping.tick() => session.ping(b"").await.is_ok(),
                _ = shutdown.cancelled() => false,
            };
            if !ok {
                break;
            }
        }
        let reason = shutdown.is_cancelled().then(|| actix_ws::CloseReason {
            code: actix_ws::CloseCode::Away,
            description: Some("the service is shutting down".to_owned()),
        });
        let _ = session.close(reason).await;
    });
    Ok(resp)
}
