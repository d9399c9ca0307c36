//! Callback requests: one row per due notification in the `callbacks` table, written in the
//! transaction that makes it due, with everything its delivery needs (the URL with
//! `{callbackReason}` filled in, the caller's token and encryption, the payload). The envelope's
//! `apiVersion`, `timestamp` and `minerId` are added when it is signed for delivery, which also
//! puts `callbackPayload` first as the reference does (JSONB keeps no key order).

use bsv_primitives::{BlockHash, BlockHeader, TargetType, TscProof, Txid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde_json::{Value, json};

/// Why a callback is sent (the reference's `callbackReason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The transaction was mined.
    MerkleProof,
    /// A conflicting transaction was mined.
    DoubleSpend,
    /// A node saw a conflicting transaction.
    DoubleSpendAttempt,
}

impl Reason {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MerkleProof => "merkleProof",
            Self::DoubleSpend => "doubleSpend",
            Self::DoubleSpendAttempt => "doubleSpendAttempt",
        }
    }
}

/// Who wants a callback for a transaction, as stored at submission.
#[derive(Debug, Clone)]
pub struct Subscriber {
    /// The transaction's row.
    pub tx_internal_id: i64,
    /// The transaction.
    pub txid: Txid,
    /// Callback URL (may hold `{callbackReason}`).
    pub url: String,
    /// `Authorization` value to send.
    pub token: Option<String>,
    /// Encryption of the body.
    pub encryption: Option<String>,
    /// `"TSC"`, or anything else for the legacy proof format (the submission default).
    pub merkle_format: Option<String>,
}

/// A row to write.
#[derive(Debug, Clone)]
pub struct NewCallback {
    tx_internal_id: i64,
    txid: Vec<u8>,
    reason: &'static str,
    block_hash: Option<Vec<u8>>,
    ds_txid: Option<Vec<u8>>,
    url: String,
    token: Option<String>,
    encryption: Option<String>,
    payload: Value,
}

/// `url` with every `{callbackReason}` (any case) replaced by `reason`.
pub fn url_for(url: &str, reason: Reason) -> String {
    const PLACEHOLDER: &str = "{callbackreason}";
    let lower = url.to_ascii_lowercase();
    let mut out = String::with_capacity(url.len());
    let mut rest = 0;
    for (at, _) in lower.match_indices(PLACEHOLDER) {
        out.push_str(&url[rest..at]);
        out.push_str(reason.as_str());
        rest = at + PLACEHOLDER.len();
    }
    out.push_str(&url[rest..]);
    out
}

fn row(
    who: &Subscriber,
    reason: Reason,
    block: Option<BlockHash>,
    ds_txid: Option<Txid>,
    payload: Value,
) -> NewCallback {
    NewCallback {
        tx_internal_id: who.tx_internal_id,
        txid: who.txid.internal().to_vec(),
        reason: reason.as_str(),
        block_hash: block.map(|b| b.internal().to_vec()),
        ds_txid: ds_txid.map(|t| t.internal().to_vec()),
        url: url_for(&who.url, reason),
        token: who.token.clone(),
        encryption: who.encryption.clone(),
        payload,
    }
}

/// The header as the legacy proof's `target` (the fields `getblockheader` reports that the 80
/// bytes and the height determine).
fn legacy_target(header: &BlockHeader, height: u64) -> Value {
    json!({
        "hash": header.hash().to_string(),
        "height": height,
        "version": header.version(),
        "versionHex": format!("{:08x}", header.version()),
        "merkleroot": BlockHash::from_internal(header.merkle_root()).to_string(),
        "time": header.time(),
        "nonce": header.nonce(),
        "bits": format!("{:08x}", header.bits()),
        "difficulty": header.difficulty(),
        "previousblockhash": header.prev_hash().to_string(),
    })
}

