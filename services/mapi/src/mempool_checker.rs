//! The mempool checker: a singleton worker (a PostgreSQL advisory lock; other replicas stand by)
//! that compares each node's mempool with the accepted, unmined transactions mAPI stored and
//! sends the missing ones again, in batches, so a node that lost its mempool (a restart without
//! `-persistmempool`) gets every accepted transaction back.
//!
//! It also adopts rows left "sent to node" for longer than a submission can take (mAPI stopped
//! between storing and recording the nodes' answer, or that record was lost): they are sent again
//! and get the status the answer gives, so no stored transaction is left behind.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use bsv_primitives::Txid;
use db_kit::DbError;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use node_client::rpc_types::SendRawTx;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::AppState;
use crate::schema::{policy_quotes, txs};
use crate::txstore::{STATUS_ACCEPTED, STATUS_NODE_REJECTED, STATUS_SENT_TO_NODE};

/// Name of the advisory lock that makes the checker a singleton.
pub const LOCK_NAME: &str = "mapi:mempool-checker";

/// Transactions per `sendrawtransactions` call.
const BATCH: usize = 1000;

/// Status of a transaction found mined (no longer resubmitted).
const STATUS_MINED: i16 = 0;
/// Status of a transaction given up after too many missing-inputs rounds.
const STATUS_MISSING_INPUTS_MAX: i16 = 2;

/// A transaction to resubmit.
struct Pending {
    id: i64,
    status: i16,
    txid: Txid,
    payload: Vec<u8>,
    ok_to_mine: bool,
    policies: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Runs until `cancel`: takes the lock (or waits for it), then checks every interval.
pub async fn run(state: actix_web::web::Data<AppState>, cancel: CancellationToken) {
    let settings = &state.settings;
    let ok_interval = Duration::from_secs(settings.mempool_checker_interval_sec);
    let retry_interval = Duration::from_secs(settings.mempool_checker_unsuccessful_interval_sec);
    let mut missing_inputs: HashMap<i64, u32> = HashMap::new();
    // Hold the lock on a dedicated connection for as long as this worker runs.
    let _lock = loop {
        match state.db.dedicated().await {
            Ok(mut conn) => match db_kit::Db::try_advisory_lock(&mut conn, LOCK_NAME).await {
                Ok(true) => break conn,
                Ok(false) => tracing::debug!("another replica runs the mempool checker; standing by"),
                Err(e) => tracing::warn!(error = %e, "mempool checker lock failed"),
            },
            Err(e) => tracing::warn!(error = %e, "mempool checker cannot reach the database"),
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(retry_interval) => {}
        }
    };
    tracing::info!("mempool checker running");
    loop {
        let wait = match check_once(&state, &mut missing_inputs).await {
            Ok(resent) => {
                if resent > 0 {
                    tracing::info!(txs.resent = resent, "mempool checker resubmitted transactions");
                }
                ok_interval
            }
            Err(e) => {
                tracing::warn!(error = %e, "mempool checker round failed");
                retry_interval
            }
        };
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// A stored row of a transaction to check: id, txid, payload, fee verdict, its quote's policies.
type PendingRow = (i64, i16, Vec<u8>, Option<Vec<u8>>, bool, Option<serde_json::Value>);

/// Accepted rows, and rows "sent to node" since before `sending_before`.
async fn pending(
    state: &AppState,
    before: OffsetDateTime,
    sending_before: OffsetDateTime,
) -> Result<Vec<Pending>, DbError> {
    let mut conn = state.db.conn().await?;
    let accepted = txs::tx_status.eq(STATUS_ACCEPTED).and(txs::submitted_at.lt(before));
    let stale_sending = txs::tx_status.eq(STATUS_SENT_TO_NODE).and(txs::received_at.lt(sending_before));
    let rows: Vec<PendingRow> = txs::table
        .left_join(policy_quotes::table)
        .filter(accepted.or(stale_sending))
        .filter(txs::unconfirmed_ancestor.eq(false))
        .select((
            txs::tx_internal_id,
            txs::tx_status,
            txs::txid,
            txs::payload,
            txs::ok_to_mine,
            policy_quotes::policies.nullable(),
        ))
        .order(txs::tx_internal_id)
        .load(&mut conn)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, status, txid, payload, ok_to_mine, policies)| {
            Some(Pending {
                id,
                status,
                txid: Txid::from_internal_slice(&txid)?,
                payload: payload?,
                ok_to_mine,
                policies: policies.and_then(|p| p.as_object().cloned()),
            })
        })
        .collect())
}

async fn set_status(state: &AppState, ids: &[i64], status: i16) -> Result<(), DbError> {
    if ids.is_empty() {
        return Ok(());
    }
    let mut conn = state.db.conn().await?;
    diesel::update(txs::table.filter(txs::tx_internal_id.eq_any(ids)))
        .set(txs::tx_status.eq(status))
        .execute(&mut conn)
        .await?;
    Ok(())
}

