//! Signed answers: every 200 body of the public mAPI is a JSON envelope signed by the miner's key
//! or its MinerId server ([`crate::signer`]), naming the current `minerId`.

use actix_web::HttpResponse;
use bsv_primitives::JsonEnvelope;
use service_kit::ApiError;

use crate::AppState;

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
