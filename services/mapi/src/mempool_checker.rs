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
use crate::schema::{policy_quotes, tx_blocks, txs};
use crate::txstore::{
    STATUS_ACCEPTED, STATUS_MINED, STATUS_MISSING_INPUTS_MAX, STATUS_NODE_REJECTED, STATUS_SENT_TO_NODE,
};

/// Name of the advisory lock that makes the checker a singleton.
pub const LOCK_NAME: &str = "mapi:mempool-checker";

/// Transactions per `sendrawtransactions` call.
const BATCH: usize = 1000;

/// A transaction to resubmit.
struct Pending {
    id: i64,
    status: i16,
    txid: Txid,
    payload: Vec<u8>,
    ok_to_mine: bool,
    policies: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Runs until `cancel`: stands by until it takes the lock, then checks every interval for as long
/// as it holds the lock. The lock is checked before every round: if its connection broke (and
/// with it the lock, which another replica may hold by now), this replica stops checking and
/// stands by again, so two checkers never run at once.
pub async fn run(state: actix_web::web::Data<AppState>, cancel: CancellationToken) {
    let settings = &state.settings;
    let ok_interval = Duration::from_secs(settings.mempool_checker_interval_sec);
    let retry_interval = Duration::from_secs(settings.mempool_checker_unsuccessful_interval_sec);
    loop {
        let Some(mut lock) = acquire_lock(&state, &cancel, retry_interval).await else { return };
        state.metrics.mempool_checker_active.set(1);
        tracing::info!("mempool checker running");
        let mut missing_inputs: HashMap<i64, u32> = HashMap::new();
        loop {
            if !still_holds(&mut lock).await {
                tracing::warn!("mempool checker lost its lock; standing by");
                break;
            }
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
                _ = cancel.cancelled() => {
                    state.metrics.mempool_checker_active.set(0);
                    return;
                }
                _ = tokio::time::sleep(wait) => {}
            }
        }
        state.metrics.mempool_checker_active.set(0);
        drop(lock);
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(retry_interval) => {}
        }
    }
}

/// Waits until this replica takes the lock (on a dedicated connection, which holds it); `None`
/// when cancelled first.
async fn acquire_lock(
    state: &AppState,
    cancel: &CancellationToken,
    retry_interval: Duration,
) -> Option<diesel_async::AsyncPgConnection> {
    loop {
        match state.db.dedicated().await {
            Ok(mut conn) => match db_kit::Db::try_advisory_lock(&mut conn, LOCK_NAME).await {
                Ok(true) => return Some(conn),
                Ok(false) => tracing::debug!("another replica runs the mempool checker; standing by"),
                Err(e) => tracing::warn!(error = %e, "mempool checker lock failed"),
            },
            Err(e) => tracing::warn!(error = %e, "mempool checker cannot reach the database"),
        }
        tokio::select! {
            _ = cancel.cancelled() => return None,
            _ = tokio::time::sleep(retry_interval) => {}
        }
    }
}

/// True while the lock connection is alive and still holds the lock.
async fn still_holds(lock: &mut diesel_async::AsyncPgConnection) -> bool {
    let check = db_kit::Db::holds_advisory_lock(lock, LOCK_NAME);
    matches!(tokio::time::timeout(Duration::from_secs(10), check).await, Ok(Ok(true)))
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
        // Mined on the active chain, as block-parser reported: nothing to resend.
        .filter(diesel::dsl::not(diesel::dsl::exists(
            tx_blocks::table
                .filter(tx_blocks::tx_internal_id.eq(txs::tx_internal_id))
                .filter(tx_blocks::on_active_chain.eq(true)),
        )))
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

/// What one node said of one transaction in a round. The order is the merge order across nodes,
/// best first: the best answer of any node wins, as in submission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Seen {
    /// In a block.
    Mined,
    /// In the node's mempool, or accepted when sent again.
    InMempool,
    /// Refused for missing inputs (16), a mempool conflict (258) or a double spend (18).
    MissingInputs,
    /// Refused for another reason.
    Refused,
}

