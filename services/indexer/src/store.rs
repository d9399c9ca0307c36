//! The SQL of the `indexer` schema: tip-filter settings and registrations, spend watches and the
//! spend index, the blocks matched and the outbox of tip-filter matches.

use db_kit::{Db, DbError};
use diesel::QueryableByName;
use diesel::sql_types::{Array, BigInt, Bytea, Integer, Nullable, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use crate::error::IndexerError;
use crate::formats::{ListedFilter, Outpoint, OutputSpend, TipFilterEntry};

/// Registration flag: the indexer took it (the reference's FINALISED).
pub const FINALISED: i32 = 1;
/// Registration flag: a deletion is under way (the reference's DELETING).
pub const DELETING: i32 = 2;

/// An account's tip-filter callback.
#[derive(Clone, Default, PartialEq, Eq, QueryableByName)]
pub struct CallbackSettings {
    /// Where matches are posted.
    #[diesel(sql_type = Nullable<Text>)]
    pub callback_url: Option<String>,
    /// The `Authorization` value sent with them (the account's secret: never printed).
    #[diesel(sql_type = Nullable<Text>)]
    pub callback_token: Option<String>,
}

impl std::fmt::Debug for CallbackSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallbackSettings")
            .field("callback_url", &self.callback_url)
            .field("callback_token", &self.callback_token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// The account's callback settings (both absent when never set).
pub async fn callback_settings(db: &Db, account: i64) -> Result<CallbackSettings, DbError> {
    let mut conn = db.conn().await?;
    let rows: Vec<CallbackSettings> = diesel::sql_query(
        "SELECT callback_url, callback_token FROM tip_filter_settings WHERE account_id = $1",
    )
    .bind::<BigInt, _>(account)
    .load(&mut conn)
    .await?;
    Ok(rows.into_iter().next().unwrap_or_default())
}

/// Overwrites both settings (an absent one becomes NULL, as in the reference).
pub async fn set_callback_settings(
    db: &Db,
    account: i64,
    settings: &CallbackSettings,
) -> Result<(), DbError> {
    let mut conn = db.conn().await?;
    diesel::sql_query(
        "INSERT INTO tip_filter_settings (account_id, callback_url, callback_token, update_count) \
         VALUES ($1, $2, $3, 1) ON CONFLICT (account_id) DO UPDATE SET \
         callback_url = EXCLUDED.callback_url, callback_token = EXCLUDED.callback_token, \
         update_count = tip_filter_settings.update_count + 1",
    )
    .bind::<BigInt, _>(account)
    .bind::<Nullable<Text>, _>(settings.callback_url.as_deref())
    .bind::<Nullable<Text>, _>(settings.callback_token.as_deref())
    .execute(&mut conn)
    .await?;
    Ok(())
}

/// Stores registrations all or nothing, with `flags` (FINALISED at once in native mode, 0 until
/// the external indexer took them in proxy mode). An expired registration of the same hash is
/// replaced; a live one makes the whole request fail with 10024.
pub async fn insert_filters(
    db: &Db,
    account: i64,
    entries: &[TipFilterEntry],
    now: i64,
    flags: i32,
) -> Result<(), IndexerError> {
    let hashes: Vec<Vec<u8>> = entries.iter().map(|e| e.pushdata_hash.to_vec()).collect();
    let expires: Vec<i64> = entries.iter().map(|e| now + i64::from(e.duration_seconds)).collect();
    let mut conn = db.conn().await?;
    conn.transaction::<_, IndexerError, _>(async move |conn| {
        diesel::sql_query(
            "DELETE FROM tip_filters WHERE account_id = $1 AND pushdata_hash = ANY($2) AND date_expires <= $3",
        )
        .bind::<BigInt, _>(account)
        .bind::<Array<Bytea>, _>(&hashes)
        .bind::<BigInt, _>(now)
        .execute(conn)
        .await?;
        let inserted = diesel::sql_query(
            "INSERT INTO tip_filters (account_id, pushdata_hash, flags, date_created, date_expires) \
             SELECT $1, h, $3, $4, e FROM unnest($2::bytea[], $5::bigint[]) AS t(h, e) \
             ON CONFLICT DO NOTHING",
        )
        .bind::<BigInt, _>(account)
        .bind::<Array<Bytea>, _>(&hashes)
        .bind::<Integer, _>(flags)
        .bind::<BigInt, _>(now)
        .bind::<Array<BigInt>, _>(&expires)
        .execute(conn)
        .await?;
        if inserted != hashes.len() {
            return Err(IndexerError::AlreadyRegistered);
        }
        Ok(())
    })
    .await
}

/// Sets `set` and clears `clear` on the account's registrations of `hashes`.
pub async fn update_filter_flags(
    db: &Db,
    account: i64,
    hashes: &[[u8; 32]],
    set: i32,
    clear: i32,
) -> Result<(), DbError> {
    let hashes: Vec<Vec<u8>> = hashes.iter().map(|h| h.to_vec()).collect();
    let mut conn = db.conn().await?;
    diesel::sql_query(
        "UPDATE tip_filters SET flags = (flags | $3) & ~$4 WHERE account_id = $1 AND pushdata_hash = ANY($2)",
    )
    .bind::<BigInt, _>(account)
    .bind::<Array<Bytea>, _>(&hashes)
    .bind::<Integer, _>(set)
    .bind::<Integer, _>(clear)
    .execute(&mut conn)
    .await?;
    Ok(())
}

/// Deletes the account's registrations of `hashes`.
pub async fn delete_filters(db: &Db, account: i64, hashes: &[[u8; 32]]) -> Result<(), DbError> {
    let hashes: Vec<Vec<u8>> = hashes.iter().map(|h| h.to_vec()).collect();
    let mut conn = db.conn().await?;
    diesel::sql_query("DELETE FROM tip_filters WHERE account_id = $1 AND pushdata_hash = ANY($2)")
        .bind::<BigInt, _>(account)
        .bind::<Array<Bytea>, _>(&hashes)
        .execute(&mut conn)
        .await?;
    Ok(())
}

/// Marks every one of `hashes` DELETING, only if each is FINALISED and not already being deleted
/// (else nothing changes and the request fails with 10025).
pub async fn mark_deleting(db: &Db, account: i64, hashes: &[[u8; 32]]) -> Result<(), IndexerError> {
    let hashes: Vec<Vec<u8>> = hashes.iter().map(|h| h.to_vec()).collect();
    let mut conn = db.conn().await?;
    conn.transaction::<_, IndexerError, _>(async move |conn| {
        let marked = diesel::sql_query(
            "UPDATE tip_filters SET flags = flags | 2 \
             WHERE account_id = $1 AND pushdata_hash = ANY($2) AND flags & 3 = 1",
        )
        .bind::<BigInt, _>(account)
        .bind::<Array<Bytea>, _>(&hashes)
        .execute(conn)
        .await?;
        if marked != hashes.len() {
            return Err(IndexerError::NotRegistered);
        }
        Ok(())
    })
    .await
}

#[derive(QueryableByName)]
struct FilterRow {
    #[diesel(sql_type = Bytea)]
    pushdata_hash: Vec<u8>,
    #[diesel(sql_type = BigInt)]
    date_created: i64,
    #[diesel(sql_type = BigInt)]
    date_expires: i64,
}

/// The account's finalised, unexpired registrations.
pub async fn list_filters(db: &Db, account: i64, now: i64) -> Result<Vec<ListedFilter>, DbError> {
    let mut conn = db.conn().await?;
    let rows: Vec<FilterRow> = diesel::sql_query(
        "SELECT pushdata_hash, date_created, date_expires FROM tip_filters \
         WHERE account_id = $1 AND flags & 1 = 1 AND date_expires > $2 ORDER BY date_created, pushdata_hash",
    )
    .bind::<BigInt, _>(account)
    .bind::<BigInt, _>(now)
    .load(&mut conn)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            Some(ListedFilter {
                pushdata_hash: r.pushdata_hash.try_into().ok()?,
                date_created: u32::try_from(r.date_created).ok()?,
                duration_seconds: u32::try_from(r.date_expires - r.date_created).ok()?,
            })
        })
        .collect())
}

