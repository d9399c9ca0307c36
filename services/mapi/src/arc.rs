//! ARC-compatible read endpoints (../shared/spec/arc-reference.md §1.1, §1.2, §1.5) on the same
//! transaction store as mAPI: `GET /v1/policy` from the caller's current policy quote,
//! `GET /v1/health`, and `GET /v1/tx/{txid}` with our states mapped to ARC's status model
//! (`MINED` carries the BUMP, hex, checked against the header first).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use bsv_primitives::{BlockHeader, Bump, TscProof, Txid};
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Bytea, Json, Nullable, SmallInt};
use diesel_async::RunQueryDsl;
use serde_json::{Value, json};
use service_kit::internal::TrustedCaller;

use crate::{AppState, quotes, txstore};

/// ARC's defaults for the policy limits a quote does not set.
const DEFAULT_MAX_SIZE: u64 = 100_000_000;
const DEFAULT_MAX_SIGOPS: u64 = 4_294_967_295;

/// ARC's timestamp: RFC 3339, UTC, with the fraction it has.
fn timestamp() -> String {
    time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// An ARC problem object (all seven keys, `application/json`) with its status as the HTTP status.
pub fn problem(status: u16, extra_info: &str, txid: Option<&Txid>) -> HttpResponse {
    let (title, detail) = match status {
        400 => ("Bad request", "The request seems to be malformed and cannot be processed"),
        404 => ("Not found", "The requested resource could not be found"),
        _ => ("Generic error", "Transaction could not be processed"),
    };
    let body = json!({
        "detail": detail,
        "extraInfo": extra_info,
        "instance": null,
        "status": status,
        "title": title,
        "txid": txid.map(Txid::to_string),
        "type": format!("https://bitcoin-sv.github.io/arc/#/errors?id=_{status}"),
    });
    HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::CONFLICT)).json(body)
}

/// `GET /v1/policy`: the caller's current quote as ARC's policy (its standard mining fee; the size
/// and sigops limits the quote's policies set, else ARC's defaults).
pub async fn policy(caller: TrustedCaller, state: web::Data<AppState>) -> HttpResponse {
    let identity = caller.identity.as_ref().map(|(i, p)| (i.as_str(), p.as_str()));
    let quotes = match quotes::cached_for_identity(&state, identity).await {
        Ok(q) => q,
        Err(e) => return problem(409, &e.to_string(), None),
    };
    let Some(quote) = quotes::current(&quotes, time::OffsetDateTime::now_utc()) else {
        return problem(404, "no policy quote available", None);
    };
    let fee = quote.fees().into_iter().find(|f| f.fee_type == "standard");
    let (satoshis, bytes) = fee.map_or((0, 1000), |f| (f.mining_fee.satoshis(), f.mining_fee.bytes()));
    let policies = quote.policies_object().unwrap_or_default();
    let limit = |key: &str, default: u64| policies.get(key).and_then(Value::as_u64).unwrap_or(default);
    HttpResponse::Ok().json(json!({
        "policy": {
            "maxscriptsizepolicy": limit("maxscriptsizepolicy", DEFAULT_MAX_SIZE),
            "maxtxsigopscountspolicy": limit("maxtxsigopscountspolicy", DEFAULT_MAX_SIGOPS),
            "maxtxsizepolicy": limit("maxtxsizepolicy", DEFAULT_MAX_SIZE),
            "miningFee": {"bytes": bytes, "satoshis": satoshis},
            "standardFormatSupported": true,
        },
        "timestamp": timestamp(),
    }))
}

/// `GET /v1/health`: always 200; unhealthy with the reason when storage cannot be reached.
pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    let reason = state.db.ping().await.err().map(|e| e.to_string());
    HttpResponse::Ok().json(json!({
        "healthy": reason.is_none(),
        "reason": reason,
        "version": env!("CARGO_PKG_VERSION"),
    }))
}

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = SmallInt)]
    tx_status: i16,
    #[diesel(sql_type = Nullable<Bytea>)]
    block_hash: Option<Vec<u8>>,
    #[diesel(sql_type = Nullable<BigInt>)]
    block_height: Option<i64>,
    #[diesel(sql_type = Nullable<Bytea>)]
    header: Option<Vec<u8>>,
    #[diesel(sql_type = Nullable<Json>)]
    proof: Option<Value>,
    #[diesel(sql_type = BigInt)]
    stale_blocks: i64,
    #[diesel(sql_type = diesel::sql_types::Array<Bytea>)]
    competing: Vec<Vec<u8>>,
}

/// What the store knows of a transaction, with its active-chain block if any.
async fn load(state: &AppState, txid: &Txid) -> Result<Option<Row>, db_kit::DbError> {
    let mut conn = state.db.conn().await?;
    let rows: Vec<Row> = diesel::sql_query(
        "SELECT t.tx_status, b.block_hash, b.block_height, b.header, b.proof, \
           (SELECT count(*) FROM tx_blocks s WHERE s.tx_internal_id = t.tx_internal_id AND NOT s.on_active_chain) AS stale_blocks, \
           ARRAY(SELECT a.ds_txid FROM tx_mempool_double_spend_attempts a WHERE a.tx_internal_id = t.tx_internal_id \
                 ORDER BY a.received_at) AS competing \
         FROM txs t LEFT JOIN tx_blocks b ON b.tx_internal_id = t.tx_internal_id AND b.on_active_chain \
         WHERE t.txid = $1 ORDER BY b.block_height DESC NULLS LAST LIMIT 1",
    )
    .bind::<Bytea, _>(txid.internal().as_slice())
    .load(&mut conn)
    .await?;
    Ok(rows.into_iter().next())
}