/// Marks rows as (again) in a mempool now: accepted, submitted now.
async fn touch(state: &AppState, ids: &[i64]) -> Result<(), DbError> {
    if ids.is_empty() {
        return Ok(());
    }
    let mut conn = state.db.conn().await?;
    diesel::update(txs::table.filter(txs::tx_internal_id.eq_any(ids)))
        .set((txs::tx_status.eq(STATUS_ACCEPTED), txs::submitted_at.eq(OffsetDateTime::now_utc())))
        .execute(&mut conn)
        .await?;
    Ok(())
}

/// How long a row may stay "sent to node" before the checker adopts it: twice the longest a
/// submission waits for the nodes, and never under 30 s.
fn sending_grace(state: &AppState) -> time::Duration {
    let rpc = Duration::from_millis(state.settings.node_rpc_timeout_ms.saturating_mul(2));
    time::Duration::try_from(rpc.max(Duration::from_secs(30))).unwrap_or(time::Duration::MINUTE)
}

/// One round over every node; returns how many transactions were sent again.
pub async fn check_once(state: &AppState, missing_inputs: &mut HashMap<i64, u32>) -> Result<usize, String> {
    let started = OffsetDateTime::now_utc();
    let nodes = crate::nodes::clients(state).await.map_err(|e| e.to_string())?;
    let candidates =
        pending(state, started, started - sending_grace(state)).await.map_err(|e| e.to_string())?;
    if candidates.is_empty() {
        return Ok(0);
    }
    let mut resent = 0;
    let mut failed_nodes = 0;
    for (node, client) in &nodes {
        let mempool: HashSet<Txid> = match client.get_raw_mempool().await {
            Ok(m) => m.into_iter().collect(),
            Err(e) => {
                tracing::warn!(node = %node.id(), error = %e, "getrawmempool failed");
                failed_nodes += 1;
                continue;
            }
        };
        let mut missing: Vec<&Pending> = Vec::new();
        let mut mined = Vec::new();
        // Adopted rows the node already has: their outcome is "accepted".
        let present: Vec<i64> = candidates
            .iter()
            .filter(|p| p.status == STATUS_SENT_TO_NODE && mempool.contains(&p.txid))
            .map(|p| p.id)
            .collect();
        touch(state, &present).await.map_err(|e| e.to_string())?;
        for p in candidates.iter().filter(|p| !mempool.contains(&p.txid)) {
            // Until the block parser tracks blocks, the node itself says whether it was mined.
            match client.get_raw_transaction_info(&p.txid).await {
                Ok(info) if info.blockhash.is_some() => mined.push(p.id),
                _ => missing.push(p),
            }
        }
        set_status(state, &mined, STATUS_MINED).await.map_err(|e| e.to_string())?;
        for chunk in missing.chunks(BATCH) {
            let batch: Vec<SendRawTx> = chunk
                .iter()
                .map(|p| SendRawTx {
                    hex: hex::encode(&p.payload),
                    allowhighfees: false,
                    dontcheckfee: p.ok_to_mine,
                    listunconfirmedancestors: false,
                    config: p.policies.clone(),
                })
                .collect();
            state.metrics.mempool_tx_missing.inc_by(batch.len() as u64);
            let answer = match client.send_raw_transactions(&batch).await {
                Ok(a) => {
                    state.metrics.mempool_successful_resubmit.inc();
                    a
                }
                Err(e) => {
                    state.metrics.mempool_unsuccessful_resubmit.inc();
                    tracing::warn!(node = %node.id(), error = %e, "resubmission failed");
                    failed_nodes += 1;
                    break;
                }
            };
            let invalid: HashMap<Txid, i64> =
                answer.invalid.iter().map(|r| (r.txid, r.reject_code)).collect();
            let mut ok_ids = Vec::new();
            let mut give_up = Vec::new();
            let mut refused = Vec::new();
            for p in chunk {
                match invalid.get(&p.txid) {
                    // An adopted row the node refuses gets the status its submission would have.
                    Some(_) if p.status == STATUS_SENT_TO_NODE => refused.push(p.id),
                    // Missing inputs (16), mempool conflict (258), double spend (18): count rounds.
                    Some(16 | 18 | 258) => {
                        let n = missing_inputs.entry(p.id).or_insert(0);
                        *n += 1;
                        if *n >= state.settings.mempool_checker_missing_inputs_retries {
                            give_up.push(p.id);
                        }
                    }
                    Some(_) => {}
                    None => {
                        ok_ids.push(p.id);
                        missing_inputs.remove(&p.id);
                    }
                }
            }
            resent += ok_ids.len();
            touch(state, &ok_ids).await.map_err(|e| e.to_string())?;
            state.metrics.mempool_tx_missing_inputs_max.inc_by(give_up.len() as u64);
            set_status(state, &give_up, STATUS_MISSING_INPUTS_MAX).await.map_err(|e| e.to_string())?;
            set_status(state, &refused, STATUS_NODE_REJECTED).await.map_err(|e| e.to_string())?;
        }
    }
    if failed_nodes == nodes.len() {
        return Err("no node could be checked".into());
    }
    Ok(resent)
}
