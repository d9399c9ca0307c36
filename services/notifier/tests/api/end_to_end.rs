//! Callbacks end to end: a merchant submits through the gateway, a real node mines or sees a
//! conflict, block-parser / zmq-listener report it, mapi signs the callback and the notifier
//! delivers it to a real recording receiver.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use test_support::{BitcoindNode, NodeOptions, RecordingReceiver};

use crate::helpers::*;

fn sha256d(data: &[u8]) -> [u8; 32] {
    Sha256::digest(Sha256::digest(data)).into()
}

/// The Merkle root a proof's nodes lead to from `txid` at `index`, computed here (independently
/// of the services): `*` stands for the running hash itself.
fn root_of(txid: &str, index: u64, nodes: &[Value]) -> String {
    let mut hash = hex::decode(txid).unwrap();
    hash.reverse();
    let mut index = index;
    for node in nodes {
        let node = node.as_str().unwrap();
        let sibling = if node == "*" {
            hash.clone()
        } else {
            let mut b = hex::decode(node).unwrap();
            b.reverse();
            b
        };
        let joined = if index & 1 == 1 { [sibling, hash].concat() } else { [hash, sibling].concat() };
        hash = sha256d(&joined).to_vec();
        index >>= 1;
    }
    hash.reverse();
    hex::encode(hash)
}

async fn one_node_stack(options: StackOptions) -> (BitcoindNode, Stack) {
    let node = BitcoindNode::start().await;
    node.generate(5).await;
    let s = stack(options).await;
    s.add_node(&node).await;
    s.wait_for_tip(&node).await;
    (node, s)
}

