//! Channels and their tokens.

use db_kit::{Db, DbError};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use time::OffsetDateTime;

use crate::events::{Event, notify};
use crate::schema::{channel_tokens, channels};

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
