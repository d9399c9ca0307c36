//! Which accounts have an account websocket open, across replicas: a row per open socket,
//! refreshed at each heartbeat, removed when it closes (or ignored once expired, if its replica
//! died).

use std::time::Duration;

use db_kit::{Db, DbError};
use diesel::QueryableByName;
use diesel::sql_types::{Array, BigInt};
use diesel_async::RunQueryDsl;

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// Records an open socket that lives `ttl` unless refreshed; returns its row.
pub async fn open_account_socket(db: &Db, account: i64, ttl: Duration) -> Result<i64, DbError> {
    let mut conn = db.conn().await?;
    let rows: Vec<Id> = diesel::sql_query(
        "INSERT INTO account_sockets (account_id, expires_at) \
         VALUES ($1, now() + $2 * interval '1 millisecond') RETURNING id",
    )
    .bind::<BigInt, _>(account)
    .bind::<BigInt, _>(ttl.as_millis() as i64)
    .load(&mut conn)
    .await?;
    Ok(rows.into_iter().next().map_or(0, |r| r.id))
}

/// Extends a socket's life by `ttl`.
pub async fn refresh_account_socket(db: &Db, id: i64, ttl: Duration) -> Result<(), DbError> {
    let mut conn = db.conn().await?;
    diesel::sql_query(
        "UPDATE account_sockets SET expires_at = now() + $2 * interval '1 millisecond' WHERE id = $1",
    )
    .bind::<BigInt, _>(id)
    .bind::<BigInt, _>(ttl.as_millis() as i64)
    .execute(&mut conn)
    .await?;
    Ok(())
}

/// Forgets a closed socket (and any expired row).
pub async fn close_account_socket(db: &Db, id: i64) -> Result<(), DbError> {
    let mut conn = db.conn().await?;
    diesel::sql_query("DELETE FROM account_sockets WHERE id = $1 OR expires_at < now() - interval '1 hour'")
        .bind::<BigInt, _>(id)
        .execute(&mut conn)
        .await?;
    Ok(())
}

#[derive(QueryableByName)]
struct Account {
    #[diesel(sql_type = BigInt)]
    account_id: i64,
}

/// Which of `accounts` have a live socket.
pub async fn connected_accounts(db: &Db, accounts: &[i64]) -> Result<Vec<i64>, DbError> {
    let mut conn = db.conn().await?;
    let rows: Vec<Account> = diesel::sql_query(
        "SELECT DISTINCT account_id FROM account_sockets WHERE account_id = ANY($1) AND expires_at > now()",
    )
    .bind::<Array<BigInt>, _>(accounts)
    .load(&mut conn)
    .await?;
    Ok(rows.into_iter().map(|r| r.account_id).collect())
}
