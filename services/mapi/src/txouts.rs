//! `POST /mapi/txouts`: outputs as every node sees them, with the fields the caller may ask for.

use actix_web::{HttpRequest, HttpResponse, web};
use node_client::RpcError;
use node_client::rpc_types::{TxOutInfo, TxOutRef};
use service_kit::ApiError;
use wire_model::MapiTimestamp;
use wire_model::mapi::{API_VERSION, ConflictedTx, ReturnResult, TxOutEntry, TxOutRequest, TxOutsPayload};

use crate::{AppState, envelopes, nodes};

fn entry(info: &TxOutInfo, fields: &[String]) -> TxOutEntry {
    if info.error.is_some() {
        return TxOutEntry {
            error: info.error.clone(),
            collided_with: info.collided_with.as_ref().map(|c| ConflictedTx {
                txid: c.txid,
                size: c.size,
                hex: c.hex.clone(),
            }),
            ..TxOutEntry::default()
        };
    }
    let has = |f: &str| fields.iter().any(|x| x == f);
    TxOutEntry {
        script_pub_key: info.script_pub_key.clone().filter(|_| has("scriptPubKey")),
        script_pub_key_len: info.script_pub_key_len.filter(|_| has("scriptPubKeyLen")),
        value: info.value.filter(|_| has("value")),
        is_standard: info.is_standard.filter(|_| has("isStandard")),
        confirmations: info.confirmations.filter(|_| has("confirmations")),
        ..TxOutEntry::default()
    }
}

/// `POST /mapi/txouts?includeMempool=&returnField=...`.
pub async fn txouts(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let allowed: Vec<String> = state
        .settings
        .allowed_txout_fields
        .split(',')
        .map(|f| f.trim().to_owned())
        .filter(|f| !f.is_empty())
        .collect();
    let mut fields: Vec<String> = Vec::new();
    let mut include_mempool = true;
    for (k, v) in url::form_urlencoded::parse(req.query_string().as_bytes()) {
        if k.eq_ignore_ascii_case("returnField") {
            let field = allowed.iter().find(|a| a.eq_ignore_ascii_case(&v)).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "Invalid return field selected. Allowed fields: {}.",
                    allowed.join(", ")
                ))
            })?;
            if !fields.contains(field) {
                fields.push(field.clone());
            }
        } else if k.eq_ignore_ascii_case("includeMempool") {
            include_mempool = match v.to_ascii_lowercase().as_str() {
                "true" | "" => true,
                "false" => false,
                other => {
                    return Err(ApiError::bad_request(format!("includeMempool: '{other}' is not a boolean")));
                }
            };
        }
    }
    if fields.is_empty() {
        fields = allowed.clone();
    }
    let wanted: Vec<TxOutRequest> = crate::submit_http::parse_json(&body)?;
    let refs: Vec<TxOutRef> = wanted.iter().map(|w| TxOutRef { txid: w.txid, n: w.n }).collect();
    let field_refs: Vec<&str> = fields.iter().map(String::as_str).collect();

    let nodes = nodes::clients(&state).await?;
    let answers = futures_util::future::join_all(
        nodes.iter().map(|(_, c)| c.get_tx_outs(&refs, &field_refs, include_mempool)),
    )
    .await;
    let mut ok = Vec::new();
    let mut rpc_errors = Vec::new();
    for a in answers {
        match a {
            Ok(r) if r.txouts.len() == refs.len() => ok.push(r.txouts),
            Ok(_) => rpc_errors.push("the node answered a different number of outputs".to_owned()),
            Err(RpcError::Rpc { message, .. }) => rpc_errors.push(message),
            Err(e) => tracing::warn!(error = %e, "node unreachable for txouts"),
        }
    }
    if ok.is_empty() && rpc_errors.is_empty() {
        return Err(ApiError::unavailable("Failed to connect to node(s)."));
    }
    let miner_id = envelopes::miner_id(&state).await?;
    let mut payload = TxOutsPayload {
        api_version: API_VERSION.to_owned(),
        timestamp: MapiTimestamp::now(),
        miner_id: miner_id.clone(),
        return_result: ReturnResult::Success,
        result_description: None,
        txouts: Vec::new(),
    };
    let Some(first) = ok.first() else {
        payload.return_result = ReturnResult::Failure;
        payload.result_description = rpc_errors.into_iter().next();
        return envelopes::envelope(&state, &miner_id, &payload).await;
    };
    let mixed = ok.iter().any(|other| other.iter().zip(first).any(|(a, b)| a.error != b.error));
    if mixed {
        payload.return_result = ReturnResult::Failure;
        payload.result_description = Some("Mixed results".to_owned());
        return envelopes::envelope(&state, &miner_id, &payload).await;
    }
    payload.txouts = first.iter().map(|info| entry(info, &fields)).collect();
    envelopes::envelope(&state, &miner_id, &payload).await
}
