//! Storage of submitted transactions: what is known, rows written before sending, statuses after.

use std::collections::HashMap;

use bsv_primitives::Txid;
use db_kit::{Db, DbError};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use time::OffsetDateTime;

use crate::schema::txs;

/// Rejected by the node (authenticated callers only).
pub const STATUS_NODE_REJECTED: i16 = -2;
/// Stored, being sent.
pub const STATUS_SENT_TO_NODE: i16 = -1;
/// Old or mined ("unknown old tx" in the reference).
pub const STATUS_MINED: i16 = 0;
/// Accepted by a node.
pub const STATUS_ACCEPTED: i16 = 1;
/// Given up by the mempool checker after too many missing-inputs rounds: not in any mempool.
pub const STATUS_MISSING_INPUTS_MAX: i16 = 2;

/// True for the statuses a repeated submission answers "Already known" without asking a node:
/// the transaction is in a mempool or a block. (A row given up for missing inputs is not: a node
/// is asked again, and its answer is the client's.)
pub fn is_settled(status: i16) -> bool {
    status == STATUS_MINED || status == STATUS_ACCEPTED
}

/// What is stored of a transaction that matters for a repeated submission.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = txs)]
pub struct StoredTx {
    /// Internal id.
    pub tx_internal_id: i64,
    /// Txid, internal byte order.
    pub txid: Vec<u8>,
    /// Status.
    pub tx_status: i16,
    /// Callback URL given at submission.
    pub callback_url: Option<String>,
    /// Merkle proof callback wanted.
    pub merkle_proof: bool,
    /// Double-spend callbacks wanted.
    pub ds_check: bool,
    /// Fee check passed for mining.
    pub ok_to_mine: bool,
    /// Submitter identity.
    pub identity: Option<String>,
    /// Its provider.
    pub identity_provider: Option<String>,
}

/// A row to write before sending.
#[derive(Debug, Clone)]
pub struct NewTx {
    /// Txid, internal byte order.
    pub txid: Vec<u8>,
    /// Raw transaction.
    pub payload: Option<Vec<u8>>,
    /// Callback URL.
    pub callback_url: Option<String>,
    /// Callback token.
    pub callback_token: Option<String>,
    /// Callback encryption.
    pub callback_encryption: Option<String>,
    /// Merkle proof callback wanted.
    pub merkle_proof: bool,
    /// Proof format.
    pub merkle_format: Option<String>,
    /// Double-spend callbacks wanted.
    pub ds_check: bool,
    /// Status ([`STATUS_SENT_TO_NODE`]).
    pub tx_status: i16,
    /// The quote the fee was checked against.
    pub policy_quote_id: Option<i64>,
    /// Fee check passed for mining.
    pub ok_to_mine: bool,
    /// Whether the quote's policies were sent with it.
    pub set_policy_quote: bool,
    /// Submitter identity.
    pub identity: Option<String>,
    /// Its provider.
    pub identity_provider: Option<String>,
}

/// The stored transactions among `txids`.
pub async fn existing(db: &Db, txids: &[Txid]) -> Result<HashMap<Txid, StoredTx>, DbError> {
    if txids.is_empty() {
        return Ok(HashMap::new());
    }
    let keys: Vec<Vec<u8>> = txids.iter().map(|t| t.internal().to_vec()).collect();
    let mut conn = db.conn().await?;
    let rows: Vec<StoredTx> =
        txs::table.filter(txs::txid.eq_any(keys)).select(StoredTx::as_select()).load(&mut conn).await?;
    Ok(rows.into_iter().filter_map(|r| Txid::from_internal_slice(&r.txid).map(|t| (t, r))).collect())
}

