//! Serde shapes of the node's JSON-RPC requests and answers that mAPI relies on (Bitcoin SV 1.0.x).
//! Unknown fields are ignored so newer nodes keep working.

use bsv_primitives::{BlockHash, Txid};
use serde::{Deserialize, Serialize};

/// One transaction for `sendrawtransactions`.
#[derive(Debug, Clone, Serialize)]
pub struct SendRawTx {
    /// Raw transaction, hex.
    pub hex: String,
    /// Let the node accept absurdly high fees (mAPI always sends false).
    pub allowhighfees: bool,
    /// Skip the node's own fee check (mAPI sets it when the caller's quote was met).
    pub dontcheckfee: bool,
    /// Ask the node to list unconfirmed ancestors (needed for double-spend checks).
    pub listunconfirmedancestors: bool,
    /// Per-transaction policies, passed verbatim from the caller's policy quote.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A transaction the node names as conflicting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollidedTx {
    /// Its txid.
    pub txid: Txid,
    /// Its size in bytes.
    #[serde(default)]
    pub size: u64,
    /// Its raw hex.
    #[serde(default)]
    pub hex: String,
}

/// A transaction the node refused.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RejectedTx {
    /// The refused txid.
    pub txid: Txid,
    /// The node's reject code (e.g. 16, 18, 64, 66, 257, 258).
    pub reject_code: i64,
    /// The node's reason text.
    #[serde(default)]
    pub reject_reason: String,
    /// Conflicting transactions, for double spends.
    #[serde(default, rename = "collidedWith")]
    pub collided_with: Vec<CollidedTx>,
}

/// An input of an unconfirmed ancestor.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AncestorInput {
    /// The spent transaction.
    pub txid: Txid,
    /// The spent output index.
    pub vout: u32,
}

/// An unconfirmed ancestor of an accepted transaction.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Ancestor {
    /// The ancestor's txid.
    pub txid: Txid,
    /// Its inputs.
    #[serde(default)]
    pub vin: Vec<AncestorInput>,
}

/// Unconfirmed ancestors of one accepted transaction.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct UnconfirmedTx {
    /// The accepted transaction.
    pub txid: Txid,
    /// Its unconfirmed ancestors.
    #[serde(default)]
    pub ancestors: Vec<Ancestor>,
}

/// Answer of `sendrawtransactions`; an empty object means every transaction was accepted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct SendRawTransactionsResult {
    /// Already in the mempool or chain.
    #[serde(default)]
    pub known: Vec<Txid>,
    /// Accepted, then evicted from the mempool.
    #[serde(default)]
    pub evicted: Vec<Txid>,
    /// Refused.
    #[serde(default)]
    pub invalid: Vec<RejectedTx>,
    /// Unconfirmed ancestors, when asked for.
    #[serde(default)]
    pub unconfirmed: Vec<UnconfirmedTx>,
}

/// An output reference for `gettxouts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TxOutRef {
    /// The transaction.
    pub txid: Txid,
    /// The output index.
    pub n: u32,
}

/// One output of `gettxouts`, with the fields that were asked for.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TxOutInfo {
    /// `missing` or `spent` when the output cannot be used.
    #[serde(default)]
    pub error: Option<String>,
    /// The mempool transaction spending it, for `spent`.
    #[serde(default)]
    pub collided_with: Option<CollidedTx>,
    /// Locking script, hex.
    #[serde(default)]
    pub script_pub_key: Option<String>,
    /// Locking script length.
    #[serde(default)]
    pub script_pub_key_len: Option<u64>,
    /// Value in BSV (a decimal with 8 places).
    #[serde(default)]
    pub value: Option<f64>,
    /// Whether the locking script is standard.
    #[serde(default)]
    pub is_standard: Option<bool>,
    /// Confirmations (0 in the mempool).
    #[serde(default)]
    pub confirmations: Option<i64>,
}

impl TxOutInfo {
    /// The value in satoshis (exact for every possible amount: 21e14 < 2^53).
    pub fn satoshis(&self) -> Option<i64> {
        self.value.map(|v| (v * 100_000_000.0).round() as i64)
    }
}

/// Answer of `gettxouts`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct GetTxOutsResult {
    /// One entry per requested output, in order.
    pub txouts: Vec<TxOutInfo>,
}

/// Answer of `getblockchaininfo` (the fields mAPI uses).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BlockchainInfo {
    /// `main`, `test`, `regtest`, `stn`.
    pub chain: String,
    /// Height of the best block.
    pub blocks: u64,
    /// Height of the best header.
    pub headers: u64,
    /// Hash of the best block.
    pub bestblockhash: BlockHash,
}

