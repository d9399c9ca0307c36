//! Submission against real regtest nodes.

use bsv_primitives::{JsonEnvelope, Transaction};
use serde_json::{Value, json};
use test_support::BitcoindNode;
use wire_model::mapi::{SubmitTxPayload, SubmitTxsPayload};

use crate::helpers::{As, TestApp, coins, spawn_app, spend};

async fn submit_one(app: &TestApp, who: As<'_>, body: Value) -> SubmitTxPayload {
    let resp = app.post("/mapi/tx", who, &body).await;
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert_eq!(status, 200, "{text}");
    let env: JsonEnvelope = serde_json::from_str(&text).unwrap();
    env.verify().unwrap();
    env.payload_as().unwrap()
}

async fn app_with_node() -> (TestApp, BitcoindNode) {
    let node = BitcoindNode::start().await;
    // 101 blocks mature one coinbase; ten more blocks give eleven coins to spend.
    node.generate(10).await;
    let app = spawn_app().await;
    assert_eq!(app.add_node(&node).await.status(), 201);
    (app, node)
}

fn txid_of(hex: &str) -> String {
    Transaction::parse_hex(hex).unwrap().txid().to_string()
}

#[tokio::test]
async fn a_valid_tx_is_accepted_reaches_the_mempool_and_is_known_afterwards() {
    let (app, node) = app_with_node().await;
    let hex = spend(&node, &coins(&node).await[0], 1000, 0).await;
    let p = submit_one(&app, As::Anonymous, json!({"rawtx": hex})).await;
    assert_eq!(p.return_result, wire_model::mapi::ReturnResult::Success, "{p:?}");
    assert_eq!(p.result_description, "");
    assert_eq!(p.txid.map(|t| t.to_string()), Some(txid_of(&hex)));
    assert_eq!(p.warnings, Some(vec![]));
    assert_eq!(p.current_highest_block_height, 111);
    let mempool = node.rpc("getrawmempool", json!([])).await;
    assert!(mempool.as_array().unwrap().contains(&json!(txid_of(&hex))));

    let again = submit_one(&app, As::Anonymous, json!({"rawTx": hex})).await;
    assert_eq!(again.result_description, "Already known");
    // Same tx, other parameters: refused.
    let other = submit_one(
        &app,
        As::Anonymous,
        json!({"rawtx": hex, "callbackUrl": "https://cb.example/x", "merkleProof": true}),
    )
    .await;
    assert_eq!(other.result_description, "Transaction already submitted with different parameters.");

    // Binary body.
    let hex2 = spend(&node, &coins(&node).await[1], 1000, 0).await;
    let resp = app
        .request(reqwest::Method::POST, "/mapi/tx", As::Anonymous)
        .header("content-type", "application/octet-stream")
        .body(hex::decode(&hex2).unwrap())
        .send()
        .await
        .unwrap();
    let env: JsonEnvelope = resp.json().await.unwrap();
    let p: SubmitTxPayload = env.payload_as().unwrap();
    assert_eq!(p.return_result, wire_model::mapi::ReturnResult::Success, "{p:?}");
}

#[tokio::test]
async fn fees_are_checked_against_the_quote_by_byte_class() {
    let (app, node) = app_with_node().await;
    let coins = coins(&node).await;
    // The initial quote asks 100 sat / 200 bytes: ~190 bytes need ~95 satoshis.
    let cheap = spend(&node, &coins[0], 50, 0).await;
    let p = submit_one(&app, As::Anonymous, json!({"rawtx": cheap})).await;
    assert_eq!(p.result_description, "Not enough fees");
    assert!(
        !node.rpc("getrawmempool", json!([])).await.as_array().unwrap().contains(&json!(txid_of(&cheap))),
        "never sent"
    );

    // A merchant whose standard bytes are dear and data bytes cheap: a 10 kB data transaction
    // paying ~2 100 satoshis passes only because its data bytes are priced at the data rate.
    let rate = |s, b| json!({"satoshis": s, "bytes": b});
    let quote = json!({"identity": "m", "identityProvider": "p", "fees": [
        {"feeType": "standard", "miningFee": rate(1000, 100), "relayFee": rate(1000, 100)},
        {"feeType": "data", "miningFee": rate(1, 1000), "relayFee": rate(1, 1000)}]});
    assert_eq!(app.post("/api/v1/PolicyQuote", As::Admin, &quote).await.status(), 201);
    let data_tx = spend(&node, &coins[1], 2200, 10_000).await;
    let bytes = Transaction::parse_hex(&data_tx).unwrap().fee_bytes();
    assert!(bytes.data > 10_000 && bytes.standard < 220, "{bytes:?}");
    let p = submit_one(&app, As::Identity("m", "p"), json!({"rawtx": data_tx})).await;
    assert_eq!(p.result_description, "", "{p:?}");
    // At the standard rate, 500 satoshis do not pay for ~190 bytes at 10 sat/byte.
    let p = submit_one(&app, As::Identity("m", "p"), json!({"rawtx": spend(&node, &coins[2], 500, 0).await}))
        .await;
    assert_eq!(
        p.result_description, "Not enough fees",
        "500 satoshis for ~190 standard bytes at 10 sat/byte"
    );
}

