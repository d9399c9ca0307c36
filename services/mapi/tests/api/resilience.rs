//! Stored statuses on resubmission, a database that hangs, load shedding, request size caps and
//! nodes mapi cannot work with.

use std::time::{Duration, Instant};

use bsv_primitives::{JsonEnvelope, Transaction, Txid};
use diesel::sql_types::{Bytea, SmallInt, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::{Value, json};
use test_support::{BitcoindNode, NodeOptions};
use wire_model::mapi::SubmitTxPayload;

use crate::helpers::{As, TestApp, coins, spawn_app_with, spend};

async fn submit(app: &TestApp, body: Value) -> SubmitTxPayload {
    let resp = app.post("/mapi/tx", As::Anonymous, &body).await;
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert_eq!(status, 200, "{text}");
    let env: JsonEnvelope = serde_json::from_str(&text).unwrap();
    env.payload_as().unwrap()
}

/// Stores `hex` as an earlier submission left it: `status`, no callback options.
async fn store(conn: &mut AsyncPgConnection, hex: &str, status: i16) -> Txid {
    let raw = hex::decode(hex).unwrap();
    let txid = Transaction::parse(&raw).unwrap().txid();
    diesel::sql_query(
        "INSERT INTO mapi.txs (txid, payload, tx_status, ok_to_mine, submitted_at) VALUES ($1, $2, $3, true, now())",
    )
    .bind::<Bytea, _>(txid.internal().to_vec())
    .bind::<Bytea, _>(raw)
    .bind::<SmallInt, _>(status)
    .execute(conn)
    .await
    .unwrap();
    txid
}

#[derive(diesel::QueryableByName, Debug, PartialEq)]
struct Stored {
    #[diesel(sql_type = SmallInt)]
    tx_status: i16,
    #[diesel(sql_type = diesel::sql_types::Nullable<Text>)]
    callback_url: Option<String>,
}

async fn stored(conn: &mut AsyncPgConnection, txid: &Txid) -> Stored {
    diesel::sql_query("SELECT tx_status, callback_url FROM mapi.txs WHERE txid = $1")
        .bind::<Bytea, _>(txid.internal().to_vec())
        .get_result(conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn stored_statuses_are_handled_as_the_reference_does() {
    let node = BitcoindNode::start().await;
    node.generate(10).await;
    let app = spawn_app_with(&[("MEMPOOL_CHECKER_DISABLED", "true")]).await;
    assert_eq!(app.add_node(&node).await.status(), 201);
    let mut conn = AsyncPgConnection::establish(app._db.url()).await.unwrap();
    let coins = coins(&node).await;
    let statuses: [i16; 5] = [-2, -1, 0, 1, 2];
    let mut txs = Vec::new();
    for (coin, status) in coins.iter().zip(statuses) {
        let hex = spend(&node, coin, 1000, 0).await;
        txs.push((status, store(&mut conn, &hex, status).await, hex));
    }

    // Different parameters: refused for every stored status but "rejected", which is submitted
    // again as new and takes the new parameters.
    let with_callback =
        |hex: &str| json!({"rawtx": hex, "callbackUrl": "https://cb.example/x", "merkleProof": true});
    for (status, txid, hex) in &txs {
        let p = submit(&app, with_callback(hex)).await;
        if *status == -2 {
            assert_eq!(p.return_result, wire_model::mapi::ReturnResult::Success, "{p:?}");
            assert_eq!(
                stored(&mut conn, txid).await,
                Stored { tx_status: 1, callback_url: Some("https://cb.example/x".into()) }
            );
        } else {
            assert_eq!(
                p.result_description, "Transaction already submitted with different parameters.",
                "status {status}"
            );
            assert_eq!(stored(&mut conn, txid).await.tx_status, *status, "unchanged");
        }
    }
    let sent_before = app.metric("merchantapi_mapi_tx_sent_to_node_counter").await;
    assert_eq!(sent_before, 1.0, "only the rejected one went to the node");

    // Same parameters: mined (0) and accepted (1) are "Already known" without a node call; sent to
    // node (-1) and given up for missing inputs (2) are sent again, and the node's answer counts.
    for (status, txid, hex) in txs.iter().filter(|(s, _, _)| *s != -2) {
        let p = submit(&app, json!({"rawtx": hex})).await;
        assert_eq!(p.return_result, wire_model::mapi::ReturnResult::Success, "status {status}: {p:?}");
        match status {
            0 | 1 => {
                assert_eq!(p.result_description, "Already known", "status {status}");
                assert_eq!(stored(&mut conn, txid).await.tx_status, *status);
            }
            _ => {
                assert_eq!(p.result_description, "", "status {status}: the node accepted it now");
                assert_eq!(stored(&mut conn, txid).await.tx_status, 1, "status {status} became accepted");
            }
        }
    }
    assert_eq!(app.metric("merchantapi_mapi_tx_sent_to_node_counter").await, sent_before + 2.0);
    let mempool: Vec<String> = serde_json::from_value(node.rpc("getrawmempool", json!([])).await).unwrap();
    for (status, txid, _) in &txs {
        assert_eq!(mempool.contains(&txid.to_string()), matches!(status, -2 | -1 | 2), "status {status}");
    }
}

#[tokio::test]
async fn a_hung_database_answers_503_in_time_and_a_full_queue_sheds_load() {
    let node = BitcoindNode::start().await;
    node.generate(10).await;
    let app = spawn_app_with(&[
        ("MEMPOOL_CHECKER_DISABLED", "true"),
        ("DB_STATEMENT_TIMEOUT_MS", "1500"),
        ("SUBMIT_QUEUE_CAPACITY", "1"),
    ])
    .await;
    assert_eq!(app.add_node(&node).await.status(), 201);
    let coins = coins(&node).await;
    let mut hexes = Vec::new();
    for coin in &coins[..7] {
        hexes.push(spend(&node, coin, 1000, 0).await);
    }
    // Warm the node list and quotes (cached), then hang every statement on the txs table.
    assert_eq!(app.get("/mapi/feeQuote", As::Anonymous).await.status(), 200);
    let mut locker = AsyncPgConnection::establish(app._db.url()).await.unwrap();
    diesel::sql_query("BEGIN").execute(&mut locker).await.unwrap();
    diesel::sql_query("LOCK TABLE mapi.txs IN ACCESS EXCLUSIVE MODE").execute(&mut locker).await.unwrap();

    let started = Instant::now();
    let sends = hexes[..6].iter().map(|hex| {
        let req = app.request(reqwest::Method::POST, "/mapi/tx", As::Anonymous).json(&json!({"rawtx": hex}));
        async move { tokio::time::timeout(Duration::from_secs(20), req.send()).await }
    });
    let answers = futures_util::future::join_all(sends).await;
    let elapsed = started.elapsed();
    let mut shed = 0;
    let mut timed_out = 0;
    for answer in answers {
        let resp = answer.expect("an answer while the database hangs, not a hang").unwrap();
        assert_eq!(resp.status(), 503);
        if resp.headers().get("retry-after").map(|v| v.to_str().unwrap()) == Some("1") {
            shed += 1;
        } else {
            timed_out += 1;
        }
        let problem: Value = resp.json().await.unwrap();
        assert_eq!(problem["code"], "unavailable");
    }
    assert!(shed >= 1, "a full queue refuses at once with Retry-After ({shed} shed, {timed_out} timed out)");
    assert!(
        timed_out >= 1,
        "the statement timeout ended the hung statements ({shed} shed, {timed_out} timed out)"
    );
    assert!(elapsed < Duration::from_secs(15), "answered in {elapsed:?}");

    // The database comes back: submissions work again.
    diesel::sql_query("ROLLBACK").execute(&mut locker).await.unwrap();
    let resp = app.post("/mapi/tx", As::Anonymous, &json!({"rawtx": hexes[6]})).await;
    assert_eq!(resp.status(), 200);
    let env: JsonEnvelope = resp.json().await.unwrap();
    let p: SubmitTxPayload = env.payload_as().unwrap();
    assert_eq!(p.return_result, wire_model::mapi::ReturnResult::Success, "{p:?}");
}

#[tokio::test]
async fn a_batch_over_the_transaction_cap_is_413() {
    let node = BitcoindNode::start().await;
    node.generate(5).await;
    let app = spawn_app_with(&[("MEMPOOL_CHECKER_DISABLED", "true"), ("MAX_TXS_PER_REQUEST", "3")]).await;
    assert_eq!(app.add_node(&node).await.status(), 201);
    let coins = coins(&node).await;
    let mut hexes = Vec::new();
    for coin in &coins[..4] {
        hexes.push(spend(&node, coin, 1000, 0).await);
    }
    let json_items: Vec<Value> = hexes.iter().map(|h| json!({"rawtx": h})).collect();
    let resp = app.post("/mapi/txs", As::Anonymous, &json!(json_items)).await;
    assert_eq!(resp.status(), 413);
    let problem: Value = resp.json().await.unwrap();
    assert!(problem["detail"].as_str().unwrap().contains("at most 3"), "{problem}");
    let binary: Vec<u8> = hexes.iter().flat_map(|h| hex::decode(h).unwrap()).collect();
    let resp = app
        .request(reqwest::Method::POST, "/mapi/txs", As::Anonymous)
        .header("content-type", "application/octet-stream")
        .body(binary)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    // At the cap: accepted.
    let resp = app.post("/mapi/txs", As::Anonymous, &json!(json_items[..3])).await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn a_node_without_a_transaction_index_is_refused() {
    let node = BitcoindNode::start_with(NodeOptions {
        fund_wallet: false,
        extra_args: vec!["-txindex=0".into()],
        ..NodeOptions::default()
    })
    .await;
    let app = spawn_app_with(&[("MEMPOOL_CHECKER_DISABLED", "true")]).await;
    let resp = app.add_node(&node).await;
    assert_eq!(resp.status(), 400);
    let problem: Value = resp.json().await.unwrap();
    assert!(problem["detail"].as_str().unwrap().contains("-txindex=1"), "{problem}");
    let nodes: Vec<Value> = app.get("/api/v1/Node", As::Admin).await.json().await.unwrap();
    assert!(nodes.is_empty());
}