#[derive(QueryableByName)]
struct MatchRow {
    #[diesel(sql_type = BigInt)]
    account_id: i64,
    #[diesel(sql_type = Bytea)]
    pushdata_hash: Vec<u8>,
}

/// Which accounts registered which of `hashes` (finalised and unexpired at `now`).
pub async fn registered_hashes(
    conn: &mut AsyncPgConnection,
    hashes: &[Vec<u8>],
    now: i64,
) -> Result<Vec<(i64, [u8; 32])>, DbError> {
    if hashes.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<MatchRow> = diesel::sql_query(
        "SELECT account_id, pushdata_hash FROM tip_filters \
         WHERE pushdata_hash = ANY($1) AND flags & 1 = 1 AND date_expires > $2",
    )
    .bind::<Array<Bytea>, _>(hashes)
    .bind::<BigInt, _>(now)
    .load(conn)
    .await?;
    Ok(rows.into_iter().filter_map(|r| Some((r.account_id, r.pushdata_hash.try_into().ok()?))).collect())
}

fn outpoint_columns(outpoints: &[Outpoint]) -> (Vec<Vec<u8>>, Vec<i64>) {
    outpoints.iter().map(|(h, i)| (h.to_vec(), i64::from(*i))).unzip()
}

/// Watches `outpoints` for the account (a repeat is harmless).
pub async fn add_watches(db: &Db, account: i64, outpoints: &[Outpoint]) -> Result<(), DbError> {
    let (hashes, indexes) = outpoint_columns(outpoints);
    let mut conn = db.conn().await?;
    diesel::sql_query(
        "INSERT INTO spend_watches (tx_hash, out_index, account_id) \
         SELECT h, i, $3 FROM unnest($1::bytea[], $2::bigint[]) AS t(h, i) ON CONFLICT DO NOTHING",
    )
    .bind::<Array<Bytea>, _>(&hashes)
    .bind::<Array<BigInt>, _>(&indexes)
    .bind::<BigInt, _>(account)
    .execute(&mut conn)
    .await?;
    Ok(())
}

