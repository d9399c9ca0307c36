//! The callback outbox: rows of `callbacks` that became due are signed into the reference's
//! envelope (`callbackPayload` first, then `apiVersion`, `timestamp`, `minerId`, `blockHash`,
//! `blockHeight`, `callbackTxId`, `callbackReason`) and handed to the notifier, which stores them
//! before it answers. A row is marked taken in the same transaction that locked it, only after
//! the notifier answered 2xx; replicas share the work by `SKIP LOCKED`. The notifier keys each
//! request on transaction, reason, block and double-spending transaction, so a hand-over repeated
//! after a lost answer is delivered once.

use std::sync::Arc;
use std::time::Duration;

use db_kit::DbError;
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Bytea, Nullable, Text};
use diesel_async::{AsyncConnection, RunQueryDsl};
use serde::Serialize;
use serde_json::value::RawValue;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use wire_model::MapiTimestamp;
use wire_model::internal::{NotificationRequest, NotificationRequests};
use wire_model::mapi::API_VERSION;

use crate::AppState;

/// Callbacks handed over per request.
const BATCH: i64 = 500;

/// Signatures made at once (a MinerId server signs over HTTP).
const SIGNING_CONCURRENCY: usize = 16;

#[derive(QueryableByName)]
struct Due {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Bytea)]
    txid: Vec<u8>,
    #[diesel(sql_type = Text)]
    reason: String,
    #[diesel(sql_type = Nullable<Bytea>)]
    block_hash: Option<Vec<u8>>,
    #[diesel(sql_type = Nullable<Bytea>)]
    ds_txid: Option<Vec<u8>>,
    #[diesel(sql_type = Text)]
    url: String,
    #[diesel(sql_type = Nullable<Text>)]
    token: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    encryption: Option<String>,
    #[diesel(sql_type = Text)]
    payload: String,
}

/// The stored part of a callback's payload (written by [`crate::callbacks`]).
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Stored<'a> {
    #[serde(borrow)]
    callback_payload: &'a RawValue,
    block_hash: String,
    block_height: i64,
    callback_tx_id: String,
    callback_reason: String,
}

/// The payload as the reference writes it, in its field order.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Payload<'a> {
    callback_payload: &'a RawValue,
    api_version: &'static str,
    timestamp: MapiTimestamp,
    miner_id: &'a str,
    block_hash: &'a str,
    block_height: i64,
    callback_tx_id: &'a str,
    callback_reason: &'a str,
}

