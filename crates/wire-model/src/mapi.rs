//! mAPI 1.5.0 wire types (BRFC 5494bcaa549e): the payloads inside signed envelopes and the
//! request bodies. Field names are exactly the reference's; absent optional fields are omitted
//! (the reference omits nulls from payloads).

use bsv_primitives::{BlockHash, TscProof, Txid};
use serde::{Deserialize, Serialize};

use crate::newtypes::FeeAmount;
use crate::timestamp::MapiTimestamp;

/// `apiVersion` of every payload.
pub const API_VERSION: &str = "1.5.0";

/// `returnResult` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReturnResult {
    /// Accepted / found.
    Success,
    /// Refused / not found.
    Failure,
}

/// One fee of a quote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Fee {
    /// `standard` or `data`.
    pub fee_type: String,
    /// Rate for being mined.
    pub mining_fee: FeeAmount,
    /// Rate for being relayed.
    pub relay_fee: FeeAmount,
}

/// An IP address callbacks come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallbackIp {
    /// IPv4 or IPv6, optionally with a port.
    pub ip_address: String,
}

/// Payload of `GET /mapi/feeQuote` and `GET /mapi/policyQuote`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QuotePayload {
    /// Always [`API_VERSION`].
    pub api_version: String,
    /// When the quote was made.
    pub timestamp: MapiTimestamp,
    /// Until when it holds.
    pub expiry_time: MapiTimestamp,
    /// Signer's compressed public key, hex.
    pub miner_id: String,
    /// Best block of the lowest node.
    pub current_highest_block_hash: BlockHash,
    /// Its height.
    pub current_highest_block_height: u64,
    /// Fees by type.
    pub fees: Vec<Fee>,
    /// Where callbacks come from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callbacks: Option<Vec<CallbackIp>>,
    /// Policies (policyQuote only), verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policies: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Body of `POST /mapi/tx` (and each element of `POST /mapi/txs`) in JSON form. Callback fields
/// stay text here: the reference reports their problems per transaction, not as a 400.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SubmitTxRequest {
    /// Raw transaction, hex.
    #[serde(default, alias = "rawtx", alias = "RawTx", alias = "RAWTX")]
    pub raw_tx: Option<String>,
    /// Where to send callbacks.
    #[serde(default, alias = "CallbackUrl", alias = "callbackurl")]
    pub callback_url: Option<String>,
    /// Token for the callback receiver.
    #[serde(default, alias = "CallbackToken", alias = "callbacktoken")]
    pub callback_token: Option<String>,
    /// `libsodium sealed_box <key>`.
    #[serde(default, alias = "CallbackEncryption", alias = "callbackencryption")]
    pub callback_encryption: Option<String>,
    /// Send a Merkle proof callback when mined.
    #[serde(default, alias = "MerkleProof", alias = "merkleproof")]
    pub merkle_proof: Option<bool>,
    /// Proof format (`TSC`).
    #[serde(default, alias = "MerkleFormat", alias = "merkleformat")]
    pub merkle_format: Option<String>,
    /// Send double-spend callbacks.
    #[serde(default, alias = "DsCheck", alias = "dscheck")]
    pub ds_check: Option<bool>,
}

/// A transaction the submission conflicted with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConflictedTx {
    /// Its txid.
    pub txid: Txid,
    /// Its size.
    pub size: u64,
    /// Its hex.
    pub hex: String,
}

/// Payload of `POST /mapi/tx`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubmitTxPayload {
    /// Always [`API_VERSION`].
    pub api_version: String,
    /// When answered.
    pub timestamp: MapiTimestamp,
    /// The transaction (absent when the hex could not be read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub txid: Option<Txid>,
    /// Outcome.
    pub return_result: ReturnResult,
    /// `""` on success, else the reason.
    pub result_description: String,
    /// Signer.
    pub miner_id: String,
    /// Best block of the lowest node.
    pub current_highest_block_hash: BlockHash,
    /// Its height.
    pub current_highest_block_height: u64,
    /// Always 0.
    pub tx_second_mempool_expiry: u32,
    /// Warnings (e.g. missing DSNT output).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warnings: Option<Vec<String>>,
    /// Whether retrying may succeed.
    pub failure_retryable: bool,
    /// Conflicting transactions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflicted_with: Option<Vec<ConflictedTx>>,
}

/// One result of `POST /mapi/txs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TxResult {
    /// The transaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub txid: Option<Txid>,
    /// Outcome.
    pub return_result: ReturnResult,
    /// `""` on success, else the reason.
    pub result_description: String,
    /// Warnings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warnings: Option<Vec<String>>,
    /// Whether retrying may succeed.
    pub failure_retryable: bool,
    /// Conflicting transactions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflicted_with: Option<Vec<ConflictedTx>>,
}