/// Stops watching `outpoints` for the account.
pub async fn remove_watches(db: &Db, account: i64, outpoints: &[Outpoint]) -> Result<(), DbError> {
    let (hashes, indexes) = outpoint_columns(outpoints);
    let mut conn = db.conn().await?;
    diesel::sql_query(
        "DELETE FROM spend_watches w USING unnest($1::bytea[], $2::bigint[]) AS t(h, i) \
         WHERE w.account_id = $3 AND w.tx_hash = t.h AND w.out_index = t.i",
    )
    .bind::<Array<Bytea>, _>(&hashes)
    .bind::<Array<BigInt>, _>(&indexes)
    .bind::<BigInt, _>(account)
    .execute(&mut conn)
    .await?;
    Ok(())
}

#[derive(QueryableByName)]
struct WatchRow {
    #[diesel(sql_type = Bytea)]
    tx_hash: Vec<u8>,
    #[diesel(sql_type = BigInt)]
    out_index: i64,
    #[diesel(sql_type = BigInt)]
    account_id: i64,
}

fn watch_of(r: WatchRow) -> Option<(Outpoint, i64)> {
    Some(((r.tx_hash.try_into().ok()?, u32::try_from(r.out_index).ok()?), r.account_id))
}

/// Every watch: outpoint and account (the set stays small: outpoints of open sockets only).
pub async fn all_watches(db: &Db) -> Result<Vec<(Outpoint, i64)>, DbError> {
    let mut conn = db.conn().await?;
    let rows: Vec<WatchRow> =
        diesel::sql_query("SELECT tx_hash, out_index, account_id FROM spend_watches").load(&mut conn).await?;
    Ok(rows.into_iter().filter_map(watch_of).collect())
}

/// The accounts watching one outpoint.
pub async fn watchers_of(db: &Db, outpoint: &Outpoint) -> Result<Vec<i64>, DbError> {
    let mut conn = db.conn().await?;
    let rows: Vec<WatchRow> = diesel::sql_query(
        "SELECT tx_hash, out_index, account_id FROM spend_watches WHERE tx_hash = $1 AND out_index = $2",
    )
    .bind::<Bytea, _>(outpoint.0.as_slice())
    .bind::<BigInt, _>(i64::from(outpoint.1))
    .load(&mut conn)
    .await?;
    Ok(rows.into_iter().map(|r| r.account_id).collect())
}

