//! Admin status endpoints and unconfirmed transactions: `/api/v1/status/{tx,zmq,blockParser}`,
//! `/api/v1/unconfirmedTxs`.

use actix_web::{HttpResponse, web};
use bsv_primitives::Txid;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde::Deserialize;
use serde_json::json;
use service_kit::ApiError;
use service_kit::internal::TrustedCaller;

use crate::schema::{policy_quotes, txs};
use crate::{AppState, nodes};

/// `GET /api/v1/status/tx`: submission counters of this instance.
pub async fn tx(caller: TrustedCaller, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    caller.require_admin()?;
    let m = &state.metrics;
    let requests = m.requests.get() as f64;
    let tx = (m.tx_authenticated_user.get() + m.tx_anonymous_user.get()) as f64;
    Ok(HttpResponse::Ok().json(json!({
        "request": requests,
        "txAuthenticatedUser": m.tx_authenticated_user.get() as f64,
        "txAnonymousUser": m.tx_anonymous_user.get() as f64,
        "tx": tx,
        "avgBatch": if requests > 0.0 { tx / requests } else { 0.0 },
        "txSentToNode": m.tx_sent_to_node.get() as f64,
        "txAcceptedByNode": m.tx_accepted_by_node.get() as f64,
        "txRejectedByNode": m.tx_rejected_by_node.get() as f64,
        "txSubmitException": m.tx_submit_exception.get() as f64,
        "txResponseSuccess": m.tx_response_success.get() as f64,
        "txResponseFailure": m.tx_response_failure.get() as f64,
        "txResponseException": m.tx_submit_exception.get() as f64,
        "submitTxDescription": format!(
            "Requests: {requests}, transactions: {tx}, sent to node: {}, accepted: {}, rejected: {}.",
            m.tx_sent_to_node.get(), m.tx_accepted_by_node.get(), m.tx_rejected_by_node.get()
        ),
    })))
}

/// `GET /api/v1/status/zmq`: the subscriptions belong to the zmq-listener service; its status,
/// for every node mapi knows (a node the listener has not processed yet is `"Unknown"`, and all
/// are when the listener cannot be reached).
pub async fn zmq(caller: TrustedCaller, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    caller.require_admin()?;
    let url = format!("{}/internal/status", state.settings.zmq_listener_url.as_str().trim_end_matches('/'));
    let listener: Result<Vec<serde_json::Value>, String> = match state.internal.get(&url).send().await {
        Ok(resp) if resp.status().is_success() => resp.json().await.map_err(|e| e.to_string()),
        Ok(resp) => Err(format!("zmq-listener answered {}", resp.status())),
        Err(e) => Err(e.to_string()),
    };
    let list: Vec<serde_json::Value> = nodes::all(&state.db)
        .await?
        .iter()
        .map(|n| {
            let id = n.id();
            let unknown = |error: &str| {
                json!({"nodeId": id, "endpoints": [], "isResponding": false, "lastConnectionAttemptAt": null, "lastError": error})
            };
            match &listener {
                Ok(statuses) => {
                    statuses.iter().find(|s| s["nodeId"] == id.as_str()).cloned().unwrap_or_else(|| unknown("Unknown"))
                }
                Err(e) => {
                    tracing::warn!(error = %e, "zmq-listener status unavailable");
                    unknown("The zmq-listener service is unreachable.")
                }
            }
        })
        .collect();
    Ok(HttpResponse::Ok().json(list))
}

/// `GET /api/v1/status/blockParser`: blocks are parsed by the block-parser service, which keeps
/// the counters; its document, in the reference's shape. 503 when it cannot be reached.
pub async fn blockparser(
    caller: TrustedCaller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require_admin()?;
    let status = block_parser_status(&state).await.map_err(|e| {
        tracing::warn!(error = %e, "block-parser status unavailable");
        ApiError::unavailable("The block-parser service is unreachable.")
    })?;
    Ok(HttpResponse::Ok().json(status))
}

