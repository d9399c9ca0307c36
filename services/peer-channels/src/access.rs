//! Who may do what on a channel. Order of checks as the reference's clients expect: a missing
//! `Bearer` is 400 before anything else, then an unknown or revoked token 401, then the token's
//! flags and channel 401. An account (its master token, resolved by the gateway) reaches only its
//! own channels; another account's channel does not exist for it (404).

use actix_web::HttpRequest;
use service_kit::Bearer;
use service_kit::internal::TrustedCaller;

use crate::AppState;
use crate::error::ChannelError;
use crate::store::{self, ChannelRow, TokenRow};

/// What the caller needs on the channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Read messages, notifications.
    Read,
    /// Write messages.
    Write,
    /// Any valid token of the channel (delete, as in the reference).
    Any,
}

/// A caller allowed on a channel, and the token whose read state it uses.
#[derive(Debug, Clone)]
pub struct Access {
    /// The channel.
    pub channel: ChannelRow,
    /// The presented token, or the channel's owner token for its account.
    pub token: TokenRow,
}

/// The account the gateway vouched for; 400 without a Bearer header, else 401.
pub fn account(req: &HttpRequest, caller: &TrustedCaller) -> Result<i64, ChannelError> {
    match caller.account {
        Some(a) => Ok(a),
        None if Bearer::of(req).token().is_none() => Err(ChannelError::NoBearer),
        None => Err(ChannelError::Unauthorized),
    }
}

/// Checks access to channel `external_id` with `token` (from the header or the query string).
pub async fn check(
    state: &AppState,
    caller: &TrustedCaller,
    token: Option<&str>,
    external_id: &str,
    need: Need,
) -> Result<Access, ChannelError> {
    if let Some(account) = caller.account {
        let (channel, token) = store::owned_channel_with_owner(&state.db, account, external_id)
            .await?
            .ok_or(ChannelError::ChannelNotFound)?;
        return Ok(Access { channel, token });
    }
    let token = token.ok_or(ChannelError::NoBearer)?;
    let (token, channel) = store::by_token(&state.db, token).await?.ok_or(ChannelError::Unauthorized)?;
    let allowed = match need {
        Need::Read => token.can_read,
        Need::Write => token.can_write,
        Need::Any => true,
    };
    if !allowed || channel.external_id != external_id {
        return Err(ChannelError::Unauthorized);
    }
    Ok(Access { channel, token })
}
