//! What feeds the matching and the account sockets: mempool transactions from zmq-listener,
//! best-chain blocks streamed from a node (native mode), output spends from the external
//! indexer's websocket and tip-filter matches it posts (proxy mode), and the sweeper that drops
//! the spend registrations of accounts whose websocket closed.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use bsv_primitives::{BlockHash, BlockReader, ParseLimits, Transaction};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::chain::Chain;
use crate::error::IndexerError;
use crate::formats::{self, OutputSpend};
use crate::matching::{self, Found, Seen};
use crate::{AppState, Mode, store};

/// Transactions matched per query while a block streams by.
const BLOCK_CHUNK: usize = 2_000;

/// Blocks below the highest matched one that are compared again (a reorg shallower than this is
/// matched in its new blocks).
const REORG_WINDOW: i64 = 10;

/// Blocks matched per round at most.
const BLOCKS_PER_ROUND: i64 = 20;

/// `POST /internal/mempool-txs` body (zmq-listener's `rawtx`).
#[derive(Debug, Deserialize)]
pub struct MempoolTxs {
    /// Raw transactions, hex.
    pub txs: Vec<String>,
}

/// Writes what a round found, wakes the outbox and pushes the spends to the account sockets.
async fn settle(state: &AppState, found: &mut Found, seen: Seen) -> Result<(), IndexerError> {
    matching::commit(&state.db, found, seen).await?;
    if found.deliveries() > 0 {
        state.wake_outbox.notify_one();
    }
    state.metrics.matches.inc_by(found.deliveries() as u64);
    if let Err(e) = state.sockets.push(found.spends()).await {
        tracing::warn!(error = %e, "spend notifications not pushed to the account sockets");
    }
    Ok(())
}

/// `POST /internal/mempool-txs`: transactions a node accepted into its mempool.
pub async fn mempool_txs(
    state: web::Data<AppState>,
    body: web::Json<MempoolTxs>,
) -> Result<HttpResponse, IndexerError> {
    let txs: Vec<Transaction> = body.txs.iter().filter_map(|h| Transaction::parse_hex(h).ok()).collect();
    let watches = matching::load_watches(&state.db).await?;
    let mut found = Found::default();
    matching::match_chunk(&state.db, &txs, Seen::Mempool, &watches, now(), &mut found).await?;
    state.metrics.txs_matched.inc_by(txs.len() as u64);
    settle(&state, &mut found, Seen::Mempool).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"matched": txs.len()})))
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// A best-chain header as block-parser's `by-height` lists it.
#[derive(Debug, Deserialize)]
struct ListedHeader {
    hash: BlockHash,
}

