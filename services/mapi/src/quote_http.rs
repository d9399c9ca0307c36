//! `GET /mapi/feeQuote` and `GET /mapi/policyQuote`: the caller's current quote, as a signed
//! envelope naming the nodes' common tip.

use actix_web::{HttpResponse, web};
use service_kit::ApiError;
use service_kit::internal::TrustedCaller;
use wire_model::MapiTimestamp;
use wire_model::mapi::{API_VERSION, CallbackIp, QuotePayload};

use crate::envelopes::{envelope, miner_id};
use crate::{AppState, nodes, quotes};

async fn quote(
    caller: TrustedCaller,
    state: &AppState,
    with_policies: bool,
) -> Result<HttpResponse, ApiError> {
    let identity = caller.identity.as_ref().map(|(i, p)| (i.as_str(), p.as_str()));
    let all = quotes::cached_for_identity(state, identity).await?;
    let now = time::OffsetDateTime::now_utc();
    // An authenticated caller without a quote of its own gets 404, not the anonymous quote.
    let quote = quotes::current(&all, now).ok_or_else(|| ApiError::not_found("No fee quotes available"))?;
    let (hash, height) = nodes::best_block(state).await?;
    let miner_id = miner_id(state).await?;
    let ips = state.settings.callback_ips();
    let payload = QuotePayload {
        api_version: API_VERSION.to_owned(),
        timestamp: MapiTimestamp(now),
        expiry_time: MapiTimestamp(
            now + time::Duration::minutes(i64::from(state.settings.quote_expiry_minutes)),
        ),
        miner_id: miner_id.clone(),
        current_highest_block_hash: hash,
        current_highest_block_height: height,
        fees: quote.fees(),
        callbacks: (!ips.is_empty())
            .then(|| ips.into_iter().map(|ip_address| CallbackIp { ip_address }).collect()),
        policies: if with_policies { quote.policies_object() } else { None },
    };
    envelope(state, &miner_id, &payload).await
}

/// `GET /mapi/feeQuote`.
pub async fn fee_quote(caller: TrustedCaller, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    quote(caller, &state, false).await
}

/// `GET /mapi/policyQuote`.
pub async fn policy_quote(
    caller: TrustedCaller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    quote(caller, &state, true).await
}
