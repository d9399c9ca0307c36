//! Storage of channels, tokens and messages, and the per-token read and delete state.
//!
//! Read state of message `m` for token `t`: an explicit mark if `t` set one, otherwise read when
//! `t` wrote it or `m.seq <= t.read_upto`. So "mark everything up to n read" moves one watermark,
//! and a new token (watermark 0) sees the whole history as unread, without a row per token per
//! message.

use std::collections::HashMap;

use db_kit::{Db, DbError};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Bytea, Nullable, Text, Timestamptz};
use diesel_async::{AsyncConnection, RunQueryDsl};
use time::OffsetDateTime;

use crate::error::ChannelError;
use crate::events::{Event, MessageEvent, NOTIFY_CHANNEL, notify};
use crate::schema::{channel_tokens, channels, message_marks, messages};

/// A channel row.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = channels)]
pub struct ChannelRow {
    /// Internal id.
    pub id: i64,
    /// Owning account.
    pub account_id: i64,
    /// The public 88-character id.
    pub external_id: String,
    /// Stored and shown as the reference does (not enforced there either: there is no anonymous
    /// access).
    pub public_read: bool,
    /// As `public_read`.
    pub public_write: bool,
    /// Writes refused while set.
    pub locked: bool,
    /// Writers with unread messages are refused.
    pub sequenced: bool,
    /// Days a message must be kept before it may be deleted.
    pub min_age_days: Option<i32>,
    /// Days after which the pruner removes a message (with `auto_prune`).
    pub max_age_days: Option<i32>,
    /// Whether the pruner enforces `max_age_days`.
    pub auto_prune: bool,
    /// The last sequence handed out.
    pub head_sequence: i64,
}

/// A channel token row (never the token itself).
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = channel_tokens)]
pub struct TokenRow {
    /// Token id (a global counter, as the reference's).
    pub id: i64,
    /// Its channel.
    pub channel_id: i64,
    /// Free text.
    pub description: String,
    /// May read and get notifications.
    pub can_read: bool,
    /// May write.
    pub can_write: bool,
    /// Created with the channel for its account ("Owner").
    pub owned_by_account: bool,
    /// Read watermark.
    pub read_upto: i64,
    /// Set when revoked.
    pub revoked_at: Option<OffsetDateTime>,
}

/// Settings of a new channel.
#[derive(Debug, Clone)]
pub struct NewChannel {
    /// See [`ChannelRow`].
    pub public_read: bool,
    /// See [`ChannelRow`].
    pub public_write: bool,
    /// See [`ChannelRow`].
    pub sequenced: bool,
    /// See [`ChannelRow`].
    pub min_age_days: Option<i32>,
    /// See [`ChannelRow`].
    pub max_age_days: Option<i32>,
    /// See [`ChannelRow`].
    pub auto_prune: bool,
}

/// A token as issued: the row and, this once, the token.
#[derive(Debug)]
pub struct IssuedChannelToken {
    /// The stored row.
    pub row: TokenRow,
    /// The bearer token; shown only in the response that issues it.
    pub token: String,
}

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

/// Creates a channel and its "Owner" token in one transaction.
pub async fn create_channel(
    db: &Db,
    account_id: i64,
    new: NewChannel,
) -> Result<(ChannelRow, IssuedChannelToken), DbError> {
    let external_id = service_kit::tokens::issue().token;
    let owner = service_kit::tokens::issue();
    let mut conn = db.conn().await?;
    let (channel, row) = conn
        .transaction::<_, DbError, _>(async move |conn| {
            let channel: ChannelRow = diesel::insert_into(channels::table)
                .values((
                    channels::account_id.eq(account_id),
                    channels::external_id.eq(&external_id),
                    channels::public_read.eq(new.public_read),
                    channels::public_write.eq(new.public_write),
                    channels::sequenced.eq(new.sequenced),
                    channels::min_age_days.eq(new.min_age_days),
                    channels::max_age_days.eq(new.max_age_days),
                    channels::auto_prune.eq(new.auto_prune),
                ))
                .returning(ChannelRow::as_returning())
                .get_result(conn)
                .await?;
            let row = insert_token(conn, channel.id, "Owner", true, true, true, &owner.digest).await?;
            Ok((channel, row))
        })
        .await?;
    Ok((channel, IssuedChannelToken { row, token: owner.token }))
}

async fn insert_token(
    conn: &mut diesel_async::AsyncPgConnection,
    channel_id: i64,
    description: &str,
    can_read: bool,
    can_write: bool,
    owned_by_account: bool,
    digest: &[u8],
) -> Result<TokenRow, DbError> {
    Ok(diesel::insert_into(channel_tokens::table)
        .values((
            channel_tokens::channel_id.eq(channel_id),
            channel_tokens::token_sha256.eq(digest),
            channel_tokens::description.eq(description),
            channel_tokens::can_read.eq(can_read),
            channel_tokens::can_write.eq(can_write),
            channel_tokens::owned_by_account.eq(owned_by_account),
        ))
        .returning(TokenRow::as_returning())
        .get_result(conn)
        .await?)
}

