//! Registration with block-parser: the transactions whose block mapi wants to hear of, and the
//! outpoints of dsCheck transactions (and their unconfirmed ancestors) to watch for double spends.
//!
//! A submission registers its transactions before sending them to a node (merged across
//! concurrent submissions, beside the write of the rows), and the row records it. Rows left
//! unregistered (block-parser was unreachable; unconfirmed ancestors, known only from the nodes'
//! answer) are registered by [`run`], which then asks block-parser to parse again the blocks
//! parsed since the earliest late transaction was received, so none of them is missed.

use std::time::Duration;

use bsv_primitives::Txid;
use db_kit::{Db, DbError};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use service_kit::InternalClient;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use wire_model::internal::{RegisteredSpend, Registrations, Reparse};

use crate::coalesce::Batch;
use crate::schema::{tx_inputs, txs};

/// Rows registered per round of the worker.
const WORKER_BATCH: i64 = 5000;

/// How old an unregistered row must be before the worker takes it (a submission in flight
/// registers its own rows).
const WORKER_GRACE: time::Duration = time::Duration::seconds(2);

/// block-parser's registration endpoints.
#[derive(Debug, Clone)]
pub struct BlockParser {
    client: InternalClient,
    registrations: String,
    reparse: String,
}

impl BlockParser {
    /// The service at `base`.
    pub fn new(client: InternalClient, base: &url::Url) -> Self {
        let base = base.as_str().trim_end_matches('/');
        Self {
            client,
            registrations: format!("{base}/internal/registrations"),
            reparse: format!("{base}/internal/reparse"),
        }
    }

    /// Registers (idempotent on block-parser's side).
    pub async fn register(&self, r: &Registrations) -> Result<(), String> {
        let resp = self.client.post(&self.registrations).json(r).send().await.map_err(|e| e.to_string())?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(format!("block-parser answered {}", resp.status()))
        }
    }

    /// Asks for the blocks parsed since `since` to be parsed again.
    pub async fn reparse(&self, since: OffsetDateTime) -> Result<(), String> {
        let resp = self
            .client
            .post(&self.reparse)
            .json(&Reparse { since })
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(format!("block-parser answered {}", resp.status()))
        }
    }
}

/// `BlockParser::register` for many submissions at once.
#[derive(Debug)]
pub struct Register(pub BlockParser);

impl Batch for Register {
    type Req = Registrations;
    type Resp = Result<(), String>;

    fn size(req: &Self::Req) -> usize {
        req.txids.len()
    }

    fn fits(_: &[&Self::Req], _: &Self::Req) -> bool {
        true
    }

    async fn run(&self, reqs: Vec<Self::Req>) -> Vec<Self::Resp> {
        let merged = Registrations {
            txids: reqs.iter().flat_map(|r| r.txids.iter().copied()).collect(),
            spends: reqs.iter().flat_map(|r| r.spends.iter().cloned()).collect(),
        };
        let result = self.0.register(&merged).await;
        if let Err(e) = &result {
            tracing::warn!(error = %e, "registering with block-parser failed; the registration worker retries");
        }
        vec![result; reqs.len()]
    }
}

/// An unregistered row.
type Unregistered = (i64, Vec<u8>, bool, OffsetDateTime);

/// Registers rows left unregistered until `cancel`, every second.
pub async fn run(db: Db, block_parser: BlockParser, cancel: CancellationToken) {
    loop {
        let wait = match register_late(&db, &block_parser).await {
            Ok(n) if n as i64 == WORKER_BATCH => Duration::ZERO,
            Ok(_) => Duration::from_secs(1),
            Err(e) => {
                tracing::warn!(error = %e, "late registration failed; retrying");
                Duration::from_secs(5)
            }
        };
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// One round: registers a batch of unregistered rows; returns how many.
async fn register_late(db: &Db, block_parser: &BlockParser) -> Result<usize, String> {
    let mut conn = db.conn().await.map_err(|e| e.to_string())?;
    let rows: Vec<Unregistered> = txs::table
        .filter(txs::registered_at.is_null())
        .filter(txs::tx_status.ge(0))
        .filter(txs::received_at.lt(OffsetDateTime::now_utc() - WORKER_GRACE))
        .order(txs::received_at)
        .limit(WORKER_BATCH)
        .select((txs::tx_internal_id, txs::txid, txs::unconfirmed_ancestor, txs::received_at))
        .load(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    if rows.is_empty() {
        return Ok(0);
    }
    let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
    let spends = watched_spends(&mut conn, &ids).await.map_err(|e| e.to_string())?;
    let txids: Vec<Txid> = rows.iter().filter_map(|r| Txid::from_internal_slice(&r.1)).collect();
    block_parser.register(&Registrations { txids, spends }).await?;
    // Ancestors were unconfirmed when the nodes named them; the submitted ones may have been
    // mined while block-parser could not hear of them.
    if let Some(since) = rows.iter().filter(|r| !r.2).map(|r| r.3).min() {
        block_parser.reparse(since).await?;
    }
    diesel::update(txs::table.filter(txs::tx_internal_id.eq_any(&ids)))
        .set(txs::registered_at.eq(diesel::dsl::now))
        .execute(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(txs = rows.len(), "registered late with block-parser");
    Ok(rows.len())
}

/// The stored inputs of these rows (only dsCheck transactions and unconfirmed ancestors have any).
async fn watched_spends(
    conn: &mut diesel_async::AsyncPgConnection,
    ids: &[i64],
) -> Result<Vec<RegisteredSpend>, DbError> {
    let rows: Vec<(Vec<u8>, Vec<u8>, i64)> = tx_inputs::table
        .inner_join(txs::table)
        .filter(tx_inputs::tx_internal_id.eq_any(ids))
        .select((txs::txid, tx_inputs::prev_txid, tx_inputs::prev_n))
        .load(conn)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(txid, prev, n)| {
            Some(RegisteredSpend {
                txid: Txid::from_internal_slice(&txid)?,
                prev_txid: Txid::from_internal_slice(&prev)?,
                prev_n: u32::try_from(n).ok()?,
            })
        })
        .collect())
}
