//! Account storage: find-or-create by public key, issue tokens, resolve a presented token.

use db_kit::{Db, DbError};
use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::RunQueryDsl;

use crate::schema::{accounts, master_tokens};

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

/// Finds the account of `public_key`, creating it if new; then stores a new token digest for it.
/// Both happen in one transaction, so a token is never issued for an account that did not commit.
pub async fn sign_up(db: &Db, public_key: &[u8], token_digest: &[u8; 32]) -> Result<Account, DbError> {
    let mut conn = db.conn().await?;
    let key = public_key.to_vec();
    let digest = token_digest.to_vec();
    let account = conn
        .build_transaction()
        .run(async move |conn: &mut diesel_async::AsyncPgConnection| {
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
                diesel::insert_into(master_tokens::table)
                    .values((
                        master_tokens::account_id.eq(account.account_id),
                        master_tokens::token_sha256.eq(&digest),
                    ))
                    .execute(&mut *conn)
                    .await?;
            }
            Ok::<_, diesel::result::Error>(account)
        })
        .await?;
    Ok(account)
}

/// The account of an existing key.
pub async fn by_public_key(db: &Db, public_key: &[u8]) -> Result<Option<Account>, DbError> {
    let mut conn = db.conn().await?;
    Ok(accounts::table
        .filter(accounts::public_key.eq(public_key))
        .select(Account::as_select())
        .first(&mut conn)
        .await
        .optional()?)
}

/// Stores another token for an existing account.
pub async fn add_token(db: &Db, account_id: i64, token_digest: &[u8; 32]) -> Result<(), DbError> {
    let mut conn = db.conn().await?;
    diesel::insert_into(master_tokens::table)
        .values((
            master_tokens::account_id.eq(account_id),
            master_tokens::token_sha256.eq(token_digest.to_vec()),
        ))
        .execute(&mut conn)
        .await?;
    Ok(())
}

/// The account a presented token (by digest) belongs to, if the token is live.
pub async fn by_token(db: &Db, token_digest: &[u8; 32]) -> Result<Option<Account>, DbError> {
    let mut conn = db.conn().await?;
    Ok(master_tokens::table
        .inner_join(accounts::table)
        .filter(master_tokens::token_sha256.eq(token_digest.to_vec()))
        .filter(master_tokens::revoked_at.is_null())
        .select(Account::as_select())
        .first(&mut conn)
        .await
        .optional()?)
}