/// Writes rows before sending (one statement); a row a node rejected earlier is replaced.
///
/// One array parameter per column (`unnest`): the same statement text, prepared once per
/// connection, whatever the number of rows (a `VALUES` list would be a new statement, with 14
/// parameters a row, for every batch size).
pub async fn insert_sending<R: std::borrow::Borrow<NewTx>>(db: &Db, rows: &[R]) -> Result<(), DbError> {
    use diesel::sql_types::{Array, BigInt, Bool, Bytea, Nullable, SmallInt, Text};
    if rows.is_empty() {
        return Ok(());
    }
    let rows: Vec<&NewTx> = rows.iter().map(std::borrow::Borrow::borrow).collect();
    fn column<T: Clone>(rows: &[&NewTx], f: impl Fn(&NewTx) -> &T) -> Vec<T> {
        rows.iter().map(|r| f(r).clone()).collect()
    }
    let mut conn = db.conn().await?;
    diesel::sql_query(
        "INSERT INTO txs (txid, payload, callback_url, callback_token, callback_encryption, \
                          merkle_proof, merkle_format, ds_check, tx_status, policy_quote_id, \
                          ok_to_mine, set_policy_quote, identity, identity_provider) \
         SELECT * FROM unnest($1::bytea[], $2::bytea[], $3::text[], $4::text[], $5::text[], \
                              $6::bool[], $7::text[], $8::bool[], $9::int2[], $10::int8[], \
                              $11::bool[], $12::bool[], $13::text[], $14::text[]) \
         ON CONFLICT (txid) DO UPDATE SET \
             payload = EXCLUDED.payload, callback_url = EXCLUDED.callback_url, \
             callback_token = EXCLUDED.callback_token, \
             callback_encryption = EXCLUDED.callback_encryption, \
             merkle_proof = EXCLUDED.merkle_proof, merkle_format = EXCLUDED.merkle_format, \
             ds_check = EXCLUDED.ds_check, policy_quote_id = EXCLUDED.policy_quote_id, \
             ok_to_mine = EXCLUDED.ok_to_mine, set_policy_quote = EXCLUDED.set_policy_quote, \
             identity = EXCLUDED.identity, identity_provider = EXCLUDED.identity_provider, \
             tx_status = CASE WHEN txs.tx_status = -2 THEN -1 ELSE txs.tx_status END",
    )
    // Keep a status a node already gave (above); only a rejected row goes back to "sending".
    .bind::<Array<Bytea>, _>(column(&rows, |r| &r.txid))
    .bind::<Array<Nullable<Bytea>>, _>(column(&rows, |r| &r.payload))
    .bind::<Array<Nullable<Text>>, _>(column(&rows, |r| &r.callback_url))
    .bind::<Array<Nullable<Text>>, _>(column(&rows, |r| &r.callback_token))
    .bind::<Array<Nullable<Text>>, _>(column(&rows, |r| &r.callback_encryption))
    .bind::<Array<Bool>, _>(column(&rows, |r| &r.merkle_proof))
    .bind::<Array<Nullable<Text>>, _>(column(&rows, |r| &r.merkle_format))
    .bind::<Array<Bool>, _>(column(&rows, |r| &r.ds_check))
    .bind::<Array<SmallInt>, _>(column(&rows, |r| &r.tx_status))
    .bind::<Array<Nullable<BigInt>>, _>(column(&rows, |r| &r.policy_quote_id))
    .bind::<Array<Bool>, _>(column(&rows, |r| &r.ok_to_mine))
    .bind::<Array<Bool>, _>(column(&rows, |r| &r.set_policy_quote))
    .bind::<Array<Nullable<Text>>, _>(column(&rows, |r| &r.identity))
    .bind::<Array<Nullable<Text>>, _>(column(&rows, |r| &r.identity_provider))
    .execute(&mut conn)
    .await?;
    Ok(())
}

/// What the nodes answered for a set of submissions.
#[derive(Debug, Clone, Copy)]
pub struct Answers<'a> {
    /// Accepted or already known.
    pub accepted: &'a [Txid],
    /// Accepted ones block-parser took the registration of.
    pub registered: &'a [Txid],
    /// Refused, kept as rejected.
    pub keep: &'a [Txid],
    /// Refused, removed.
    pub remove: &'a [Txid],
}

/// Records what the nodes answered, in one statement whose commit does not wait for the WAL flush.
///
/// Why not durable: each row is already stored durably as "sent to node" before the nodes are
/// called. If this commit is lost in a crash, the mempool checker adopts rows left in that state
/// longer than its grace period and sends them again, so the outcome is recovered, not the
/// transaction lost. Skipping the second flush takes about one disk sync off every submission.
///
/// Accepted (or already known): status 1, unless mined or accepted already. Rejected by every
/// node: kept as rejected (`keep`, authenticated callers), or removed (`remove`, anonymous ones),
/// as the reference does.
pub async fn record_outcome(db: &Db, answers: &Answers<'_>, at: OffsetDateTime) -> Result<(), DbError> {
    let Answers { accepted, registered, keep, remove } = *answers;
    if accepted.is_empty() && keep.is_empty() && remove.is_empty() {
        return Ok(());
    }
    use diesel::sql_types::{Array, Bytea, SmallInt, Timestamptz};
    let keys = |ids: &[Txid]| -> Vec<Vec<u8>> { ids.iter().map(|t| t.internal().to_vec()).collect() };
    // A row is written once: one statement cannot update (or update and delete) a row twice (only
    // one of the changes would take effect), and each write is a new row version with an entry in
    // every index.
    let removed: std::collections::HashSet<&Txid> = remove.iter().collect();
    let registered: Vec<Txid> = registered.iter().filter(|t| !removed.contains(t)).copied().collect();
    let touched: Vec<Txid> = accepted.iter().chain(keep).chain(&registered).copied().collect();
    let mut conn = db.conn().await?;
    // One statement, so one round trip: `set_config(.., true)` lasts until this statement's own
    // commit, which then does not wait for the flush.
    diesel::sql_query(
        "WITH s AS (SELECT set_config('synchronous_commit', 'off', true) AS v), \
              u AS (UPDATE txs SET \
                      tx_status = CASE \
                        WHEN txid = ANY($1) AND (tx_status < 0 OR tx_status = $8) THEN $3 \
                        WHEN txid = ANY($2) AND tx_status = $6 THEN $5 \
                        ELSE tx_status END, \
                      submitted_at = CASE \
                        WHEN txid = ANY($1) AND (tx_status < 0 OR tx_status = $8) THEN $4 \
                        ELSE submitted_at END, \
                      registered_at = CASE \
                        WHEN txid = ANY($9) AND registered_at IS NULL THEN $4 \
                        ELSE registered_at END \
                    FROM s \
                    WHERE txid = ANY($10) AND ( \
                        (txid = ANY($1) AND (tx_status < 0 OR tx_status = $8)) \
                        OR (txid = ANY($2) AND tx_status = $6) \
                        OR (txid = ANY($9) AND registered_at IS NULL)) \
                    RETURNING 1), \
              d AS (DELETE FROM txs USING s \
                    WHERE txid = ANY($7) AND tx_status = $6 RETURNING 1) \
         SELECT v FROM s",
    )
    .bind::<Array<Bytea>, _>(keys(accepted))
    .bind::<Array<Bytea>, _>(keys(keep))
    .bind::<SmallInt, _>(STATUS_ACCEPTED)
    .bind::<Timestamptz, _>(at)
    .bind::<SmallInt, _>(STATUS_NODE_REJECTED)
    .bind::<SmallInt, _>(STATUS_SENT_TO_NODE)
    .bind::<Array<Bytea>, _>(keys(remove))
    .bind::<SmallInt, _>(STATUS_MISSING_INPUTS_MAX)
    .bind::<Array<Bytea>, _>(keys(&registered))
    .bind::<Array<Bytea>, _>(keys(&touched))
    .execute(&mut conn)
    .await?;
    Ok(())
}

