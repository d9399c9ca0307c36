//! Accounts: sign-up with a key-signed message (`POST /api/v1/account/key` and
//! `POST /api/v1/account/register`) and `GET /api/v1/account`.
//!
//! Unlike the reference, the signed message must be `"<endpoint URL> <UTC ISO-8601 time>"` with
//! the time inside a configurable window, so a captured request cannot be replayed later.

pub mod signed_message;
pub mod store;

use std::net::IpAddr;

use actix_web::{HttpRequest, HttpResponse, web};
use bsv_primitives::PublicKey;
use serde::{Deserialize, Serialize};
use service_kit::{ApiError, ErrorKind};
use time::OffsetDateTime;
use time::format_description::well_known::Iso8601;

use crate::AppState;
use crate::tokens;

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

/// The client address rate limits are keyed by.
fn client_addr(req: &HttpRequest) -> IpAddr {
    req.peer_addr().map(|a| a.ip()).unwrap_or(IpAddr::from([0, 0, 0, 0]))
}

/// A failed authentication: 401, or 429 once the address failed too often.
pub(crate) fn auth_failure(state: &AppState, req: &HttpRequest, detail: &str) -> ApiError {
    if state.limits.allow_failure(client_addr(req)) {
        ApiError::unauthorized(detail)
    } else {
        ApiError::new(ErrorKind::TooManyRequests, "Too many failed attempts; retry later.")
    }
}

/// A verified key, and whether the message named this endpoint at an acceptable time.
struct Verified {
    key_bytes: Vec<u8>,
    key_hex: String,
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
    check_message(state, &message, path).map_err(|why| auth_failure(state, req, why))?;
    Ok(Verified { key_bytes, key_hex: data.public_key_hex })
}

/// The message must be `"<public URL><path> <time>"` with the time within the window.
fn check_message(state: &AppState, message: &[u8], path: &str) -> Result<(), &'static str> {
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
    Ok(())
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
    if !state.limits.allow_signup(client_addr(&req)) {
        return Err(ApiError::new(ErrorKind::TooManyRequests, "Too many sign-ups; retry later."));
    }
    let verified = verify_body(&state, &req, &body, req.path())?;
    let issued = tokens::issue();
    let account = store::sign_up(&state.db, &verified.key_bytes, &issued.digest).await?;
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
    if let Some(header) = req.headers().get(actix_web::http::header::AUTHORIZATION) {
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .ok_or_else(|| ApiError::bad_request("Invalid API key"))?;
        let account = store::by_token(&state.db, &tokens::digest(token))
            .await?
            .filter(|a| !a.disabled)
            .ok_or_else(|| auth_failure(&state, &req, "Unknown or disabled API key."))?;
        return Ok(HttpResponse::Ok().json(AccountResponse {
            public_key_hex: hex::encode(&account.public_key),
            api_key: token.to_owned(),
        }));
    }
    let verified = verify_body(&state, &req, &body, req.path())?;
    let account = store::by_public_key(&state.db, &verified.key_bytes)
        .await?
        .filter(|a| !a.disabled)
        .ok_or_else(|| auth_failure(&state, &req, "Unknown or disabled account."))?;
    let issued = tokens::issue();
    store::add_token(&state.db, account.account_id, &issued.digest).await?;
    Ok(HttpResponse::Ok().json(AccountResponse { public_key_hex: verified.key_hex, api_key: issued.token }))
}
