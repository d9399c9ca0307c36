//! Native mode's matching: the pushdata hashes of new transactions (from the mempool or a block)
//! against the registered tip filters, and their inputs against the watched outpoints. The
//! matches are queued for delivery and the spends recorded in one transaction; the spends are
//! returned for the account websockets.

use std::collections::{BTreeMap, HashMap, HashSet};

use bsv_primitives::{BlockHash, Transaction, Txid};
use db_kit::{Db, DbError};
use diesel_async::AsyncConnection;
use serde_json::json;

use crate::formats::{Outpoint, OutputSpend};
use crate::pushdata;
use crate::store;

/// Which accounts watch which outpoints.
pub type Watches = HashMap<Outpoint, Vec<i64>>;

/// Where the transactions were seen.
#[derive(Debug, Clone, Copy)]
pub enum Seen {
    /// In a node's mempool.
    Mempool,
    /// In a best-chain block at a height.
    Block(BlockHash, i64),
}

/// What one round of matching found, before it is written.
#[derive(Debug, Default)]
pub struct Found {
    /// Per delivery key: the account and its matches.
    deliveries: BTreeMap<String, (i64, Vec<serde_json::Value>)>,
    /// Spends of watched outpoints, with the accounts watching each.
    spends: Vec<(OutputSpend, Vec<i64>)>,
}

impl Found {
    /// Number of match batches to deliver.
    pub fn deliveries(&self) -> usize {
        self.deliveries.len()
    }

    /// The spends found, with their watchers.
    pub fn spends(&self) -> &[(OutputSpend, Vec<i64>)] {
        &self.spends
    }
}

/// Matches `txs` (seen at `seen`) against the registrations valid at `now`, adding to `found`:
/// one pushdata-hash query for the whole chunk.
pub async fn match_chunk(
    db: &Db,
    txs: &[Transaction],
    seen: Seen,
    watches: &Watches,
    now: i64,
    found: &mut Found,
) -> Result<(), DbError> {
    let per_tx: Vec<(Txid, Vec<pushdata::Found>)> =
        txs.iter().map(|tx| (tx.txid(), pushdata::in_transaction(tx.as_chain_gang()))).collect();
    let unique: HashSet<[u8; 32]> =
        per_tx.iter().flat_map(|(_, f)| f.iter().map(|m| m.pushdata_hash)).collect();
    let hashes: Vec<Vec<u8>> = unique.iter().map(|h| h.to_vec()).collect();
    let registered = {
        let mut conn = db.conn().await?;
        store::registered_hashes(&mut conn, &hashes, now).await?
    };
    let mut accounts_by_hash: HashMap<[u8; 32], Vec<i64>> = HashMap::new();
    for (account, hash) in registered {
        accounts_by_hash.entry(hash).or_default().push(account);
    }
    let block = match seen {
        Seen::Mempool => None,
        Seen::Block(hash, _) => Some(hash),
    };
    for (txid, matches) in &per_tx {
        for m in matches {
            for account in accounts_by_hash.get(&m.pushdata_hash).into_iter().flatten() {
                // A block's matches go in one batch per account; a mempool transaction's in one
                // per account and transaction (the same one seen again is the same key).
                let key = match block {
                    Some(b) => format!("tip:{account}:block:{b}"),
                    None => format!("tip:{account}:tx:{txid}"),
                };
                let entry = found.deliveries.entry(key).or_insert_with(|| (*account, Vec::new()));
                entry.1.push(json!({
                    "pushDataHashHex": hex::encode(m.pushdata_hash),
                    "transactionId": txid.to_string(),
                    "transactionIndex": m.index,
                    "flags": m.flags,
                }));
            }
        }
    }
    if !watches.is_empty() {
        let block_bytes = block.map_or([0u8; 32], |b| *b.internal());
        for tx in txs.iter().filter(|t| !t.is_coinbase()) {
            let txid = tx.txid();
            for (in_index, op) in tx.spent_outpoints().enumerate() {
                let out = (*op.txid.internal(), op.vout);
                if let Some(accounts) = watches.get(&out) {
                    let spend = OutputSpend {
                        out,
                        in_tx: *txid.internal(),
                        in_index: in_index as u32,
                        block: block_bytes,
                    };
                    found.spends.push((spend, accounts.clone()));
                }
            }
        }
    }
    Ok(())
}

/// Writes what was found (and, for a block, that it was matched) in one transaction; keeps in
/// `found` only the spends not seen before (those the sockets are told of).
pub async fn commit(db: &Db, found: &mut Found, seen: Seen) -> Result<(), DbError> {
    // A mempool batch that matched nothing writes nothing (a block is still recorded as matched).
    if matches!(seen, Seen::Mempool) && found.deliveries.is_empty() && found.spends.is_empty() {
        return Ok(());
    }
    let block_id = match seen {
        Seen::Mempool => serde_json::Value::Null,
        Seen::Block(hash, _) => json!(hash.to_string()),
    };
    let deliveries = &found.deliveries;
    let spends: Vec<OutputSpend> = found.spends.iter().map(|(s, _)| *s).collect();
    let mut conn = db.conn().await?;
    let new = conn
        .transaction::<_, DbError, _>(async move |conn| {
            for (key, (account, matches)) in deliveries {
                let body = json!({"blockId": block_id, "matches": matches}).to_string();
                store::enqueue(conn, key, *account, &body).await?;
            }
            let new = store::record_spends(conn, &spends).await?;
            if let Seen::Block(hash, height) = seen {
                store::mark_indexed(conn, hash.internal(), height).await?;
            }
            Ok(new)
        })
        .await?;
    found.spends.retain(|(s, _)| new.contains(s));
    Ok(())
}

/// The current watches, by outpoint.
pub async fn load_watches(db: &Db) -> Result<Watches, DbError> {
    let mut watches = Watches::new();
    for (outpoint, account) in store::all_watches(db).await? {
        watches.entry(outpoint).or_default().push(account);
    }
    Ok(watches)
}
