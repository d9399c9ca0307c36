//! Accounts: sign-up with a key-signed message (`POST /api/v1/account/key` and
//! `POST /api/v1/account/register`), `GET /api/v1/account`, and master token revocation
//! (`DELETE /api/v1/account/token`, `DELETE /api/v1/account/tokens`).
//!
//! Unlike the reference, the signed message must be `"<endpoint URL> <UTC ISO-8601 time>"` with
//! the time inside a configurable window, and each signed message is accepted once (its digest is
//! remembered in the database, which every replica shares, until its window closes), so a captured
//! request can be replayed neither later nor within the window.

pub mod signed_message;
pub mod store;

use std::net::IpAddr;

use actix_web::{HttpRequest, HttpResponse, web};
use bsv_primitives::PublicKey;
use serde::{Deserialize, Serialize};
use service_kit::{ApiError, Bearer, ErrorKind};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Iso8601;

use crate::AppState;
use crate::tokens;
use store::{IssueError, RevokeScope, SignedUse};

/// The sign-up body ("VerifiableKeyData").
#[derive(Debug, Deserialize)]
pub struct VerifiableKeyData {
    /// Compressed (33 bytes) or uncompressed (65 bytes) SEC1 key, hex.
    pub public_key_hex: String,
    /// 65-byte Bitcoin Signed Message compact signature, hex.
    pub signature_hex: String,
    /// The signed message's bytes, hex.
    pub message_hex: String,
}

/// The answer: the key as sent and a master bearer token issued to this caller.
#[derive(Debug, Serialize)]
pub struct AccountResponse {
    /// The key, echoed as sent (ElectrumSV checks this).
    pub public_key_hex: String,
    /// The master bearer token.
    pub api_key: String,
}

/// The client address rate limits are keyed by (behind trusted proxies, the forwarded one).
fn client_addr(state: &AppState, req: &HttpRequest) -> IpAddr {
    state.trusted_proxies.client(req)
}

/// A failed authentication: 401, or 429 once the address failed too often.
pub(crate) fn auth_failure(state: &AppState, req: &HttpRequest, detail: &str) -> ApiError {
    if state.limits.allow_failure(client_addr(state, req)) {
        ApiError::unauthorized(detail)
    } else {
        ApiError::new(ErrorKind::TooManyRequests, "Too many failed attempts; retry later.")
    }
}

/// A verified key whose message named this endpoint at an acceptable time, and the message's use.
struct Verified {
    key_bytes: Vec<u8>,
    key_hex: String,
    signed: SignedUse,
}

/// Parses and verifies a VerifiableKeyData body for the endpoint at `path`.
fn verify_body(state: &AppState, req: &HttpRequest, body: &[u8], path: &str) -> Result<Verified, ApiError> {
    if body.is_empty() {
        return Err(ApiError::bad_request("Body required"));
    }
    let data: VerifiableKeyData =
        serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("Invalid JSON body: {e}")))?;
    let key_bytes =
        hex::decode(&data.public_key_hex).map_err(|_| ApiError::bad_request("Invalid key data type"))?;
    let key = PublicKey::from_sec1(&key_bytes).map_err(|_| ApiError::bad_request("Invalid key data type"))?;
    let signature =
        hex::decode(&data.signature_hex).map_err(|_| ApiError::bad_request("Invalid signature data type"))?;
    let message =
        hex::decode(&data.message_hex).map_err(|_| ApiError::bad_request("Invalid message data type"))?;
    match signed_message::verify(&key, &message, &signature) {
        Ok(()) => {}
        Err(signed_message::SignedMessageError::BadEncoding) => {
            return Err(ApiError::bad_request("Invalid signature data type"));
        }
        Err(signed_message::SignedMessageError::Mismatch) => {
            return Err(auth_failure(state, req, "The signature does not match the key and message."));
        }
    }
    let expires_at = check_message(state, &message, path).map_err(|why| auth_failure(state, req, why))?;
    let digest =
        Sha256::new().chain_update(&key_bytes).chain_update([0]).chain_update(&message).finalize().into();
    Ok(Verified { key_bytes, key_hex: data.public_key_hex, signed: SignedUse { digest, expires_at } })
}

/// The message must be `"<public URL><path> <time>"` with the time within the window; returns
/// when the window of the message closes.
fn check_message(state: &AppState, message: &[u8], path: &str) -> Result<OffsetDateTime, &'static str> {
    let text = std::str::from_utf8(message).map_err(|_| "The signed message is not text.")?;
    let (url, when) =
        text.rsplit_once(' ').ok_or("The signed message must be \"<endpoint URL> <UTC time>\".")?;
    let expected = format!("{}{path}", state.settings.public_base());
    if url != expected {
        return Err("The signed message names another endpoint.");
    }
    let when = parse_utc(when).ok_or("The signed message's time is not ISO-8601.")?;
    let window =
        time::Duration::seconds(i64::try_from(state.settings.signup_window_secs).unwrap_or(i64::MAX));
    let now = state.clock.now();
    if when < now - window || when > now + window {
        return Err("The signed message's time is outside the accepted window.");
    }
    Ok(when + window)
}