/// Answer of `getnetworkinfo` (the fields mAPI uses; the rest is kept in `extra`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct NetworkInfo {
    /// Numeric version, e.g. 101001300 for 1.0.13.
    pub version: u64,
    /// User agent, e.g. `/Bitcoin SV:1.0.13/`.
    pub subversion: String,
    /// Everything else, including the consolidation parameters.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// Answer of `getblockheader <hash> true`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BlockHeaderInfo {
    /// The block hash.
    pub hash: BlockHash,
    /// Confirmations; -1 when the block is not on the active chain.
    pub confirmations: i64,
    /// Height.
    pub height: u64,
    /// Merkle root, display order.
    pub merkleroot: String,
    /// Block time.
    pub time: u64,
    /// Previous block, absent for genesis.
    #[serde(default)]
    pub previousblockhash: Option<BlockHash>,
    /// Next block on the active chain, if any.
    #[serde(default)]
    pub nextblockhash: Option<BlockHash>,
    /// Block version.
    #[serde(default)]
    pub version: i64,
    /// Compact target, hex (`207fffff`).
    #[serde(default)]
    pub bits: String,
    /// Nonce.
    #[serde(default)]
    pub nonce: u64,
    /// Cumulative work of the chain up to this block, 64 hex digits.
    #[serde(default)]
    pub chainwork: String,
    /// Transactions in the block.
    #[serde(default)]
    pub num_tx: u64,
}

impl BlockHeaderInfo {
    /// The 80 serialized header bytes, rebuilt from the fields (one RPC call instead of two); `None`
    /// when a field is malformed or the bytes do not hash to [`BlockHeaderInfo::hash`].
    pub fn raw_header(&self) -> Option<bsv_primitives::BlockHeader> {
        let mut bytes = [0u8; 80];
        bytes[0..4].copy_from_slice(&i32::try_from(self.version).ok()?.to_le_bytes());
        if let Some(prev) = &self.previousblockhash {
            bytes[4..36].copy_from_slice(prev.internal());
        }
        let mut merkle = hex::decode(&self.merkleroot).ok()?;
        if merkle.len() != 32 {
            return None;
        }
        merkle.reverse();
        bytes[36..68].copy_from_slice(&merkle);
        bytes[68..72].copy_from_slice(&u32::try_from(self.time).ok()?.to_le_bytes());
        bytes[72..76].copy_from_slice(&u32::from_str_radix(&self.bits, 16).ok()?.to_le_bytes());
        bytes[76..80].copy_from_slice(&u32::try_from(self.nonce).ok()?.to_le_bytes());
        let header = bsv_primitives::BlockHeader::from_bytes(bytes);
        (header.hash() == self.hash).then_some(header)
    }

    /// The chain work as 32 big-endian bytes; `None` when malformed.
    pub fn chain_work(&self) -> Option<[u8; 32]> {
        hex::decode(format!("{:0>64}", self.chainwork)).ok()?.try_into().ok()
    }
}

/// Answer of `getrawtransaction <txid> true` (the fields mAPI compares across nodes).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RawTransactionInfo {
    /// The txid.
    pub txid: Txid,
    /// Raw hex.
    pub hex: String,
    /// Block hash when mined.
    #[serde(default)]
    pub blockhash: Option<BlockHash>,
    /// Confirmations when mined.
    #[serde(default)]
    pub confirmations: Option<u64>,
    /// Block time when mined.
    #[serde(default)]
    pub blocktime: Option<u64>,
    /// Block height when mined.
    #[serde(default)]
    pub blockheight: Option<u64>,
}

/// One script to check with `verifyscript`.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyScriptItem {
    /// The spending transaction, hex.
    pub tx: String,
    /// The input index to check.
    pub n: u32,
    /// The spent output's locking script, hex, when the node cannot look it up.
    #[serde(rename = "prevoutScript", skip_serializing_if = "Option::is_none")]
    pub prevout_script: Option<String>,
    /// The spent output's value in satoshis, with `prevout_script`.
    #[serde(rename = "prevoutValue", skip_serializing_if = "Option::is_none")]
    pub prevout_value: Option<i64>,
}

/// One answer of `verifyscript`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct VerifyScriptResult {
    /// `ok`, `error`, `timeout`, `skipped`.
    pub result: String,
    /// Why, when not ok.
    #[serde(default)]
    pub description: Option<String>,
}

/// One entry of `activezmqnotifications`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ZmqNotification {
    /// e.g. `pubhashblock`.
    pub notification: String,
    /// e.g. `tcp://127.0.0.1:28332`.
    pub address: String,
}
