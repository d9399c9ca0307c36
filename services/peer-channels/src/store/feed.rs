//! The account socket's catch-up (heads and messages after them) and the pruner.

use std::collections::HashMap;

use db_kit::{Db, DbError};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text, Timestamptz};
use diesel_async::RunQueryDsl;
use time::OffsetDateTime;

use crate::schema::channels;

/// The head sequence of each of an account's channels, by public id.
pub async fn account_heads(db: &Db, account_id: i64) -> Result<HashMap<String, i64>, DbError> {
    let mut conn = db.conn().await?;
    let rows: Vec<(String, i64)> = channels::table
        .filter(channels::account_id.eq(account_id))
        .select((channels::external_id, channels::head_sequence))
        .load(&mut conn)
        .await?;
    Ok(rows.into_iter().collect())
}

/// A message as the account socket announces it.
#[derive(Debug, Clone, QueryableByName)]
pub struct AccountMessage {
    /// The channel's public id.
    #[diesel(sql_type = Text)]
    pub channel_id: String,
    /// Its sequence.
    #[diesel(sql_type = BigInt)]
    pub seq: i64,
    /// When it was received.
    #[diesel(sql_type = Timestamptz)]
    pub received_at: OffsetDateTime,
    /// Its content type.
    #[diesel(sql_type = Text)]
    pub content_type: String,
}

/// The account's messages written by tokens other than its own owner tokens, after the given
/// sequence of each channel (channels not named: from the start), by channel and sequence, at most
/// `limit` of them (the next page starts after the last one of each channel).
pub async fn account_messages_after(
    db: &Db,
    account_id: i64,
    after: &HashMap<String, i64>,
    limit: i64,
) -> Result<Vec<AccountMessage>, DbError> {
    let (ids, seqs): (Vec<String>, Vec<i64>) = after.iter().map(|(k, v)| (k.clone(), *v)).unzip();
    let mut conn = db.conn().await?;
    Ok(diesel::sql_query(
        "SELECT c.external_id AS channel_id, m.seq, m.received_at, m.content_type \
         FROM messages m JOIN channels c ON c.id = m.channel_id \
         LEFT JOIN channel_tokens t ON t.id = m.from_token \
         WHERE c.account_id = $1 AND NOT COALESCE(t.owned_by_account, false) \
           AND m.seq > COALESCE((SELECT h.seq FROM unnest($2::text[], $3::bigint[]) AS h(id, seq) \
                                 WHERE h.id = c.external_id), 0) \
         ORDER BY c.id, m.seq LIMIT $4",
    )
    .bind::<BigInt, _>(account_id)
    .bind::<diesel::sql_types::Array<Text>, _>(ids)
    .bind::<diesel::sql_types::Array<BigInt>, _>(seqs)
    .bind::<BigInt, _>(limit)
    .load(&mut conn)
    .await?)
}

/// Removes the messages older than their channel's `max_age_days` where `auto_prune` is set;
/// returns how many. `now` is a parameter so tests need no clock or sleep.
pub async fn prune(db: &Db, now: OffsetDateTime) -> Result<usize, DbError> {
    let mut conn = db.conn().await?;
    Ok(diesel::sql_query(
        "DELETE FROM messages m USING channels c \
         WHERE m.channel_id = c.id AND c.auto_prune AND c.max_age_days IS NOT NULL AND c.max_age_days > 0 \
         AND m.received_at < $1 - make_interval(days => c.max_age_days)",
    )
    .bind::<Timestamptz, _>(now)
    .execute(&mut conn)
    .await?)
}