/// The `merkleProof` callback of a mined transaction: a TSC proof whose target is the header when
/// the transaction was submitted with `merkleFormat` "TSC", a BUMP (BRC-74 JSON) for "BUMP", else
/// the legacy format.
pub fn merkle_proof(who: &Subscriber, header: &BlockHeader, height: u64, proof: &TscProof) -> NewCallback {
    let block = header.hash();
    let bump = (who.merkle_format.as_deref() == Some("BUMP"))
        .then(|| bsv_primitives::Bump::from_tsc(height, proof).ok())
        .flatten()
        .filter(|b| b.verify_against_header(header).is_ok());
    let body = if let Some(bump) = bump {
        serde_json::to_value(&bump).unwrap_or(Value::Null)
    } else if who.merkle_format.as_deref() == Some("TSC") {
        let mut tsc = proof.clone();
        tsc.target_type = Some(TargetType::Header);
        tsc.target = hex::encode(header.as_bytes());
        serde_json::to_value(&tsc).unwrap_or(Value::Null)
    } else {
        json!({
            "flags": 2,
            "index": proof.index,
            "txOrId": proof.tx_or_id,
            "target": legacy_target(header, height),
            "nodes": proof.nodes,
        })
    };
    let payload = json!({
        "callbackPayload": body,
        "blockHash": block.to_string(),
        "blockHeight": height,
        "callbackTxId": who.txid.to_string(),
        "callbackReason": Reason::MerkleProof.as_str(),
    });
    row(who, Reason::MerkleProof, Some(block), None, payload)
}

/// A `doubleSpend` callback (in a block: its hash and height) or a `doubleSpendAttempt` one
/// (`block` is `None`: `blockHash` "" and `blockHeight` -1, as the reference sends).
pub fn double_spend(
    who: &Subscriber,
    block: Option<(BlockHash, u64)>,
    ds_txid: Txid,
    ds_tx_hex: &str,
) -> NewCallback {
    let reason = if block.is_some() { Reason::DoubleSpend } else { Reason::DoubleSpendAttempt };
    let payload = json!({
        "callbackPayload": {"doubleSpendTxId": ds_txid.to_string(), "payload": ds_tx_hex},
        "blockHash": block.map_or(String::new(), |b| b.0.to_string()),
        "blockHeight": block.map_or(-1, |b| i64::try_from(b.1).unwrap_or(i64::MAX)),
        "callbackTxId": who.txid.to_string(),
        "callbackReason": reason.as_str(),
    });
    row(who, reason, block.map(|b| b.0), Some(ds_txid), payload)
}

