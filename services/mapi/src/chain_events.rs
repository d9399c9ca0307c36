//! `POST /internal/chain-events`: what block-parser found, applied in order and idempotently (a
//! repeated delivery changes nothing): mined transactions get their block and proof, a reorg
//! takes blocks off the active chain, the tip moves, double spends in blocks are recorded; every
//! notification that becomes due is written to `callbacks` in the same transaction.

use actix_web::{HttpResponse, web};
use bsv_primitives::{BlockHash, BlockHeader, TscProof, Txid};
use db_kit::{Db, DbError};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bool, Bytea, Nullable, Text};
use diesel::upsert::excluded;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use service_kit::ApiError;
use wire_model::internal::{ChainEvent, ChainEvents};

use crate::AppState;
use crate::callbacks::{self, NewCallback, Subscriber};
use crate::schema::{chain_tip, tx_blocks, txs};

/// Rows per multi-row statement (well under PostgreSQL's bind parameter limit).
const CHUNK: usize = 1000;

/// Largest accepted body (block-parser sends up to a thousand events with proofs).
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// `POST /internal/chain-events` (internal credential).
pub async fn receive(
    state: web::Data<AppState>,
    body: web::Json<ChainEvents>,
) -> Result<HttpResponse, ApiError> {
    let applied = apply(&state.db, &body.events.iter().map(|r| r.event.clone()).collect::<Vec<_>>()).await?;
    if applied.callbacks > 0 {
        state.callbacks_due.notify_one();
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "applied": body.events.len(),
        "lastId": body.events.last().map(|e| e.id),
        "callbacks": applied.callbacks,
    })))
}

/// What applying a batch did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// Callback rows written (not counting ones already there).
    pub callbacks: usize,
}

/// Applies events in order, in one transaction.
pub async fn apply(db: &Db, events: &[ChainEvent]) -> Result<Applied, DbError> {
    let mut conn = db.conn().await?;
    let events = events.to_vec();
    conn.transaction::<_, DbError, _>(async move |conn| {
        let mut applied = Applied::default();
        let mut rest = events.as_slice();
        while let Some(first) = rest.first() {
            // Consecutive "mined" events are applied together.
            let run = rest.iter().take_while(|e| matches!(e, ChainEvent::Mined { .. })).count();
            if run > 0 {
                for chunk in rest[..run].chunks(CHUNK) {
                    applied.callbacks += mined(conn, chunk).await?;
                }
                rest = &rest[run..];
                continue;
            }
            match first {
                ChainEvent::Disconnected { block_hash } => disconnected(conn, block_hash).await?,
                ChainEvent::Tip { block_hash, block_height } => tip(conn, block_hash, *block_height).await?,
                ChainEvent::DoubleSpend { txid, block_hash, block_height, ds_txid, ds_tx } => {
                    let block = (*block_hash, *block_height);
                    applied.callbacks += double_spent(conn, txid, Some(block), ds_txid, ds_tx).await?;
                }
                ChainEvent::Mined { .. } => {}
            }
            rest = &rest[1..];
        }
        Ok(applied)
    })
    .await
}

/// `POST /internal/mempool-events` (internal credential): double spends the nodes reported over
/// ZMQ, recorded for the dsCheck transactions they concern (repeats change nothing).
pub async fn receive_mempool(
    state: web::Data<AppState>,
    body: web::Json<wire_model::internal::MempoolEvents>,
) -> Result<HttpResponse, ApiError> {
    use wire_model::internal::MempoolEvent;
    let mut conn = state.db.conn().await?;
    let events = body.into_inner().events;
    let n = events.len();
    let written = conn
        .transaction::<_, DbError, _>(async move |conn| {
            let mut written = 0;
            for e in &events {
                written += match e {
                    MempoolEvent::DoubleSpendAttempt { txid, ds_txid, ds_tx, .. } => {
                        double_spent(conn, txid, None, ds_txid, ds_tx).await?
                    }
                    MempoolEvent::DoubleSpendInBlock {
                        txid,
                        block_hash,
                        block_height,
                        ds_txid,
                        ds_tx,
                        ..
                    } => double_spent(conn, txid, Some((*block_hash, *block_height)), ds_txid, ds_tx).await?,
                };
            }
            Ok(written)
        })
        .await?;
    if written > 0 {
        state.callbacks_due.notify_one();
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({"applied": n, "callbacks": written})))
}

/// A stored transaction with what its callbacks need.
#[derive(Debug, Queryable)]
struct TxRow {
    tx_internal_id: i64,
    txid: Vec<u8>,
    callback_url: Option<String>,
    callback_token: Option<String>,
    callback_encryption: Option<String>,
    merkle_proof: bool,
    merkle_format: Option<String>,
}

