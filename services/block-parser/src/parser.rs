//! Parses the blocks that joined the best chain, oldest first: each is streamed from a node
//! (`getblock <hash> 0`, never whole in memory), its Merkle root checked against the stored header,
//! and every registered transaction in it becomes a "mined" event with a TSC proof checked against
//! that header. The events and the block's "parsed" mark commit together, so a block killed in
//! the middle is parsed again from the start and no event is written twice in effect.
//!
//! A singleton (an advisory lock, re-checked before each block): other replicas stand by.

use std::sync::Arc;
use std::time::Duration;

use bsv_primitives::{BlockHash, BlockHeader, BlockReader, OutPoint, ParseLimits, Txid};
use db_kit::{Db, DbError};
use diesel::prelude::*;
use diesel::sql_types::{Array, Bytea};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use node_directory::Nodes;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use wire_model::internal::ChainEvent;

use crate::schema::headers;

/// Name of the advisory lock that makes the parser a singleton.
pub const LOCK_NAME: &str = "block-parser:parser";

/// Registered txids looked up per query.
const LOOKUP_CHUNK: usize = 10_000;

/// Why a block could not be parsed (it is tried again).
#[derive(Debug, thiserror::Error)]
pub enum ParseBlockError {
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// No node could give the block.
    #[error("no node could give block {0}: {1}")]
    Fetch(BlockHash, String),
    /// The stream was cut or malformed, or its Merkle root or header do not match.
    #[error("block {0} is not what its header says: {1}")]
    Invalid(BlockHash, String),
}

/// What the parser needs.
#[derive(Debug, Clone)]
pub struct Parser {
    /// The `blocks` schema.
    pub db: Db,
    /// Where blocks come from.
    pub nodes: Arc<Nodes>,
    /// Woken after a block's events are committed (the outbox delivery).
    pub delivered: Arc<Notify>,
    /// Woken when blocks may be waiting (the follower switched the best chain).
    pub wake: Arc<Notify>,
    /// Counters for `status/blockParser` and the metrics.
    pub stats: crate::stats::Stats,
    /// Registrations mined this many blocks below a parsed block are dropped (no followed fork
    /// reaches them).
    pub prune_depth: u64,
}

/// A block to parse.
#[derive(Debug, Clone)]
struct Pending {
    header: BlockHeader,
    height: u64,
}