/// Inputs watched for double spends: those of accepted dsCheck transactions, and their
/// unconfirmed ancestors (stored as rows of their own, without payload) with theirs.
#[derive(Debug, Clone, Default)]
pub struct WatchedInputs {
    /// A stored transaction and the outpoints it spends, in input order.
    pub inputs: Vec<(Txid, Vec<bsv_primitives::OutPoint>)>,
    /// An unconfirmed ancestor and the outpoints it spends.
    pub ancestors: Vec<(Txid, Vec<bsv_primitives::OutPoint>)>,
}

impl WatchedInputs {
    /// Nothing to store.
    pub fn is_empty(&self) -> bool {
        self.inputs.is_empty() && self.ancestors.is_empty()
    }
}

/// Stores watched inputs, in one transaction (repeats change nothing). Ancestor rows are
/// "accepted" and not yet registered: the registration worker registers them with their inputs.
pub async fn record_watched_inputs(db: &Db, watched: &WatchedInputs) -> Result<(), DbError> {
    use diesel::sql_types::{Array, BigInt, Bytea, Integer, SmallInt};
    use diesel_async::AsyncConnection;
    let mut txids = Vec::new();
    let mut ns = Vec::new();
    let mut prevs = Vec::new();
    let mut prev_ns = Vec::new();
    for (txid, spends) in watched.inputs.iter().chain(&watched.ancestors) {
        for (n, op) in spends.iter().enumerate() {
            txids.push(txid.internal().to_vec());
            ns.push(i32::try_from(n).unwrap_or(i32::MAX));
            prevs.push(op.txid.internal().to_vec());
            prev_ns.push(i64::from(op.vout));
        }
    }
    let ancestors: Vec<Vec<u8>> = watched.ancestors.iter().map(|(t, _)| t.internal().to_vec()).collect();
    let mut conn = db.conn().await?;
    conn.transaction::<_, DbError, _>(async move |conn| {
        if !ancestors.is_empty() {
            diesel::sql_query(
                "INSERT INTO txs (txid, unconfirmed_ancestor, tx_status, submitted_at) \
                 SELECT unnest($1::bytea[]), true, $2, now() ON CONFLICT (txid) DO NOTHING",
            )
            .bind::<Array<Bytea>, _>(ancestors)
            .bind::<SmallInt, _>(STATUS_ACCEPTED)
            .execute(conn)
            .await?;
        }
        if !txids.is_empty() {
            diesel::sql_query(
                "INSERT INTO tx_inputs (tx_internal_id, n, prev_txid, prev_n) \
                 SELECT t.tx_internal_id, x.n, x.prev_txid, x.prev_n \
                 FROM unnest($1::bytea[], $2::int[], $3::bytea[], $4::bigint[]) AS x (txid, n, prev_txid, prev_n) \
                 JOIN txs t ON t.txid = x.txid ON CONFLICT DO NOTHING",
            )
            .bind::<Array<Bytea>, _>(txids)
            .bind::<Array<Integer>, _>(ns)
            .bind::<Array<Bytea>, _>(prevs)
            .bind::<Array<BigInt>, _>(prev_ns)
            .execute(conn)
            .await?;
        }
        Ok(())
    })
    .await
}