/// Drops every watch of `accounts`, returning the outpoints no account watches any more.
pub async fn drop_account_watches(db: &Db, accounts: &[i64]) -> Result<Vec<Outpoint>, DbError> {
    let mut conn = db.conn().await?;
    let rows: Vec<WatchRow> = diesel::sql_query(
        "WITH gone AS (DELETE FROM spend_watches WHERE account_id = ANY($1) RETURNING tx_hash, out_index) \
         SELECT DISTINCT g.tx_hash, g.out_index, 0::bigint AS account_id FROM gone g \
         WHERE NOT EXISTS (SELECT 1 FROM spend_watches w WHERE w.tx_hash = g.tx_hash \
           AND w.out_index = g.out_index AND w.account_id <> ALL($1))",
    )
    .bind::<Array<BigInt>, _>(accounts)
    .load(&mut conn)
    .await?;
    Ok(rows.into_iter().filter_map(watch_of).map(|(o, _)| o).collect())
}

#[derive(QueryableByName)]
struct SpendRow {
    #[diesel(sql_type = Bytea)]
    tx_hash: Vec<u8>,
    #[diesel(sql_type = BigInt)]
    out_index: i64,
    #[diesel(sql_type = Bytea)]
    in_tx_hash: Vec<u8>,
    #[diesel(sql_type = BigInt)]
    in_index: i64,
    #[diesel(sql_type = Bytea)]
    block_hash: Vec<u8>,
}

#[derive(QueryableByName)]
struct NewSpend {
    #[diesel(sql_type = Bytea)]
    tx_hash: Vec<u8>,
    #[diesel(sql_type = BigInt)]
    out_index: i64,
    #[diesel(sql_type = Bytea)]
    block_hash: Vec<u8>,
}

/// Records spends of watched outpoints; returns the ones not recorded before (a node publishes a
/// transaction again when a block connects it, and two nodes publish the same one).
pub async fn record_spends(
    conn: &mut AsyncPgConnection,
    spends: &[OutputSpend],
) -> Result<Vec<OutputSpend>, DbError> {
    if spends.is_empty() {
        return Ok(Vec::new());
    }
    let col = |f: fn(&OutputSpend) -> Vec<u8>| spends.iter().map(f).collect::<Vec<_>>();
    let (tx, inputs, blocks) =
        (col(|s| s.out.0.to_vec()), col(|s| s.in_tx.to_vec()), col(|s| s.block.to_vec()));
    let outs: Vec<i64> = spends.iter().map(|s| i64::from(s.out.1)).collect();
    let ins: Vec<i64> = spends.iter().map(|s| i64::from(s.in_index)).collect();
    let new: Vec<NewSpend> = diesel::sql_query(
        "INSERT INTO spends (tx_hash, out_index, in_tx_hash, in_index, block_hash) \
         SELECT * FROM unnest($1::bytea[], $2::bigint[], $3::bytea[], $4::bigint[], $5::bytea[]) \
         ON CONFLICT DO NOTHING RETURNING tx_hash, out_index, block_hash",
    )
    .bind::<Array<Bytea>, _>(&tx)
    .bind::<Array<BigInt>, _>(&outs)
    .bind::<Array<Bytea>, _>(&inputs)
    .bind::<Array<BigInt>, _>(&ins)
    .bind::<Array<Bytea>, _>(&blocks)
    .load(conn)
    .await?;
    Ok(spends
        .iter()
        .filter(|s| {
            new.iter()
                .any(|n| n.tx_hash == s.out.0 && n.out_index == i64::from(s.out.1) && n.block_hash == s.block)
        })
        .copied()
        .collect())
}

/// The known spends of `outpoints`: a block spend when there is one, else the mempool spend.
pub async fn spends_of(db: &Db, outpoints: &[Outpoint]) -> Result<Vec<OutputSpend>, DbError> {
    let (hashes, indexes) = outpoint_columns(outpoints);
    let mut conn = db.conn().await?;
    let rows: Vec<SpendRow> = diesel::sql_query(
        "SELECT DISTINCT ON (s.tx_hash, s.out_index) s.tx_hash, s.out_index, s.in_tx_hash, s.in_index, s.block_hash \
         FROM spends s JOIN unnest($1::bytea[], $2::bigint[]) AS t(h, i) ON s.tx_hash = t.h AND s.out_index = t.i \
         ORDER BY s.tx_hash, s.out_index, (s.block_hash = '\\x0000000000000000000000000000000000000000000000000000000000000000'::bytea), s.seen_at DESC",
    )
    .bind::<Array<Bytea>, _>(&hashes)
    .bind::<Array<BigInt>, _>(&indexes)
    .load(&mut conn)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            Some(OutputSpend {
                out: (r.tx_hash.try_into().ok()?, u32::try_from(r.out_index).ok()?),
                in_tx: r.in_tx_hash.try_into().ok()?,
                in_index: u32::try_from(r.in_index).ok()?,
                block: r.block_hash.try_into().ok()?,
            })
        })
        .collect())
}