#[tokio::test]
async fn merkle_proof_callbacks_arrive_signed_in_the_submitted_format_and_prove_the_header() {
    let (node, s) = one_node_stack(StackOptions::default()).await;
    let receiver = RecordingReceiver::start().await;
    let coins = node.coins().await;
    let (tsc, legacy) = (node.spend(&coins[0], 1000, 0).await, node.spend(&coins[1], 1000, 0).await);
    let url = format!("{}/merchant/{{CallbackReason}}", receiver.url());
    s.submit(json!({"rawtx": tsc, "merkleProof": true, "merkleFormat": "TSC", "callbackUrl": url,
                    "callbackToken": "Bearer tsc-token"}))
        .await;
    s.submit(json!({"rawtx": legacy, "merkleProof": true, "callbackUrl": url})).await;
    // Registration happens beside the submission; give the node's mempool a moment.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mined_at = Instant::now();
    let block = node.generate(1).await.remove(0);
    let got = receiver.wait_for(2, Duration::from_secs(20)).await;
    let latest = got.iter().map(|r| r.received_at).max().unwrap();
    eprintln!("merkleProof callbacks {} ms after generate returned", (latest - mined_at).as_millis());
    let header_hex = node.rpc("getblockheader", json!([block, false])).await.as_str().unwrap().to_owned();
    let header = node.rpc("getblockheader", json!([block, true])).await;

    for r in &got {
        assert_eq!(r.path, "/merchant/merkleProof");
        assert_eq!(r.header("content-type"), Some("application/json"));
        for (name, _) in &r.headers {
            assert!(
                !name.starts_with("x-internal") && !name.starts_with("x-caller"),
                "{name} reached a merchant"
            );
        }
        let p = verified_payload(&r.body);
        assert_eq!(p["callbackReason"], "merkleProof");
        assert_eq!(p["blockHash"], block);
        assert_eq!(p["blockHeight"], header["height"]);
        let proof = &p["callbackPayload"];
        let txid = p["callbackTxId"].as_str().unwrap();
        assert_eq!(proof["txOrId"], txid);
        let nodes = proof["nodes"].as_array().unwrap();
        let root = root_of(txid, proof["index"].as_u64().unwrap(), nodes);
        assert_eq!(root, header["merkleroot"], "the proof leads to the header's Merkle root");
        if txid == txid_of(&tsc) {
            assert_eq!(r.header("authorization"), Some("Bearer tsc-token"));
            assert_eq!(proof["targetType"], "header");
            assert_eq!(proof["target"], header_hex, "TSC: the header itself");
        } else {
            assert_eq!(txid, txid_of(&legacy));
            assert_eq!(r.header("authorization"), None);
            assert_eq!(proof["flags"], 2, "legacy format when none was asked for");
            assert_eq!(proof["target"]["hash"], block);
            assert_eq!(proof["target"]["merkleroot"], header["merkleroot"]);
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(receiver.requests().len(), 2, "one callback each");
    let taken = s.mapi_rows("SELECT taken_at IS NOT NULL AS taken FROM callbacks").await;
    assert!(taken.iter().all(|r| r["taken"] == true), "{taken:?}");
}

#[tokio::test]
async fn double_spend_attempts_from_invalidtx_and_double_spends_in_a_block_are_delivered() {
    let a = BitcoindNode::start().await;
    a.generate(10).await;
    let b = BitcoindNode::start_with(NodeOptions { fund_wallet: false, ..NodeOptions::default() }).await;
    b.connect_to(&a).await;
    wait_synced(&a, &b).await;
    let s = stack(StackOptions { zmq_listener: true, ..StackOptions::default() }).await;
    s.add_node(&a).await;
    s.wait_for_tip(&a).await;
    let receiver = RecordingReceiver::start().await;
    let url = format!("{}/cb/{{callbackReason}}", receiver.url());
    // Give zmq-listener time to subscribe.
    eventually(Duration::from_secs(20), "zmq subscription", || async {
        let status = s.admin_json("/api/v1/status/zmq").await?;
        (status[0]["isResponding"] == true && !status[0]["endpoints"].as_array()?.is_empty()).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    // An attempt: X is in the mempool, Y, spending the same coin, is sent to the node.
    let coins = a.coins().await;
    let x = a.spend(&coins[0], 1000, 0).await;
    let y = a.spend(&coins[0], 2000, 0).await;
    s.submit(json!({"rawtx": x, "dsCheck": true, "callbackUrl": url, "callbackToken": "Bearer ds"})).await;
    let refused = a.rpc_result("sendrawtransaction", json!([y])).await.unwrap_err();
    assert!(refused.contains("258") || refused.contains("conflict"), "{refused}");
    let got = receiver.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(got[0].path, "/cb/doubleSpendAttempt");
    assert_eq!(got[0].header("authorization"), Some("Bearer ds"));
    let p = verified_payload(&got[0].body);
    assert_eq!(p["callbackReason"], "doubleSpendAttempt");
    assert_eq!(p["blockHash"], "");
    assert_eq!(p["blockHeight"], -1);
    assert_eq!(p["callbackTxId"], txid_of(&x));
    assert_eq!(p["callbackPayload"]["doubleSpendTxId"], txid_of(&y));
    assert_eq!(p["callbackPayload"]["payload"], y);

    // In a block: Z is accepted on A; W, spending the same coin, is mined on B while the nodes
    // are apart; B's blocks then reach A (handed over directly: P2P relay after a reconnect
    // sometimes lags) and Z leaves A's mempool.
    split(&a, &b).await;
    let z = a.spend(&coins[1], 1000, 0).await;
    let w = a.spend(&coins[1], 2000, 0).await;
    s.submit(json!({"rawtx": z, "dsCheck": true, "callbackUrl": url})).await;
    b.rpc("sendrawtransaction", json!([w])).await;
    let mined = b.generate(2).await;
    for hash in &mined {
        let raw = b.rpc("getblock", json!([hash, 0])).await;
        a.rpc("submitblock", json!([raw])).await;
    }
    wait_synced(&a, &b).await;
    let block = mined[0].clone();
    let got = eventually(Duration::from_secs(30), "the doubleSpend callback", || async {
        receiver.requests().into_iter().find(|r| r.path == "/cb/doubleSpend")
    })
    .await;
    let p = verified_payload(&got.body);
    assert_eq!(p["callbackReason"], "doubleSpend");
    assert_eq!(p["blockHash"], block);
    assert_eq!(p["callbackTxId"], txid_of(&z));
    assert_eq!(p["callbackPayload"]["doubleSpendTxId"], txid_of(&w));
    assert_eq!(p["callbackPayload"]["payload"], w);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let reasons: Vec<String> = receiver.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        reasons.iter().filter(|p| p.as_str() == "/cb/doubleSpendAttempt").count(),
        1,
        "one attempt callback: {reasons:?}"
    );
    assert_eq!(reasons.iter().filter(|p| p.as_str() == "/cb/doubleSpend").count(), 1, "{reasons:?}");
}

async fn best_hash(node: &BitcoindNode) -> String {
    node.rpc("getbestblockhash", json!([])).await.as_str().unwrap().to_owned()
}

async fn wait_synced(a: &BitcoindNode, b: &BitcoindNode) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while best_hash(a).await != best_hash(b).await {
        assert!(Instant::now() < deadline, "the nodes did not sync");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn split(a: &BitcoindNode, b: &BitcoindNode) {
    for n in [a, b] {
        n.rpc("setnetworkactive", json!([false])).await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while a.rpc("getconnectioncount", json!([])).await.as_u64() != Some(0) {
        assert!(Instant::now() < deadline, "the nodes did not disconnect");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_callback_row_that_cannot_be_signed_stays_behind_and_the_others_are_delivered() {
    use diesel_async::{AsyncConnection, RunQueryDsl};
    let s = stack(StackOptions::default()).await;
    let receiver = RecordingReceiver::start().await;
    let mut conn = diesel_async::AsyncPgConnection::establish(s.mapi_db.url()).await.unwrap();
    diesel::sql_query("SET search_path TO mapi").execute(&mut conn).await.unwrap();
    // A row whose payload lacks the callback's fields (no code of ours writes one), then a good one.
    let good = json!({"callbackPayload": {"doubleSpendTxId": "00", "payload": "00"}, "blockHash": "",
                      "blockHeight": -1, "callbackTxId": "ab".repeat(32), "callbackReason": "doubleSpendAttempt"});
    for (tx, payload) in [(1, json!({"unexpected": true})), (2, good)] {
        diesel::sql_query(format!(
            "INSERT INTO callbacks (tx_internal_id, txid, reason, url, payload) \
             VALUES ({tx}, decode('{}', 'hex'), 'doubleSpendAttempt', '{}/cb', '{payload}'::json)",
            format!("{tx:02x}").repeat(32),
            receiver.url()
        ))
        .execute(&mut conn)
        .await
        .unwrap();
    }
    let got = receiver.wait_for(1, Duration::from_secs(20)).await;
    let p = verified_payload(&got[0].body);
    assert_eq!(p["callbackTxId"], "ab".repeat(32));
    let rows =
        s.mapi_rows("SELECT tx_internal_id, taken_at IS NOT NULL AS taken FROM callbacks ORDER BY id").await;
    assert_eq!(rows[0]["taken"], false, "the bad row stays for an operator: {rows:?}");
    assert_eq!(rows[1]["taken"], true, "{rows:?}");
}