/// Payload of `POST /mapi/txs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubmitTxsPayload {
    /// Always [`API_VERSION`].
    pub api_version: String,
    /// When answered.
    pub timestamp: MapiTimestamp,
    /// Signer.
    pub miner_id: String,
    /// Best block of the lowest node.
    pub current_highest_block_hash: BlockHash,
    /// Its height.
    pub current_highest_block_height: u64,
    /// Always 0.
    pub tx_second_mempool_expiry: u32,
    /// Results, in the reference's order.
    pub txs: Vec<TxResult>,
    /// How many failed.
    pub failure_count: u32,
}

/// Payload of `GET /mapi/tx/{txid}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TxStatusPayload {
    /// Always [`API_VERSION`].
    pub api_version: String,
    /// When answered.
    pub timestamp: MapiTimestamp,
    /// The transaction.
    pub txid: Txid,
    /// Outcome.
    pub return_result: ReturnResult,
    /// Reason, on failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_description: Option<String>,
    /// Block, when mined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_hash: Option<BlockHash>,
    /// Height, when mined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_height: Option<u64>,
    /// Confirmations, when mined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmations: Option<u64>,
    /// Signer.
    pub miner_id: String,
    /// Always 0.
    pub tx_second_mempool_expiry: u32,
    /// Merkle proof, when asked for and mined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merkle_proof: Option<MerkleProofPayload>,
}

/// A Merkle proof in a status answer: TSC (the default), a BUMP (BRC-74 JSON) for `merkleFormat`
/// `BUMP`, or the node's legacy format when the caller asked for another `merkleFormat`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MerkleProofPayload {
    /// The TSC format.
    Tsc(TscProof),
    /// BRC-74's JSON (`{"blockHeight", "path"}`).
    Bump(bsv_primitives::Bump),
    /// `getmerkleproof`'s object, verbatim.
    Legacy(serde_json::Value),
}

/// One output asked for in `POST /mapi/txouts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxOutRequest {
    /// The transaction.
    pub txid: Txid,
    /// The output index.
    pub n: u32,
}

/// One output in `POST /mapi/txouts`' answer, with the fields asked for; when `error` is set only
/// `error` and `collidedWith` are present.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TxOutEntry {
    /// `missing` or `spent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The mempool transaction spending it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collided_with: Option<ConflictedTx>,
    /// Locking script, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script_pub_key: Option<String>,
    /// Locking script length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script_pub_key_len: Option<u64>,
    /// Value in BSV.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// Standard locking script.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_standard: Option<bool>,
    /// Confirmations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmations: Option<i64>,
}

/// Payload of `POST /mapi/txouts`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TxOutsPayload {
    /// Always [`API_VERSION`].
    pub api_version: String,
    /// When answered.
    pub timestamp: MapiTimestamp,
    /// Signer.
    pub miner_id: String,
    /// Outcome.
    pub return_result: ReturnResult,
    /// Reason, on failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_description: Option<String>,
    /// One entry per requested output, in request order.
    pub txouts: Vec<TxOutEntry>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn submit_request_accepts_the_spec_and_model_spellings() {
        let a: SubmitTxRequest = serde_json::from_str(r#"{"rawtx":"00","dsCheck":true}"#).unwrap();
        let b: SubmitTxRequest = serde_json::from_str(r#"{"rawTx":"00","DsCheck":true}"#).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.raw_tx.as_deref(), Some("00"));
    }

    #[test]
    fn payload_names_match_the_reference_and_nulls_are_omitted() {
        let p = SubmitTxPayload {
            api_version: API_VERSION.into(),
            timestamp: serde_json::from_str("\"2022-11-04T10:45:29.4034819Z\"").unwrap(),
            txid: None,
            return_result: ReturnResult::Failure,
            result_description: "Invalid characters in rawTx".into(),
            miner_id: "02ab".into(),
            current_highest_block_hash: BlockHash::from_internal([0; 32]),
            current_highest_block_height: 5,
            tx_second_mempool_expiry: 0,
            warnings: None,
            failure_retryable: false,
            conflicted_with: None,
        };
        let json = serde_json::to_value(&p).unwrap();
        let keys: Vec<_> = json.as_object().unwrap().keys().cloned().collect();
        assert_eq!(
            keys,
            [
                "apiVersion",
                "currentHighestBlockHash",
                "currentHighestBlockHeight",
                "failureRetryable",
                "minerId",
                "resultDescription",
                "returnResult",
                "timestamp",
                "txSecondMempoolExpiry"
            ]
        );
        assert_eq!(json["returnResult"], "failure");
        assert_eq!(json["timestamp"], "2022-11-04T10:45:29.4034819Z");
    }
}