#[tokio::test]
async fn malformed_input_gets_the_references_answers_never_500() {
    let (app, node) = app_with_node().await;
    let hex = spend(&node, &coins(&node).await[0], 1000, 0).await;
    for (body, description) in [
        (json!({"rawtx": "zz"}), "Invalid characters in rawTx"),
        (json!({"rawtx": "abc"}), "Invalid characters in rawTx"),
        (json!({}), "RawTx is required"),
        (json!({"rawtx": &hex[..hex.len() - 10]}), "Can not parse transaction"),
        (
            json!({"rawtx": hex, "merkleFormat": "XYZ"}),
            "Invalid merkle format XYZ. Supported formats: TSC, BUMP.",
        ),
        (
            json!({"rawtx": hex, "merkleProof": true}),
            "CallbackUrl is required when MerkleProof or DsCheck is not false",
        ),
    ] {
        let p = submit_one(&app, As::Anonymous, body.clone()).await;
        assert_eq!(p.result_description, description, "{body}");
        assert_eq!(p.return_result, wire_model::mapi::ReturnResult::Failure);
    }
    let resp = app
        .request(reqwest::Method::POST, "/mapi/tx", As::Anonymous)
        .header("content-type", "application/json")
        .body("{bad")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let resp = app
        .request(reqwest::Method::POST, "/mapi/tx", As::Anonymous)
        .header("content-type", "text/plain")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 415);
    let resp = app
        .request(reqwest::Method::POST, "/mapi/txs", As::Anonymous)
        .header("content-type", "application/octet-stream")
        .body(vec![1, 0, 0, 0, 0xff])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}

#[tokio::test]
async fn a_double_spend_names_the_transaction_it_conflicts_with() {
    let (app, node) = app_with_node().await;
    let coin = coins(&node).await[0].clone();
    let first = spend(&node, &coin, 1000, 0).await;
    let second = spend(&node, &coin, 2000, 0).await;
    assert_eq!(submit_one(&app, As::Anonymous, json!({"rawtx": first})).await.result_description, "");
    let p = submit_one(&app, As::Anonymous, json!({"rawtx": second})).await;
    assert_eq!(p.return_result, wire_model::mapi::ReturnResult::Failure);
    let conflicted = p.conflicted_with.expect("conflictedWith");
    assert_eq!(conflicted[0].txid.to_string(), txid_of(&first));
    assert_eq!(conflicted[0].hex, first);
}

#[tokio::test]
async fn a_batch_of_100_mixed_transactions_answers_per_tx_in_the_references_order() {
    let (app, node) = app_with_node().await;
    node.generate(100).await;
    let coins = coins(&node).await;
    assert!(coins.len() >= 90, "{} coins", coins.len());
    let mut body = Vec::new();
    let mut expected_ok = Vec::new();
    let mut next_coin = coins.iter();
    for i in 0..100 {
        if i % 10 == 3 {
            body.push(json!({"rawtx": format!("zz{i}")}));
        } else {
            let hex = spend(&node, next_coin.next().unwrap(), 1000, 0).await;
            expected_ok.push(txid_of(&hex));
            body.push(json!({"rawtx": hex}));
        }
    }
    let resp = app.post("/mapi/txs", As::Anonymous, &Value::Array(body)).await;
    assert_eq!(resp.status(), 200);
    let env: JsonEnvelope = resp.json().await.unwrap();
    env.verify().unwrap();
    let p: SubmitTxsPayload = env.payload_as().unwrap();
    assert_eq!(p.txs.len(), 100);
    assert_eq!(p.failure_count, 10);
    // Pre-submit failures first, in request order; then the accepted ones in submission order.
    assert!(p.txs[..10].iter().all(|r| r.result_description == "Invalid characters in rawTx"));
    let accepted: Vec<String> = p.txs[10..].iter().map(|r| r.txid.unwrap().to_string()).collect();
    assert_eq!(accepted, expected_ok);
    let mempool = node.rpc("getrawmempool", json!([])).await;
    assert_eq!(mempool.as_array().unwrap().len(), 90);
}