/// One round over every node; returns how many transactions were sent again. Each node's answers
/// are gathered first and merged per transaction (the best wins), then written once: one node's
/// refusal never overwrites another node's accept.
pub async fn check_once(state: &AppState, missing_inputs: &mut HashMap<i64, u32>) -> Result<usize, String> {
    let started = OffsetDateTime::now_utc();
    if let Some(queued) = blocks_queued(state).await
        && queued > state.settings.mempool_checker_blockparser_queued_max
    {
        tracing::info!(
            blocks.queued = queued,
            "blocks wait to be parsed; the mempool checker skips this round"
        );
        state.metrics.mempool_rounds_skipped.inc();
        return Ok(0);
    }
    let nodes = crate::nodes::clients(state).await.map_err(|e| e.to_string())?;
    let candidates =
        pending(state, started, started - sending_grace(state)).await.map_err(|e| e.to_string())?;
    if candidates.is_empty() {
        return Ok(0);
    }
    let mut seen: HashMap<i64, Seen> = HashMap::new();
    let mut resent: HashSet<i64> = HashSet::new();
    let mut failed_nodes = 0;
    for (node, client) in &nodes {
        match check_node(state, node, client, &candidates).await {
            Ok(answers) => {
                for (id, answer, was_resent) in answers {
                    let best = seen.entry(id).or_insert(answer);
                    *best = (*best).min(answer);
                    if was_resent && answer == Seen::InMempool {
                        resent.insert(id);
                    }
                }
            }
            Err(()) => failed_nodes += 1,
        }
    }
    if failed_nodes == nodes.len() {
        return Err("no node could be checked".into());
    }
    record_round(state, &candidates, &seen, &resent, missing_inputs).await.map_err(|e| e.to_string())?;
    Ok(resent.len())
}

/// Blocks waiting to be parsed, as block-parser reports; `None` when it cannot be asked (the
/// round then goes ahead: the nodes are the authority on their mempools).
async fn blocks_queued(state: &AppState) -> Option<u64> {
    match crate::admin_status::block_parser_status(state).await {
        Ok(status) => status["blockParserQueue"].as_u64(),
        Err(e) => {
            tracing::debug!(error = %e, "block-parser queue unknown");
            None
        }
    }
}

/// What one node says of each candidate: (row id, what it said, whether it was sent again).
/// `Err` when the node could not be checked at all.
async fn check_node(
    state: &AppState,
    node: &crate::nodes::NodeRow,
    client: &node_client::RpcClient,
    candidates: &[Pending],
) -> Result<Vec<(i64, Seen, bool)>, ()> {
    let mempool: HashSet<Txid> = match client.get_raw_mempool().await {
        Ok(m) => m.into_iter().collect(),
        Err(e) => {
            tracing::warn!(node = %node.id(), error = %e, "getrawmempool failed");
            return Err(());
        }
    };
    let mut answers = Vec::with_capacity(candidates.len());
    let mut missing: Vec<&Pending> = Vec::new();
    for p in candidates {
        if mempool.contains(&p.txid) {
            answers.push((p.id, Seen::InMempool, false));
            continue;
        }
        // Until the block parser tracks blocks, the node itself says whether it was mined.
        match client.get_raw_transaction_info(&p.txid).await {
            Ok(info) if info.blockhash.is_some() => answers.push((p.id, Seen::Mined, false)),
            _ => missing.push(p),
        }
    }
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
                // What this node was not asked about stays unknown; what it answered counts.
                break;
            }
        };
        let invalid: HashMap<Txid, i64> = answer.invalid.iter().map(|r| (r.txid, r.reject_code)).collect();
        for p in chunk {
            let said = match invalid.get(&p.txid) {
                None | Some(257) => Seen::InMempool,
                Some(16 | 18 | 258) => Seen::MissingInputs,
                Some(_) => Seen::Refused,
            };
            answers.push((p.id, said, true));
        }
    }
    Ok(answers)
}

/// Writes what the nodes said, merged: mined rows leave the check, rows some node has are
/// accepted (adopted rows) or touched (resent ones), missing inputs count a round (given up at
/// the limit), and an adopted row every node refused gets the status its submission would have.
async fn record_round(
    state: &AppState,
    candidates: &[Pending],
    seen: &HashMap<i64, Seen>,
    resent: &HashSet<i64>,
    missing_inputs: &mut HashMap<i64, u32>,
) -> Result<(), DbError> {
    let mut mined = Vec::new();
    let mut touched = Vec::new();
    let mut give_up = Vec::new();
    let mut refused = Vec::new();
    for p in candidates {
        let Some(best) = seen.get(&p.id) else { continue };
        match best {
            Seen::Mined => mined.push(p.id),
            Seen::InMempool => {
                missing_inputs.remove(&p.id);
                if p.status == STATUS_SENT_TO_NODE || resent.contains(&p.id) {
                    touched.push(p.id);
                }
            }
            Seen::MissingInputs | Seen::Refused if p.status == STATUS_SENT_TO_NODE => refused.push(p.id),
            Seen::MissingInputs => {
                let rounds = missing_inputs.entry(p.id).or_insert(0);
                *rounds += 1;
                if *rounds >= state.settings.mempool_checker_missing_inputs_retries {
                    give_up.push(p.id);
                    missing_inputs.remove(&p.id);
                }
            }
            Seen::Refused => {}
        }
    }
    set_status(state, &mined, STATUS_MINED).await?;
    touch(state, &touched).await?;
    state.metrics.mempool_tx_missing_inputs_max.inc_by(give_up.len() as u64);
    set_status(state, &give_up, STATUS_MISSING_INPUTS_MAX).await?;
    set_status(state, &refused, STATUS_NODE_REJECTED).await?;
    Ok(())
}