/// Runs until `cancel`: stands by until it holds the lock, then parses whatever is pending.
pub async fn run(parser: Parser, cancel: CancellationToken) {
    loop {
        let Some(mut lock) = acquire(&parser.db, LOCK_NAME, &cancel).await else { return };
        tracing::info!("block parser running");
        let mut pause = Duration::from_millis(200);
        loop {
            if !matches!(
                tokio::time::timeout(Duration::from_secs(10), Db::holds_advisory_lock(&mut lock, LOCK_NAME))
                    .await,
                Ok(Ok(true))
            ) {
                tracing::warn!("block parser lost its lock; standing by");
                break;
            }
            let wait = match next(&parser.db).await {
                Ok(Some(block)) => match parse(&parser, &block).await {
                    Ok(()) => {
                        pause = Duration::from_millis(200);
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!(block = %block.header.hash(), error = %e, "parsing failed; it is tried again");
                        parser.stats.error();
                        let _ = count_error(&parser.db, &block.header.hash()).await;
                        pause = (pause * 2).min(Duration::from_secs(10));
                        pause
                    }
                },
                Ok(None) => Duration::from_secs(1),
                Err(e) => {
                    tracing::warn!(error = %e, "the blocks to parse are unknown");
                    Duration::from_secs(1)
                }
            };
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = parser.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// A dedicated connection holding the advisory lock `name`, once no other replica holds it;
/// `None` when cancelled first.
pub(crate) async fn acquire(db: &Db, name: &str, cancel: &CancellationToken) -> Option<AsyncPgConnection> {
    loop {
        match db.dedicated().await {
            Ok(mut conn) => match Db::try_advisory_lock(&mut conn, name).await {
                Ok(true) => return Some(conn),
                Ok(false) => tracing::debug!(lock = name, "another replica holds the lock; standing by"),
                Err(e) => tracing::warn!(lock = name, error = %e, "taking the lock failed"),
            },
            Err(e) => tracing::warn!(lock = name, error = %e, "the database is unreachable"),
        }
        tokio::select! {
            _ = cancel.cancelled() => return None,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// The lowest best-chain block still to parse.
async fn next(db: &Db) -> Result<Option<Pending>, DbError> {
    let mut conn = db.conn().await?;
    let row: Option<(Vec<u8>, i64)> = headers::table
        .filter(headers::parse_wanted.eq(true))
        .filter(headers::parsed_at.is_null())
        .filter(headers::on_best_chain.eq(true))
        .order(headers::height)
        .select((headers::header, headers::height))
        .first(&mut conn)
        .await
        .optional()?;
    Ok(row.and_then(|(bytes, height)| {
        Some(Pending {
            header: BlockHeader::from_bytes(bytes.try_into().ok()?),
            height: u64::try_from(height).ok()?,
        })
    }))
}

/// Blocks waiting to be parsed (`status/blockparser`'s queue).
pub async fn queued(db: &Db) -> Result<i64, DbError> {
    let mut conn = db.conn().await?;
    Ok(headers::table
        .filter(headers::parse_wanted.eq(true))
        .filter(headers::parsed_at.is_null())
        .filter(headers::on_best_chain.eq(true))
        .count()
        .get_result(&mut conn)
        .await?)
}

async fn count_error(db: &Db, hash: &BlockHash) -> Result<(), DbError> {
    let mut conn = db.conn().await?;
    diesel::update(headers::table.find(hash.internal().to_vec()))
        .set(headers::parse_errors.eq(headers::parse_errors + 1))
        .execute(&mut conn)
        .await?;
    Ok(())
}

/// Registered outpoints and the registered transactions that spend them.
type Watched = std::collections::HashMap<OutPoint, Vec<Txid>>;

/// What one pass over a block found.
#[derive(Debug)]
struct BlockContents {
    /// Transactions in it.
    tx_count: u64,
    /// Serialized size.
    size: u64,
    /// The paths of the registered transactions in it.
    paths: Vec<bsv_primitives::LeafPath>,
    /// Double spends: the registered transaction, the spending one and its bytes.
    double_spends: Vec<(Txid, Txid, Vec<u8>)>,
    /// Time spent reading from the node.
    download: Duration,
}

/// Finds which of a chunk of txids are registered.
type Lookup<'a> = dyn FnMut(&[Txid]) -> Result<std::collections::HashSet<Txid>, String> + 'a;

/// Txids looked up at a time while a block streams by.
const SCAN_CHUNK: usize = 10_000;

/// Reads a block from a stream, one transaction in memory at a time: the registered ones
/// (`lookup`, a chunk of txids at a time) get their Merkle paths, inputs that spend watched
/// outpoints from another transaction are kept with the spender; the header, the Merkle root and
/// the size are checked on the way.
fn scan_block<R: std::io::Read>(
    stream: R,
    expected: &BlockHeader,
    watched: &Watched,
    lookup: &mut Lookup<'_>,
) -> Result<BlockContents, String> {
    let started = std::time::Instant::now();
    // The root comes from the paths (one tree, not two) and is compared below.
    let mut reader =
        BlockReader::new(stream, ParseLimits::default()).map_err(|e| e.to_string())?.root_checked_by_caller();
    if reader.header() != expected {
        return Err("the node sent another header".into());
    }
    let mut paths = bsv_primitives::MerklePaths::new();
    let mut chunk: Vec<Txid> = Vec::with_capacity(SCAN_CHUNK);
    let mut double_spends = Vec::new();
    while let Some(tx) = reader.next_skimmed() {
        let tx = tx.map_err(|e| e.to_string())?;
        let txid = tx.txid();
        if !watched.is_empty() && !tx.is_coinbase() {
            let victims: std::collections::BTreeSet<Txid> = tx
                .spent_outpoints()
                .filter_map(|op| watched.get(&op))
                .flatten()
                .filter(|victim| **victim != txid)
                .copied()
                .collect();
            if !victims.is_empty() {
                let bytes = tx.bytes().to_vec();
                double_spends.extend(victims.into_iter().map(|v| (v, txid, bytes.clone())));
            }
        }
        chunk.push(txid);
        if chunk.len() == SCAN_CHUNK {
            track(&mut paths, &mut chunk, lookup)?;
        }
    }
    track(&mut paths, &mut chunk, lookup)?;
    let summary = reader.finish().map_err(|e| e.to_string())?;
    let (root, paths) = paths.finish().ok_or("the block has no transactions")?;
    if root != expected.merkle_root() {
        return Err("the Merkle root differs from the header's".into());
    }
    let size = 80 + bsv_primitives::varint_size(summary.tx_count) as u64 + summary.tx_bytes;
    Ok(BlockContents { tx_count: summary.tx_count, size, paths, double_spends, download: started.elapsed() })
}

/// Pushes a chunk of txids into the paths, tracking the registered ones.
fn track(
    paths: &mut bsv_primitives::MerklePaths,
    chunk: &mut Vec<Txid>,
    lookup: &mut Lookup<'_>,
) -> Result<(), String> {
    if chunk.is_empty() {
        return Ok(());
    }
    let found = lookup(chunk)?;
    for txid in chunk.drain(..) {
        paths.push(txid, found.contains(&txid));
    }
    Ok(())
}

/// Streams a block from the first node that gives it and scans it (on a blocking thread; the
/// registered lookups go back to the runtime).
async fn read_block(
    parser: &Parser,
    block: &Pending,
    watched: Arc<Watched>,
) -> Result<BlockContents, ParseBlockError> {
    let hash = block.header.hash();
    let nodes = parser.nodes.current().await.map_err(|e| ParseBlockError::Fetch(hash, e.to_string()))?;
    let mut last_error = "no nodes".to_owned();
    for node in nodes {
        let stream = match node.rpc.get_block_stream(&hash).await {
            Ok(s) => s,
            Err(e) => {
                last_error = format!("{}: {e}", node.id);
                continue;
            }
        };
        let bridge = tokio_util::io::SyncIoBridge::new(stream);
        let expected = block.header.clone();
        let watched = watched.clone();
        let db = parser.db.clone();
        let runtime = tokio::runtime::Handle::current();
        let read = tokio::task::spawn_blocking(move || {
            let mut lookup =
                |chunk: &[Txid]| runtime.block_on(registered(&db, chunk)).map_err(|e| e.to_string());
            scan_block(bridge, &expected, &watched, &mut lookup)
        })
        .await
        .map_err(|e| ParseBlockError::Invalid(hash, e.to_string()))?;
        return read.map_err(|e| ParseBlockError::Invalid(hash, e));
    }
    Err(ParseBlockError::Fetch(hash, last_error))
}

/// Every registered outpoint (dsCheck transactions and their unconfirmed ancestors; pruned once
/// mined deep, so the set stays small).
async fn watched(db: &Db) -> Result<Watched, DbError> {
    use crate::schema::registered_spends as rs;
    let mut conn = db.conn().await?;
    let rows: Vec<(Vec<u8>, i64, Vec<u8>)> =
        rs::table.select((rs::prev_txid, rs::prev_n, rs::txid)).load(&mut conn).await?;
    let mut map = Watched::new();
    for (prev, n, txid) in rows {
        let (Some(prev), Ok(vout), Some(txid)) =
            (Txid::from_internal_slice(&prev), u32::try_from(n), Txid::from_internal_slice(&txid))
        else {
            continue;
        };
        map.entry(OutPoint { txid: prev, vout }).or_default().push(txid);
    }
    Ok(map)
}

/// Registered txids among `txids`.
async fn registered(db: &Db, txids: &[Txid]) -> Result<std::collections::HashSet<Txid>, DbError> {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = Bytea)]
        txid: Vec<u8>,
    }
    let mut conn = db.conn().await?;
    let mut found = std::collections::HashSet::new();
    for chunk in txids.chunks(LOOKUP_CHUNK) {
        let keys: Vec<Vec<u8>> = chunk.iter().map(|t| t.internal().to_vec()).collect();
        let rows: Vec<Row> = diesel::sql_query("SELECT txid FROM registered_txids WHERE txid = ANY($1)")
            .bind::<Array<Bytea>, _>(keys)
            .load(&mut conn)
            .await?;
        found.extend(rows.iter().filter_map(|r| Txid::from_internal_slice(&r.txid)));
    }
    Ok(found)
}

/// The events of one block: a "mined" event, with a proof checked against the header, for every
/// registered transaction in it, and a "double spend" event for every watched outpoint it spends.
fn events_of(block: &Pending, contents: &BlockContents) -> Result<Vec<ChainEvent>, ParseBlockError> {
    let hash = block.header.hash();
    let mut events = Vec::with_capacity(contents.paths.len() + contents.double_spends.len());
    for path in &contents.paths {
        let proof = path.tsc_proof(hash);
        proof
            .verify_against_header(&block.header)
            .map_err(|e| ParseBlockError::Invalid(hash, format!("the proof of {}: {e}", path.txid)))?;
        events.push(ChainEvent::Mined {
            txid: path.txid,
            block_hash: hash,
            block_height: block.height,
            header: hex::encode(block.header.as_bytes()),
            proof,
        });
    }
    events.extend(contents.double_spends.iter().map(|(victim, ds_txid, bytes)| ChainEvent::DoubleSpend {
        txid: *victim,
        block_hash: hash,
        block_height: block.height,
        ds_txid: *ds_txid,
        ds_tx: hex::encode(bytes),
    }));
    Ok(events)
}

/// Parses one block and commits its events with its "parsed" mark.
async fn parse(parser: &Parser, block: &Pending) -> Result<(), ParseBlockError> {
    let started = std::time::Instant::now();
    let hash = block.header.hash();
    let watched = Arc::new(watched(&parser.db).await?);
    let contents = read_block(parser, block, watched).await?;
    let scanned = started.elapsed();
    let events = events_of(block, &contents)?;
    let proven = started.elapsed();
    let found_keys: Vec<Vec<u8>> = contents.paths.iter().map(|p| p.txid.internal().to_vec()).collect();
    let height = i64::try_from(block.height).unwrap_or(i64::MAX);
    let buried = height.saturating_sub(i64::try_from(parser.prune_depth).unwrap_or(i64::MAX));
    let mut conn = parser.db.conn().await?;
    let key = hash.internal().to_vec();
    let size = contents.size;
    let since_seen = seen_for(&mut conn, &key).await;
    let committed = conn
        .transaction::<_, DbError, _>(async move |conn| {
            // Still best and unparsed (a reorg meanwhile leaves it for later, without events).
            let marked = diesel::update(
                headers::table
                    .find(&key)
                    .filter(headers::on_best_chain.eq(true))
                    .filter(headers::parsed_at.is_null()),
            )
            .set((
                headers::parsed_at.eq(diesel::dsl::now),
                headers::parse_bytes.eq(i64::try_from(size).unwrap_or(i64::MAX)),
            ))
            .execute(conn)
            .await?;
            if marked != 1 {
                return Ok(None);
            }
            let t = std::time::Instant::now();
            crate::outbox::append(conn, &events).await?;
            let appended = t.elapsed();
            remember_mined(conn, found_keys, height, buried).await?;
            Ok(Some((appended, t.elapsed() - appended)))
        })
        .await?;
    if let Some((appended, remembered)) = committed {
        parser.delivered.notify_one();
        parser.stats.parsed(&crate::stats::Parsed {
            hash,
            height: block.height,
            bytes: contents.size,
            txs: contents.tx_count,
            found: contents.paths.len() as u64,
            double_spends: contents.double_spends.len() as u64,
            took: started.elapsed(),
            download: contents.download,
            since_seen,
        });
        tracing::info!(
            block = %hash, height = block.height, txs = contents.tx_count, txs.found = contents.paths.len(),
            double_spends = contents.double_spends.len(),
            ms.scan = scanned.as_millis() as u64, ms.proofs = (proven - scanned).as_millis() as u64,
            ms.commit = (started.elapsed() - proven).as_millis() as u64,
            ms.outbox = appended.as_millis() as u64, ms.registrations = remembered.as_millis() as u64, "block parsed"
        );
    }
    Ok(())
}

/// How long ago the block's header was stored.
async fn seen_for(conn: &mut AsyncPgConnection, key: &[u8]) -> Duration {
    let seen: Option<time::OffsetDateTime> =
        headers::table.find(key).select(headers::seen_at).first(conn).await.optional().ok().flatten();
    seen.map_or(Duration::ZERO, |at| {
        Duration::try_from(time::OffsetDateTime::now_utc() - at).unwrap_or(Duration::ZERO)
    })
}

/// Notes where the found transactions were mined and drops the registrations buried deeper than
/// any followed fork (with the outpoints they watched).
async fn remember_mined(
    conn: &mut AsyncPgConnection,
    found: Vec<Vec<u8>>,
    height: i64,
    buried: i64,
) -> Result<(), DbError> {
    use crate::schema::registered_txids as rt;
    if !found.is_empty() {
        diesel::update(rt::table.filter(rt::txid.eq_any(found)))
            .set(rt::mined_height.eq(height))
            .execute(conn)
            .await?;
    }
    diesel::sql_query(
        "WITH old AS (DELETE FROM registered_txids WHERE mined_height < $1 RETURNING txid) \
         DELETE FROM registered_spends WHERE txid IN (SELECT txid FROM old)",
    )
    .bind::<diesel::sql_types::BigInt, _>(buried)
    .execute(conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A transaction spending `prev:vout` (or the null outpoint) to one `OP_TRUE` output.
    fn tx(prev: [u8; 32], vout: u32, tag: u8) -> Vec<u8> {
        let mut t = 1u32.to_le_bytes().to_vec();
        t.push(1);
        t.extend_from_slice(&prev);
        t.extend_from_slice(&vout.to_le_bytes());
        t.extend_from_slice(&[2, 0x51, tag]);
        t.extend_from_slice(&u32::MAX.to_le_bytes());
        t.push(1);
        t.extend_from_slice(&1000u64.to_le_bytes());
        t.extend_from_slice(&[1, 0x51]);
        t.extend_from_slice(&0u32.to_le_bytes());
        t
    }

    /// A block of the given transactions with a correct header.
    fn block(txs: &[Vec<u8>]) -> (BlockHeader, Vec<u8>) {
        let txids: Vec<Txid> = txs.iter().map(|t| Txid::from_internal(bsv_primitives::sha256d(t))).collect();
        let root = bsv_primitives::merkle_root(&txids).unwrap_or_default();
        let mut header = 1u32.to_le_bytes().to_vec();
        header.extend_from_slice(&[0; 32]);
        header.extend_from_slice(&root);
        header.extend_from_slice(&[0; 12]);
        let header = BlockHeader::from_bytes(header.try_into().unwrap_or([0; 80]));
        let mut bytes = header.as_bytes().to_vec();
        bytes.push(txs.len() as u8);
        for t in txs {
            bytes.extend_from_slice(t);
        }
        (header, bytes)
    }

    fn watched_outpoint(prev: [u8; 32], vout: u32, by: Txid) -> Watched {
        Watched::from([(OutPoint { txid: Txid::from_internal(prev), vout }, vec![by])])
    }

    #[test]
    fn a_block_is_scanned_for_txids_and_double_spends_of_watched_outpoints() {
        let spent = [9; 32];
        let ours = Txid::from_internal([5; 32]);
        let (header, bytes) = block(&[tx([0; 32], u32::MAX, 0), tx(spent, 1, 1), tx([8; 32], 0, 2)]);
        let mut all = |chunk: &[Txid]| Ok(chunk.iter().copied().collect());
        let contents =
            scan_block(bytes.as_slice(), &header, &watched_outpoint(spent, 1, ours), &mut all).unwrap();
        assert_eq!(contents.tx_count, 3);
        assert_eq!(contents.paths.len(), 3, "every txid tracked");
        let txids: Vec<Txid> = contents.paths.iter().map(|p| p.txid).collect();
        assert_eq!(contents.size, bytes.len() as u64);
        assert_eq!(contents.double_spends.len(), 1);
        let (victim, ds, raw) = &contents.double_spends[0];
        assert_eq!(*victim, ours);
        assert_eq!(*ds, txids[1]);
        assert_eq!(raw, &tx(spent, 1, 1));
        // The watched transaction itself in the block is no double spend.
        let itself = txids[1];
        let clean =
            scan_block(bytes.as_slice(), &header, &watched_outpoint(spent, 1, itself), &mut all).unwrap();
        assert!(clean.double_spends.is_empty());
    }

    #[test]
    fn a_cut_or_malformed_stream_or_another_header_is_an_error_never_a_partial_answer() {
        let (header, bytes) = block(&[tx([0; 32], u32::MAX, 0), tx([8; 32], 0, 2)]);
        let none = Watched::new();
        let mut nothing = |_: &[Txid]| Ok(std::collections::HashSet::new());
        for cut in [10, 81, 100, bytes.len() - 1] {
            assert!(scan_block(&bytes[..cut], &header, &none, &mut nothing).is_err(), "cut at {cut}");
        }
        let mut count = bytes.clone();
        count[80] = 0xfe; // a transaction count far beyond the data
        assert!(scan_block(count.as_slice(), &header, &none, &mut nothing).is_err());
        let mut changed = bytes.clone();
        let last = changed.len() - 10;
        changed[last] ^= 0xff; // a transaction that no longer matches the Merkle root
        let err = scan_block(changed.as_slice(), &header, &none, &mut nothing).unwrap_err();
        assert!(err.contains("Merkle root"), "{err}");
        let (other, _) = block(&[tx([7; 32], 0, 3)]);
        let err = scan_block(bytes.as_slice(), &other, &none, &mut nothing).unwrap_err();
        assert_eq!(err, "the node sent another header");
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(scan_block(trailing.as_slice(), &header, &none, &mut nothing).is_err());
    }
}
