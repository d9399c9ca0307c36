//! Account storage: find-or-create by public key, issue tokens for signed messages (each message
//! accepted once), resolve a presented token, revoke tokens.

use db_kit::{Db, DbError};
use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use time::OffsetDateTime;

use crate::events::{Event, NOTIFY_CHANNEL};
use crate::schema::{accounts, master_tokens, used_signed_messages};

/// An account as the gateway sees it.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = accounts)]
pub struct Account {
    /// Internal id (forwarded to internal services as the caller's identity).
    pub account_id: i64,
    /// The key bytes exactly as signed up with.
    pub public_key: Vec<u8>,
    /// A disabled account cannot authenticate.
    pub disabled: bool,
}

/// A signed message being used: it may be used once, until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedUse {
    /// SHA-256 over the key and the message.
    pub digest: [u8; 32],
    /// When the message's time window closes.
    pub expires_at: OffsetDateTime,
}

/// Why a token could not be issued for a signed message.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// The message was accepted before: a replay.
    #[error("the signed message was already used")]
    Replayed,
    /// Storage failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for IssueError {
    fn from(e: diesel::result::Error) -> Self {
        IssueError::Db(e.into())
    }
}

/// Records the use of a signed message; `Replayed` when it was used before (the unique digest
/// makes concurrent replays wait for the first and then fail).
async fn use_message(conn: &mut AsyncPgConnection, signed: &SignedUse) -> Result<(), IssueError> {
    let inserted = diesel::insert_into(used_signed_messages::table)
        .values((
            used_signed_messages::digest.eq(signed.digest.to_vec()),
            used_signed_messages::expires_at.eq(signed.expires_at),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    if inserted == 0 { Err(IssueError::Replayed) } else { Ok(()) }
}

async fn insert_token(
    conn: &mut AsyncPgConnection,
    account_id: i64,
    token_digest: &[u8; 32],
) -> QueryResult<usize> {
    diesel::insert_into(master_tokens::table)
        .values((
            master_tokens::account_id.eq(account_id),
            master_tokens::token_sha256.eq(token_digest.to_vec()),
        ))
        .execute(conn)
        .await
}

/// Finds the account of `public_key`, creating it if new, and stores a new token digest for it,
/// for a signed message used for the first time. All in one transaction: a token is never issued
/// for an account that did not commit, nor twice for one message.
pub async fn sign_up(
    db: &Db,
    public_key: &[u8],
    token_digest: &[u8; 32],
    signed: &SignedUse,
) -> Result<Account, IssueError> {
    let mut conn = db.conn().await?;
    let key = public_key.to_vec();
    conn.build_transaction()
        .run(async move |conn: &mut AsyncPgConnection| {
            use_message(conn, signed).await?;
            // `ON CONFLICT DO UPDATE` (a no-op update) returns the existing row too, so
            // concurrent sign-ups of one key end with one account.
            let account: Account = diesel::insert_into(accounts::table)
                .values(accounts::public_key.eq(&key))
                .on_conflict(accounts::public_key)
                .do_update()
                .set(accounts::public_key.eq(excluded(accounts::public_key)))
                .returning(Account::as_returning())
                .get_result(&mut *conn)
                .await?;
            if !account.disabled {
                insert_token(conn, account.account_id, token_digest).await?;
            }
            Ok::<_, IssueError>(account)
        })
        .await
}

/// Stores another token for the existing, enabled account of `public_key`, for a signed message
/// used for the first time; `None` when there is no such account.
pub async fn issue_for_key(
    db: &Db,
    public_key: &[u8],
    token_digest: &[u8; 32],
    signed: &SignedUse,
) -> Result<Option<Account>, IssueError> {
    let mut conn = db.conn().await?;
    let key = public_key.to_vec();
    conn.build_transaction()
        .run(async move |conn: &mut AsyncPgConnection| {
            let account: Option<Account> = accounts::table
                .filter(accounts::public_key.eq(&key))
                .filter(accounts::disabled.eq(false))
                .select(Account::as_select())
                .first(&mut *conn)
                .await
                .optional()?;
            // A message that issues nothing is not used up.
            if let Some(a) = &account {
                use_message(conn, signed).await?;
                insert_token(conn, a.account_id, token_digest).await?;
            }
            Ok::<_, IssueError>(account)
        })
        .await
}

/// The account a presented token (by digest) belongs to, and the token's id, if the token is live.
pub async fn by_token(db: &Db, token_digest: &[u8; 32]) -> Result<Option<(Account, i64)>, DbError> {
    let mut conn = db.conn().await?;
    Ok(master_tokens::table
        .inner_join(accounts::table)
        .filter(master_tokens::token_sha256.eq(token_digest.to_vec()))
        .filter(master_tokens::revoked_at.is_null())
        .select((Account::as_select(), master_tokens::token_id))
        .first(&mut conn)
        .await
        .optional()?)
}

/// Revokes live master tokens of `account_id`: the one with `token_id` (`only`), or every one but
/// it (`all_but`). The replicas hear of it in the same transaction (their sockets of those tokens
/// close). Returns how many were revoked.
pub async fn revoke(db: &Db, account_id: i64, token_id: i64, scope: RevokeScope) -> Result<usize, DbError> {
    let mut conn = db.conn().await?;
    let revoked: Vec<i64> = conn
        .build_transaction()
        .run(async move |conn: &mut AsyncPgConnection| {
            let live = master_tokens::table
                .filter(master_tokens::account_id.eq(account_id))
                .filter(master_tokens::revoked_at.is_null());
            let revoked: Vec<i64> = match scope {
                RevokeScope::Only => {
                    diesel::update(live.filter(master_tokens::token_id.eq(token_id)))
                        .set(master_tokens::revoked_at.eq(diesel::dsl::now))
                        .returning(master_tokens::token_id)
                        .get_results(&mut *conn)
                        .await?
                }
                RevokeScope::AllBut => {
                    diesel::update(live.filter(master_tokens::token_id.ne(token_id)))
                        .set(master_tokens::revoked_at.eq(diesel::dsl::now))
                        .returning(master_tokens::token_id)
                        .get_results(&mut *conn)
                        .await?
                }
            };
            if !revoked.is_empty() {
                let event = Event::MasterTokensRevoked { token_ids: revoked.clone() };
                let payload = serde_json::to_string(&event)
                    .map_err(|e| DbError::Query(diesel::result::Error::SerializationError(Box::new(e))))?;
                db_kit::listener::notify(conn, NOTIFY_CHANNEL, &payload).await?;
            }
            Ok::<_, DbError>(revoked)
        })
        .await?;
    Ok(revoked.len())
}

/// Which master tokens [`revoke`] touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeScope {
    /// The given token only.
    Only,
    /// Every live token of the account except the given one.
    AllBut,
}

/// The revoked ones among `token_ids`.
pub async fn revoked_among(db: &Db, token_ids: &[i64]) -> Result<Vec<i64>, DbError> {
    if token_ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut conn = db.conn().await?;
    Ok(master_tokens::table
        .filter(master_tokens::token_id.eq_any(token_ids))
        .filter(master_tokens::revoked_at.is_not_null())
        .select(master_tokens::token_id)
        .load(&mut conn)
        .await?)
}

/// Forgets used signed messages whose window closed before `now`; returns how many.
pub async fn forget_used_messages(db: &Db, now: OffsetDateTime) -> Result<usize, DbError> {
    let mut conn = db.conn().await?;
    Ok(diesel::delete(used_signed_messages::table.filter(used_signed_messages::expires_at.lt(now)))
        .execute(&mut conn)
        .await?)
}