impl TxRow {
    fn subscriber(&self) -> Option<Subscriber> {
        Some(Subscriber {
            tx_internal_id: self.tx_internal_id,
            txid: Txid::from_internal_slice(&self.txid)?,
            url: self.callback_url.clone().filter(|u| !u.is_empty())?,
            token: self.callback_token.clone(),
            encryption: self.callback_encryption.clone(),
            merkle_format: self.merkle_format.clone(),
        })
    }
}

/// Records blocks of mined transactions (unknown ones are skipped) and writes their `merkleProof`
/// callbacks. Returns the callbacks written.
async fn mined(conn: &mut AsyncPgConnection, events: &[ChainEvent]) -> Result<usize, DbError> {
    let keys: Vec<Vec<u8>> = events
        .iter()
        .filter_map(|e| match e {
            ChainEvent::Mined { txid, .. } => Some(txid.internal().to_vec()),
            _ => None,
        })
        .collect();
    let rows: Vec<TxRow> = txs::table
        .filter(txs::txid.eq_any(keys))
        .select((
            txs::tx_internal_id,
            txs::txid,
            txs::callback_url,
            txs::callback_token,
            txs::callback_encryption,
            txs::merkle_proof,
            txs::merkle_format,
        ))
        .load(conn)
        .await?;
    let by_txid: std::collections::HashMap<&[u8], &TxRow> =
        rows.iter().map(|r| (r.txid.as_slice(), r)).collect();
    let mut blocks = BlockRows::default();
    let mut due: Vec<NewCallback> = Vec::new();
    for e in events {
        let ChainEvent::Mined { txid, block_hash, block_height, header, proof } = e else { continue };
        let Some(row) = by_txid.get(txid.internal().as_slice()) else { continue };
        let Some(header) = checked_header(block_hash, header, proof) else {
            tracing::error!(tx.id = %txid, block = %block_hash, "a mined event's proof does not match its header; ignored");
            continue;
        };
        blocks.ids.push(row.tx_internal_id);
        blocks.hashes.push(block_hash.internal().to_vec());
        blocks.heights.push(i64::try_from(*block_height).unwrap_or(i64::MAX));
        blocks.headers.push(header.as_bytes().to_vec());
        blocks.proofs.push(serde_json::to_string(proof).unwrap_or_default());
        if row.merkle_proof
            && let Some(who) = row.subscriber()
        {
            due.push(callbacks::merkle_proof(&who, &header, *block_height, proof));
        }
    }
    if !blocks.ids.is_empty() {
        // One parameter per column (a multi-row VALUES list would bind every field).
        diesel::sql_query(
            "INSERT INTO tx_blocks (tx_internal_id, block_hash, block_height, header, proof) \
             SELECT i, h, ht, hd, p::json FROM unnest($1::bigint[], $2::bytea[], $3::bigint[], $4::bytea[], $5::text[]) \
                 AS r (i, h, ht, hd, p) \
             ON CONFLICT (tx_internal_id, block_hash) DO UPDATE SET on_active_chain = true",
        )
        .bind::<Array<BigInt>, _>(blocks.ids)
        .bind::<Array<Bytea>, _>(blocks.hashes)
        .bind::<Array<BigInt>, _>(blocks.heights)
        .bind::<Array<Bytea>, _>(blocks.headers)
        .bind::<Array<Text>, _>(blocks.proofs)
        .execute(conn)
        .await?;
    }
    Ok(callbacks::insert(conn, &due).await?)
}

/// `tx_blocks` rows by column.
#[derive(Debug, Default)]
struct BlockRows {
    ids: Vec<i64>,
    hashes: Vec<Vec<u8>>,
    heights: Vec<i64>,
    headers: Vec<Vec<u8>>,
    proofs: Vec<String>,
}

/// The header, when it is the block's and the proof holds against it (block-parser checked it;
/// mapi does not trust a body it cannot check).
fn checked_header(block: &BlockHash, header_hex: &str, proof: &TscProof) -> Option<BlockHeader> {
    let header = BlockHeader::from_hex(header_hex).ok()?;
    (header.hash() == *block && proof.verify_against_header(&header).is_ok()).then_some(header)
}

/// A block left the best chain: what was mined in it is unconfirmed again (until mined anew).
async fn disconnected(conn: &mut AsyncPgConnection, block: &BlockHash) -> Result<(), DbError> {
    diesel::update(tx_blocks::table.filter(tx_blocks::block_hash.eq(block.internal().to_vec())))
        .set(tx_blocks::on_active_chain.eq(false))
        .execute(conn)
        .await?;
    Ok(())
}

