//! The header chain in the `blocks` schema: headers as the nodes reported them, and which of them
//! form the best chain (the most work). Switching the best chain is one transaction, so readers
//! never see two best headers at one height or a gap.

use bsv_primitives::{BlockHash, BlockHeader};
use db_kit::{Db, DbError};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Bytea};
use diesel_async::{AsyncConnection, RunQueryDsl};
use num_bigint::BigUint;
use wire_model::internal::ChainEvent;

/// A stored header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredHeader {
    /// The 80 bytes and the hash.
    pub header: BlockHeader,
    /// Height.
    pub height: u64,
    /// Cumulative work, 32 big-endian bytes.
    pub chain_work: [u8; 32],
    /// Transactions in the block.
    pub tx_count: u64,
    /// Whether it is on the best chain.
    pub on_best_chain: bool,
}

impl StoredHeader {
    /// The block hash.
    pub fn hash(&self) -> BlockHash {
        self.header.hash()
    }

    /// The compact target of the header (`bits`).
    pub fn bits(&self) -> u32 {
        let b = self.header.as_bytes();
        u32::from_le_bytes([b[72], b[73], b[74], b[75]])
    }
}

/// A header to store, as a node reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewHeader {
    /// The 80 bytes and the hash.
    pub header: BlockHeader,
    /// Height.
    pub height: u64,
    /// Cumulative work, 32 big-endian bytes.
    pub chain_work: [u8; 32],
    /// Transactions in the block.
    pub tx_count: u64,
    /// Stored as part of the best chain (an ancestor of a best-chain header filling a gap).
    pub on_best_chain: bool,
}

#[derive(diesel::QueryableByName)]
struct Row {
    #[diesel(sql_type = Bytea)]
    header: Vec<u8>,
    #[diesel(sql_type = BigInt)]
    height: i64,
    #[diesel(sql_type = Bytea)]
    chain_work: Vec<u8>,
    #[diesel(sql_type = BigInt)]
    tx_count: i64,
    #[diesel(sql_type = Bool)]
    on_best_chain: bool,
}

impl Row {
    fn into_stored(self) -> Option<StoredHeader> {
        Some(StoredHeader {
            header: BlockHeader::from_bytes(self.header.try_into().ok()?),
            height: u64::try_from(self.height).ok()?,
            chain_work: self.chain_work.try_into().ok()?,
            tx_count: u64::try_from(self.tx_count).ok()?,
            on_best_chain: self.on_best_chain,
        })
    }
}

const COLUMNS: &str = "header, height, chain_work, tx_count, on_best_chain";

fn stored(rows: Vec<Row>) -> Vec<StoredHeader> {
    rows.into_iter().filter_map(Row::into_stored).collect()
}

/// True when the header is stored.
pub async fn is_known(db: &Db, hash: &BlockHash) -> Result<bool, DbError> {
    Ok(by_hash(db, hash).await?.is_some())
}

/// The stored header of `hash`.
pub async fn by_hash(db: &Db, hash: &BlockHash) -> Result<Option<StoredHeader>, DbError> {
    let mut conn = db.conn().await?;
    let rows: Vec<Row> = diesel::sql_query(format!("SELECT {COLUMNS} FROM headers WHERE hash = $1"))
        .bind::<Bytea, _>(hash.internal().to_vec())
        .load(&mut conn)
        .await?;
    Ok(stored(rows).pop())
}

/// Stores headers (already stored ones are left as they are).
pub async fn insert(db: &Db, headers: &[NewHeader]) -> Result<(), DbError> {
    if headers.is_empty() {
        return Ok(());
    }
    let mut conn = db.conn().await?;
    let column = |f: fn(&NewHeader) -> Vec<u8>| headers.iter().map(f).collect::<Vec<_>>();
    diesel::sql_query(
        "INSERT INTO headers (hash, height, prev_hash, header, chain_work, tx_count, on_best_chain) \
         SELECT * FROM unnest($1::bytea[], $2::bigint[], $3::bytea[], $4::bytea[], $5::bytea[], $6::bigint[], \
                              $7::boolean[]) \
         ON CONFLICT DO NOTHING",
    )
    .bind::<diesel::sql_types::Array<Bytea>, _>(column(|h| h.header.hash().internal().to_vec()))
    .bind::<diesel::sql_types::Array<BigInt>, _>(
        headers.iter().map(|h| i64::try_from(h.height).unwrap_or(i64::MAX)).collect::<Vec<_>>(),
    )
    .bind::<diesel::sql_types::Array<Bytea>, _>(column(|h| h.header.prev_hash().internal().to_vec()))
    .bind::<diesel::sql_types::Array<Bytea>, _>(column(|h| h.header.as_bytes().to_vec()))
    .bind::<diesel::sql_types::Array<Bytea>, _>(column(|h| h.chain_work.to_vec()))
    .bind::<diesel::sql_types::Array<BigInt>, _>(
        headers.iter().map(|h| i64::try_from(h.tx_count).unwrap_or(i64::MAX)).collect::<Vec<_>>(),
    )
    .bind::<diesel::sql_types::Array<Bool>, _>(headers.iter().map(|h| h.on_best_chain).collect::<Vec<_>>())
    .execute(&mut conn)
    .await?;
    Ok(())
}

