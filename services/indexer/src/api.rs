//! The public indexer endpoints (../shared/spec/esv-reference.md §5.2), in both modes. The gateway
//! resolves a master bearer token to the account (`TrustedCaller`); an account-bound endpoint
//! without one answers 401 at the point the reference checks it.

use actix_web::http::header::{ACCEPT, CONTENT_TYPE};
use actix_web::{HttpRequest, HttpResponse, web};
use bsv_primitives::{TargetType, Txid};
use bytes::Bytes;
use reqwest::Method;
use service_kit::internal::TrustedCaller;

use crate::error::IndexerError;
use crate::formats::{self, OutputSpend};
use crate::{AppState, Mode, callback, store};

/// Shortest and longest tip-filter registration the native indexer takes (the simple indexer's).
const DURATION_RANGE: std::ops::RangeInclusive<u32> = 300..=7 * 24 * 3600;

fn header(req: &HttpRequest, name: actix_web::http::header::HeaderName) -> Option<&str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

fn account(caller: &TrustedCaller) -> Result<i64, IndexerError> {
    caller.account.ok_or(IndexerError::Unauthorized)
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// As the simple indexer: binary only when `Accept` is exactly `application/octet-stream`.
fn wants_binary(req: &HttpRequest) -> bool {
    header(req, ACCEPT) == Some("application/octet-stream")
}

/// A 200 with `body`, labelled binary or JSON.
fn reply(binary: bool, body: Vec<u8>) -> HttpResponse {
    let content_type = if binary { "application/octet-stream" } else { "application/json" };
    HttpResponse::Ok().content_type(content_type).body(body)
}

fn parse_txid(raw: &str) -> Result<Txid, IndexerError> {
    raw.parse().map_err(|_| IndexerError::bad("invalid txid"))
}

/// `GET /api/v1/transaction/{txid}`: the raw transaction, or its hex as a JSON string.
pub async fn transaction(
    state: web::Data<AppState>,
    req: HttpRequest,
    txid: web::Path<String>,
) -> Result<HttpResponse, IndexerError> {
    let chain = match &state.mode {
        Mode::Proxy(indexer) => {
            return Ok(indexer.forward(&req, Bytes::new(), &[]).await?.into_response());
        }
        Mode::Native(chain) => chain,
    };
    let txid = parse_txid(&txid)?;
    let raw = chain
        .transaction(&txid)
        .await?
        .ok_or_else(|| IndexerError::NotFound("transaction not found".into()))?;
    Ok(if wants_binary(&req) { reply(true, raw) } else { HttpResponse::Ok().json(hex::encode(raw)) })
}

/// Query of a Merkle proof request.
#[derive(Debug, serde::Deserialize)]
pub struct ProofQuery {
    #[serde(rename = "targetType")]
    target_type: Option<String>,
    #[serde(rename = "includeFullTx")]
    include_full_tx: Option<String>,
}

/// `GET /api/v1/merkle-proof/{txid}`: the TSC proof, binary or JSON.
pub async fn merkle_proof(
    state: web::Data<AppState>,
    req: HttpRequest,
    txid: web::Path<String>,
    query: web::Query<ProofQuery>,
) -> Result<HttpResponse, IndexerError> {
    let include_full_tx = query.include_full_tx.as_deref() == Some("1");
    let target_name = query.target_type.clone().unwrap_or_else(|| "hash".to_owned());
    let chain = match &state.mode {
        Mode::Proxy(indexer) => {
            let mut params = Vec::new();
            if include_full_tx {
                params.push(("includeFullTx", "1".to_owned()));
            }
            params.push(("targetType", target_name));
            return Ok(indexer.forward(&req, Bytes::new(), &params).await?.into_response());
        }
        Mode::Native(chain) => chain,
    };
    let txid = parse_txid(&txid)?;
    let target = match target_name.as_str() {
        "hash" => TargetType::Hash,
        "header" => TargetType::Header,
        "merkleroot" => TargetType::MerkleRoot,
        _ => return Err(IndexerError::bad("targetType must be hash, header or merkleroot")),
    };
    let proof = chain
        .merkle_proof(&txid, include_full_tx, target)
        .await?
        .ok_or_else(|| IndexerError::NotFound("transaction not found or not mined".into()))?;
    Ok(if wants_binary(&req) {
        reply(true, formats::tsc_binary(&proof)?)
    } else {
        HttpResponse::Ok().json(proof)
    })
}

/// The spends known of `outpoints`, in the order asked: the spend index first, the nodes'
/// mempools for the rest.
async fn known_spends(
    state: &AppState,
    outpoints: &[formats::Outpoint],
) -> Result<Vec<OutputSpend>, IndexerError> {
    let Mode::Native(chain) = &state.mode else {
        return Ok(Vec::new());
    };
    let mut found = store::spends_of(&state.db, outpoints).await?;
    let rest: Vec<formats::Outpoint> =
        outpoints.iter().filter(|o| !found.iter().any(|s| &s.out == *o)).copied().collect();
    found.extend(chain.mempool_spends(&rest).await?);
    let position = |s: &OutputSpend| outpoints.iter().position(|o| *o == s.out).unwrap_or(usize::MAX);
    found.sort_by_key(position);
    Ok(found)
}

/// The outpoints of a request body (400 when it is empty or malformed).
fn outpoints_of(req: &HttpRequest, body: &[u8]) -> Result<Vec<formats::Outpoint>, IndexerError> {
    if body.is_empty() {
        return Err(IndexerError::bad("no body"));
    }
    formats::parse_outpoints(body, header(req, CONTENT_TYPE))
}

/// `POST /api/v1/output-spend`: the spends of the given outputs (only the spent ones appear).
pub async fn output_spend(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: Bytes,
) -> Result<HttpResponse, IndexerError> {
    if let Mode::Proxy(indexer) = &state.mode {
        return Ok(indexer.forward(&req, body, &[]).await?.into_response());
    }
    let outpoints = outpoints_of(&req, &body)?;
    let spends = known_spends(&state, &outpoints).await?;
    let binary = wants_binary(&req);
    Ok(reply(binary, formats::output_spends_body(&spends, binary)))
}

/// `POST /api/v1/output-spend/notifications`: watches outputs for the account's websocket and
/// answers with the spends already known.
pub async fn output_spend_notifications(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: TrustedCaller,
    body: Bytes,
) -> Result<HttpResponse, IndexerError> {
    let mut outpoints = outpoints_of(&req, &body)?;
    outpoints.sort_unstable();
    outpoints.dedup();
    if outpoints.is_empty() {
        return Err(IndexerError::bad("no outpoints provided"));
    }
    let account = account(&caller)?;
    let connected = state.sockets.connected(&[account]).await.map_err(|e| {
        IndexerError::Api(service_kit::ApiError::unavailable(format!("account sockets unknown: {e}")))
    })?;
    if !connected.contains(&account) {
        return Err(IndexerError::NotConnected);
    }
    store::add_watches(&state.db, account, &outpoints).await?;
    match &state.mode {
        Mode::Proxy(indexer) => {
            let mirrored = indexer.forward(&req, body, &[]).await;
            match mirrored {
                Ok(m) if m.status.as_u16() <= 202 => Ok(m.into_response()),
                other => {
                    store::remove_watches(&state.db, account, &outpoints).await?;
                    Ok(other?.into_response())
                }
            }
        }
        Mode::Native(_) => {
            let spends = known_spends(&state, &outpoints).await?;
            Ok(if wants_binary(&req) {
                reply(true, formats::output_spends_body(&spends, true))
            } else {
                // The simple indexer encodes this answer twice (a JSON string of the JSON list).
                let inner =
                    String::from_utf8_lossy(&formats::output_spends_body(&spends, false)).into_owned();
                HttpResponse::Ok().json(inner)
            })
        }
    }
}

/// `GET /api/v1/transaction/filter`: the account's finalised registrations.
pub async fn list_filters(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: TrustedCaller,
) -> Result<HttpResponse, IndexerError> {
    let binary = match header(&req, ACCEPT).unwrap_or("application/json") {
        "application/json" => false,
        "application/octet-stream" => true,
        _ => return Err(IndexerError::bad("unknown request body content type")),
    };
    let account = account(&caller)?;
    let filters = store::list_filters(&state.db, account, now()).await?;
    Ok(reply(binary, formats::tip_filter_list_body(&filters, binary)))
}

/// `POST /api/v1/transaction/filter`: registers pushdata hashes, all or nothing.
pub async fn register_filters(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: TrustedCaller,
    body: Bytes,
) -> Result<HttpResponse, IndexerError> {
    if header(&req, ACCEPT).is_some_and(|a| a != "application/json") {
        return Err(IndexerError::bad("unknown response/Accept mimetype"));
    }
    if let Mode::Proxy(indexer) = &state.mode {
        indexer.require_connected()?;
    }
    let account = account(&caller)?;
    if body.is_empty() {
        return Err(IndexerError::bad("no body"));
    }
    let content_type = header(&req, CONTENT_TYPE);
    let entries = formats::parse_tip_filter_entries(&body, content_type)?;
    let created = now();
    match &state.mode {
        Mode::Native(_) => {
            if let Some(bad) = entries.iter().find(|e| !DURATION_RANGE.contains(&e.duration_seconds)) {
                return Err(IndexerError::bad(format!(
                    "An entry has a duration of {} which is outside {} to {} seconds",
                    bad.duration_seconds,
                    DURATION_RANGE.start(),
                    DURATION_RANGE.end()
                )));
            }
            store::insert_filters(&state.db, account, &entries, created, store::FINALISED).await?;
            Ok(HttpResponse::Ok().json(serde_json::json!({"dateCreated": iso_without_zone(created)})))
        }
        Mode::Proxy(indexer) => {
            store::insert_filters(&state.db, account, &entries, created, 0).await?;
            let hashes: Vec<[u8; 32]> = entries.iter().map(|e| e.pushdata_hash).collect();
            let query = [("account_id", account.to_string()), ("date_created", created.to_string())];
            let mirrored = indexer.forward(&req, body, &query).await;
            match mirrored {
                Ok(m) if m.status == actix_web::http::StatusCode::OK => {
                    store::update_filter_flags(&state.db, account, &hashes, store::FINALISED, 0).await?;
                    Ok(m.into_response())
                }
                other => {
                    store::delete_filters(&state.db, account, &hashes).await?;
                    Ok(other?.into_response())
                }
            }
        }
    }
}

/// `datetime.utcfromtimestamp(t).isoformat()`: no zone, no fraction.
fn iso_without_zone(t: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    time::OffsetDateTime::from_unix_timestamp(t).ok().and_then(|d| d.format(&format).ok()).unwrap_or_default()
}

/// `POST /api/v1/transaction/filter:delete`: removes registrations, all or nothing.
pub async fn delete_filters(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: TrustedCaller,
    body: Bytes,
) -> Result<HttpResponse, IndexerError> {
    let account = account(&caller)?;
    if let Mode::Proxy(indexer) = &state.mode {
        indexer.require_connected()?;
    }
    if body.is_empty() {
        return Err(IndexerError::bad("no body"));
    }
    let hashes = formats::parse_pushdata_hashes(&body, header(&req, CONTENT_TYPE))?;
    store::mark_deleting(&state.db, account, &hashes).await?;
    match &state.mode {
        Mode::Native(_) => {
            store::delete_filters(&state.db, account, &hashes).await?;
            Ok(HttpResponse::Ok().finish())
        }
        Mode::Proxy(indexer) => {
            // Always binary to the indexer (the reference kept a JSON request's Content-Type on
            // a binary body, which the indexer cannot read).
            let binary: Vec<u8> = hashes.concat();
            let query = [("account_id", account.to_string())];
            let mirrored = indexer
                .mirror(
                    Method::POST,
                    req.path(),
                    header(&req, ACCEPT),
                    Some("application/octet-stream"),
                    binary.into(),
                    &query,
                )
                .await;
            match mirrored {
                Ok(m) if m.status == actix_web::http::StatusCode::OK => {
                    store::delete_filters(&state.db, account, &hashes).await?;
                    Ok(m.into_response())
                }
                other => {
                    store::update_filter_flags(&state.db, account, &hashes, 0, store::DELETING).await?;
                    Ok(other?.into_response())
                }
            }
        }
    }
}

/// `POST /api/v1/restoration/search` (proxy mode only: a restoration index needs the whole chain).
pub async fn restoration_search(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: Bytes,
) -> Result<HttpResponse, IndexerError> {
    match &state.mode {
        Mode::Proxy(indexer) => Ok(indexer.forward(&req, body, &[]).await?.into_response()),
        Mode::Native(_) => Err(IndexerError::NotFound(
            "restoration search needs an external indexer (INDEXER_URL); this deployment has none".into(),
        )),
    }
}

/// `GET /api/v1/indexer`: the account's tip-filter callback.
pub async fn get_settings(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: TrustedCaller,
) -> Result<HttpResponse, IndexerError> {
    let account = account(&caller)?;
    if !matches!(header(&req, ACCEPT).unwrap_or("*/*"), "*/*" | "application/json") {
        return Err(IndexerError::bad("invalid 'Accept', expected 'application/json'"));
    }
    let settings = store::callback_settings(&state.db, account).await?;
    Ok(HttpResponse::Ok().json(callback::document(&settings)))
}

/// `POST /api/v1/indexer`: replaces the account's tip-filter callback.
pub async fn set_settings(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: TrustedCaller,
    body: Bytes,
) -> Result<HttpResponse, IndexerError> {
    let account = account(&caller)?;
    if header(&req, CONTENT_TYPE).unwrap_or("application/json") != "application/json" {
        return Err(IndexerError::bad("Invalid 'Content-Type', expected 'application/json'"));
    }
    if !matches!(header(&req, ACCEPT).unwrap_or("application/json"), "*/*" | "application/json") {
        return Err(IndexerError::bad("Invalid 'Accept', expected 'application/json'"));
    }
    let update: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|_| IndexerError::bad("Invalid settings update object in body"))?;
    let settings = callback::validate(&update)?;
    store::set_callback_settings(&state.db, account, &settings).await?;
    Ok(HttpResponse::Ok().json(callback::document(&settings)))
}