/// A token could not be issued: a replayed message is an authentication failure.
fn issue_failure(state: &AppState, req: &HttpRequest, e: IssueError) -> ApiError {
    match e {
        IssueError::Replayed => auth_failure(state, req, "This signed message was already used."),
        IssueError::Db(e) => e.into(),
    }
}

/// Parses an ISO-8601 time with an offset, or without one (as ElectrumSV's `utcnow().isoformat()`
/// writes it), which is then taken as UTC.
fn parse_utc(s: &str) -> Option<OffsetDateTime> {
    if let Ok(t) = OffsetDateTime::parse(s, &Iso8601::DEFAULT) {
        return Some(t);
    }
    time::PrimitiveDateTime::parse(s, &Iso8601::DEFAULT).ok().map(|t| t.assume_utc())
}

/// `POST /api/v1/account/key` and `POST /api/v1/account/register`.
pub async fn sign_up(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    if !state.limits.allow_signup(client_addr(&state, &req)) {
        return Err(ApiError::new(ErrorKind::TooManyRequests, "Too many sign-ups; retry later."));
    }
    let verified = verify_body(&state, &req, &body, req.path())?;
    let issued = tokens::issue();
    let account = store::sign_up(&state.db, &verified.key_bytes, &issued.digest, &verified.signed)
        .await
        .map_err(|e| issue_failure(&state, &req, e))?;
    if account.disabled {
        return Err(auth_failure(&state, &req, "The account is disabled."));
    }
    tracing::info!(account.id = account.account_id, "master token issued");
    Ok(HttpResponse::Ok().json(AccountResponse { public_key_hex: verified.key_hex, api_key: issued.token }))
}

/// `GET /api/v1/account`: with a master bearer token (the token is echoed to its own holder), or
/// with a signed body naming this endpoint (a new token is issued: only digests are stored).
pub async fn get_account(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    if Bearer::of(&req) != Bearer::Absent {
        let (account, token) = master_account(&state, &req).await?;
        return Ok(HttpResponse::Ok().json(AccountResponse {
            public_key_hex: hex::encode(&account.public_key),
            api_key: token.to_owned(),
        }));
    }
    let verified = verify_body(&state, &req, &body, req.path())?;
    let issued = tokens::issue();
    store::issue_for_key(&state.db, &verified.key_bytes, &issued.digest, &verified.signed)
        .await
        .map_err(|e| issue_failure(&state, &req, e))?
        .ok_or_else(|| auth_failure(&state, &req, "Unknown or disabled account."))?;
    Ok(HttpResponse::Ok().json(AccountResponse { public_key_hex: verified.key_hex, api_key: issued.token }))
}

/// The enabled account of the request's master bearer token, the token's id, and the token:
/// 400 without a Bearer header, 401 for a token that is not live.
async fn master_account<'a>(
    state: &AppState,
    req: &'a HttpRequest,
) -> Result<(store::Account, &'a str), ApiError> {
    let token = Bearer::of(req).token().ok_or_else(|| ApiError::bad_request("Invalid API key"))?;
    let (account, _) = store::by_token(&state.db, &tokens::digest(token))
        .await?
        .filter(|(a, _)| !a.disabled)
        .ok_or_else(|| auth_failure(state, req, "Unknown or disabled API key."))?;
    Ok((account, token))
}

/// `DELETE /api/v1/account/token`: revokes the master token presented (`Authorization: Bearer`);
/// 204. Every websocket opened with it closes at once, on every replica.
pub async fn revoke_token(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    revoke(&req, &state, RevokeScope::Only).await
}

/// `DELETE /api/v1/account/tokens`: revokes every other master token of the presenting token's
/// account (after a token leaked: sign a message for a new token, then revoke the rest); 204.
pub async fn revoke_other_tokens(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    revoke(&req, &state, RevokeScope::AllBut).await
}

async fn revoke(req: &HttpRequest, state: &AppState, scope: RevokeScope) -> Result<HttpResponse, ApiError> {
    let token = Bearer::of(req).token().ok_or_else(|| ApiError::bad_request("Invalid API key"))?;
    let (account, token_id) = store::by_token(&state.db, &tokens::digest(token))
        .await?
        .filter(|(a, _)| !a.disabled)
        .ok_or_else(|| auth_failure(state, req, "Unknown or disabled API key."))?;
    let revoked = store::revoke(&state.db, account.account_id, token_id, scope).await?;
    tracing::info!(account.id = account.account_id, tokens.revoked = revoked, "master tokens revoked");
    Ok(HttpResponse::NoContent().finish())
}