#[tokio::test]
async fn one_node_down_still_succeeds_all_down_is_503() {
    let mut a = BitcoindNode::start().await;
    let mut b =
        BitcoindNode::start_with(test_support::NodeOptions { fund_wallet: false, ..Default::default() })
            .await;
    b.connect_to(&a).await;
    a.generate(10).await;
    let height = a.rpc("getblockcount", json!([])).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while b.rpc("getblockcount", json!([])).await != height {
        assert!(std::time::Instant::now() < deadline, "b did not sync");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let app = spawn_app().await;
    assert_eq!(app.add_node(&a).await.status(), 201);
    assert_eq!(app.add_node(&b).await.status(), 201);
    let coins = coins(&a).await;
    let first = spend(&a, &coins[0], 1000, 0).await;
    let second = spend(&a, &coins[1], 1000, 0).await;
    let both = spend(&a, &coins[2], 1000, 0).await;

    // Both up: accepted, and in both mempools (mapi sends to every node itself).
    assert_eq!(submit_one(&app, As::Anonymous, json!({"rawtx": both})).await.result_description, "");
    for n in [&a, &b] {
        assert!(n.rpc("getrawmempool", json!([])).await.as_array().unwrap().contains(&json!(txid_of(&both))));
    }

    b.stop().await;
    let p = submit_one(&app, As::Anonymous, json!({"rawtx": first})).await;
    assert_eq!(p.result_description, "", "{p:?}");

    a.stop().await;
    let resp = app.post("/mapi/tx", As::Anonymous, &json!({"rawtx": second})).await;
    assert_eq!(resp.status(), 503);
    let problem: Value = resp.json().await.unwrap();
    assert_eq!(problem["status"], 503);
}

#[tokio::test]
async fn resubmitting_an_accepted_tx_does_not_call_the_node_unless_configured() {
    let (app, node) = app_with_node().await;
    let coins = coins(&node).await;
    let hex = spend(&node, &coins[0], 1000, 0).await;
    assert_eq!(submit_one(&app, As::Anonymous, json!({"rawtx": hex})).await.result_description, "");
    assert_eq!(app.metric("merchantapi_mapi_tx_sent_to_node_counter").await, 1.0);
    assert_eq!(
        submit_one(&app, As::Anonymous, json!({"rawtx": hex})).await.result_description,
        "Already known"
    );
    assert_eq!(app.metric("merchantapi_mapi_tx_sent_to_node_counter").await, 1.0, "no node call");
    assert_eq!(app.metric("merchantapi_mapi_tx_anonymous_user_counter").await, 2.0);
    // Each answer counted once.
    assert_eq!(app.metric("merchantapi_mapi_tx_accepted_by_node_counter").await, 1.0);
    assert_eq!(app.metric("merchantapi_mapi_tx_response_success_counter").await, 2.0);
    assert_eq!(app.metric("merchantapi_mapi_tx_response_failure_counter").await, 0.0);
    let status: Value = app.get("/api/v1/status/tx", As::Admin).await.json().await.unwrap();
    assert_eq!(status["txSentToNode"], 1.0);
    assert_eq!(status["request"], 2.0);
    assert_eq!(app.get("/api/v1/status/tx", As::Anonymous).await.status(), 401);

    let resubmitting = crate::helpers::spawn_app_with(&[("RESUBMIT_KNOWN_TRANSACTIONS", "true")]).await;
    assert_eq!(resubmitting.add_node(&node).await.status(), 201);
    let hex2 = spend(&node, &coins[1], 1000, 0).await;
    assert_eq!(submit_one(&resubmitting, As::Anonymous, json!({"rawtx": hex2})).await.result_description, "");
    let again = submit_one(&resubmitting, As::Anonymous, json!({"rawtx": hex2})).await;
    assert_eq!(again.return_result, wire_model::mapi::ReturnResult::Success, "{again:?}");
    assert_eq!(resubmitting.metric("merchantapi_mapi_tx_sent_to_node_counter").await, 2.0, "sent again");
}

#[tokio::test]
async fn unconfirmed_txs_and_status_endpoints() {
    let (app, node) = app_with_node().await;
    for (query, want) in [
        ("", "Missing query parameters."),
        ("?policyQuoteId=999999", "Invalid policyQuoteId."),
        ("?policyQuoteId=1", "PolicyQuoteId refers to anonymous user."),
        ("?identity=x&identityProvider=y", "No policyQuotes available."),
    ] {
        let resp = app.get(&format!("/api/v1/unconfirmedTxs{query}"), As::Admin).await;
        assert_eq!(resp.status(), 400, "{query}");
        let problem: Value = resp.json().await.unwrap();
        assert_eq!(problem["detail"], want, "{query}");
    }
    let quote = json!({"identity": "m", "identityProvider": "p", "fees": crate::helpers::fees(1, 1000)});
    assert_eq!(app.post("/api/v1/PolicyQuote", As::Admin, &quote).await.status(), 201);
    let list: Value = app
        .get("/api/v1/unconfirmedTxs?identity=m&identityProvider=p", As::Admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list, json!({"count": 0, "txIds": []}));
    let resp = app
        .request(reqwest::Method::DELETE, "/api/v1/unconfirmedTxs?identity=m&identityProvider=p", As::Admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);

    let zmq: Value = app.get("/api/v1/status/zmq", As::Admin).await.json().await.unwrap();
    assert_eq!(zmq[0]["nodeId"], format!("127.0.0.1:{}", node.rpc_port));
    // No block-parser runs here: its status is unavailable, said in JSON.
    let resp = app.get("/api/v1/status/blockParser", As::Admin).await;
    assert_eq!(resp.status(), 503);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["detail"], "The block-parser service is unreachable.", "{body}");
}