/// block-parser's status document.
pub async fn block_parser_status(state: &AppState) -> Result<serde_json::Value, String> {
    let url = format!("{}/internal/status", state.settings.block_parser_url.as_str().trim_end_matches('/'));
    match state.internal.get(&url).send().await {
        Ok(resp) if resp.status().is_success() => resp.json().await.map_err(|e| e.to_string()),
        Ok(resp) => Err(format!("block-parser answered {}", resp.status())),
        Err(e) => Err(e.to_string()),
    }
}

/// Query of `/api/v1/unconfirmedTxs`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnconfirmedQuery {
    policy_quote_id: Option<i64>,
    identity: Option<String>,
    identity_provider: Option<String>,
}

/// The quotes the query selects, with the reference's rules and messages.
async fn selected_quotes(state: &AppState, q: &UnconfirmedQuery) -> Result<Vec<i64>, ApiError> {
    let mut conn = state.db.conn().await?;
    if let Some(id) = q.policy_quote_id {
        let row: Option<(Option<String>, Option<String>)> = policy_quotes::table
            .find(id)
            .select((policy_quotes::identity, policy_quotes::identity_provider))
            .first(&mut conn)
            .await
            .optional()
            .map_err(db_kit::DbError::from)?;
        let Some((identity, provider)) = row else {
            return Err(ApiError::bad_request("Invalid policyQuoteId."));
        };
        if identity.is_none() {
            return Err(ApiError::bad_request("PolicyQuoteId refers to anonymous user."));
        }
        if (q.identity.is_some() && q.identity != identity)
            || (q.identity_provider.is_some() && q.identity_provider != provider)
        {
            return Err(ApiError::bad_request("Invalid policyQuoteId."));
        }
        return Ok(vec![id]);
    }
    match (&q.identity, &q.identity_provider) {
        (Some(i), Some(p)) => {
            let ids: Vec<i64> = policy_quotes::table
                .filter(policy_quotes::identity.eq(i))
                .filter(policy_quotes::identity_provider.eq(p))
                .select(policy_quotes::id)
                .load(&mut conn)
                .await
                .map_err(db_kit::DbError::from)?;
            if ids.is_empty() {
                return Err(ApiError::bad_request("No policyQuotes available."));
            }
            Ok(ids)
        }
        _ => Err(ApiError::bad_request("Missing query parameters.")),
    }
}

/// `GET /api/v1/unconfirmedTxs`: transactions still "sent to node" under the selected quotes.
pub async fn unconfirmed(
    caller: TrustedCaller,
    state: web::Data<AppState>,
    q: web::Query<UnconfirmedQuery>,
) -> Result<HttpResponse, ApiError> {
    caller.require_admin()?;
    let quotes = selected_quotes(&state, &q).await?;
    let mut conn = state.db.conn().await?;
    let ids: Vec<Vec<u8>> = txs::table
        .filter(txs::policy_quote_id.eq_any(quotes))
        .filter(txs::tx_status.eq(crate::txstore::STATUS_SENT_TO_NODE))
        .select(txs::txid)
        .load(&mut conn)
        .await
        .map_err(db_kit::DbError::from)?;
    let tx_ids: Vec<String> =
        ids.iter().filter_map(|t| Txid::from_internal_slice(t)).map(|t| t.to_string()).collect();
    Ok(HttpResponse::Ok().json(json!({"count": tx_ids.len(), "txIds": tx_ids})))
}

/// `DELETE /api/v1/unconfirmedTxs`.
pub async fn delete_unconfirmed(
    caller: TrustedCaller,
    state: web::Data<AppState>,
    q: web::Query<UnconfirmedQuery>,
) -> Result<HttpResponse, ApiError> {
    caller.require_admin()?;
    let quotes = selected_quotes(&state, &q).await?;
    let mut conn = state.db.conn().await?;
    diesel::delete(
        txs::table
            .filter(txs::policy_quote_id.eq_any(quotes))
            .filter(txs::tx_status.eq(crate::txstore::STATUS_SENT_TO_NODE)),
    )
    .execute(&mut conn)
    .await
    .map_err(db_kit::DbError::from)?;
    Ok(HttpResponse::NoContent().finish())
}
