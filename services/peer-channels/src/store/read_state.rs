//! Per-token read marks and deletes.

use db_kit::{Db, DbError};
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use diesel_async::{AsyncConnection, RunQueryDsl};
use time::OffsetDateTime;

use super::{ChannelRow, TokenRow};
use crate::error::ChannelError;
use crate::schema::{channel_tokens, message_marks, messages};

/// The message's state for a token: `None` when there is no such message, else whether the
/// token deleted it, and when it was received.
async fn message_state(
    conn: &mut diesel_async::AsyncPgConnection,
    channel_id: i64,
    token_id: i64,
    seq: i64,
) -> Result<Option<(bool, OffsetDateTime)>, DbError> {
    let found: Option<(OffsetDateTime, Option<bool>)> = messages::table
        .left_join(
            message_marks::table.on(message_marks::token_id
                .eq(token_id)
                .and(message_marks::seq.eq(messages::seq))
                .and(message_marks::channel_id.eq(messages::channel_id))),
        )
        .filter(messages::channel_id.eq(channel_id))
        .filter(messages::seq.eq(seq))
        .select((messages::received_at, message_marks::is_deleted.nullable()))
        .first(conn)
        .await
        .optional()?;
    Ok(found.map(|(at, deleted)| (deleted.unwrap_or(false), at)))
}

/// Marks message `seq` (and, with `older`, every earlier one) read or unread for the token.
pub async fn mark(
    db: &Db,
    channel_id: i64,
    token: &TokenRow,
    seq: i64,
    read: bool,
    older: bool,
) -> Result<(), ChannelError> {
    let token_id = token.id;
    let mut conn = db.conn().await?;
    conn.transaction::<_, ChannelError, _>(async move |conn| {
        match message_state(conn, channel_id, token_id, seq).await? {
            Some((false, _)) => {}
            _ => return Err(ChannelError::SequenceNotFound),
        }
        // The token's current watermark, locked: marks of one token are applied one at a time.
        let read_upto: i64 = channel_tokens::table
            .find(token_id)
            .select(channel_tokens::read_upto)
            .for_update()
            .first(conn)
            .await?;
        if !older {
            upsert_mark(conn, channel_id, token_id, seq, MarkChange::Read(read)).await?;
            return Ok(());
        }
        // Read: everything up to `seq` is read, the watermark says so (messages the token wrote
        // need no mark, they are read already). Unread: everything up to `seq` is unread and later
        // ones unchanged: pin (seq, watermark] as read and drop the watermark.
        if !read && read_upto > seq {
            diesel::sql_query(
                "INSERT INTO message_marks (token_id, channel_id, seq, is_read) \
                 SELECT $1, m.channel_id, m.seq, true FROM messages m \
                 WHERE m.channel_id = $2 AND m.seq > $3 AND m.seq <= $4 \
                 ON CONFLICT (token_id, seq) DO UPDATE SET is_read = COALESCE(message_marks.is_read, true)",
            )
            .bind::<BigInt, _>(token_id)
            .bind::<BigInt, _>(channel_id)
            .bind::<BigInt, _>(seq)
            .bind::<BigInt, _>(read_upto)
            .execute(conn)
            .await?;
        }
        let watermark = if read { read_upto.max(seq) } else { 0 };
        diesel::update(channel_tokens::table.find(token_id))
            .set(channel_tokens::read_upto.eq(watermark))
            .execute(conn)
            .await?;
        // Either way, the read exceptions up to `seq` give way to the new state.
        diesel::update(
            message_marks::table
                .filter(message_marks::token_id.eq(token_id))
                .filter(message_marks::seq.le(seq)),
        )
        .set(message_marks::is_read.eq(None::<bool>))
        .execute(conn)
        .await?;
        if !read {
            // The token's own messages up to `seq` become unread too.
            diesel::sql_query(
                "INSERT INTO message_marks (token_id, channel_id, seq, is_read) \
                 SELECT $1, m.channel_id, m.seq, false FROM messages m \
                 WHERE m.channel_id = $2 AND m.seq <= $3 AND m.from_token = $1 \
                 ON CONFLICT (token_id, seq) DO UPDATE SET is_read = false",
            )
            .bind::<BigInt, _>(token_id)
            .bind::<BigInt, _>(channel_id)
            .bind::<BigInt, _>(seq)
            .execute(conn)
            .await?;
        }
        Ok(())
    })
    .await
}

/// What a mark changes.
#[derive(Clone, Copy)]
enum MarkChange {
    Read(bool),
    Deleted,
}

/// Records a token's explicit mark on one message (one row, created or updated).
async fn upsert_mark(
    conn: &mut diesel_async::AsyncPgConnection,
    channel_id: i64,
    token_id: i64,
    seq: i64,
    change: MarkChange,
) -> Result<(), DbError> {
    let (read, deleted) = match change {
        MarkChange::Read(r) => (Some(r), false),
        MarkChange::Deleted => (None, true),
    };
    let insert = diesel::insert_into(message_marks::table)
        .values((
            message_marks::token_id.eq(token_id),
            message_marks::channel_id.eq(channel_id),
            message_marks::seq.eq(seq),
            message_marks::is_read.eq(read),
            message_marks::is_deleted.eq(deleted),
        ))
        .on_conflict((message_marks::token_id, message_marks::seq))
        .do_update();
    match change {
        MarkChange::Read(r) => insert.set(message_marks::is_read.eq(Some(r))).execute(conn).await?,
        MarkChange::Deleted => insert.set(message_marks::is_deleted.eq(true)).execute(conn).await?,
    };
    Ok(())
}

/// Deletes message `seq` for the token, once the channel's retention minimum has passed.
pub async fn delete_message(
    db: &Db,
    channel: &ChannelRow,
    token: &TokenRow,
    seq: i64,
    now: OffsetDateTime,
) -> Result<(), ChannelError> {
    let (channel_id, token_id) = (channel.id, token.id);
    let min_age = time::Duration::days(i64::from(channel.min_age_days.unwrap_or(0).max(0)));
    let mut conn = db.conn().await?;
    conn.transaction::<_, ChannelError, _>(async move |conn| {
        let received = match message_state(conn, channel_id, token_id, seq).await? {
            None => return Err(ChannelError::SequenceNotFound),
            Some((true, _)) => return Err(ChannelError::MessageDeleted),
            Some((false, at)) => at,
        };
        if received + min_age > now {
            return Err(ChannelError::RetentionNotExpired);
        }
        upsert_mark(conn, channel_id, token_id, seq, MarkChange::Deleted).await?;
        Ok(())
    })
    .await
}