/// The account's channels, oldest first.
pub async fn channels_of(db: &Db, account_id: i64) -> Result<Vec<ChannelRow>, DbError> {
    let mut conn = db.conn().await?;
    Ok(channels::table
        .filter(channels::account_id.eq(account_id))
        .order(channels::id)
        .select(ChannelRow::as_select())
        .load(&mut conn)
        .await?)
}

/// The channel `external_id` if `account_id` owns it; another account's channel does not exist.
pub async fn owned_channel(
    db: &Db,
    account_id: i64,
    external_id: &str,
) -> Result<Option<ChannelRow>, DbError> {
    let mut conn = db.conn().await?;
    Ok(channels::table
        .filter(channels::external_id.eq(external_id))
        .filter(channels::account_id.eq(account_id))
        .select(ChannelRow::as_select())
        .first(&mut conn)
        .await
        .optional()?)
}

/// Tokens of channels, in id order; revoked ones only when asked.
pub async fn tokens_of(db: &Db, channel_ids: &[i64], with_revoked: bool) -> Result<Vec<TokenRow>, DbError> {
    let mut conn = db.conn().await?;
    let mut query = channel_tokens::table
        .filter(channel_tokens::channel_id.eq_any(channel_ids))
        .select(TokenRow::as_select())
        .order(channel_tokens::id)
        .into_boxed();
    if !with_revoked {
        query = query.filter(channel_tokens::revoked_at.is_null());
    }
    Ok(query.load(&mut conn).await?)
}

/// Sets the three amendable flags.
pub async fn amend(
    db: &Db,
    channel_id: i64,
    public_read: bool,
    public_write: bool,
    locked: bool,
) -> Result<(), DbError> {
    let mut conn = db.conn().await?;
    diesel::update(channels::table.find(channel_id))
        .set((
            channels::public_read.eq(public_read),
            channels::public_write.eq(public_write),
            channels::locked.eq(locked),
        ))
        .execute(&mut conn)
        .await?;
    Ok(())
}

/// Deletes a channel with its tokens and messages, and tells every replica's sockets.
pub async fn delete_channel(db: &Db, channel: &ChannelRow) -> Result<(), DbError> {
    let event = Event::ChannelDeleted { channel_id: channel.external_id.clone() };
    let id = channel.id;
    let mut conn = db.conn().await?;
    conn.transaction::<_, DbError, _>(async move |conn| {
        diesel::delete(channels::table.find(id)).execute(conn).await?;
        notify(conn, &event).await
    })
    .await
}

/// Issues a token for a channel.
pub async fn create_token(
    db: &Db,
    channel_id: i64,
    description: &str,
    can_read: bool,
    can_write: bool,
) -> Result<IssuedChannelToken, DbError> {
    let issued = service_kit::tokens::issue();
    let mut conn = db.conn().await?;
    let row =
        insert_token(&mut conn, channel_id, description, can_read, can_write, false, &issued.digest).await?;
    Ok(IssuedChannelToken { row, token: issued.token })
}

/// A token of a channel by id, revoked or not.
pub async fn token_of_channel(db: &Db, channel_id: i64, token_id: i64) -> Result<Option<TokenRow>, DbError> {
    let mut conn = db.conn().await?;
    Ok(channel_tokens::table
        .filter(channel_tokens::id.eq(token_id))
        .filter(channel_tokens::channel_id.eq(channel_id))
        .select(TokenRow::as_select())
        .first(&mut conn)
        .await
        .optional()?)
}

/// Revokes a token at once, and closes its open sockets on every replica.
pub async fn revoke(db: &Db, token_id: i64, now: OffsetDateTime) -> Result<(), DbError> {
    let event = Event::TokenRevoked { token_id };
    let mut conn = db.conn().await?;
    conn.transaction::<_, DbError, _>(async move |conn| {
        diesel::update(channel_tokens::table.find(token_id).filter(channel_tokens::revoked_at.is_null()))
            .set(channel_tokens::revoked_at.eq(now))
            .execute(conn)
            .await?;
        notify(conn, &event).await
    })
    .await
}

/// The live token presented as a bearer, with its channel.
pub async fn by_token(db: &Db, token: &str) -> Result<Option<(TokenRow, ChannelRow)>, DbError> {
    let digest = service_kit::tokens::digest(token);
    let mut conn = db.conn().await?;
    let found: Option<(TokenRow, ChannelRow, Vec<u8>)> = channel_tokens::table
        .inner_join(channels::table)
        .filter(channel_tokens::token_sha256.eq(digest.as_slice()))
        .filter(channel_tokens::revoked_at.is_null())
        .select((TokenRow::as_select(), ChannelRow::as_select(), channel_tokens::token_sha256))
        .first(&mut conn)
        .await
        .optional()?;
    Ok(found.filter(|(_, _, stored)| service_kit::tokens::matches(token, stored)).map(|(t, c, _)| (t, c)))
}

