//! Chain events end to end: transactions submitted through the gateway, blocks mined on real
//! regtest nodes, block-parser's events applied by mapi (statuses, proofs, double spends and the
//! callback rows), reorgs in both directions.

use std::time::Duration;

use serde_json::{Value, json};
use test_support::{BitcoindNode, NodeOptions};

use crate::helpers::{INTERNAL_TOKEN, Stack, stack};

fn txid_of(hex: &str) -> String {
    bsv_primitives::Transaction::parse_hex(hex).unwrap().txid().to_string()
}

async fn best_hash(node: &BitcoindNode) -> String {
    node.rpc("getbestblockhash", json!([])).await.as_str().unwrap().to_owned()
}

/// A funded node with ten spendable coins, followed by a stack that lists it.
async fn one_node() -> (BitcoindNode, Stack) {
    let node = BitcoindNode::start().await;
    node.generate(10).await;
    let s = stack(&[]).await;
    s.add_node(&node).await;
    s.wait_for_tip(&best_hash(&node).await).await;
    (node, s)
}

async fn block_parser_status(s: &Stack) -> Value {
    s.http
        .get(format!("{}/api/v1/status/blockParser", s.mapi))
        .header("x-internal-token", INTERNAL_TOKEN)
        .header("x-caller-admin", "true")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_mined_transaction_is_reported_from_stored_state_with_its_proof_and_callback_rows() {
    let (mut node, s) = one_node().await;
    let coins = node.coins().await;
    let tsc = node.spend(&coins[0], 1000, 0).await;
    let legacy = node.spend(&coins[1], 1000, 0).await;
    let callback = "https://receiver.example/cb/{callbackReason}";
    s.submit(json!({"rawtx": tsc, "merkleProof": true, "merkleFormat": "TSC", "callbackUrl": callback,
                    "callbackToken": "Bearer t1"}))
        .await;
    s.submit(json!({"rawtx": legacy, "merkleProof": true, "callbackUrl": callback})).await;
    let (tsc_id, legacy_id) = (txid_of(&tsc), txid_of(&legacy));

    let block = node.generate(1).await.remove(0);
    let started = std::time::Instant::now();
    wait_for_stored_block(&s, &tsc_id, Some(&block)).await;
    tracing::info!(took = ?started.elapsed(), "generate 1 -> the block is in mapi's stored state (goal: 2 s)");
    let (status, _) = s.wait_for_block_of(&tsc_id, Some(&block)).await;
    let height = node.rpc("getblockcount", json!([])).await.as_u64().unwrap();
    assert_eq!(status["blockHeight"], height);
    assert_eq!(status["confirmations"], 1);

    // The proof block-parser built equals the node's and holds against the header.
    let ours = s.tx_status(&tsc_id, "?merkleProof=true").await["merkleProof"].clone();
    let theirs = node.rpc("getmerkleproof2", json!([block, tsc_id, false, "header"])).await;
    assert_eq!(ours["index"], theirs["index"]);
    assert_eq!(ours["nodes"], theirs["nodes"]);
    assert_eq!(ours["target"], theirs["target"]);
    assert_eq!(ours["targetType"], "header");
    let proof: bsv_primitives::TscProof = serde_json::from_value(ours).unwrap();
    let header = bsv_primitives::BlockHeader::from_hex(theirs["target"].as_str().unwrap()).unwrap();
    proof.verify_against_header(&header).unwrap();
    // The same path as a BUMP, from stored state, leading to the node's header's root.
    let bump = s.tx_status(&tsc_id, "?merkleProof=true&merkleFormat=BUMP").await["merkleProof"].clone();
    let bump: bsv_primitives::Bump = serde_json::from_value(bump).unwrap();
    assert_eq!(bump.block_height, height);
    bump.verify_against_header(&header).unwrap();
    assert_eq!(bump.txids(), vec![tsc_id.parse().unwrap()]);

    // ARC's view of the same row, through the gateway: MINED with the BUMP as hex.
    let arc: Value =
        s.http.get(format!("{}/v1/tx/{tsc_id}", s.gateway)).send().await.unwrap().json().await.unwrap();
    assert_eq!(arc["txStatus"], "MINED", "{arc}");
    assert_eq!(arc["blockHash"], block);
    assert_eq!(arc["blockHeight"], height);
    assert_eq!(arc["competingTxs"], Value::Null);
    let path =
        bsv_primitives::Bump::from_bytes(&hex::decode(arc["merklePath"].as_str().unwrap()).unwrap()).unwrap();
    path.verify_against_header(&header).unwrap();
    let unknown = s.http.get(format!("{}/v1/tx/{}", s.gateway, "ab".repeat(32))).send().await.unwrap();
    assert_eq!(unknown.status(), 404);
    let problem: Value = unknown.json().await.unwrap();
    assert_eq!(problem["type"], "https://bitcoin-sv.github.io/arc/#/errors?id=_404");
    assert_eq!(problem["extraInfo"], "transaction not found");
    assert_eq!(problem.as_object().unwrap().len(), 7, "all seven keys: {problem}");
    let policy: Value =
        s.http.get(format!("{}/v1/policy", s.gateway)).send().await.unwrap().json().await.unwrap();
    assert_eq!(policy["policy"]["standardFormatSupported"], true, "{policy}");
    assert!(policy["policy"]["miningFee"]["bytes"].as_u64().unwrap() > 0);
    let health: Value =
        s.http.get(format!("{}/v1/health", s.gateway)).send().await.unwrap().json().await.unwrap();
    assert_eq!(health["healthy"], true);

    // One merkleProof callback row each, in the format each was submitted with.
    let rows = s
        .wait_for_rows(
            "SELECT encode(txid, 'hex') AS txid, reason, url, token, payload FROM callbacks ORDER BY id",
            2,
        )
        .await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    let row_of = |id: &str| {
        rows.iter()
            .find(|r| r["payload"]["callbackTxId"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("{rows:?}"))
    };
    let t = row_of(&tsc_id);
    assert_eq!(t["reason"], "merkleProof");
    assert_eq!(t["url"], "https://receiver.example/cb/merkleProof");
    assert_eq!(t["token"], "Bearer t1");
    assert_eq!(t["payload"]["blockHash"], block);
    assert_eq!(t["payload"]["blockHeight"], height);
    assert_eq!(t["payload"]["callbackPayload"]["targetType"], "header");
    assert_eq!(t["payload"]["callbackPayload"]["target"], theirs["target"]);
    let l = row_of(&legacy_id);
    let node_legacy = node.rpc("getmerkleproof", json!([legacy_id, block])).await;
    assert_eq!(l["payload"]["callbackPayload"]["flags"], 2);
    assert_eq!(l["payload"]["callbackPayload"]["index"], node_legacy["index"]);
    assert_eq!(l["payload"]["callbackPayload"]["nodes"], node_legacy["nodes"]);
    for field in ["hash", "height", "version", "merkleroot", "time", "nonce", "bits", "previousblockhash"] {
        assert_eq!(l["payload"]["callbackPayload"]["target"][field], node_legacy["target"][field], "{field}");
    }
    assert_eq!(s.mapi_rows("SELECT 1 FROM tx_blocks WHERE on_active_chain").await.len(), 2);

    // The real counters.
    let status = block_parser_status(&s).await;
    assert!(status["blocksParsed"].as_u64().unwrap() >= 1, "{status}");
    assert_eq!(status["totalTxsFound"], 2, "{status}");
    assert_eq!(status["lastBlockHash"], block);
    assert!(status["lastBlockParseTime"]["totalSeconds"].is_number());
    // The reference's metrics, from the same counters.
    let metrics =
        s.http.get(format!("{}/metrics", s.block_parser)).send().await.unwrap().text().await.unwrap();
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .filter(|l| l.starts_with(name))
            .find_map(|l| l.split_whitespace().last()?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {metrics}"))
    };
    assert!(value("merchantapi_blockparser_blockparsed_counter") >= 1.0);
    assert_eq!(
        value("merchantapi_blockparser_blockparsing_duration_seconds_count"),
        value("merchantapi_blockparser_blockparsed_counter")
    );

    // Mined, so the answer needs no node: it stays right with the node stopped.
    node.stop().await;
    let stopped = s.tx_status(&legacy_id, "?merkleProof=true").await;
    assert_eq!(stopped["blockHash"], block);
    assert_eq!(stopped["merkleProof"]["targetType"], "header");
    let again = s.mapi_rows("SELECT 1 FROM callbacks").await;
    assert_eq!(again.len(), 2, "no callback written twice");
}

#[tokio::test]
async fn invalidateblock_and_reconsiderblock_move_statuses_between_branches() {
    let (node, s) = one_node().await;
    let hex = node.spend(&node.coins().await[0], 1000, 0).await;
    s.submit(json!({"rawtx": hex, "merkleProof": true, "callbackUrl": "https://r.example/cb"})).await;
    let txid = txid_of(&hex);
    let first = node.generate(1).await.remove(0);
    wait_for_stored_block(&s, &txid, Some(&first)).await;

    // The block is invalidated; the transaction goes back to the mempool and is mined in a
    // longer branch.
    node.rpc("invalidateblock", json!([first])).await;
    let second = node.generate(2).await.remove(0);
    wait_for_stored_block(&s, &txid, Some(&second)).await;
    let (p, _) = s.wait_for_block_of(&txid, Some(&second)).await;
    assert_eq!(p["confirmations"], 2);
    assert_eq!(
        s.mapi_rows("SELECT encode(block_hash, 'hex') AS b, on_active_chain FROM tx_blocks").await.len(),
        2,
        "one row per block"
    );

    // Back to the first branch, made longer.
    node.rpc("reconsiderblock", json!([first])).await;
    node.rpc("invalidateblock", json!([second])).await;
    node.generate(3).await;
    wait_for_stored_block(&s, &txid, Some(&first)).await;
    let (p, _) = s.wait_for_block_of(&txid, Some(&first)).await;
    assert_eq!(p["confirmations"], 4);
    let rows = s.mapi_rows("SELECT on_active_chain FROM tx_blocks WHERE on_active_chain").await;
    assert_eq!(rows.len(), 1, "only the first block is active: {rows:?}");
    // One merkleProof callback per block the transaction was mined in, never repeated.
    let callbacks = s.mapi_rows("SELECT payload FROM callbacks WHERE reason = 'merkleProof'").await;
    assert_eq!(callbacks.len(), 2, "{callbacks:?}");
}

/// Node A (listed by mapi, funded) and node B (not listed, synced to A over P2P).
async fn two_nodes() -> (BitcoindNode, BitcoindNode, Stack) {
    let a = BitcoindNode::start().await;
    a.generate(10).await;
    let b = BitcoindNode::start_with(NodeOptions { fund_wallet: false, ..NodeOptions::default() }).await;
    b.connect_to(&a).await;
    wait_synced(&a, &b).await;
    let s = stack(&[]).await;
    s.add_node(&a).await;
    s.wait_for_tip(&best_hash(&a).await).await;
    (a, b, s)
}

async fn wait_synced(a: &BitcoindNode, b: &BitcoindNode) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while best_hash(a).await != best_hash(b).await {
        assert!(std::time::Instant::now() < deadline, "the nodes did not sync");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn split(a: &BitcoindNode, b: &BitcoindNode) {
    for n in [a, b] {
        n.rpc("setnetworkactive", json!([false])).await;
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while a.rpc("getconnectioncount", json!([])).await.as_u64() != Some(0) {
        assert!(std::time::Instant::now() < deadline, "the nodes did not disconnect");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn join(a: &BitcoindNode, b: &BitcoindNode) {
    for n in [a, b] {
        n.rpc("setnetworkactive", json!([true])).await;
    }
    b.connect_to(a).await;
    wait_synced(a, b).await;
}

#[tokio::test]
async fn a_transaction_only_in_an_orphaned_block_is_unconfirmed_again_then_mined_anew() {
    let (a, b, s) = two_nodes().await;
    split(&a, &b).await;
    let hex = a.spend(&a.coins().await[0], 1000, 0).await;
    s.submit(json!({"rawtx": hex})).await;
    let txid = txid_of(&hex);
    let orphan = a.generate(1).await.remove(0);
    wait_for_stored_block(&s, &txid, Some(&orphan)).await;

    // B's longer branch wins; the transaction is only in A's orphaned block.
    b.generate(2).await;
    join(&a, &b).await;
    wait_for_stored_block(&s, &txid, None).await;
    let (p, _) = s.wait_for_block_of(&txid, None).await;
    assert!(p["confirmations"].is_null(), "{p}");
    let mempool = a.rpc("getrawmempool", json!([])).await;
    assert!(mempool.as_array().unwrap().contains(&json!(txid)), "back in A's mempool");

    // Mined again in the new branch.
    let again = a.generate(1).await.remove(0);
    wait_for_stored_block(&s, &txid, Some(&again)).await;
    let (p, _) = s.wait_for_block_of(&txid, Some(&again)).await;
    assert_eq!(p["confirmations"], 1);
}

#[tokio::test]
async fn double_spends_in_a_block_are_recorded_for_the_ds_check_tx_and_for_the_child_of_a_spent_parent() {
    let (a, b, s) = two_nodes().await;
    split(&a, &b).await;
    let coins = a.coins().await;
    let callback = "https://receiver.example/{callbackReason}";

    // X: dsCheck, accepted on A; Y spends the same coin and is mined on B.
    let x = a.spend(&coins[0], 1000, 0).await;
    let y = a.spend(&coins[0], 2000, 0).await;
    s.submit(json!({"rawtx": x, "dsCheck": true, "callbackUrl": callback})).await;

    // P: an unconfirmed parent sent to A directly; C, its child, dsCheck through mapi. P2 spends
    // P's coin and is mined on B.
    let p = a.spend(&coins[1], 1000, 0).await;
    let p2 = a.spend(&coins[1], 3000, 0).await;
    a.rpc("sendrawtransaction", json!([p])).await;
    let p_id = txid_of(&p);
    let amount = (coins[1]["amount"].as_f64().unwrap() * 1e8).round() as u64 - 1000;
    let c = a.spend_outpoints(&[json!({"txid": p_id, "vout": 0})], amount, 1000, 0).await;
    s.submit(json!({"rawtx": c, "dsCheck": true, "callbackUrl": callback, "callbackToken": "Bearer c"}))
        .await;
    // The parent is stored as an unconfirmed ancestor and registered by the worker.
    s.wait_for_rows(
        &format!("SELECT 1 FROM txs WHERE unconfirmed_ancestor AND registered_at IS NOT NULL AND txid = decode('{}', 'hex')",
            internal_hex(&p_id)),
        1,
    )
    .await;

    b.rpc("sendrawtransaction", json!([y])).await;
    b.rpc("sendrawtransaction", json!([p2])).await;
    let block = b.generate(2).await.remove(0);
    join(&a, &b).await;

    let rows = s
        .wait_for_rows(
            "SELECT encode(t.txid, 'hex') AS txid, encode(d.block_hash, 'hex') AS block, \
                    encode(d.ds_txid, 'hex') AS ds, encode(d.ds_tx_payload, 'hex') AS payload \
             FROM tx_block_double_spends d JOIN txs t USING (tx_internal_id)",
            2,
        )
        .await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    let (x_id, c_id) = (txid_of(&x), txid_of(&c));
    let of = |id: &str| {
        rows.iter().find(|r| r["txid"] == internal_hex(id)).cloned().unwrap_or_else(|| panic!("{rows:?}"))
    };
    assert_eq!(of(&x_id)["ds"], internal_hex(&txid_of(&y)));
    assert_eq!(of(&x_id)["payload"], y);
    assert_eq!(of(&x_id)["block"], internal_hex(&block));
    assert_eq!(of(&c_id)["ds"], internal_hex(&txid_of(&p2)));
    assert_eq!(of(&c_id)["payload"], p2);

    let callbacks =
        s.wait_for_rows("SELECT url, token, payload FROM callbacks WHERE reason = 'doubleSpend'", 2).await;
    assert_eq!(callbacks.len(), 2, "{callbacks:?}");
    let cb = |id: &str| {
        callbacks
            .iter()
            .find(|r| r["payload"]["callbackTxId"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("{callbacks:?}"))
    };
    let cx = cb(&x_id);
    assert_eq!(cx["url"], "https://receiver.example/doubleSpend");
    assert_eq!(cx["payload"]["callbackPayload"]["doubleSpendTxId"], txid_of(&y));
    assert_eq!(cx["payload"]["callbackPayload"]["payload"], y);
    assert_eq!(cx["payload"]["blockHash"], block);
    let cc = cb(&c_id);
    assert_eq!(cc["token"], "Bearer c");
    assert_eq!(cc["payload"]["callbackPayload"]["doubleSpendTxId"], txid_of(&p2));
    assert_eq!(block_parser_status(&s).await["totalDsFound"], 2);
}

/// Waits until mapi's stored state has `txid` on the active chain in `block` (`None`: in none).
async fn wait_for_stored_block(s: &Stack, txid: &str, block: Option<&str>) {
    let sql = format!(
        "SELECT encode(b.block_hash, 'hex') AS block FROM tx_blocks b JOIN txs t USING (tx_internal_id) \
         WHERE t.txid = decode('{}', 'hex') AND b.on_active_chain",
        internal_hex(txid)
    );
    let want: Vec<Value> = block.map(|b| json!({"block": internal_hex(b)})).into_iter().collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let rows = s.mapi_rows(&sql).await;
        if rows == want {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{txid}: active blocks {rows:?}, waiting for {block:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A display-order hash as stored (internal byte order), hex.
fn internal_hex(display: &str) -> String {
    let mut bytes = hex::decode(display).unwrap();
    bytes.reverse();
    hex::encode(bytes)
}

/// `n` registered-to-be transactions: a coin fanned out into `n` outputs, mined, and a spend of
/// each (with `data_len` bytes of data).
async fn many_spends(node: &BitcoindNode, n: usize, data_len: usize) -> Vec<String> {
    let value = 100_000;
    let parent = node.fan_out(&node.coins().await[0], n, value).await;
    node.generate(1).await;
    let fee = 200 + data_len as u64;
    (0..n).map(|i| test_support::spend_op_true(&parent, i as u32, value, fee, data_len)).collect()
}

#[tokio::test]
async fn every_proof_of_a_block_of_2000_registered_transactions_equals_the_nodes() {
    let (node, s) = one_node().await;
    let spends = many_spends(&node, 2000, 0).await;
    s.submit_many(&spends, &json!({})).await;
    node.wait_for_block_candidate(2000).await;
    let block = node.generate(1).await.remove(0);
    let info = node.rpc("getblock", json!([block, 1])).await;
    assert!(info["tx"].as_array().unwrap().len() > 2000, "{}", info["num_tx"]);

    let rows = s
        .wait_for_rows(
            &format!(
                "SELECT encode(t.txid, 'hex') AS txid, b.proof FROM tx_blocks b JOIN txs t USING (tx_internal_id) \
                 WHERE b.on_active_chain AND b.block_hash = decode('{}', 'hex')",
                internal_hex(&block)
            ),
            2000,
        )
        .await;
    assert_eq!(rows.len(), 2000);
    let header_hex = node.rpc("getblockheader", json!([block, false])).await;
    let header = bsv_primitives::BlockHeader::from_hex(header_hex.as_str().unwrap()).unwrap();
    let height = info["height"].as_u64().unwrap();
    let mut compound: Option<bsv_primitives::Bump> = None;
    for row in rows {
        // The BUMP of the same path proves the same root, alone and merged into one for the block.
        let proof: bsv_primitives::TscProof = serde_json::from_value(row["proof"].clone()).unwrap();
        let bump = bsv_primitives::Bump::from_tsc(height, &proof).unwrap();
        bump.verify_against_header(&header).unwrap();
        match compound.as_mut() {
            Some(c) => c.merge(&bump).unwrap(),
            None => compound = Some(bump),
        }
        let mut txid = hex::decode(row["txid"].as_str().unwrap()).unwrap();
        txid.reverse();
        let txid = hex::encode(txid);
        let theirs = node.rpc("getmerkleproof2", json!([block, txid])).await;
        assert_eq!(row["proof"]["index"], theirs["index"], "{txid}");
        assert_eq!(row["proof"]["nodes"], theirs["nodes"], "{txid}");
        assert_eq!(row["proof"]["target"], block);
        let proof: bsv_primitives::TscProof = serde_json::from_value(row["proof"].clone()).unwrap();
        proof.verify_against_header(&header).unwrap();
    }
    let compound = compound.unwrap();
    assert_eq!(compound.txids().len(), 2000);
    compound.verify_against_header(&header).unwrap();
    let bytes = compound.to_bytes();
    assert_eq!(bsv_primitives::Bump::from_bytes(&bytes).unwrap(), compound, "the compound BUMP reads back");
}

#[tokio::test]
async fn a_block_parser_killed_mid_block_delivers_every_event_of_it_once_after_a_restart() {
    use std::collections::HashMap;
    test_support::init_test_tracing();
    let node = BitcoindNode::start().await;
    node.generate(5).await;
    let (mapi_db, bp_db, gw_db) = (
        test_support::TestDatabase::create().await,
        test_support::TestDatabase::create().await,
        test_support::TestDatabase::create().await,
    );
    let bp_port = test_support::free_port();
    let bp_url = format!("http://127.0.0.1:{bp_port}");
    let s = crate::helpers::stack_with_external_block_parser(&mapi_db, &gw_db, &bp_url).await;
    let bp_env: HashMap<&str, String> = HashMap::from([
        ("DATABASE_URL", bp_db.url().to_owned()),
        ("INTERNAL_TOKEN", INTERNAL_TOKEN.to_owned()),
        ("MAPI_URL", s.mapi.clone()),
        ("CATCH_UP_INTERVAL_MS", "200".to_owned()),
    ]);
    let binary = env!("CARGO_BIN_EXE_block-parser");
    let parser = test_support::ServiceProcess::start_on(binary, &bp_env, bp_port).await;
    s.add_node(&node).await;
    s.wait_for_tip(&best_hash(&node).await).await;

    // About 12 MB of registered transactions in one block.
    let spends = many_spends(&node, 1500, 8000).await;
    s.wait_for_tip(&best_hash(&node).await).await;
    s.submit_many(&spends, &json!({"merkleProof": true, "callbackUrl": "https://r.example/cb"})).await;
    node.wait_for_block_candidate(1500).await;
    let block = node.generate(1).await.remove(0);
    // Killed as soon as it follows the block: in the middle of parsing it.
    s.wait_for_tip(&block).await;
    let log = parser.kill();
    let parsed_before = log.lines().any(|l| l.contains("block parsed") && l.contains(&block));
    tracing::info!(parsed_before, "block-parser was killed");

    let _parser = test_support::ServiceProcess::start_on(binary, &bp_env, bp_port).await;
    let sql = format!(
        "SELECT 1 FROM tx_blocks WHERE on_active_chain AND block_hash = decode('{}', 'hex')",
        internal_hex(&block)
    );
    assert_eq!(s.wait_for_rows(&sql, 1500).await.len(), 1500, "parsed before the kill: {parsed_before}");
    let callbacks = s.wait_for_rows("SELECT 1 FROM callbacks WHERE reason = 'merkleProof'", 1500).await;
    assert_eq!(callbacks.len(), 1500);
    // Nothing more arrives: every event once in effect.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(s.mapi_rows("SELECT 1 FROM callbacks").await.len(), 1500);
    let status = block_parser_status(&s).await;
    assert_eq!(status["eventsWaiting"], 0, "{status}");
}

#[tokio::test]
async fn the_mempool_checker_skips_rounds_while_blocks_wait_to_be_parsed() {
    use diesel_async::AsyncConnection;
    use std::collections::HashMap;
    test_support::init_test_tracing();
    let node = BitcoindNode::start().await;
    let (mapi_db, bp_db) =
        (test_support::TestDatabase::create().await, test_support::TestDatabase::create().await);
    // The parser's lock, taken first: block-parser follows the chain but parses nothing.
    let mut holder = diesel_async::AsyncPgConnection::establish(bp_db.url()).await.unwrap();
    assert!(db_kit::Db::try_advisory_lock(&mut holder, block_parser::parser::LOCK_NAME).await.unwrap());
    let bp_listener = test_support::local_listener();
    let bp_url = format!("http://127.0.0.1:{}", bp_listener.local_addr().unwrap().port());
    let env = |pairs: &[(&'static str, String)]| -> HashMap<&'static str, String> {
        pairs.iter().cloned().collect()
    };
    let mapi_env = env(&[
        ("DATABASE_URL", mapi_db.url().to_owned()),
        ("INTERNAL_TOKEN", INTERNAL_TOKEN.to_owned()),
        ("WIF_PRIVATEKEY", crate::helpers::WIF.to_owned()),
        ("MEMPOOL_CHECKER_INTERVAL_SEC", "1".to_owned()),
        ("MEMPOOL_CHECKER_UNSUCCESSFUL_INTERVAL_SEC", "1".to_owned()),
        ("BLOCK_PARSER_URL", bp_url.clone()),
        ("ZMQ_LISTENER_URL", format!("http://127.0.0.1:{}", test_support::free_port())),
    ]);
    let settings: mapi::settings::MapiSettings =
        service_kit::settings::load_from(None, |k| mapi_env.get(k).cloned()).unwrap();
    let app = mapi::Application::build(settings, test_support::local_listener()).await.unwrap();
    let mapi = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    let bp_env = env(&[
        ("DATABASE_URL", bp_db.url().to_owned()),
        ("INTERNAL_TOKEN", INTERNAL_TOKEN.to_owned()),
        ("MAPI_URL", mapi.clone()),
        ("CATCH_UP_INTERVAL_MS", "200".to_owned()),
    ]);
    let settings: block_parser::settings::BlockParserSettings =
        service_kit::settings::load_from(None, |k| bp_env.get(k).cloned()).unwrap();
    let app = block_parser::Application::build(settings, bp_listener).await.unwrap();
    tokio::spawn(app.run_until_stopped());
    let http = reqwest::Client::new();
    let body = json!({"id": format!("127.0.0.1:{}", node.rpc_port), "username": node.rpc_user, "password": node.rpc_password});
    let resp = http
        .post(format!("{mapi}/api/v1/Node"))
        .header("x-internal-token", INTERNAL_TOKEN)
        .header("x-caller-admin", "true")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let status = || async {
        http.get(format!("{bp_url}/internal/status"))
            .header("x-internal-token", INTERNAL_TOKEN)
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    let skipped = || async {
        let text = http.get(format!("{mapi}/metrics")).send().await.unwrap().text().await.unwrap();
        text.lines()
            .filter(|l| l.starts_with("mapi_mempool_checker_rounds_skipped_total"))
            .find_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };

    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let best = best_hash(&node).await;
    while status().await["bestBlockHash"] != best.as_str() {
        assert!(std::time::Instant::now() < deadline, "block-parser did not follow");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    node.generate(2).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while status().await["blockParserQueue"].as_u64() < Some(2) {
        assert!(std::time::Instant::now() < deadline, "no blocks queued");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while skipped().await < 1.0 {
        assert!(std::time::Instant::now() < deadline, "the mempool checker did not skip a round");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The parser takes its lock back and catches up; the checker's rounds run again.
    drop(holder);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while status().await["blockParserQueue"] != 0 {
        assert!(std::time::Instant::now() < deadline, "the queue did not drain");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after = skipped().await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(skipped().await, after, "no round skipped once nothing waits");
}