/// The tip of the best chain.
pub async fn best_tip(db: &Db) -> Result<Option<StoredHeader>, DbError> {
    let mut conn = db.conn().await?;
    let rows: Vec<Row> = diesel::sql_query(format!(
        "SELECT {COLUMNS} FROM headers WHERE on_best_chain ORDER BY height DESC LIMIT 1"
    ))
    .load(&mut conn)
    .await?;
    Ok(stored(rows).pop())
}

/// The stored header with the most chain work (the first seen among equals): the best chain's
/// tip once [`switch_best`] has run.
pub async fn most_work(db: &Db) -> Result<Option<StoredHeader>, DbError> {
    let mut conn = db.conn().await?;
    let rows: Vec<Row> = diesel::sql_query(format!(
        "SELECT {COLUMNS} FROM headers ORDER BY chain_work DESC, seen_at, hash LIMIT 1"
    ))
    .load(&mut conn)
    .await?;
    Ok(stored(rows).pop())
}

/// What a switch of the best chain changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Switch {
    /// Headers that left the best chain, highest first.
    pub disconnected: Vec<BlockHash>,
    /// Headers that joined it, lowest first.
    pub connected: Vec<BlockHash>,
}

#[derive(diesel::QueryableByName)]
struct Hash {
    #[diesel(sql_type = Bytea)]
    hash: Vec<u8>,
}

fn hashes(rows: Vec<Hash>) -> Vec<BlockHash> {
    rows.into_iter().filter_map(|r| BlockHash::from_internal_slice(&r.hash)).collect()
}

/// Makes `tip` and its ancestors the best chain: in one transaction, the old branch above the fork
/// point leaves and the new one joins.
pub async fn switch_best(db: &Db, tip: &BlockHash) -> Result<Switch, DbError> {
    let mut conn = db.conn().await?;
    let tip = tip.internal().to_vec();
    conn.transaction::<_, DbError, _>(async move |conn| {
        // The new branch: from the tip back to (not including) the first best-chain ancestor.
        let branch = "WITH RECURSIVE branch AS ( \
                SELECT hash, prev_hash, height, on_best_chain FROM headers WHERE hash = $1 \
                UNION ALL \
                SELECT h.hash, h.prev_hash, h.height, h.on_best_chain FROM headers h \
                JOIN branch b ON h.hash = b.prev_hash WHERE NOT b.on_best_chain) ";
        let joining: Vec<Hash> = diesel::sql_query(format!(
            "{branch} SELECT hash FROM branch WHERE NOT on_best_chain ORDER BY height"
        ))
        .bind::<Bytea, _>(&tip)
        .load(conn)
        .await?;
        if joining.is_empty() {
            return Ok(Switch::default());
        }
        let leaving: Vec<Hash> = diesel::sql_query(format!(
            "{branch} UPDATE headers SET on_best_chain = false WHERE on_best_chain \
             AND height >= (SELECT min(height) FROM branch WHERE NOT on_best_chain) \
             RETURNING hash, height"
        ))
        .bind::<Bytea, _>(&tip)
        .load(conn)
        .await?;
        // Joining blocks are to be parsed (again, if they were best before).
        diesel::sql_query(format!(
            "{branch} UPDATE headers SET on_best_chain = true, parse_wanted = true, parsed_at = NULL \
             WHERE hash IN (SELECT hash FROM branch WHERE NOT on_best_chain)"
        ))
        .bind::<Bytea, _>(&tip)
        .execute(conn)
        .await?;
        let mut disconnected = hashes(leaving);
        disconnected.reverse();
        let connected = hashes(joining);
        // mapi hears of it in this transaction's outbox: what left, then where the tip is.
        let mut events: Vec<ChainEvent> =
            disconnected.iter().map(|h| ChainEvent::Disconnected { block_hash: *h }).collect();
        let tip_height: i64 = crate::schema::headers::table
            .find(&tip)
            .select(crate::schema::headers::height)
            .first(conn)
            .await?;
        if let (Some(block_hash), Ok(block_height)) = (connected.last(), u64::try_from(tip_height)) {
            events.push(ChainEvent::Tip { block_hash: *block_hash, block_height });
        }
        crate::outbox::append(conn, &events).await?;
        Ok(Switch { disconnected, connected })
    })
    .await
}