#[derive(QueryableByName)]
struct HashRow {
    #[diesel(sql_type = Bytea)]
    block_hash: Vec<u8>,
}

/// The blocks already matched at or above `height`.
pub async fn indexed_from(db: &Db, height: i64) -> Result<Vec<[u8; 32]>, DbError> {
    let mut conn = db.conn().await?;
    let rows: Vec<HashRow> = diesel::sql_query("SELECT block_hash FROM indexed_blocks WHERE height >= $1")
        .bind::<BigInt, _>(height)
        .load(&mut conn)
        .await?;
    Ok(rows.into_iter().filter_map(|r| r.block_hash.try_into().ok()).collect())
}

#[derive(QueryableByName)]
struct MaxRow {
    #[diesel(sql_type = Nullable<BigInt>)]
    height: Option<i64>,
}

/// The highest block matched, if any.
pub async fn highest_indexed(db: &Db) -> Result<Option<i64>, DbError> {
    let mut conn = db.conn().await?;
    let rows: Vec<MaxRow> =
        diesel::sql_query("SELECT max(height) AS height FROM indexed_blocks").load(&mut conn).await?;
    Ok(rows.into_iter().next().and_then(|r| r.height))
}

/// Records that a block was matched.
pub async fn mark_indexed(conn: &mut AsyncPgConnection, hash: &[u8; 32], height: i64) -> Result<(), DbError> {
    diesel::sql_query(
        "INSERT INTO indexed_blocks (block_hash, height) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind::<Bytea, _>(hash.as_slice())
    .bind::<BigInt, _>(height)
    .execute(conn)
    .await?;
    Ok(())
}

/// Queues a tip-filter match batch for the account's callback (a key seen before is skipped:
/// the same transaction seen twice, by two replicas or from two nodes, is delivered once).
pub async fn enqueue(
    conn: &mut AsyncPgConnection,
    key: &str,
    account: i64,
    body: &str,
) -> Result<(), DbError> {
    diesel::sql_query(
        "INSERT INTO outbox (delivery_key, account_id, body) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind::<Text, _>(key)
    .bind::<BigInt, _>(account)
    .bind::<Text, _>(body)
    .execute(conn)
    .await?;
    Ok(())
}

/// A queued delivery with the account's current callback.
#[derive(QueryableByName)]
pub struct Due {
    /// Its row.
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    /// Its idempotency key.
    #[diesel(sql_type = Text)]
    pub delivery_key: String,
    /// The JSON body.
    #[diesel(sql_type = Text)]
    pub body: String,
    /// Where it goes (none: dropped, as the reference does with no callback set).
    #[diesel(sql_type = Nullable<Text>)]
    pub callback_url: Option<String>,
    /// The `Authorization` value.
    #[diesel(sql_type = Nullable<Text>)]
    pub callback_token: Option<String>,
}

impl std::fmt::Debug for Due {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Due").field("id", &self.id).field("key", &self.delivery_key).finish_non_exhaustive()
    }
}

/// Locks up to `limit` queued deliveries (`SKIP LOCKED`: replicas share the work) in `conn`'s
/// transaction.
pub async fn lock_due(conn: &mut AsyncPgConnection, limit: i64) -> Result<Vec<Due>, DbError> {
    Ok(diesel::sql_query(
        "SELECT o.id, o.delivery_key, o.body, s.callback_url, s.callback_token FROM outbox o \
         LEFT JOIN tip_filter_settings s ON s.account_id = o.account_id \
         ORDER BY o.id LIMIT $1 FOR UPDATE OF o SKIP LOCKED",
    )
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await?)
}

/// Removes handed-over deliveries.
pub async fn remove_due(conn: &mut AsyncPgConnection, ids: &[i64]) -> Result<(), DbError> {
    diesel::sql_query("DELETE FROM outbox WHERE id = ANY($1)")
        .bind::<Array<BigInt>, _>(ids)
        .execute(conn)
        .await?;
    Ok(())
}
