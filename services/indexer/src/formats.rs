//! The byte layouts and JSON shapes of the indexer APIs (../shared/spec/esv-reference.md §5.2), in
//! one place: outpoints, output-spend records, tip-filter entries and lists, TSC proofs in binary.
//!
//! Hashes are kept in internal byte order (`[u8; 32]`); JSON shows txids in display order, except
//! where the reference does otherwise (noted at each function).

use bsv_primitives::{ProofNode, TscProof, Txid};
use serde_json::Value;

use crate::error::IndexerError;

/// A transaction output: txid (internal byte order) and index.
pub type Outpoint = ([u8; 32], u32);

/// Bytes of a binary outpoint (`>32sI`).
pub const OUTPOINT_SIZE: usize = 36;

/// Bytes of an output-spend record (`>32sI32sI32s`: 104; the contract notes say 100, the layout
/// and both reference implementations make it 104).
pub const OUTPUT_SPEND_SIZE: usize = 104;

/// Bytes of a tip-filter registration entry (`>32sI`).
pub const TIP_FILTER_ENTRY_SIZE: usize = 36;

/// Bytes of a tip-filter list entry (`>32sII`).
pub const TIP_FILTER_LIST_SIZE: usize = 40;

/// A spend of an output: where it is spent, and in which block (all zeros: the mempool).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputSpend {
    /// The spent output.
    pub out: Outpoint,
    /// The spending transaction (internal byte order).
    pub in_tx: [u8; 32],
    /// The spending input's index.
    pub in_index: u32,
    /// The block (internal byte order), zeros when the spend is in the mempool.
    pub block: [u8; 32],
}

impl OutputSpend {
    /// The 104-byte record.
    pub fn to_bytes(&self) -> [u8; OUTPUT_SPEND_SIZE] {
        let mut b = [0u8; OUTPUT_SPEND_SIZE];
        b[..32].copy_from_slice(&self.out.0);
        b[32..36].copy_from_slice(&self.out.1.to_be_bytes());
        b[36..68].copy_from_slice(&self.in_tx);
        b[68..72].copy_from_slice(&self.in_index.to_be_bytes());
        b[72..].copy_from_slice(&self.block);
        b
    }

    /// Reads a 104-byte record.
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        if b.len() != OUTPUT_SPEND_SIZE {
            return None;
        }
        let hash = |at: usize| -> [u8; 32] { b[at..at + 32].try_into().unwrap_or([0; 32]) };
        let int = |at: usize| u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        Some(Self { out: (hash(0), int(32)), in_tx: hash(36), in_index: int(68), block: hash(72) })
    }

    /// The JSON row `[out_txid, out_index, in_txid, in_index, block_hash | null]`: txids in display
    /// order; the block hash as the simple indexer writes it, its raw bytes in hex.
    pub fn to_json(&self) -> Value {
        let block = (self.block != [0; 32]).then(|| hex::encode(self.block));
        serde_json::json!([
            Txid::from_internal(self.out.0).to_string(),
            self.out.1,
            Txid::from_internal(self.in_tx).to_string(),
            self.in_index,
            block,
        ])
    }
}

/// Output-spend records in the requested representation.
pub fn output_spends_body(spends: &[OutputSpend], binary: bool) -> Vec<u8> {
    if binary {
        spends.iter().flat_map(|s| s.to_bytes()).collect()
    } else {
        Value::Array(spends.iter().map(OutputSpend::to_json).collect()).to_string().into_bytes()
    }
}

/// Reads outpoints from a JSON body (`[[txid, index], ...]`, txid in display order) or a binary
/// one (`>32sI` each, hash in internal order).
pub fn parse_outpoints(body: &[u8], content_type: Option<&str>) -> Result<Vec<Outpoint>, IndexerError> {
    match content_type {
        Some("application/json") => {
            let entries: Vec<Value> = serde_json::from_slice::<Value>(body)
                .ok()
                .and_then(|v| v.as_array().cloned())
                .ok_or_else(|| IndexerError::bad("payload is not a list"))?;
            entries.iter().map(json_outpoint).collect()
        }
        Some("application/octet-stream") => {
            if !body.len().is_multiple_of(OUTPOINT_SIZE) {
                return Err(IndexerError::bad("binary request body malformed"));
            }
            Ok(body.chunks_exact(OUTPOINT_SIZE).map(binary_outpoint).collect())
        }
        _ => Err(IndexerError::bad("unknown request body content type")),
    }
}