/// Our state in ARC's status model.
fn tx_status(row: &Row) -> &'static str {
    if row.block_hash.is_some() {
        "MINED"
    } else if row.stale_blocks > 0 {
        "MINED_IN_STALE_BLOCK"
    } else if !row.competing.is_empty() {
        "DOUBLE_SPEND_ATTEMPTED"
    } else {
        match row.tx_status {
            txstore::STATUS_ACCEPTED | txstore::STATUS_MINED => "SEEN_ON_NETWORK",
            txstore::STATUS_NODE_REJECTED => "REJECTED",
            txstore::STATUS_SENT_TO_NODE => "STORED",
            _ => "SEEN_IN_ORPHAN_MEMPOOL",
        }
    }
}

/// The BUMP of a mined row, hex, checked against its header (`None` if the stored proof does not
/// hold, which is logged).
fn merkle_path(row: &Row, height: u64) -> Option<String> {
    let header = BlockHeader::from_bytes(row.header.as_deref()?.try_into().ok()?);
    let proof: TscProof = serde_json::from_value(row.proof.clone()?).ok()?;
    let bump = Bump::from_tsc(height, &proof).ok()?;
    match bump.verify_against_header(&header) {
        Ok(()) => Some(hex::encode(bump.to_bytes())),
        Err(e) => {
            tracing::error!(error = %e, "a stored proof does not lead to its header's root");
            None
        }
    }
}

/// `GET /v1/tx/{txid}`: ARC's `TransactionStatus` (404 problem when the store does not know it).
pub async fn get_tx(state: web::Data<AppState>, txid: web::Path<String>) -> HttpResponse {
    let Ok(txid) = txid.parse::<Txid>() else {
        return problem(400, "invalid txid", None);
    };
    let row = match load(&state, &txid).await {
        Ok(Some(row)) => row,
        Ok(None) => return problem(404, "transaction not found", None),
        Err(e) => return problem(409, &e.to_string(), Some(&txid)),
    };
    let status = tx_status(&row);
    let height = row.block_height.and_then(|h| u64::try_from(h).ok()).unwrap_or(0);
    let block_hash = row
        .block_hash
        .as_deref()
        .and_then(bsv_primitives::BlockHash::from_internal_slice)
        .map(|b| b.to_string())
        .unwrap_or_default();
    let merkle_path =
        if status == "MINED" { merkle_path(&row, height).unwrap_or_default() } else { String::new() };
    let competing: Vec<String> =
        row.competing.iter().filter_map(|c| Txid::from_internal_slice(c)).map(|t| t.to_string()).collect();
    HttpResponse::Ok().json(json!({
        "blockHash": block_hash,
        "blockHeight": height,
        "competingTxs": (!competing.is_empty()).then_some(competing),
        "extraInfo": "",
        "merklePath": merkle_path,
        "timestamp": timestamp(),
        "txStatus": status,
        "txid": txid.to_string(),
    }))
}

/// The ARC routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/policy", web::get().to(policy))
        .route("/v1/health", web::get().to(health))
        .route("/v1/tx/{txid}", web::get().to(get_tx));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(tx_status: i16) -> Row {
        Row {
            tx_status,
            block_hash: None,
            block_height: None,
            header: None,
            proof: None,
            stale_blocks: 0,
            competing: Vec::new(),
        }
    }

    #[test]
    fn our_states_map_to_arcs_status_model() {
        assert_eq!(tx_status(&row(txstore::STATUS_SENT_TO_NODE)), "STORED");
        assert_eq!(tx_status(&row(txstore::STATUS_ACCEPTED)), "SEEN_ON_NETWORK");
        assert_eq!(tx_status(&row(txstore::STATUS_NODE_REJECTED)), "REJECTED");
        assert_eq!(tx_status(&row(txstore::STATUS_MISSING_INPUTS_MAX)), "SEEN_IN_ORPHAN_MEMPOOL");
        let attempted = Row { competing: vec![vec![1; 32]], ..row(txstore::STATUS_ACCEPTED) };
        assert_eq!(tx_status(&attempted), "DOUBLE_SPEND_ATTEMPTED");
        let stale = Row { stale_blocks: 1, ..row(txstore::STATUS_ACCEPTED) };
        assert_eq!(tx_status(&stale), "MINED_IN_STALE_BLOCK", "its only block left the chain");
        let mined = Row { block_hash: Some(vec![2; 32]), stale_blocks: 1, ..row(txstore::STATUS_MINED) };
        assert_eq!(tx_status(&mined), "MINED", "mined again in the new chain");
    }

    #[test]
    fn problems_carry_all_seven_keys_and_their_status() {
        let resp = problem(404, "transaction not found", None);
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        let resp = problem(409, "storage", Some(&Txid::from_internal([1; 32])));
        assert_eq!(resp.status(), StatusCode::CONFLICT);
    }
}
