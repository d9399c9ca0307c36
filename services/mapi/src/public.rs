//! The public mAPI endpoints that exist so far: `GET /mapi/feeQuote` and `GET /mapi/policyQuote`.
//! Every 200 body is a signed JSON envelope.

use actix_web::{HttpResponse, web};
use bsv_primitives::JsonEnvelope;
use service_kit::ApiError;
use service_kit::internal::TrustedCaller;
use wire_model::MapiTimestamp;
use wire_model::mapi::{API_VERSION, CallbackIp, QuotePayload};

use crate::{AppState, nodes, quotes};

/// The current `minerId`; 503 when the MinerId server cannot say.
pub async fn miner_id(state: &AppState) -> Result<String, ApiError> {
    state.signer.miner_id().await.map_err(|e| {
        tracing::warn!(error = %e, "no minerId");
        ApiError::unavailable("The signing service is unavailable, retry later.")
    })
}

/// Signs a payload (which names `miner_id`) and answers with the envelope.
pub async fn envelope<T: serde::Serialize>(
    state: &AppState,
    miner_id: &str,
    payload: &T,
) -> Result<HttpResponse, ApiError> {
    let text = serde_json::to_string(payload).map_err(|e| ApiError::internal(&e))?;
    let env: JsonEnvelope = state.signer.envelope(text, miner_id).await.map_err(|e| {
        tracing::warn!(error = %e, "signing failed");
        ApiError::unavailable("The signing service is unavailable, retry later.")
    })?;
    Ok(HttpResponse::Ok().json(env))
}

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