fn json_outpoint(entry: &Value) -> Result<Outpoint, IndexerError> {
    let bad = || IndexerError::bad("one or more payload entries are incorrect");
    let pair = entry.as_array().filter(|a| a.len() == 2).ok_or_else(bad)?;
    let txid: Txid = pair[0].as_str().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
    let index = pair[1].as_u64().and_then(|n| u32::try_from(n).ok()).ok_or_else(bad)?;
    Ok((*txid.internal(), index))
}

fn binary_outpoint(chunk: &[u8]) -> Outpoint {
    let mut hash = [0u8; 32];
    hash.copy_from_slice(&chunk[..32]);
    (hash, u32::from_be_bytes([chunk[32], chunk[33], chunk[34], chunk[35]]))
}

/// Outpoints as the binary body the external indexer takes.
pub fn outpoints_bytes(outpoints: &[Outpoint]) -> Vec<u8> {
    outpoints
        .iter()
        .flat_map(|(hash, index)| hash.iter().copied().chain(index.to_be_bytes()).collect::<Vec<_>>())
        .collect()
}

/// One pushdata-hash registration: the hash and how long it lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TipFilterEntry {
    /// SHA-256 of the pushdata, as given (not reversed).
    pub pushdata_hash: [u8; 32],
    /// Seconds the registration lasts.
    pub duration_seconds: u32,
}

/// Reads registrations: JSON `[[hex, seconds], ...]` (hex as given, not reversed) or binary
/// `>32sI` each.
pub fn parse_tip_filter_entries(
    body: &[u8],
    content_type: Option<&str>,
) -> Result<Vec<TipFilterEntry>, IndexerError> {
    let entries = match content_type {
        Some("application/json") => {
            let list: Vec<Value> = serde_json::from_slice::<Value>(body)
                .ok()
                .and_then(|v| v.as_array().cloned())
                .ok_or_else(|| IndexerError::bad("payload is not a list"))?;
            list.iter().map(json_tip_filter_entry).collect::<Result<Vec<_>, _>>()?
        }
        Some("application/octet-stream") => {
            if !body.len().is_multiple_of(TIP_FILTER_ENTRY_SIZE) {
                return Err(IndexerError::bad("binary request body malformed"));
            }
            body.chunks_exact(TIP_FILTER_ENTRY_SIZE)
                .map(|c| {
                    let (hash, duration) = binary_outpoint(c);
                    TipFilterEntry { pushdata_hash: hash, duration_seconds: duration }
                })
                .collect()
        }
        _ => return Err(IndexerError::bad("unknown request body content type")),
    };
    if entries.is_empty() {
        return Err(IndexerError::bad("no registration entries provided"));
    }
    Ok(entries)
}

fn json_tip_filter_entry(entry: &Value) -> Result<TipFilterEntry, IndexerError> {
    let bad = || IndexerError::bad("one or more payload entries are incorrect");
    let pair = entry.as_array().filter(|a| a.len() == 2).ok_or_else(bad)?;
    let hash = pair[0].as_str().and_then(hash_from_hex).ok_or_else(bad)?;
    let duration = pair[1].as_u64().and_then(|n| u32::try_from(n).ok()).ok_or_else(bad)?;
    Ok(TipFilterEntry { pushdata_hash: hash, duration_seconds: duration })
}

/// 64 hex characters as 32 bytes, in the order written.
pub fn hash_from_hex(s: &str) -> Option<[u8; 32]> {
    hex::decode(s).ok()?.try_into().ok()
}

