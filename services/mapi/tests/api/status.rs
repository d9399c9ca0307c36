//! `GET /mapi/tx/{txid}` against a real node, with a Merkle proof the test checks on its own.

use bsv_primitives::{BlockHeader, JsonEnvelope, Transaction};
use serde_json::json;
use test_support::BitcoindNode;
use wire_model::mapi::{MerkleProofPayload, ReturnResult, TxStatusPayload};

use crate::helpers::{As, spawn_app};

async fn status(app: &crate::helpers::TestApp, path: &str) -> TxStatusPayload {
    let resp = app.get(path, As::Anonymous).await;
    assert_eq!(resp.status(), 200, "{path}");
    let env: JsonEnvelope = resp.json().await.unwrap();
    env.verify().unwrap();
    env.payload_as().unwrap()
}

#[tokio::test]
async fn status_in_mempool_then_mined_with_a_checked_proof() {
    let node = BitcoindNode::start().await;
    let app = spawn_app().await;
    assert_eq!(app.add_node(&node).await.status(), 201);
    let mut txids = Vec::new();
    for _ in 0..4 {
        txids.push(node.send_to_new_address(0.5).await);
    }
    let txid = &txids[2];

    let p = status(&app, &format!("/mapi/tx/{txid}")).await;
    assert_eq!(p.return_result, ReturnResult::Success);
    assert_eq!(p.block_hash, None, "in the mempool");
    assert_eq!(p.confirmations, None);

    let block = node.generate(1).await[0].clone();
    let p = status(&app, &format!("/mapi/tx/{txid}?merkleProof=true")).await;
    assert_eq!(p.block_hash.map(|b| b.to_string()), Some(block.clone()));
    assert_eq!(p.block_height, Some(102));
    assert_eq!(p.confirmations, Some(1));
    let Some(MerkleProofPayload::Tsc(proof)) = p.merkle_proof else { panic!("a TSC proof") };
    // Checked here against the header as the node gives it, independently of mapi.
    let header_hex = node.rpc("getblockheader", json!([block, false])).await;
    let header = BlockHeader::from_hex(header_hex.as_str().unwrap()).unwrap();
    proof.verify_against_header(&header).unwrap();
    assert_eq!(proof.tx_or_id, *txid);
    let raw = node.rpc("getrawtransaction", json!([txid, false])).await;
    assert_eq!(Transaction::parse_hex(raw.as_str().unwrap()).unwrap().txid().to_string(), *txid);

    // Without merkleProof, no proof; legacy format on request.
    assert!(status(&app, &format!("/mapi/tx/{txid}")).await.merkle_proof.is_none());
    let p = status(&app, &format!("/mapi/tx/{txid}?merkleProof=true&merkleFormat=legacy")).await;
    assert!(matches!(p.merkle_proof, Some(MerkleProofPayload::Legacy(_))), "{p:?}");
    // BUMP (BRC-74 JSON) on request, checked here against the node's header on its own.
    let p = status(&app, &format!("/mapi/tx/{txid}?merkleProof=true&merkleFormat=BUMP")).await;
    let Some(MerkleProofPayload::Bump(bump)) = p.merkle_proof else { panic!("a BUMP: {p:?}") };
    assert_eq!(bump.block_height, 102);
    assert_eq!(bump.txids(), vec![txid.parse().unwrap()]);
    assert_eq!(bump.root_for(&txid.parse().unwrap()).unwrap(), header.merkle_root());

    // Unknown: failure with the node's message; malformed: 400.
    let p = status(&app, &format!("/mapi/tx/{}", "ab".repeat(32))).await;
    assert_eq!(p.return_result, ReturnResult::Failure);
    assert!(p.result_description.unwrap().contains("No such mempool or blockchain transaction"));
    assert_eq!(app.get("/mapi/tx/nothex", As::Anonymous).await.status(), 400);
}
