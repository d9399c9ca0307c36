//! A channel's messages: writes (sequenced, one statement in the common case) and pages of reads.

use db_kit::{Db, DbError};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Bytea, Nullable, Text, Timestamptz};
use diesel_async::{AsyncConnection, RunQueryDsl};
use time::OffsetDateTime;

use super::{ChannelRow, MARKS, PlainWrite, TokenRow, UNREAD, WriteBatch};
use crate::error::ChannelError;
use crate::events::{Event, MessageEvent, notify};
use crate::schema::{channel_tokens, channels, messages};
use service_kit::coalesce::{Coalescer, Refused};

/// A stored message.
#[derive(Debug, Clone, QueryableByName)]
pub struct MessageRow {
    /// Sequence in its channel.
    #[diesel(sql_type = BigInt)]
    pub seq: i64,
    /// When it was received (second precision).
    #[diesel(sql_type = Timestamptz)]
    pub received_at: OffsetDateTime,
    /// `application/json` or `application/octet-stream`.
    #[diesel(sql_type = Text)]
    pub content_type: String,
    /// The bytes as written.
    #[diesel(sql_type = Bytea)]
    pub payload: Vec<u8>,
}

#[derive(QueryableByName)]
struct Flag {
    #[diesel(sql_type = Bool)]
    flag: bool,
}

#[derive(QueryableByName)]
struct Locking {
    #[diesel(sql_type = Bool)]
    locked: bool,
    #[diesel(sql_type = Bool)]
    sequenced: bool,
}

#[derive(QueryableByName)]
struct MaxSeq {
    #[diesel(sql_type = Nullable<BigInt>)]
    seq: Option<i64>,
}

/// Writes a message: checks lock and sequencing, takes the next sequence (gapless: writers of a
/// channel queue on its row lock), stores it and publishes the notification, all in one
/// transaction, so a notification is sent exactly when the message is committed. An unlocked,
/// unsequenced channel (the common case) goes through `writes`, which merges concurrent writes
/// into one statement and answers each after its commit; the others take the row lock first,
/// because the sequencing check must see every message committed before it.
pub async fn write_message(
    db: &Db,
    writes: &Coalescer<WriteBatch>,
    channel: &ChannelRow,
    writer: &TokenRow,
    content_type: &str,
    payload: Vec<u8>,
    now: OffsetDateTime,
) -> Result<MessageRow, ChannelError> {
    let (channel_id, writer_id) = (channel.id, writer.id);
    let content_type = content_type.to_owned();
    let now = now.replace_nanosecond(0).unwrap_or(now);
    if !channel.sequenced && !channel.locked {
        let write = PlainWrite {
            channel_id,
            writer_id,
            external_id: channel.external_id.clone(),
            account_id: channel.account_id,
            owned: writer.owned_by_account,
            content_type: content_type.clone(),
            payload: payload.clone(),
            now,
        };
        match writes.call(write).await {
            Ok(Ok(Some(seq))) => return Ok(MessageRow { seq, received_at: now, content_type, payload }),
            // Locked or made sequenced meanwhile: the general path below says which.
            Ok(Ok(None)) => {}
            Ok(Err(failure)) => return Err(DbError::from(failure).into()),
            Err(Refused::Full) => {
                return Err(DbError::Unavailable("too many message writes waiting".into()).into());
            }
            Err(Refused::Stopped) => return Err(DbError::Unavailable("the writer has stopped".into()).into()),
        }
    }
    let external_id = channel.external_id.clone();
    let account_id = channel.account_id;
    let owned = writer.owned_by_account;
    let mut conn = db.conn().await?;
    conn.transaction::<_, ChannelError, _>(async move |conn| {
        let state: Locking =
            diesel::sql_query("SELECT locked, sequenced FROM channels WHERE id = $1 FOR UPDATE")
                .bind::<BigInt, _>(channel_id)
                .get_result(conn)
                .await
                .optional()?
                .ok_or(ChannelError::ChannelNotFound)?;
        if state.locked {
            return Err(ChannelError::Locked);
        }
        if state.sequenced {
            let read_upto: i64 =
                channel_tokens::table.find(writer_id).select(channel_tokens::read_upto).first(conn).await?;
            let unread: Flag = diesel::sql_query(format!(
                "SELECT EXISTS (SELECT 1 FROM messages m {MARKS} WHERE m.channel_id = $1 \
                 AND NOT COALESCE(mk.is_deleted, false) AND {UNREAD}) AS flag"
            ))
            .bind::<BigInt, _>(channel_id)
            .bind::<BigInt, _>(writer_id)
            .bind::<BigInt, _>(read_upto)
            .get_result(conn)
            .await?;
            if unread.flag {
                return Err(ChannelError::Sequencing);
            }
        }
        let seq: i64 = diesel::update(channels::table.find(channel_id))
            .set(channels::head_sequence.eq(channels::head_sequence + 1))
            .returning(channels::head_sequence)
            .get_result(conn)
            .await?;
        diesel::insert_into(messages::table)
            .values((
                messages::channel_id.eq(channel_id),
                messages::seq.eq(seq),
                messages::from_token.eq(writer_id),
                messages::received_at.eq(now),
                messages::content_type.eq(&content_type),
                messages::payload.eq(&payload),
            ))
            .execute(conn)
            .await?;
        let event = Event::Message(MessageEvent {
            channel_id: external_id,
            account_id,
            sequence: seq,
            received: now,
            content_type: content_type.clone(),
            from_token: writer_id,
            owned_by_account: owned,
        });
        notify(conn, &event).await?;
        Ok(MessageRow { seq, received_at: now, content_type, payload })
    })
    .await
}

