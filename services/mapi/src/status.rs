//! `GET /mapi/tx/{txid}`: a transaction's status across the nodes, with a Merkle proof on request.
//! Every proof is checked against its block header's Merkle root before it leaves the service.
//!
//! A transaction block-parser reported mined on the active chain is answered from stored state
//! (block, height, confirmations from the reported tip, the TSC proof block-parser built and
//! checked) without a node call; the rest, and the legacy proof format, ask the nodes.

use std::collections::HashMap;

use actix_web::{HttpResponse, web};
use bsv_primitives::Txid;
use node_client::RpcError;
use node_client::rpc_types::RawTransactionInfo;
use serde::Deserialize;
use serde_json::json;
use service_kit::ApiError;
use wire_model::MapiTimestamp;
use wire_model::mapi::{API_VERSION, MerkleProofPayload, ReturnResult, TxStatusPayload};

use crate::{AppState, envelopes, nodes};

/// Query of the status endpoint.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusQuery {
    #[serde(default)]
    merkle_proof: Option<String>,
    #[serde(default)]
    merkle_format: Option<String>,
}

fn payload(miner_id: &str, txid: Txid, result: ReturnResult, description: Option<String>) -> TxStatusPayload {
    TxStatusPayload {
        api_version: API_VERSION.to_owned(),
        timestamp: MapiTimestamp::now(),
        txid,
        return_result: result,
        result_description: description,
        block_hash: None,
        block_height: None,
        confirmations: None,
        miner_id: miner_id.to_owned(),
        tx_second_mempool_expiry: 0,
        merkle_proof: None,
    }
}

/// The fields the reference compares across nodes.
fn fingerprint(info: &RawTransactionInfo) -> (String, Option<String>, Option<u64>) {
    (info.hex.clone(), info.blockhash.map(|b| b.to_string()), info.confirmations)
}

/// `GET /mapi/tx/{txid}?merkleProof=&merkleFormat=`.
pub async fn get_status(
    state: web::Data<AppState>,
    txid: web::Path<String>,
    query: web::Query<StatusQuery>,
) -> Result<HttpResponse, ApiError> {
    let txid: Txid = txid.parse().map_err(|_| ApiError::bad_request("Invalid format of TransactionId"))?;
    let want_proof = match query.merkle_proof.as_deref() {
        None | Some("") => false,
        Some(v) if v.eq_ignore_ascii_case("true") => true,
        Some(v) if v.eq_ignore_ascii_case("false") => false,
        Some(v) => return Err(ApiError::bad_request(format!("merkleProof: '{v}' is not a boolean"))),
    };
    let format = query.merkle_format.as_deref().unwrap_or("TSC");
    let legacy_wanted = want_proof && !matches!(format, "TSC" | "BUMP");
    if !legacy_wanted && let Some(mined) = stored_block(&state.db, &txid).await? {
        let miner_id = envelopes::miner_id(&state).await?;
        let mut p = payload(&miner_id, txid, ReturnResult::Success, None);
        p.block_hash = Some(mined.block_hash);
        p.block_height = Some(mined.height);
        p.confirmations = Some(mined.confirmations);
        if want_proof {
            p.merkle_proof = Some(match format {
                "BUMP" => MerkleProofPayload::Bump(checked_bump(mined.height, &mined.proof, &mined.header)?),
                _ => MerkleProofPayload::Tsc(mined.proof),
            });
        }
        return envelopes::envelope(&state, &miner_id, &p).await;
    }
    let nodes = nodes::clients(&state).await?;
    let miner_id = envelopes::miner_id(&state).await?;
    let answers =
        futures_util::future::join_all(nodes.iter().map(|(_, c)| c.get_raw_transaction_info(&txid))).await;
    let mut found: Vec<RawTransactionInfo> = Vec::new();
    let mut rpc_errors: Vec<String> = Vec::new();
    for a in answers {
        match a {
            Ok(info) => found.push(info),
            Err(RpcError::Rpc { message, .. }) => rpc_errors.push(message),
            Err(e) => tracing::warn!(error = %e, "node unreachable for status"),
        }
    }
    if found.is_empty() && rpc_errors.is_empty() {
        return Err(ApiError::unavailable("Failed to connect to node(s)."));
    }
    let distinct: HashMap<_, _> = found.iter().map(|f| (fingerprint(f), ())).collect();
    if distinct.len() > 1 || (!found.is_empty() && !rpc_errors.is_empty()) {
        let p = payload(&miner_id, txid, ReturnResult::Failure, Some("Mixed results".into()));
        return envelopes::envelope(&state, &miner_id, &p).await;
    }
    let Some(info) = found.into_iter().next() else {
        let message = rpc_errors.into_iter().next().unwrap_or_default();
        let p = payload(&miner_id, txid, ReturnResult::Failure, Some(message));
        return envelopes::envelope(&state, &miner_id, &p).await;
    };
    let mut p = payload(&miner_id, txid, ReturnResult::Success, None);
    if let Some(block) = info.blockhash {
        let client = &nodes[0].1;
        let header =
            client.get_block_header(&block).await.map_err(|e| ApiError::unavailable(e.to_string()))?;
        p.block_hash = Some(block);
        p.block_height = Some(info.blockheight.unwrap_or(header.height));
        p.confirmations = info.confirmations;
        if want_proof {
            let height = info.blockheight.unwrap_or(header.height);
            p.merkle_proof =
                Some(merkle_proof(&nodes, &block, &txid, height, query.merkle_format.as_deref()).await?);
        }
    }
    envelopes::envelope(&state, &miner_id, &p).await
}

