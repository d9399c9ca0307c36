//! The mempool checker against a real node that loses its mempool.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use test_support::{BitcoindNode, NodeOptions};

use crate::helpers::{As, coins, spawn_app_with, spend};

async fn mempool(node: &BitcoindNode) -> Vec<String> {
    serde_json::from_value(node.rpc("getrawmempool", json!([])).await).unwrap()
}

#[tokio::test]
async fn a_node_restarted_with_an_empty_mempool_gets_every_accepted_tx_back() {
    // The wallet node makes the transactions; the node mapi uses has no wallet (so nothing but
    // mapi can put them back) and does not persist its mempool.
    let wallet = BitcoindNode::start().await;
    wallet.generate(10).await;
    let mut target = BitcoindNode::start_with(NodeOptions {
        fund_wallet: false,
        persist_mempool: false,
        extra_args: vec!["-disablewallet=1".into()],
    })
    .await;
    target.connect_to(&wallet).await;
    let height = wallet.rpc("getblockcount", json!([])).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while target.rpc("getblockcount", json!([])).await != height {
        assert!(Instant::now() < deadline, "the target node did not sync");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let interval = 2;
    let app = spawn_app_with(&[
        ("MEMPOOL_CHECKER_INTERVAL_SEC", "2"),
        ("MEMPOOL_CHECKER_UNSUCCESSFUL_INTERVAL_SEC", "1"),
    ])
    .await;
    assert_eq!(app.add_node(&target).await.status(), 201);
    let coins = coins(&wallet).await;
    let mut accepted = Vec::new();
    for coin in &coins[..3] {
        let hex = spend(&wallet, coin, 1000, 0).await;
        let resp = app.post("/mapi/tx", As::Anonymous, &json!({"rawtx": hex})).await;
        let env: bsv_primitives::JsonEnvelope = resp.json().await.unwrap();
        let p: Value = serde_json::from_str(&env.payload).unwrap();
        assert_eq!(p["returnResult"], "success", "{p}");
        accepted.push(p["txid"].as_str().unwrap().to_owned());
    }
    let before = mempool(&target).await;
    assert!(accepted.iter().all(|t| before.contains(t)));

    target.restart().await;
    assert!(mempool(&target).await.is_empty(), "the restart emptied the mempool");
    let restarted = Instant::now();
    loop {
        let now = mempool(&target).await;
        if accepted.iter().all(|t| now.contains(t)) {
            break;
        }
        // Two checker intervals, plus slack for a loaded machine.
        assert!(
            restarted.elapsed() < Duration::from_secs(2 * interval + 10),
            "still missing after {:?}: {now:?}",
            restarted.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // None was lost: mapi still reports each one.
    for txid in &accepted {
        let resp = app.get(&format!("/mapi/tx/{txid}"), As::Anonymous).await;
        let env: bsv_primitives::JsonEnvelope = resp.json().await.unwrap();
        let p: Value = serde_json::from_str(&env.payload).unwrap();
        assert_eq!(p["returnResult"], "success", "{p}");
    }
}