/// One page of a token's messages: which, and how many at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// Only those the token has not read.
    pub unread_only: bool,
    /// Sequences after this one.
    pub after: i64,
    /// Sequences up to this one (the head when the read began: a read ends).
    pub upto: i64,
    /// At most this many.
    pub limit: i64,
    /// With their payloads (a notification needs none).
    pub with_payload: bool,
}

/// A page of the token's messages that it has not deleted, by sequence. Callers read page after
/// page (`after` = the last sequence of the previous one), so memory stays bounded whatever the
/// channel holds.
pub async fn messages_page(
    db: &Db,
    channel_id: i64,
    token: &TokenRow,
    page: Page,
) -> Result<Vec<MessageRow>, DbError> {
    let filter = if page.unread_only { format!(" AND {UNREAD}") } else { String::new() };
    let payload = if page.with_payload { "m.payload" } else { "''::bytea AS payload" };
    let mut conn = db.conn().await?;
    Ok(diesel::sql_query(format!(
        "SELECT m.seq, m.received_at, m.content_type, {payload} FROM messages m {MARKS} \
         WHERE m.channel_id = $1 AND m.seq > $4 AND m.seq <= $5 AND NOT COALESCE(mk.is_deleted, false){filter} \
         ORDER BY m.seq LIMIT $6"
    ))
    .bind::<BigInt, _>(channel_id)
    .bind::<BigInt, _>(token.id)
    .bind::<BigInt, _>(token.read_upto)
    .bind::<BigInt, _>(page.after)
    .bind::<BigInt, _>(page.upto)
    .bind::<BigInt, _>(page.limit)
    .load(&mut conn)
    .await?)
}

/// Highest sequence among the messages the token has not deleted, optionally only those others
/// wrote (the `HEAD` rule); `None` when there are none.
pub async fn max_sequence(
    db: &Db,
    channel_id: i64,
    token: &TokenRow,
    others_only: bool,
) -> Result<Option<i64>, DbError> {
    let others = if others_only { " AND m.from_token IS DISTINCT FROM $2" } else { "" };
    let mut conn = db.conn().await?;
    let found: MaxSeq = diesel::sql_query(format!(
        "SELECT max(m.seq) AS seq FROM messages m {MARKS} \
         WHERE m.channel_id = $1 AND $3 = $3 AND NOT COALESCE(mk.is_deleted, false){others}"
    ))
    .bind::<BigInt, _>(channel_id)
    .bind::<BigInt, _>(token.id)
    .bind::<BigInt, _>(token.read_upto)
    .get_result(&mut conn)
    .await?;
    Ok(found.seq)
}