/// Compares the best chain with the blocks matched and matches the new ones, until `cancel`.
pub async fn follow_blocks(
    state: web::Data<AppState>,
    chain: Chain,
    every: Duration,
    cancel: CancellationToken,
) {
    // The same failure round after round (block-parser still starting) is logged once.
    let mut last_error: Option<String> = None;
    loop {
        match blocks_round(&state, &chain).await {
            Ok(()) => last_error = None,
            Err(e) if last_error.as_deref() == Some(e.as_str()) => {
                tracing::debug!(error = %e, "block matching round failed again");
            }
            Err(e) => {
                tracing::warn!(error = %e, "block matching round failed");
                last_error = Some(e);
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

async fn best_height(state: &AppState) -> Result<i64, String> {
    let url =
        format!("{}/api/v1/headers/tips", state.settings.block_parser_url.as_str().trim_end_matches('/'));
    let tips: serde_json::Value = state
        .internal
        .get(&url)
        .header("accept", "application/json")
        .send()
        .await
        .map_err(|e| e.without_url().to_string())?
        .json()
        .await
        .map_err(|e| e.without_url().to_string())?;
    tips.as_array()
        .and_then(|t| t.iter().find(|t| t["state"] == "LONGEST_CHAIN"))
        .and_then(|t| t["height"].as_i64())
        .ok_or_else(|| "no longest-chain tip".to_owned())
}

async fn headers_from(state: &AppState, height: i64, count: i64) -> Result<Vec<ListedHeader>, String> {
    let url = format!(
        "{}/api/v1/headers/by-height?height={height}&count={count}",
        state.settings.block_parser_url.as_str().trim_end_matches('/')
    );
    state
        .internal
        .get(&url)
        .header("accept", "application/json")
        .send()
        .await
        .map_err(|e| e.without_url().to_string())?
        .json()
        .await
        .map_err(|e| e.without_url().to_string())
}

/// One round: the blocks of the best chain above the last matched (and a few below it, for
/// reorgs) that were not matched yet, lowest first. On a first start the current tip is the
/// baseline: history is not matched.
async fn blocks_round(state: &AppState, chain: &Chain) -> Result<(), String> {
    let best = best_height(state).await?;
    let Some(highest) = store::highest_indexed(&state.db).await.map_err(|e| e.to_string())? else {
        let tip = headers_from(state, best, 1).await?;
        if let Some(h) = tip.first() {
            let mut conn = state.db.conn().await.map_err(|e| e.to_string())?;
            store::mark_indexed(&mut conn, h.hash.internal(), best).await.map_err(|e| e.to_string())?;
        }
        return Ok(());
    };
    let from = (highest - REORG_WINDOW).max(0);
    let count = (best - from + 1).min(REORG_WINDOW + BLOCKS_PER_ROUND);
    if count <= 0 {
        return Ok(());
    }
    let listed = headers_from(state, from, count).await?;
    let done: HashSet<[u8; 32]> =
        store::indexed_from(&state.db, from).await.map_err(|e| e.to_string())?.into_iter().collect();
    for (offset, header) in listed.iter().enumerate() {
        if done.contains(header.hash.internal()) {
            continue;
        }
        let height = from + offset as i64;
        match_block(state, chain, header.hash, height).await?;
    }
    Ok(())
}

/// Streams a block from the first node that gives it, matching `BLOCK_CHUNK` transactions at a
/// time (the header and Merkle root checked as it goes), then commits its matches.
async fn match_block(state: &AppState, chain: &Chain, hash: BlockHash, height: i64) -> Result<(), String> {
    let nodes = chain.nodes().current().await.map_err(|e| e.to_string())?;
    let watches = Arc::new(matching::load_watches(&state.db).await.map_err(|e| e.to_string())?);
    let seen = Seen::Block(hash, height);
    let mut last = "no nodes".to_owned();
    for node in nodes {
        let stream = match node.rpc.get_block_stream(&hash).await {
            Ok(s) => s,
            Err(e) => {
                last = format!("{}: {e}", node.id);
                continue;
            }
        };
        let bridge = tokio_util::io::SyncIoBridge::new(stream);
        let db = state.db.clone();
        let watches = watches.clone();
        let runtime = tokio::runtime::Handle::current();
        let started = std::time::Instant::now();
        let scanned = tokio::task::spawn_blocking(move || -> Result<(Found, usize), String> {
            let mut reader = BlockReader::new(bridge, ParseLimits::default()).map_err(|e| e.to_string())?;
            if reader.header().hash() != hash {
                return Err("the node sent another block".into());
            }
            let mut found = Found::default();
            let mut chunk = Vec::with_capacity(BLOCK_CHUNK);
            let mut count = 0usize;
            let now = now();
            while let Some(tx) = reader.next_tx() {
                chunk.push(tx.map_err(|e| e.to_string())?);
                if chunk.len() == BLOCK_CHUNK {
                    count += chunk.len();
                    runtime
                        .block_on(matching::match_chunk(&db, &chunk, seen, &watches, now, &mut found))
                        .map_err(|e| e.to_string())?;
                    chunk.clear();
                }
            }
            count += chunk.len();
            runtime
                .block_on(matching::match_chunk(&db, &chunk, seen, &watches, now, &mut found))
                .map_err(|e| e.to_string())?;
            reader.finish().map_err(|e| e.to_string())?;
            Ok((found, count))
        })
        .await
        .map_err(|e| e.to_string())?;
        let (mut found, count) = scanned?;
        state.metrics.txs_matched.inc_by(count as u64);
        settle(state, &mut found, seen).await.map_err(|e| e.to_string())?;
        tracing::info!(block = %hash, height, txs = count, batches = found.deliveries(), elapsed_ms = started.elapsed().as_millis() as u64, "block matched");
        return Ok(());
    }
    Err(format!("block {hash} not available: {last}"))
}

/// Drops the spend registrations of accounts with no open account websocket, every `every`
/// (in proxy mode the indexer is told which outpoints nobody watches any more).
pub async fn sweep(state: web::Data<AppState>, every: Duration, cancel: CancellationToken) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        if let Err(e) = sweep_round(&state).await {
            tracing::warn!(error = %e, "spend registration sweep failed");
        }
    }
}

async fn sweep_round(state: &AppState) -> Result<(), String> {
    let watches = store::all_watches(&state.db).await.map_err(|e| e.to_string())?;
    let mut accounts: Vec<i64> = watches.iter().map(|(_, a)| *a).collect();
    accounts.sort_unstable();
    accounts.dedup();
    let connected = state.sockets.connected(&accounts).await?;
    let gone: Vec<i64> = accounts.into_iter().filter(|a| !connected.contains(a)).collect();
    if gone.is_empty() {
        return Ok(());
    }
    let unwatched = store::drop_account_watches(&state.db, &gone).await.map_err(|e| e.to_string())?;
    tracing::info!(
        accounts = gone.len(),
        outpoints = unwatched.len(),
        "spend registrations of closed sockets dropped"
    );
    if let Mode::Proxy(indexer) = &state.mode
        && !unwatched.is_empty()
    {
        indexer.unregister_spends(formats::outpoints_bytes(&unwatched)).await;
    }
    Ok(())
}

/// Proxy mode: an output spend the external indexer announced, pushed to the accounts watching it.
pub async fn external_spend(state: &AppState, spend: OutputSpend) {
    let watchers = match store::watchers_of(&state.db, &spend.out).await {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "spend notification lost: watches unreadable");
            return;
        }
    };
    if let Err(e) = state.sockets.push(&[(spend, watchers)]).await {
        tracing::warn!(error = %e, "spend notification not pushed to the account sockets");
    }
}

