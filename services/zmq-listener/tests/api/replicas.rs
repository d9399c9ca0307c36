//! zmq-listener as separate processes: two replicas forward the same double spend (recorded once),
//! one killed loses nothing, and blocks mined while every replica is down are all parsed once a
//! replica is back (block-parser walks back from the tip it is told of).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use test_support::{BitcoindNode, ServiceProcess, TestDatabase};

use crate::listener::INTERNAL_TOKEN;

const WIF: &str = "cN9spWsvaxA8taS7DFMxnk1yJD2gaF2PX1npuTpy3vuZFJdwavaw";

fn settings<S: service_kit::ServiceSettings>(env: &HashMap<&str, String>) -> S {
    service_kit::settings::load_from(None, |k| env.get(k).cloned()).unwrap()
}

struct Stack {
    mapi: String,
    block_parser: String,
    http: reqwest::Client,
    mapi_db: TestDatabase,
    _bp_db: TestDatabase,
}

impl Stack {
    async fn rows(&self, sql: &str) -> Vec<Value> {
        test_support::query_json(self.mapi_db.url(), "mapi", sql).await
    }

    async fn wait_rows(&self, sql: &str, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let rows = self.rows(sql).await;
            if rows.len() >= n {
                return rows;
            }
            assert!(Instant::now() < deadline, "{sql}: {rows:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn submit(&self, body: Value) {
        let resp = self
            .http
            .post(format!("{}/mapi/tx", self.mapi))
            .header("x-internal-token", INTERNAL_TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        let env: Value = resp.json().await.unwrap();
        let payload: Value = serde_json::from_str(env["payload"].as_str().unwrap()).unwrap();
        assert_eq!(payload["returnResult"], "success", "{payload}");
    }

    async fn best_tip(&self) -> Option<String> {
        let resp =
            self.http.get(format!("{}/api/v1/headers/tips?longest_chain=1", self.block_parser)).send().await;
        let tips: Value = resp.ok()?.json().await.ok()?;
        tips[0]["header"]["hash"].as_str().map(str::to_owned)
    }
}

/// A listener process on `port`, subscribed to the node before it returns.
async fn listener(port: u16, env: &HashMap<&str, String>, node: &BitcoindNode) -> ServiceProcess {
    let process = ServiceProcess::start_on(env!("CARGO_BIN_EXE_zmq-listener"), env, port).await;
    let id = format!("127.0.0.1:{}", node.rpc_port);
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let statuses: Vec<Value> = http
            .get(format!("{}/internal/status", process.url))
            .header("x-internal-token", INTERNAL_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if statuses.iter().any(|s| s["nodeId"] == id.as_str() && s["isResponding"] == true) {
            // A moment for the SUB socket's subscriptions to reach the publisher.
            tokio::time::sleep(Duration::from_millis(500)).await;
            return process;
        }
        assert!(Instant::now() < deadline, "not subscribed: {statuses:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn txid(hex: &str) -> bsv_primitives::Txid {
    bsv_primitives::Transaction::parse_hex(hex).unwrap().txid()
}

#[tokio::test]
async fn replicas_forward_each_double_spend_once_in_effect_and_missed_blocks_are_parsed_later() {
    test_support::init_test_tracing();
    let node = BitcoindNode::start().await;
    node.generate(10).await;
    let (mapi_db, bp_db) = (TestDatabase::create().await, TestDatabase::create().await);
    let bp_listener = test_support::local_listener();
    let block_parser = format!("http://127.0.0.1:{}", bp_listener.local_addr().unwrap().port());
    let mapi_env = HashMap::from([
        ("DATABASE_URL", mapi_db.url().to_owned()),
        ("INTERNAL_TOKEN", INTERNAL_TOKEN.to_owned()),
        ("WIF_PRIVATEKEY", WIF.to_owned()),
        ("MEMPOOL_CHECKER_DISABLED", "true".to_owned()),
        ("BLOCK_PARSER_URL", block_parser.clone()),
        ("ZMQ_LISTENER_URL", format!("http://127.0.0.1:{}", test_support::free_port())),
    ]);
    let app = mapi::Application::build(settings(&mapi_env), test_support::local_listener()).await.unwrap();
    let mapi = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    // Block-parser's own catch-up waits a minute: only hashblock announcements move it here.
    let bp_env = HashMap::from([
        ("DATABASE_URL", bp_db.url().to_owned()),
        ("INTERNAL_TOKEN", INTERNAL_TOKEN.to_owned()),
        ("MAPI_URL", mapi.clone()),
        ("CATCH_UP_INTERVAL_MS", "60000".to_owned()),
    ]);
    let app = block_parser::Application::build(settings(&bp_env), bp_listener).await.unwrap();
    tokio::spawn(app.run_until_stopped());
    let s = Stack { mapi, block_parser, http: reqwest::Client::new(), mapi_db, _bp_db: bp_db };
    let body = json!({"id": format!("127.0.0.1:{}", node.rpc_port), "username": node.rpc_user, "password": node.rpc_password});
    let resp = s
        .http
        .post(format!("{}/api/v1/Node", s.mapi))
        .header("x-internal-token", INTERNAL_TOKEN)
        .header("x-caller-admin", "true")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);

    let zl_env: HashMap<&str, String> = HashMap::from([
        ("INTERNAL_TOKEN", INTERNAL_TOKEN.to_owned()),
        ("MAPI_URL", s.mapi.clone()),
        ("BLOCK_PARSER_URL", s.block_parser.clone()),
    ]);
    let (port_a, port_b) = (test_support::free_port(), test_support::free_port());
    let a = listener(port_a, &zl_env, &node).await;
    let b = listener(port_b, &zl_env, &node).await;
    // Block-parser follows once its node list has the node and a block is announced.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let tip = node.generate(1).await.remove(0);
        tokio::time::sleep(Duration::from_millis(500)).await;
        if s.best_tip().await.as_deref() == Some(tip.as_str()) {
            break;
        }
        assert!(Instant::now() < deadline, "block-parser did not follow the announcements");
    }

    // Both replicas forward the same invalidtx: one record, one callback row.
    let coins = node.coins().await;
    let (x, y) = (node.spend(&coins[0], 1000, 0).await, node.spend(&coins[0], 2000, 0).await);
    s.submit(json!({"rawtx": x, "dsCheck": true, "callbackUrl": "https://r.example/{callbackReason}"})).await;
    assert!(node.rpc_result("sendrawtransaction", json!([y])).await.is_err());
    s.wait_rows("SELECT 1 FROM tx_mempool_double_spend_attempts", 1).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(s.rows("SELECT 1 FROM tx_mempool_double_spend_attempts").await.len(), 1);
    assert_eq!(s.rows("SELECT 1 FROM callbacks WHERE reason = 'doubleSpendAttempt'").await.len(), 1);

    // One replica killed: the other carries the next one.
    drop(a.kill());
    let (x2, y2) = (node.spend(&coins[1], 1000, 0).await, node.spend(&coins[1], 2000, 0).await);
    s.submit(json!({"rawtx": x2, "dsCheck": true, "callbackUrl": "https://r.example/{callbackReason}"}))
        .await;
    assert!(node.rpc_result("sendrawtransaction", json!([y2])).await.is_err());
    let rows =
        s.wait_rows("SELECT encode(ds_txid, 'hex') AS ds FROM tx_mempool_double_spend_attempts", 2).await;
    assert!(rows.iter().any(|r| r["ds"] == hex::encode(txid(&y2).internal())), "{rows:?}");

    // Every replica down: three blocks, each with a submitted transaction, go unannounced.
    drop(b.kill());
    let mut mined = Vec::new();
    for coin in &coins[2..5] {
        let hex = node.spend(coin, 1000, 0).await;
        s.submit(json!({"rawtx": hex})).await;
        mined.push((txid(&hex), node.generate(1).await.remove(0)));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_ne!(s.best_tip().await.as_deref(), Some(mined[2].1.as_str()), "nobody announced them");

    // A replica is back; the next block's announcement makes block-parser walk back over all.
    let _a = listener(port_a, &zl_env, &node).await;
    let tip = node.generate(1).await.remove(0);
    let deadline = Instant::now() + Duration::from_secs(30);
    while s.best_tip().await.as_deref() != Some(tip.as_str()) {
        assert!(Instant::now() < deadline, "block-parser did not follow");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (tx, block) in &mined {
        let mut internal = hex::decode(block).unwrap();
        internal.reverse();
        let sql = format!(
            "SELECT 1 FROM tx_blocks b JOIN txs t USING (tx_internal_id) WHERE t.txid = decode('{}', 'hex') \
             AND b.block_hash = decode('{}', 'hex') AND b.on_active_chain",
            hex::encode(tx.internal()),
            hex::encode(internal)
        );
        assert_eq!(s.wait_rows(&sql, 1).await.len(), 1, "{tx} in {block}");
    }
}

#[tokio::test]
async fn a_mempool_transaction_dropped_for_a_block_double_spend_is_recorded_from_zmq_alone() {
    test_support::init_test_tracing();
    let a = BitcoindNode::start().await;
    a.generate(5).await;
    let b = BitcoindNode::start_with(test_support::NodeOptions { fund_wallet: false, ..Default::default() })
        .await;
    b.connect_to(&a).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while a.rpc("getbestblockhash", json!([])).await != b.rpc("getbestblockhash", json!([])).await {
        assert!(Instant::now() < deadline, "not synced");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // No block-parser: what is recorded comes from the node's discardedfrommempool.
    let mapi_db = TestDatabase::create().await;
    let mapi_env = HashMap::from([
        ("DATABASE_URL", mapi_db.url().to_owned()),
        ("INTERNAL_TOKEN", INTERNAL_TOKEN.to_owned()),
        ("WIF_PRIVATEKEY", WIF.to_owned()),
        ("MEMPOOL_CHECKER_DISABLED", "true".to_owned()),
        ("BLOCK_PARSER_URL", format!("http://127.0.0.1:{}", test_support::free_port())),
        ("ZMQ_LISTENER_URL", format!("http://127.0.0.1:{}", test_support::free_port())),
    ]);
    let app = mapi::Application::build(settings(&mapi_env), test_support::local_listener()).await.unwrap();
    let mapi = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    let s = Stack {
        mapi: mapi.clone(),
        block_parser: String::new(),
        http: reqwest::Client::new(),
        mapi_db,
        _bp_db: TestDatabase::create().await,
    };
    let body = json!({"id": format!("127.0.0.1:{}", a.rpc_port), "username": a.rpc_user, "password": a.rpc_password});
    let resp = s
        .http
        .post(format!("{mapi}/api/v1/Node"))
        .header("x-internal-token", INTERNAL_TOKEN)
        .header("x-caller-admin", "true")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let zl_env: HashMap<&str, String> = HashMap::from([
        ("INTERNAL_TOKEN", INTERNAL_TOKEN.to_owned()),
        ("MAPI_URL", mapi.clone()),
        ("BLOCK_PARSER_URL", format!("http://127.0.0.1:{}", test_support::free_port())),
    ]);
    let _listener = listener(test_support::free_port(), &zl_env, &a).await;

    for n in [&a, &b] {
        n.rpc("setnetworkactive", json!([false])).await;
    }
    let coin = a.coins().await.remove(0);
    let (x, y) = (a.spend(&coin, 1000, 0).await, a.spend(&coin, 2000, 0).await);
    s.submit(json!({"rawtx": x, "dsCheck": true, "callbackUrl": "https://r.example/{callbackReason}"})).await;
    b.rpc("sendrawtransaction", json!([y])).await;
    let block = b.generate(1).await.remove(0);
    // B's block reaches A directly (P2P relay after a reconnect is not what this test is about,
    // and it sometimes took longer than the test waits).
    let raw = b.rpc("getblock", json!([block, 0])).await;
    a.rpc("submitblock", json!([raw])).await;
    assert_eq!(a.rpc("getbestblockhash", json!([])).await, json!(block), "A took B's block");

    let rows = s
        .wait_rows(
            "SELECT encode(d.ds_txid, 'hex') AS ds, encode(d.block_hash, 'hex') AS block, d.block_height AS height, \
                    encode(d.ds_tx_payload, 'hex') AS payload FROM tx_block_double_spends d",
            1,
        )
        .await;
    assert_eq!(rows[0]["ds"], hex::encode(txid(&y).internal()));
    let mut internal = hex::decode(&block).unwrap();
    internal.reverse();
    assert_eq!(rows[0]["block"], hex::encode(internal));
    assert_eq!(rows[0]["payload"], y);
    let height = b.rpc("getblockcount", json!([])).await;
    assert_eq!(rows[0]["height"], height);
    let callbacks = s.wait_rows("SELECT reason, payload FROM callbacks", 1).await;
    assert_eq!(callbacks[0]["reason"], "doubleSpend");
    assert_eq!(callbacks[0]["payload"]["blockHash"], block);
    assert_eq!(callbacks[0]["payload"]["callbackTxId"], txid(&x).to_string());
}