/// Why a hand-over failed (the rows stay due).
#[derive(Debug, thiserror::Error)]
enum HandOverError {
    #[error("database: {0}")]
    Db(#[from] DbError),
    #[error("database: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("signing: {0}")]
    Sign(String),
    /// One row cannot be turned into a callback (it stays in the table, logged; the others go).
    #[error("callback row: {0}")]
    BadRow(String),
    #[error("notifier: {0}")]
    Notifier(String),
}

/// The notifier's idempotency key of a callback row.
fn key_of(row: &Due) -> String {
    let hex_or_empty = |b: &Option<Vec<u8>>| b.as_deref().map(hex::encode).unwrap_or_default();
    format!(
        "mapi:{}:{}:{}:{}",
        hex::encode(&row.txid),
        row.reason,
        hex_or_empty(&row.block_hash),
        hex_or_empty(&row.ds_txid)
    )
}

/// Signs one row's payload into the envelope JSON the receiver gets.
async fn sign(state: &AppState, miner_id: &str, row: &Due) -> Result<String, HandOverError> {
    let stored: Stored<'_> = serde_json::from_str(&row.payload)
        .map_err(|e| HandOverError::BadRow(format!("stored payload: {e}")))?;
    let payload = Payload {
        callback_payload: stored.callback_payload,
        api_version: API_VERSION,
        timestamp: MapiTimestamp::now(),
        miner_id,
        block_hash: &stored.block_hash,
        block_height: stored.block_height,
        callback_tx_id: &stored.callback_tx_id,
        callback_reason: &stored.callback_reason,
    };
    let text = serde_json::to_string(&payload).map_err(|e| HandOverError::Sign(e.to_string()))?;
    let envelope =
        state.signer.envelope(text, miner_id).await.map_err(|e| HandOverError::Sign(e.to_string()))?;
    serde_json::to_string(&envelope).map_err(|e| HandOverError::Sign(e.to_string()))
}

/// Signs every row, a few at a time, in order.
async fn sign_all(state: &AppState, miner_id: &str, rows: &[Due]) -> Vec<Result<String, HandOverError>> {
    let mut bodies = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(SIGNING_CONCURRENCY) {
        bodies
            .extend(futures_util::future::join_all(chunk.iter().map(|row| sign(state, miner_id, row))).await);
    }
    bodies
}

/// Hands over one batch; returns how many rows went (a full batch: more may wait).
async fn hand_over(state: &AppState, notifier: &str) -> Result<usize, HandOverError> {
    let mut conn = state.db.conn().await?;
    conn.transaction::<_, HandOverError, _>(async move |conn| {
        let rows: Vec<Due> = diesel::sql_query(
            "SELECT id, txid, reason, block_hash, ds_txid, url, token, encryption, payload::text AS payload \
             FROM callbacks WHERE taken_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
        )
        .bind::<BigInt, _>(BATCH)
        .load(conn)
        .await
        .map_err(DbError::from)?;
        if rows.is_empty() {
            return Ok(0);
        }
        let miner_id = state.signer.miner_id().await.map_err(|e| HandOverError::Sign(e.to_string()))?;
        let bodies = sign_all(state, &miner_id, &rows).await;
        let mut notifications = Vec::with_capacity(rows.len());
        let mut handed = Vec::with_capacity(rows.len());
        for (row, body) in rows.iter().zip(bodies) {
            let body = match body {
                Ok(body) => body,
                Err(HandOverError::BadRow(e)) => {
                    // Not dropped: the row stays untaken for an operator to see; the rest go on.
                    tracing::error!(callback.id = row.id, error = %e, "a callback row cannot be signed; left in the table");
                    continue;
                }
                Err(e) => return Err(e),
            };
            handed.push(row.id);
            notifications.push(NotificationRequest {
                key: key_of(row),
                url: row.url.clone(),
                token: row.token.clone(),
                encryption: row.encryption.clone(),
                body,
                txid: Some(
                    bsv_primitives::Txid::from_internal_slice(&row.txid)
                        .map(|t| t.to_string())
                        .unwrap_or_default(),
                ),
                reason: Some(row.reason.clone()),
            });
        }
        if notifications.is_empty() {
            return Ok(0);
        }
        // Each hand-over is a trace of its own, which the notifier's intake continues (the trace
        // headers are taken when the request is built, inside the span).
        let span = tracing::info_span!("callbacks.hand_over", callbacks = notifications.len());
        let body = NotificationRequests { notifications };
        let resp = tracing::Instrument::instrument(
            async { state.internal.post(notifier).timeout(Duration::from_secs(30)).json(&body).send().await },
            span,
        )
        .await
        .map_err(|e| HandOverError::Notifier(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(HandOverError::Notifier(format!("answered {}", resp.status())));
        }
        diesel::sql_query("UPDATE callbacks SET taken_at = now() WHERE id = ANY($1)")
            .bind::<diesel::sql_types::Array<BigInt>, _>(&handed)
            .execute(conn)
            .await
            .map_err(DbError::from)?;
        Ok(handed.len())
    })
    .await
}

/// Hands due callbacks to the notifier until `cancel`: at once when woken (a transaction that
/// wrote callbacks committed), else every second; a failure is retried with a growing pause (up
/// to 10 s).
pub async fn run(
    state: actix_web::web::Data<AppState>,
    base: url::Url,
    wake: Arc<Notify>,
    cancel: CancellationToken,
) {
    let url = format!("{}/internal/notifications", base.as_str().trim_end_matches('/'));
    let mut pause = Duration::from_secs(1);
    loop {
        let wait = match hand_over(&state, &url).await {
            Ok(n) if n as i64 == BATCH => {
                pause = Duration::from_secs(1);
                continue;
            }
            Ok(n) => {
                if n > 0 {
                    tracing::debug!(count = n, "callbacks handed to the notifier");
                }
                pause = Duration::from_secs(1);
                Duration::from_secs(1)
            }
            Err(e) => {
                tracing::warn!(error = %e, "handing callbacks to the notifier failed; retrying");
                pause = (pause * 2).min(Duration::from_secs(10));
                pause
            }
        };
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}