/// `POST /api/v1/tip-filter/matches` (proxy mode): the external indexer's matches,
/// `{"blockId", "entries": [{"accountId", "matches"}]}`, queued per account for its callback.
/// Not routed by the gateway: only the indexer, on the internal network, reaches it.
pub async fn external_matches(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, IndexerError> {
    if !matches!(state.mode, Mode::Proxy(_)) {
        return Err(IndexerError::NotFound("no external indexer is configured".into()));
    }
    let content_type =
        req.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("application/json");
    if content_type != "application/json" {
        return Err(IndexerError::bad(format!(
            "Invalid 'Content-Type', expected 'application/json', got '{content_type}'"
        )));
    }
    let batch: serde_json::Value =
        serde_json::from_slice(&body).map_err(|_| IndexerError::bad("invalid JSON"))?;
    let entries = batch["entries"].as_array().ok_or_else(|| IndexerError::bad("entries missing"))?;
    let mut conn = state.db.conn().await?;
    for entry in entries {
        let Some(account) = entry["accountId"].as_i64() else {
            return Err(IndexerError::bad("accountId missing"));
        };
        let body = serde_json::json!({"blockId": batch["blockId"], "matches": entry["matches"]}).to_string();
        let key = format!("tip:{account}:ext:{}", hex::encode(Sha256::digest(body.as_bytes())));
        store::enqueue(&mut conn, &key, account, &body).await?;
    }
    state.wake_outbox.notify_one();
    Ok(HttpResponse::Ok().finish())
}