/// Reads the hashes of a deletion: JSON `["hex", ...]` (as given) or binary 32-byte hashes.
pub fn parse_pushdata_hashes(body: &[u8], content_type: Option<&str>) -> Result<Vec<[u8; 32]>, IndexerError> {
    let mut hashes = match content_type {
        Some("application/json") => {
            let list: Vec<Value> = serde_json::from_slice::<Value>(body)
                .ok()
                .and_then(|v| v.as_array().cloned())
                .ok_or_else(|| IndexerError::bad("payload is not a list"))?;
            list.iter()
                .map(|v| {
                    v.as_str()
                        .and_then(hash_from_hex)
                        .ok_or_else(|| IndexerError::bad("one or more payload entries are incorrect"))
                })
                .collect::<Result<Vec<_>, _>>()?
        }
        Some("application/octet-stream") => {
            if !body.len().is_multiple_of(32) {
                return Err(IndexerError::bad("binary request body malformed"));
            }
            body.chunks_exact(32).map(|c| c.try_into().unwrap_or([0; 32])).collect()
        }
        _ => return Err(IndexerError::bad("unknown request body content type")),
    };
    hashes.sort_unstable();
    hashes.dedup();
    if hashes.is_empty() {
        return Err(IndexerError::bad("no pushdata hashes provided"));
    }
    Ok(hashes)
}

/// A finalised registration as the list shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListedFilter {
    /// The pushdata hash.
    pub pushdata_hash: [u8; 32],
    /// Unix seconds of its registration.
    pub date_created: u32,
    /// Its duration in seconds.
    pub duration_seconds: u32,
}

/// The list body: binary `>32sII` records, or the reference's double-encoded JSON (a JSON string
/// holding `[[hex, date_created, duration], ...]`, the hash byte-reversed like a txid).
pub fn tip_filter_list_body(filters: &[ListedFilter], binary: bool) -> Vec<u8> {
    if binary {
        let mut out = Vec::with_capacity(filters.len() * TIP_FILTER_LIST_SIZE);
        for f in filters {
            out.extend_from_slice(&f.pushdata_hash);
            out.extend_from_slice(&f.date_created.to_be_bytes());
            out.extend_from_slice(&f.duration_seconds.to_be_bytes());
        }
        return out;
    }
    let rows: Vec<Value> = filters
        .iter()
        .map(|f| {
            serde_json::json!([
                Txid::from_internal(f.pushdata_hash).to_string(),
                f.date_created,
                f.duration_seconds
            ])
        })
        .collect();
    Value::String(Value::Array(rows).to_string()).to_string().into_bytes()
}

