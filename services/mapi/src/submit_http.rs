//! HTTP shapes of submission: JSON bodies or raw `application/octet-stream` bodies with options
//! in the query, and the signed payloads of the answers.

use std::collections::HashMap;

use actix_web::{HttpRequest, HttpResponse, web};
use bsv_primitives::{ParseLimits, Transaction};
use service_kit::internal::TrustedCaller;
use service_kit::{ApiError, ErrorKind};
use wire_model::MapiTimestamp;
use wire_model::mapi::{API_VERSION, SubmitTxPayload, SubmitTxRequest, SubmitTxsPayload};

use crate::coalesce::Coalescer;
use crate::submit::{MergedSingles, SubmitItem, SubmitOptions, submit, submit_single};
use crate::{AppState, envelopes, nodes};

enum Body {
    Json,
    Binary,
}

fn body_kind(req: &HttpRequest) -> Result<Body, ApiError> {
    let ct = req.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    let mime = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match mime.as_str() {
        "application/json" => Ok(Body::Json),
        "application/octet-stream" => Ok(Body::Binary),
        _ => Err(ApiError::new(
            ErrorKind::UnsupportedMediaType,
            "Use application/json or application/octet-stream.",
        )),
    }
}

/// A query parameter, looked up case-insensitively (the reference's names are case-insensitive).
fn param<'a>(query: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    query.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

fn bool_param(query: &HashMap<String, String>, name: &str) -> Result<Option<bool>, ApiError> {
    match param(query, name) {
        None | Some("") => Ok(None),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(v) => Err(ApiError::bad_request(format!("{name}: '{v}' is not a boolean"))),
    }
}

/// Options from the query (`prefix` is `""` or `"default"` for the batch defaults).
fn query_options(query: &HashMap<String, String>, prefix: &str) -> Result<SubmitOptions, ApiError> {
    let name = |n: &str| {
        if prefix.is_empty() {
            n.to_owned()
        } else {
            format!("{prefix}{}{}", n[..1].to_ascii_uppercase(), &n[1..])
        }
    };
    Ok(SubmitOptions {
        callback_url: param(query, &name("callbackUrl")).map(str::to_owned),
        callback_token: param(query, &name("callbackToken")).map(str::to_owned),
        callback_encryption: param(query, &name("callbackEncryption")).map(str::to_owned),
        merkle_proof: bool_param(query, &name("merkleProof"))?.unwrap_or(false),
        merkle_format: param(query, &name("merkleFormat")).map(str::to_owned),
        ds_check: bool_param(query, &name("dsCheck"))?.unwrap_or(false),
    })
}

/// Parses a JSON body; a malformed one is the client's mistake (400).
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("Invalid JSON body: {e}")))
}

/// A JSON item, with the batch defaults filling its missing options.
fn json_item(r: SubmitTxRequest, defaults: &SubmitOptions) -> SubmitItem {
    SubmitItem {
        raw_hex: r.raw_tx,
        raw_bytes: None,
        options: SubmitOptions {
            callback_url: r.callback_url.or_else(|| defaults.callback_url.clone()),
            callback_token: r.callback_token.or_else(|| defaults.callback_token.clone()),
            callback_encryption: r.callback_encryption.or_else(|| defaults.callback_encryption.clone()),
            merkle_proof: r.merkle_proof.unwrap_or(defaults.merkle_proof),
            merkle_format: r.merkle_format.or_else(|| defaults.merkle_format.clone()),
            ds_check: r.ds_check.unwrap_or(defaults.ds_check),
        },
    }
}