/// Writes rows; one already written for the same transaction, reason, block and double-spending
/// transaction is left as it is (events repeat; callbacks do not). Returns the rows written.
pub async fn insert(
    conn: &mut AsyncPgConnection,
    rows: &[NewCallback],
) -> Result<usize, diesel::result::Error> {
    use diesel::sql_types::{Array, BigInt, Bytea, Nullable, Text};
    if rows.is_empty() {
        return Ok(0);
    }
    // One parameter per column (a multi-row VALUES list would bind every field).
    diesel::sql_query(
        "INSERT INTO callbacks (tx_internal_id, txid, reason, block_hash, ds_txid, url, token, encryption, payload) \
         SELECT i, t, r, b, d, u, k, e, p::json \
         FROM unnest($1::bigint[], $2::bytea[], $3::text[], $4::bytea[], $5::bytea[], $6::text[], $7::text[], \
                     $8::text[], $9::text[]) AS c (i, t, r, b, d, u, k, e, p) \
         ON CONFLICT DO NOTHING",
    )
    .bind::<Array<BigInt>, _>(rows.iter().map(|r| r.tx_internal_id).collect::<Vec<_>>())
    .bind::<Array<Bytea>, _>(rows.iter().map(|r| r.txid.clone()).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(rows.iter().map(|r| r.reason).collect::<Vec<_>>())
    .bind::<Array<Nullable<Bytea>>, _>(rows.iter().map(|r| r.block_hash.clone()).collect::<Vec<_>>())
    .bind::<Array<Nullable<Bytea>>, _>(rows.iter().map(|r| r.ds_txid.clone()).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(rows.iter().map(|r| r.url.clone()).collect::<Vec<_>>())
    .bind::<Array<Nullable<Text>>, _>(rows.iter().map(|r| r.token.clone()).collect::<Vec<_>>())
    .bind::<Array<Nullable<Text>>, _>(rows.iter().map(|r| r.encryption.clone()).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(rows.iter().map(|r| r.payload.to_string()).collect::<Vec<_>>())
    .execute(conn)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subscriber(format: Option<&str>) -> Subscriber {
        Subscriber {
            tx_internal_id: 1,
            txid: Txid::from_internal([7; 32]),
            url: "https://h/api/v1/channel/533/{CallbackReason}?r={callbackreason}".into(),
            token: Some("Bearer t".into()),
            encryption: None,
            merkle_format: format.map(str::to_owned),
        }
    }

    #[test]
    fn the_reason_fills_the_placeholder_in_any_case() {
        assert_eq!(
            url_for("https://h/api/v1/channel/533/{CallbackReason}?r={callbackreason}", Reason::DoubleSpend),
            "https://h/api/v1/channel/533/doubleSpend?r=doubleSpend"
        );
        assert_eq!(url_for("https://h/cb", Reason::MerkleProof), "https://h/cb");
    }

    #[test]
    fn attempts_have_no_block() {
        let r = double_spend(&subscriber(None), None, Txid::from_internal([9; 32]), "00");
        assert_eq!(r.reason, "doubleSpendAttempt");
        assert_eq!(r.payload["blockHash"], "");
        assert_eq!(r.payload["blockHeight"], -1);
        assert_eq!(r.payload["callbackPayload"]["payload"], "00");
        assert_eq!(r.url, "https://h/api/v1/channel/533/doubleSpendAttempt?r=doubleSpendAttempt");
    }

    #[test]
    fn merkle_proofs_follow_the_submitted_format() {
        let header = BlockHeader::from_bytes([3; 80]);
        let proof = TscProof {
            index: 0,
            tx_or_id: Txid::from_internal([7; 32]).to_string(),
            target_type: None,
            target: header.hash().to_string(),
            proof_type: None,
            composite: None,
            nodes: vec![],
        };
        let tsc = merkle_proof(&subscriber(Some("TSC")), &header, 5, &proof);
        assert_eq!(tsc.payload["callbackPayload"]["targetType"], "header");
        assert_eq!(tsc.payload["callbackPayload"]["target"], hex::encode([3u8; 80]));
        let legacy = merkle_proof(&subscriber(None), &header, 5, &proof);
        assert_eq!(legacy.payload["callbackPayload"]["flags"], 2);
        assert_eq!(legacy.payload["callbackPayload"]["target"]["hash"], header.hash().to_string());
        assert_eq!(legacy.payload["callbackPayload"]["target"]["height"], 5);
        assert_eq!(legacy.payload["blockHeight"], 5);
    }

    #[test]
    fn a_bump_callback_carries_brc74_json_that_leads_to_the_headers_root() {
        let (left, right) = ([7u8; 32], [8u8; 32]);
        let mut raw = [3u8; 80];
        raw[36..68].copy_from_slice(&bsv_primitives::merkle_parent(&left, &right));
        let header = BlockHeader::from_bytes(raw);
        let proof = TscProof {
            index: 1,
            tx_or_id: Txid::from_internal(right).to_string(),
            target_type: None,
            target: header.hash().to_string(),
            proof_type: None,
            composite: None,
            nodes: vec![bsv_primitives::ProofNode::Hash(left)],
        };
        let cb = merkle_proof(&subscriber(Some("BUMP")), &header, 5, &proof);
        let bump: bsv_primitives::Bump =
            serde_json::from_value(cb.payload["callbackPayload"].clone()).unwrap();
        assert_eq!(bump.block_height, 5);
        bump.verify_against_header(&header).unwrap();
        assert_eq!(bump.txids(), vec![Txid::from_internal(right)]);
    }
}