/// The TSC binary proof (flags, index, txid or the whole transaction, target, nodes), as the
/// simple indexer writes it from the node's JSON: flags bit 0 full transaction, bits 1-2 the target
/// (0 hash, 2 header, 4 Merkle root); nodes are `0x00 || hash` or `0x01` for a duplicate.
pub fn tsc_binary(proof: &TscProof) -> Result<Vec<u8>, IndexerError> {
    use bsv_primitives::TargetType;
    let full_tx = proof.tx_or_id.len() != 64;
    let target_type = proof.target_type.unwrap_or(TargetType::Hash);
    let mut flags = u8::from(full_tx);
    flags |= match target_type {
        TargetType::Hash => 0,
        TargetType::Header => 2,
        TargetType::MerkleRoot => 4,
    };
    let bad = |what: &str| {
        IndexerError::Api(service_kit::ApiError::new(
            service_kit::ErrorKind::BadGateway,
            format!("the node's proof has a malformed {what}"),
        ))
    };
    let mut out = vec![flags];
    bsv_primitives::write_varint(&mut out, proof.index).map_err(|_| bad("index"))?;
    if full_tx {
        let tx = hex::decode(&proof.tx_or_id).map_err(|_| bad("txOrId"))?;
        bsv_primitives::write_varint(&mut out, tx.len() as u64).map_err(|_| bad("txOrId"))?;
        out.extend_from_slice(&tx);
    } else {
        let txid: Txid = proof.tx_or_id.parse().map_err(|_| bad("txOrId"))?;
        out.extend_from_slice(txid.internal());
    }
    match target_type {
        TargetType::Header => out.extend_from_slice(&hex::decode(&proof.target).map_err(|_| bad("target"))?),
        TargetType::Hash | TargetType::MerkleRoot => {
            let target: Txid = proof.target.parse().map_err(|_| bad("target"))?;
            out.extend_from_slice(target.internal());
        }
    }
    bsv_primitives::write_varint(&mut out, proof.nodes.len() as u64).map_err(|_| bad("nodes"))?;
    for node in &proof.nodes {
        match node {
            ProofNode::Hash(h) => {
                out.push(0);
                out.extend_from_slice(h);
            }
            ProofNode::Duplicate => out.push(1),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_output_spend_round_trips_through_its_104_bytes() {
        let spend = OutputSpend { out: ([1; 32], 7), in_tx: [2; 32], in_index: 3, block: [0; 32] };
        let bytes = spend.to_bytes();
        assert_eq!(bytes.len(), 104);
        assert_eq!(&bytes[32..36], &[0, 0, 0, 7], "big-endian index");
        assert_eq!(OutputSpend::from_bytes(&bytes), Some(spend));
        let json = spend.to_json();
        assert_eq!(json[4], Value::Null, "mempool spend has no block");
        assert_eq!(json[1], 7);
    }

    #[test]
    fn outpoints_parse_from_json_and_binary_alike() {
        let txid: Txid = "0101010101010101010101010101010101010101010101010101010101010102".parse().unwrap();
        let json = format!(r#"[["{txid}", 5]]"#);
        let from_json = parse_outpoints(json.as_bytes(), Some("application/json")).unwrap();
        assert_eq!(from_json, vec![(*txid.internal(), 5)]);
        let binary = outpoints_bytes(&from_json);
        assert_eq!(parse_outpoints(&binary, Some("application/octet-stream")).unwrap(), from_json);
        for bad in [r#"{}"#, r#"[["zz", 1]]"#, r#"[["ab"]]"#, r#"[[1, 1]]"#] {
            assert!(parse_outpoints(bad.as_bytes(), Some("application/json")).is_err(), "{bad}");
        }
        assert!(parse_outpoints(&[0; 35], Some("application/octet-stream")).is_err());
        assert!(parse_outpoints(b"[]", Some("text/plain")).is_err());
    }

    #[test]
    fn the_filter_list_is_double_encoded_json_with_reversed_hashes() {
        let mut hash = [0u8; 32];
        hash[0] = 0xab;
        let body = tip_filter_list_body(
            &[ListedFilter { pushdata_hash: hash, date_created: 10, duration_seconds: 300 }],
            false,
        );
        let outer: Value = serde_json::from_slice(&body).unwrap();
        let inner: Value = serde_json::from_str(outer.as_str().unwrap()).unwrap();
        assert!(inner[0][0].as_str().unwrap().ends_with("ab"), "byte-reversed like a txid");
        assert_eq!(inner[0][1], 10);
        let binary = tip_filter_list_body(
            &[ListedFilter { pushdata_hash: hash, date_created: 10, duration_seconds: 300 }],
            true,
        );
        assert_eq!(binary.len(), 40);
        assert_eq!(&binary[36..], &300u32.to_be_bytes());
    }

    #[test]
    fn registrations_and_deletions_need_entries() {
        assert!(parse_tip_filter_entries(b"[]", Some("application/json")).is_err());
        let hex = "ab".repeat(32);
        let ok =
            parse_tip_filter_entries(format!(r#"[["{hex}", 600]]"#).as_bytes(), Some("application/json"))
                .unwrap();
        assert_eq!(ok[0].pushdata_hash, [0xab; 32], "not reversed");
        assert!(parse_pushdata_hashes(b"[]", Some("application/json")).is_err());
        assert_eq!(parse_pushdata_hashes(&[7; 64], Some("application/octet-stream")).unwrap(), vec![[7; 32]]);
    }
}