/// `POST /mapi/tx`.
pub async fn submit_tx(
    req: HttpRequest,
    body: web::Bytes,
    query: web::Query<HashMap<String, String>>,
    caller: TrustedCaller,
    state: web::Data<AppState>,
    singles: web::Data<Coalescer<MergedSingles>>,
) -> Result<HttpResponse, ApiError> {
    let item = match body_kind(&req)? {
        Body::Json => {
            let r: SubmitTxRequest = parse_json(&body)?;
            json_item(r, &SubmitOptions::default())
        }
        Body::Binary => {
            SubmitItem { raw_hex: None, raw_bytes: Some(body.to_vec()), options: query_options(&query, "")? }
        }
    };
    let (best, result) =
        tokio::join!(nodes::best_block(&state), submit_single(&state, &singles, &caller, item));
    let ((hash, height), r) = (best?, result?);
    let miner_id = envelopes::miner_id(&state).await?;
    let payload = SubmitTxPayload {
        api_version: API_VERSION.to_owned(),
        timestamp: MapiTimestamp::now(),
        txid: r.txid,
        return_result: r.return_result,
        result_description: r.result_description,
        miner_id: miner_id.clone(),
        current_highest_block_hash: hash,
        current_highest_block_height: height,
        tx_second_mempool_expiry: 0,
        warnings: r.warnings,
        failure_retryable: r.failure_retryable,
        conflicted_with: r.conflicted_with,
    };
    envelopes::envelope(&state, &miner_id, &payload).await
}

/// `POST /mapi/txs`.
pub async fn submit_txs(
    req: HttpRequest,
    body: web::Bytes,
    query: web::Query<HashMap<String, String>>,
    caller: TrustedCaller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let max = state.settings.max_txs_per_request;
    let too_many = || {
        ApiError::new(
            ErrorKind::PayloadTooLarge,
            format!("A request may carry at most {max} transactions (MAX_TXS_PER_REQUEST)."),
        )
    };
    let items: Vec<SubmitItem> = match body_kind(&req)? {
        Body::Json => {
            let list: Vec<SubmitTxRequest> = parse_json(&body)?;
            if list.len() > max {
                return Err(too_many());
            }
            let defaults = query_options(&query, "default")?;
            list.into_iter().map(|r| json_item(r, &defaults)).collect()
        }
        Body::Binary => {
            let options = query_options(&query, "")?;
            let mut stream = &body[..];
            let mut items = Vec::new();
            loop {
                let start = body.len() - stream.len();
                if bsv_primitives::is_extended(stream) {
                    // Extended Format in the stream: its own reader says where it ends.
                    match bsv_primitives::read_extended(stream, &ParseLimits::default()) {
                        Ok(_) if items.len() == max => return Err(too_many()),
                        Ok((_, used)) => {
                            items.push(SubmitItem {
                                raw_hex: None,
                                raw_bytes: Some(stream[..used].to_vec()),
                                options: options.clone(),
                            });
                            stream = &stream[used..];
                            continue;
                        }
                        Err(_) => {
                            return Err(ApiError::bad_request(
                                "Unable to parse incoming stream of transactions",
                            ));
                        }
                    }
                }
                match Transaction::read_from(&mut stream, &ParseLimits::default()) {
                    Ok(Some(_)) if items.len() == max => return Err(too_many()),
                    Ok(Some(_)) => {
                        let end = body.len() - stream.len();
                        items.push(SubmitItem {
                            raw_hex: None,
                            raw_bytes: Some(body[start..end].to_vec()),
                            options: options.clone(),
                        });
                    }
                    Ok(None) => break,
                    Err(_) => {
                        return Err(ApiError::bad_request("Unable to parse incoming stream of transactions"));
                    }
                }
            }
            items
        }
    };
    if items.is_empty() {
        return Err(ApiError::bad_request("No transactions in the request"));
    }
    let (best, outcome) = tokio::join!(nodes::best_block(&state), submit(&state, &caller, items));
    let ((hash, height), outcome) = (best?, outcome?);
    let miner_id = envelopes::miner_id(&state).await?;
    let payload = SubmitTxsPayload {
        api_version: API_VERSION.to_owned(),
        timestamp: MapiTimestamp::now(),
        miner_id: miner_id.clone(),
        current_highest_block_hash: hash,
        current_highest_block_height: height,
        tx_second_mempool_expiry: 0,
        txs: outcome.results,
        failure_count: outcome.failure_count,
    };
    envelopes::envelope(&state, &miner_id, &payload).await
}