/// The best tip moved.
async fn tip(conn: &mut AsyncPgConnection, block: &BlockHash, height: u64) -> Result<(), DbError> {
    let row = (
        chain_tip::id.eq(true),
        chain_tip::block_hash.eq(block.internal().to_vec()),
        chain_tip::block_height.eq(i64::try_from(height).unwrap_or(i64::MAX)),
        chain_tip::updated_at.eq(diesel::dsl::now),
    );
    diesel::insert_into(chain_tip::table)
        .values(row)
        .on_conflict(chain_tip::id)
        .do_update()
        .set((
            chain_tip::block_hash.eq(excluded(chain_tip::block_hash)),
            chain_tip::block_height.eq(excluded(chain_tip::block_height)),
            chain_tip::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// The dsCheck transactions a double spend of `victim` concerns: itself when it asked for the
/// check, and its dsCheck descendants among stored transactions (an unconfirmed ancestor's double
/// spend is theirs), with what their callbacks need.
#[derive(Debug, QueryableByName)]
struct Concerned {
    #[diesel(sql_type = BigInt)]
    tx_internal_id: i64,
    #[diesel(sql_type = Bytea)]
    txid: Vec<u8>,
    #[diesel(sql_type = Nullable<Text>)]
    callback_url: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    callback_token: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    callback_encryption: Option<String>,
    #[diesel(sql_type = Bool)]
    fresh: bool,
}

/// Records a double spend of `victim` by `ds_txid` for every dsCheck transaction it concerns
/// (`block`: mined in it; `None`: an attempt a node saw), and writes a callback for each record
/// that is new. Returns the callbacks written.
pub async fn double_spent(
    conn: &mut AsyncPgConnection,
    victim: &Txid,
    block: Option<(BlockHash, u64)>,
    ds_txid: &Txid,
    ds_tx_hex: &str,
) -> Result<usize, DbError> {
    let payload = hex::decode(ds_tx_hex).ok();
    let record = match block {
        Some(_) => {
            "INSERT INTO tx_block_double_spends (tx_internal_id, block_hash, block_height, ds_txid, ds_tx_payload) \
             SELECT tx_internal_id, $3, $4, $2, $5 FROM concerned ON CONFLICT DO NOTHING RETURNING tx_internal_id"
        }
        None => {
            "INSERT INTO tx_mempool_double_spend_attempts (tx_internal_id, ds_txid, ds_tx_payload) \
             SELECT tx_internal_id, $2, $5 FROM concerned ON CONFLICT DO NOTHING RETURNING tx_internal_id"
        }
    };
    let rows: Vec<Concerned> = diesel::sql_query(format!(
        "WITH RECURSIVE family (tx_internal_id, txid, depth) AS ( \
             SELECT tx_internal_id, txid, 0 FROM txs WHERE txid = $1 \
             UNION \
             SELECT t.tx_internal_id, t.txid, f.depth + 1 FROM family f \
             JOIN tx_inputs i ON i.prev_txid = f.txid JOIN txs t ON t.tx_internal_id = i.tx_internal_id \
             WHERE f.depth < 100), \
         concerned AS (SELECT DISTINCT t.* FROM txs t JOIN family f USING (tx_internal_id) \
                       WHERE t.ds_check AND t.txid <> $2), \
         recorded AS ({record}) \
         SELECT c.tx_internal_id, c.txid, c.callback_url, c.callback_token, c.callback_encryption, \
                c.tx_internal_id IN (SELECT tx_internal_id FROM recorded) AS fresh \
         FROM concerned c"
    ))
    .bind::<Bytea, _>(victim.internal().to_vec())
    .bind::<Bytea, _>(ds_txid.internal().to_vec())
    .bind::<Nullable<Bytea>, _>(block.map(|b| b.0.internal().to_vec()))
    .bind::<BigInt, _>(block.map_or(-1, |b| i64::try_from(b.1).unwrap_or(i64::MAX)))
    .bind::<Nullable<Bytea>, _>(payload)
    .load(conn)
    .await?;
    let due: Vec<NewCallback> = rows
        .iter()
        .filter(|r| r.fresh)
        .filter_map(|r| {
            Some(Subscriber {
                tx_internal_id: r.tx_internal_id,
                txid: Txid::from_internal_slice(&r.txid)?,
                url: r.callback_url.clone().filter(|u| !u.is_empty())?,
                token: r.callback_token.clone(),
                encryption: r.callback_encryption.clone(),
                merkle_format: None,
            })
        })
        .map(|who| callbacks::double_spend(&who, block, *ds_txid, ds_tx_hex))
        .collect();
    Ok(callbacks::insert(conn, &due).await?)
}