/// A transaction spending `coins` to one new address with no fee.
async fn merge(node: &BitcoindNode, coins: &[Value]) -> String {
    let total: u64 = coins.iter().map(|c| (c["amount"].as_f64().unwrap() * 1e8).round() as u64).sum();
    let inputs: Vec<Value> = coins.iter().map(|c| json!({"txid": c["txid"], "vout": c["vout"]})).collect();
    let to = node.new_address().await;
    let raw = node.rpc("createrawtransaction", json!([inputs, {to: total as f64 / 1e8}])).await;
    let signed = node.rpc("signrawtransaction", json!([raw])).await;
    assert_eq!(signed["complete"], true);
    signed["hex"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_consolidation_tx_is_accepted_without_a_fee() {
    let (app, node) = app_with_node().await;
    // 40 small outputs, confirmed 6 times (the node's minconfconsolidationinput).
    let mut outputs = serde_json::Map::new();
    for _ in 0..40 {
        outputs.insert(node.new_address().await, json!(0.001));
    }
    node.rpc("sendmany", json!(["", outputs])).await;
    node.generate(6).await;
    let small: Vec<Value> =
        coins(&node).await.into_iter().filter(|c| c["amount"].as_f64() == Some(0.001)).collect();
    assert_eq!(small.len(), 40);

    // 19 inputs into one output is not a consolidation (factor 20): a zero fee is not enough.
    let short = merge(&node, &small[..19]).await;
    assert_eq!(
        submit_one(&app, As::Anonymous, json!({"rawtx": short})).await.result_description,
        "Not enough fees"
    );
    // 20 inputs into one output is: accepted for free, and the node takes it.
    let consolidation = merge(&node, &small[20..40]).await;
    let p = submit_one(&app, As::Anonymous, json!({"rawtx": consolidation})).await;
    assert_eq!(p.result_description, "", "{p:?}");
    let mempool = node.rpc("getrawmempool", json!([])).await;
    assert!(mempool.as_array().unwrap().contains(&json!(txid_of(&consolidation))));
}

#[tokio::test]
async fn quote_policies_reach_the_node_as_config() {
    let (app, node) = app_with_node().await;
    let coins = coins(&node).await;
    let quote = |policies: Value| json!({"identity": "m", "identityProvider": "p", "fees": crate::helpers::fees(1, 1000), "policies": policies});
    // A policy the node refuses: the node's reason comes back per transaction.
    assert_eq!(
        app.post("/api/v1/PolicyQuote", As::Admin, &quote(json!({"maxtxsizepolicy": "not a number"})))
            .await
            .status(),
        201
    );
    let p =
        submit_one(&app, As::Identity("m", "p"), json!({"rawtx": spend(&node, &coins[0], 1000, 0).await}))
            .await;
    assert_eq!(p.return_result, wire_model::mapi::ReturnResult::Failure, "{p:?}");
    assert!(p.result_description.contains("maxtxsizepolicy"), "{p:?}");
}

#[tokio::test]
async fn dsnt_warnings_callbacks_stored_and_the_fee_check_can_be_disabled() {
    let (app, node) = app_with_node().await;
    let coins = coins(&node).await;
    // dsCheck without a DSNT output: accepted with the reference's warning; the callback
    // options are kept with the transaction (delivery comes with the notifier).
    let body = json!({"rawtx": spend(&node, &coins[0], 1000, 0).await, "dsCheck": true, "merkleProof": true,
                      "callbackUrl": "https://cb.example/{callbackReason}", "callbackToken": "Bearer t"});
    let p = submit_one(&app, As::Anonymous, body.clone()).await;
    assert_eq!(p.result_description, "", "{p:?}");
    assert_eq!(p.warnings, Some(vec!["Missing DSNT output.".to_owned()]));
    // The same request again: known, same parameters.
    assert_eq!(submit_one(&app, As::Anonymous, body).await.result_description, "Already known");

    let free = crate::helpers::spawn_app_with(&[("CHECK_FEE_DISABLED", "true")]).await;
    assert_eq!(free.add_node(&node).await.status(), 201);
    let cheap = spend(&node, &coins[1], 50, 0).await;
    let p = submit_one(&free, As::Anonymous, json!({"rawtx": cheap})).await;
    assert_eq!(p.result_description, "", "no fee check: {p:?}");
}

/// The Extended Format of a standard transaction whose inputs spend `prevouts` (value, locking
/// script), in input order.
fn extended(hex: &str, prevouts: &[(u64, Vec<u8>)]) -> Vec<u8> {
    let tx = Transaction::parse_hex(hex).unwrap();
    let t = tx.as_chain_gang();
    let mut out = t.version.to_le_bytes().to_vec();
    out.extend_from_slice(&bsv_primitives::EF_MARKER);
    bsv_primitives::write_varint(&mut out, t.inputs.len() as u64).unwrap();
    for (input, (value, script)) in t.inputs.iter().zip(prevouts) {
        out.extend_from_slice(&input.prev_output.hash.0);
        out.extend_from_slice(&input.prev_output.index.to_le_bytes());
        bsv_primitives::write_varint(&mut out, input.unlock_script.0.len() as u64).unwrap();
        out.extend_from_slice(&input.unlock_script.0);
        out.extend_from_slice(&input.sequence.to_le_bytes());
        out.extend_from_slice(&value.to_le_bytes());
        bsv_primitives::write_varint(&mut out, script.len() as u64).unwrap();
        out.extend_from_slice(script);
    }
    bsv_primitives::write_varint(&mut out, t.outputs.len() as u64).unwrap();
    for o in &t.outputs {
        out.extend_from_slice(&o.satoshis.to_le_bytes());
        bsv_primitives::write_varint(&mut out, o.lock_script.0.len() as u64).unwrap();
        out.extend_from_slice(&o.lock_script.0);
    }
    out.extend_from_slice(&t.lock_time.to_le_bytes());
    out
}

/// The value and locking script of the output `coin` (a `listunspent` entry).
fn prevout_of(coin: &Value) -> (u64, Vec<u8>) {
    let value = (coin["amount"].as_f64().unwrap() * 1e8).round() as u64;
    (value, hex::decode(coin["scriptPubKey"].as_str().unwrap()).unwrap())
}

#[tokio::test]
async fn extended_format_is_accepted_as_hex_and_binary_priced_from_its_own_prevouts_and_sent_standard() {
    let (app, node) = app_with_node().await;
    let coins = coins(&node).await;

    // Hex in JSON: accepted under the standard txid, in the node's mempool as the standard bytes.
    let hex = spend(&node, &coins[0], 1000, 0).await;
    let ef = extended(&hex, &[prevout_of(&coins[0])]);
    assert!(bsv_primitives::is_extended(&ef));
    let p = submit_one(&app, As::Anonymous, json!({"rawtx": hex::encode(&ef)})).await;
    assert_eq!(p.return_result, wire_model::mapi::ReturnResult::Success, "{p:?}");
    assert_eq!(p.txid.map(|t| t.to_string()), Some(txid_of(&hex)));
    let in_node = node.rpc("getrawtransaction", json!([txid_of(&hex), 0])).await;
    assert_eq!(in_node, json!(hex), "the node got the standard serialisation");
    // The same tx in standard form is the same transaction.
    let again = submit_one(&app, As::Anonymous, json!({"rawtx": hex})).await;
    assert_eq!(again.result_description, "Already known");

    // Binary: two EF transactions in one stream.
    let (h1, h2) = (spend(&node, &coins[1], 1000, 0).await, spend(&node, &coins[2], 1000, 0).await);
    let body = [extended(&h1, &[prevout_of(&coins[1])]), extended(&h2, &[prevout_of(&coins[2])])].concat();
    let resp = app
        .request(reqwest::Method::POST, "/mapi/txs", As::Anonymous)
        .header("content-type", "application/octet-stream")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let env: JsonEnvelope = resp.json().await.unwrap();
    let batch: SubmitTxsPayload = env.payload_as().unwrap();
    assert_eq!(batch.failure_count, 0, "{batch:?}");
    let mempool = node.rpc("getrawmempool", json!([])).await;
    for h in [&h1, &h2] {
        assert!(mempool.as_array().unwrap().contains(&json!(txid_of(h))));
    }

    // The fee is computed from the transaction's own prevouts, not the node's: one that declares
    // its input worth exactly its outputs pays no fee and is refused before any node sees it.
    let h3 = spend(&node, &coins[3], 1000, 0).await;
    let outputs: u64 = Transaction::parse_hex(&h3).unwrap().output_values().map(|v| v as u64).sum();
    let lying = extended(&h3, &[(outputs, prevout_of(&coins[3]).1)]);
    let p = submit_one(&app, As::Anonymous, json!({"rawtx": hex::encode(lying)})).await;
    assert_eq!(p.result_description, "Not enough fees", "{p:?}");
    let mempool = node.rpc("getrawmempool", json!([])).await;
    assert!(!mempool.as_array().unwrap().contains(&json!(txid_of(&h3))));
    // A truncated EF is a parse failure, not a 500.
    let mut cut = extended(&h3, &[prevout_of(&coins[3])]);
    cut.truncate(cut.len() - 5);
    let p = submit_one(&app, As::Anonymous, json!({"rawtx": hex::encode(cut)})).await;
    assert_eq!(p.result_description, "Can not parse transaction");
}

#[tokio::test]
async fn concurrent_single_submissions_are_merged_each_keeping_its_own_answer() {
    let (app, node) = app_with_node().await;
    let coins = coins(&node).await;
    let mut hexes = Vec::new();
    for coin in &coins[..10] {
        hexes.push(spend(&node, coin, 1000, 0).await);
    }
    // Each transaction twice at the same time (never "occurs more than once within request":
    // a transaction joins no run that holds it already), and a malformed one among them.
    let mut bodies: Vec<Value> = hexes.iter().chain(&hexes).map(|h| json!({"rawtx": h})).collect();
    bodies.push(json!({"rawtx": "zz"}));
    let answers =
        futures_util::future::join_all(bodies.iter().map(|b| submit_one(&app, As::Anonymous, b.clone())))
            .await;
    for (body, p) in bodies.iter().zip(&answers) {
        let hex = body["rawtx"].as_str().unwrap();
        if hex == "zz" {
            assert_eq!(p.return_result, wire_model::mapi::ReturnResult::Failure);
            assert_eq!(p.result_description, "Invalid characters in rawTx");
            continue;
        }
        assert_eq!(p.txid.map(|t| t.to_string()), Some(txid_of(hex)), "each answer names its own tx");
        assert_eq!(p.return_result, wire_model::mapi::ReturnResult::Success, "{p:?}");
        assert!(["", "Already known"].contains(&p.result_description.as_str()), "{p:?}");
    }
    let mempool = node.rpc("getrawmempool", json!([])).await;
    for hex in &hexes {
        assert!(mempool.as_array().unwrap().contains(&json!(txid_of(hex))));
    }
}