/// The parent hash of the lowest best-chain header whose parent is not stored (a gap left by an
/// interrupted walk, or the history below the first header seen); `None` when the best chain is
/// whole down to the genesis block.
pub async fn lowest_gap(db: &Db) -> Result<Option<BlockHash>, DbError> {
    let mut conn = db.conn().await?;
    let rows: Vec<Hash> = diesel::sql_query(
        "SELECT h.prev_hash AS hash FROM headers h WHERE h.on_best_chain AND h.height > 0 \
         AND NOT EXISTS (SELECT 1 FROM headers p WHERE p.hash = h.prev_hash) ORDER BY h.height LIMIT 1",
    )
    .load(&mut conn)
    .await?;
    Ok(hashes(rows).pop())
}

/// Up to `count` best-chain headers from `height` up.
pub async fn best_by_height(db: &Db, height: u64, count: u64) -> Result<Vec<StoredHeader>, DbError> {
    let mut conn = db.conn().await?;
    let rows: Vec<Row> = diesel::sql_query(format!(
        "SELECT {COLUMNS} FROM headers WHERE on_best_chain AND height >= $1 ORDER BY height LIMIT $2"
    ))
    .bind::<BigInt, _>(i64::try_from(height).unwrap_or(i64::MAX))
    .bind::<BigInt, _>(i64::try_from(count).unwrap_or(i64::MAX))
    .load(&mut conn)
    .await?;
    Ok(stored(rows))
}

/// Every tip (a header nothing builds on), the best one first: the best chain's and those of the
/// forks within `max_fork_depth` of the best height.
pub async fn tips(db: &Db, max_fork_depth: u64) -> Result<Vec<StoredHeader>, DbError> {
    let mut conn = db.conn().await?;
    let rows: Vec<Row> = diesel::sql_query(format!(
        "SELECT {COLUMNS} FROM headers h \
         WHERE NOT EXISTS (SELECT 1 FROM headers c WHERE c.prev_hash = h.hash) \
           AND h.height + $1 >= (SELECT coalesce(max(height), 0) FROM headers WHERE on_best_chain) \
         ORDER BY on_best_chain DESC, chain_work DESC, height DESC"
    ))
    .bind::<BigInt, _>(i64::try_from(max_fork_depth).unwrap_or(i64::MAX))
    .load(&mut conn)
    .await?;
    Ok(stored(rows))
}

/// The work a header with compact target `bits` proves: 2^256 / (target + 1), as the node counts
/// it (saturating at `u128::MAX`, far beyond any real chain).
pub fn block_work(bits: u32) -> u128 {
    let exponent = bits >> 24;
    let mantissa = BigUint::from(bits & 0x007f_ffff);
    let target =
        if exponent <= 3 { mantissa >> (8 * (3 - exponent)) } else { mantissa << (8 * (exponent - 3)) };
    let work = (BigUint::from(1u8) << 256u32) / (target + 1u8);
    u128::try_from(work).unwrap_or(u128::MAX)
}

/// Chain work bytes as a number (saturating at `u128::MAX`).
pub fn work_number(bytes: &[u8; 32]) -> u128 {
    if bytes[..16].iter().any(|b| *b != 0) {
        return u128::MAX;
    }
    let mut low = [0u8; 16];
    low.copy_from_slice(&bytes[16..]);
    u128::from_be_bytes(low)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_follows_the_target() {
        // Regtest's easiest target: 2 hashes' worth (the node's chainwork grows by 2 per block).
        assert_eq!(block_work(0x207f_ffff), 2);
        // Mainnet's genesis target (difficulty 1): 0x100010001.
        assert_eq!(block_work(0x1d00_ffff), 0x1_0001_0001);
        let mut bytes = [0u8; 32];
        bytes[31] = 6;
        assert_eq!(work_number(&bytes), 6);
        bytes[0] = 1;
        assert_eq!(work_number(&bytes), u128::MAX);
    }
}