/// The account's channel `external_id` with its owner token, whose read state the account's
/// master token uses there (one query; another account's channel does not exist for it).
pub async fn owned_channel_with_owner(
    db: &Db,
    account_id: i64,
    external_id: &str,
) -> Result<Option<(ChannelRow, TokenRow)>, DbError> {
    let mut conn = db.conn().await?;
    Ok(channels::table
        .inner_join(channel_tokens::table)
        .filter(channels::external_id.eq(external_id))
        .filter(channels::account_id.eq(account_id))
        .filter(channel_tokens::owned_by_account.eq(true))
        .order(channel_tokens::id)
        .select((ChannelRow::as_select(), TokenRow::as_select()))
        .first(&mut conn)
        .await
        .optional()?)
}

/// `WHERE` fragment: message `m` (with left-joined mark `mk` of token `$TOKEN`) is unread by it.
const UNREAD: &str = "NOT COALESCE(mk.is_read, m.from_token = $2 OR m.seq <= $3)";
/// The join of a token's marks onto messages.
const MARKS: &str =
    "LEFT JOIN message_marks mk ON mk.token_id = $2 AND mk.seq = m.seq AND mk.channel_id = m.channel_id";

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
struct Written {
    #[diesel(sql_type = BigInt)]
    seq: i64,
}

#[derive(QueryableByName)]
struct MaxSeq {
    #[diesel(sql_type = Nullable<BigInt>)]
    seq: Option<i64>,
}

/// Writes a message: checks lock and sequencing, takes the next sequence (gapless: writers of a
/// channel queue on its row lock), stores it and publishes the notification, all in one
/// transaction, so a notification is sent exactly when the message is committed. An unlocked,
/// unsequenced channel (the common case) needs a single statement; the others take the row lock
/// first, because the sequencing check must see every message committed before it.
pub async fn write_message(
    db: &Db,
    channel: &ChannelRow,
    writer: &TokenRow,
    content_type: &str,
    payload: Vec<u8>,
    now: OffsetDateTime,
) -> Result<MessageRow, ChannelError> {
    let (channel_id, writer_id) = (channel.id, writer.id);
    let external_id = channel.external_id.clone();
    let account_id = channel.account_id;
    let owned = writer.owned_by_account;
    let content_type = content_type.to_owned();
    let now = now.replace_nanosecond(0).unwrap_or(now);
    let mut conn = db.conn().await?;
    if !channel.sequenced && !channel.locked {
        // The common case in one statement (its own transaction): no lock held across round trips.
        let received = now
            .format(&time::format_description::well_known::Rfc3339)
            .map_err(|e| DbError::Query(diesel::result::Error::SerializationError(Box::new(e))))?;
        let written: Option<Written> = diesel::sql_query(
            "WITH c AS (UPDATE channels SET head_sequence = head_sequence + 1                         WHERE id = $1 AND NOT locked AND NOT sequenced RETURNING head_sequence),                   m AS (INSERT INTO messages (channel_id, seq, from_token, received_at, content_type, payload)                         SELECT $1, head_sequence, $2, $3, $4, $5 FROM c RETURNING seq)              SELECT m.seq FROM m, LATERAL (SELECT pg_notify($6, json_build_object(                  'kind', 'message', 'channel_id', $7::text, 'account_id', $8::bigint, 'sequence', m.seq,                  'received', $9::text, 'content_type', $4::text, 'from_token', $2::bigint,                  'owned_by_account', $10::boolean)::text)) AS n",
        )
        .bind::<BigInt, _>(channel_id)
        .bind::<BigInt, _>(writer_id)
        .bind::<Timestamptz, _>(now)
        .bind::<Text, _>(&content_type)
        .bind::<Bytea, _>(&payload)
        .bind::<Text, _>(NOTIFY_CHANNEL)
        .bind::<Text, _>(&external_id)
        .bind::<BigInt, _>(account_id)
        .bind::<Text, _>(&received)
        .bind::<Bool, _>(owned)
        .get_result(&mut conn)
        .await
        .optional()?;
        if let Some(w) = written {
            return Ok(MessageRow { seq: w.seq, received_at: now, content_type, payload });
        }
        // Locked or made sequenced meanwhile: the general path below says which.
    }
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
        if read {
            // Everything up to `seq` read: the watermark says so; drop the exceptions below it,
            // and messages the token wrote need no mark (they are read already).
            diesel::update(channel_tokens::table.find(token_id))
                .set(channel_tokens::read_upto.eq(read_upto.max(seq)))
                .execute(conn)
                .await?;
            diesel::update(
                message_marks::table.filter(message_marks::token_id.eq(token_id)).filter(message_marks::seq.le(seq)),
            )
            .set(message_marks::is_read.eq(None::<bool>))
            .execute(conn)
            .await?;
        } else {
            // Everything up to `seq` unread, later ones unchanged: pin (seq, watermark] as read,
            // drop the watermark, and mark the token's own messages up to `seq` unread.
            if read_upto > seq {
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
            diesel::update(channel_tokens::table.find(token_id))
                .set(channel_tokens::read_upto.eq(0))
                .execute(conn)
                .await?;
            diesel::update(
                message_marks::table.filter(message_marks::token_id.eq(token_id)).filter(message_marks::seq.le(seq)),
            )
            .set(message_marks::is_read.eq(None::<bool>))
            .execute(conn)
            .await?;
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