/// A stored transaction's block on the active chain, as block-parser reported it.
#[derive(Debug, Clone)]
struct StoredBlock {
    block_hash: bsv_primitives::BlockHash,
    height: u64,
    confirmations: u64,
    /// Target: the header (the query's TSC format).
    proof: bsv_primitives::TscProof,
    /// The block's header.
    header: bsv_primitives::BlockHeader,
}

/// The BUMP of a TSC proof at `height`, checked against the header before it leaves.
fn checked_bump(
    height: u64,
    proof: &bsv_primitives::TscProof,
    header: &bsv_primitives::BlockHeader,
) -> Result<bsv_primitives::Bump, ApiError> {
    let bump = bsv_primitives::Bump::from_tsc(height, proof).map_err(|e| ApiError::internal(&e))?;
    bump.verify_against_header(header).map_err(|e| ApiError::internal(&e))?;
    Ok(bump)
}

/// The transaction's active-chain block and the confirmations from the reported tip, when both
/// are stored; `None` sends the query to the nodes.
async fn stored_block(db: &db_kit::Db, txid: &Txid) -> Result<Option<StoredBlock>, db_kit::DbError> {
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;

    use crate::schema::{chain_tip, tx_blocks, txs};
    let mut conn = db.conn().await?;
    let row: Option<(Vec<u8>, i64, Vec<u8>, serde_json::Value)> = tx_blocks::table
        .inner_join(txs::table)
        .filter(txs::txid.eq(txid.internal().to_vec()))
        .filter(tx_blocks::on_active_chain.eq(true))
        .order(tx_blocks::block_height.desc())
        .select((tx_blocks::block_hash, tx_blocks::block_height, tx_blocks::header, tx_blocks::proof))
        .first(&mut conn)
        .await
        .optional()?;
    let Some((hash, height, header, proof)) = row else { return Ok(None) };
    let tip: Option<i64> =
        chain_tip::table.select(chain_tip::block_height).first(&mut conn).await.optional()?;
    let (Some(tip), Some(block_hash), Ok(header), Ok(mut proof)) = (
        tip,
        bsv_primitives::BlockHash::from_internal_slice(&hash),
        <[u8; 80]>::try_from(header.as_slice()).map(bsv_primitives::BlockHeader::from_bytes),
        serde_json::from_value::<bsv_primitives::TscProof>(proof),
    ) else {
        return Ok(None);
    };
    if tip < height {
        return Ok(None);
    }
    proof.target_type = Some(bsv_primitives::TargetType::Header);
    proof.target = hex::encode(header.as_bytes());
    Ok(Some(StoredBlock {
        block_hash,
        height: u64::try_from(height).unwrap_or_default(),
        confirmations: u64::try_from(tip - height + 1).unwrap_or_default(),
        proof,
        header,
    }))
}

/// The proof from the first node that gives one that checks out against the header.
async fn merkle_proof(
    nodes: &[(nodes::NodeRow, node_client::RpcClient)],
    block: &bsv_primitives::BlockHash,
    txid: &Txid,
    height: u64,
    format: Option<&str>,
) -> Result<MerkleProofPayload, ApiError> {
    for (_, client) in nodes {
        let Ok(header) = client.get_block_header_raw(block).await else { continue };
        match format.unwrap_or("TSC") {
            format @ ("TSC" | "BUMP") => {
                let Ok(proof) = client.get_merkle_proof2_with_target(block, txid, false, "header").await
                else {
                    continue;
                };
                if proof.verify_against_header(&header).is_ok() {
                    return Ok(match format {
                        "BUMP" => MerkleProofPayload::Bump(checked_bump(height, &proof, &header)?),
                        _ => MerkleProofPayload::Tsc(proof),
                    });
                }
                tracing::error!(tx.id = %txid, "a node's Merkle proof does not match the block header");
            }
            _ => {
                let Ok(proof) =
                    client.call::<serde_json::Value>("getmerkleproof", json!([txid, block])).await
                else {
                    continue;
                };
                if legacy_proof_matches(&proof, txid, &header) {
                    return Ok(MerkleProofPayload::Legacy(proof));
                }
                tracing::error!(tx.id = %txid, "a node's legacy Merkle proof does not match the block header");
            }
        }
    }
    Err(ApiError::unavailable("No node returned a Merkle proof that matches the block header."))
}

/// Checks the legacy format (`{flags, index, txOrId, target, nodes}`) by converting it to TSC.
fn legacy_proof_matches(
    proof: &serde_json::Value,
    txid: &Txid,
    header: &bsv_primitives::BlockHeader,
) -> bool {
    let tsc = bsv_primitives::TscProof {
        index: proof["index"].as_u64().unwrap_or(u64::MAX),
        tx_or_id: txid.to_string(),
        target_type: None,
        target: header.hash().to_string(),
        proof_type: None,
        composite: None,
        nodes: match serde_json::from_value(proof["nodes"].clone()) {
            Ok(n) => n,
            Err(_) => return false,
        },
    };
    tsc.verify_against_header(header).is_ok()
}
