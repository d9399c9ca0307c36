//! What mapi registered: transactions to report when mined, outpoints to watch for double spends.

use db_kit::{Db, DbError};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bytea};
use diesel_async::{AsyncConnection, RunQueryDsl};
use wire_model::internal::Registrations;

use crate::schema::headers;

/// Stores registrations (repeats change nothing), in one transaction.
pub async fn store(db: &Db, r: &Registrations) -> Result<(), DbError> {
    let txids: Vec<Vec<u8>> = r.txids.iter().map(|t| t.internal().to_vec()).collect();
    let spenders: Vec<Vec<u8>> = r.spends.iter().map(|s| s.txid.internal().to_vec()).collect();
    let prevs: Vec<Vec<u8>> = r.spends.iter().map(|s| s.prev_txid.internal().to_vec()).collect();
    let ns: Vec<i64> = r.spends.iter().map(|s| i64::from(s.prev_n)).collect();
    let mut conn = db.conn().await?;
    conn.transaction::<_, DbError, _>(async move |conn| {
        if !txids.is_empty() {
            diesel::sql_query(
                "INSERT INTO registered_txids (txid) SELECT unnest($1::bytea[]) ON CONFLICT DO NOTHING",
            )
            .bind::<Array<Bytea>, _>(txids)
            .execute(conn)
            .await?;
        }
        if !spenders.is_empty() {
            diesel::sql_query(
                "INSERT INTO registered_spends (prev_txid, prev_n, txid) \
                 SELECT * FROM unnest($1::bytea[], $2::bigint[], $3::bytea[]) ON CONFLICT DO NOTHING",
            )
            .bind::<Array<Bytea>, _>(prevs)
            .bind::<Array<BigInt>, _>(ns)
            .bind::<Array<Bytea>, _>(spenders)
            .execute(conn)
            .await?;
        }
        Ok(())
    })
    .await
}

/// Queues the best-chain blocks parsed since `since` for parsing again; returns how many.
pub async fn reparse(db: &Db, since: time::OffsetDateTime) -> Result<usize, DbError> {
    let mut conn = db.conn().await?;
    Ok(diesel::update(
        headers::table.filter(headers::on_best_chain.eq(true)).filter(headers::parsed_at.ge(since)),
    )
    .set((headers::parse_wanted.eq(true), headers::parsed_at.eq(None::<time::OffsetDateTime>)))
    .execute(&mut conn)
    .await?)
}
