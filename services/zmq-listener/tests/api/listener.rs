//! Subscriptions follow the node list, blocks reach block-parser at once, `status/zmq` tells the
//! truth about each node.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use test_support::{BitcoindNode, TestDatabase};

pub const INTERNAL_TOKEN: &str = "zmq-listener-test-internal-token";
const WIF: &str = "cN9spWsvaxA8taS7DFMxnk1yJD2gaF2PX1npuTpy3vuZFJdwavaw";

fn settings<S: service_kit::ServiceSettings>(env: &HashMap<&str, String>) -> S {
    service_kit::settings::load_from(None, |k| env.get(k).cloned()).unwrap()
}

struct Stack {
    mapi: String,
    block_parser: String,
    listener: String,
    http: reqwest::Client,
    mapi_db: TestDatabase,
    _bp_db: TestDatabase,
}

async fn stack() -> Stack {
    test_support::init_test_tracing();
    let (mapi_db, bp_db) = (TestDatabase::create().await, TestDatabase::create().await);
    let listener_listener = test_support::local_listener();
    let listener_url = format!("http://127.0.0.1:{}", listener_listener.local_addr().unwrap().port());
    let bp_listener = test_support::local_listener();
    let block_parser = format!("http://127.0.0.1:{}", bp_listener.local_addr().unwrap().port());
    let mapi_env = HashMap::from([
        ("BLOCK_PARSER_URL", block_parser.clone()),
        ("DATABASE_URL", mapi_db.url().to_owned()),
        ("INTERNAL_TOKEN", INTERNAL_TOKEN.to_owned()),
        ("WIF_PRIVATEKEY", WIF.to_owned()),
        ("MEMPOOL_CHECKER_DISABLED", "true".to_owned()),
        ("ZMQ_LISTENER_URL", listener_url.clone()),
    ]);
    let app = mapi::Application::build(settings(&mapi_env), test_support::local_listener()).await.unwrap();
    let mapi = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    // Block-parser catches up only once a minute: what makes it quick is the listener's hashblock.
    let bp_env = HashMap::from([
        ("DATABASE_URL", bp_db.url().to_owned()),
        ("INTERNAL_TOKEN", INTERNAL_TOKEN.to_owned()),
        ("MAPI_URL", mapi.clone()),
        ("CATCH_UP_INTERVAL_MS", "60000".to_owned()),
    ]);
    let app = block_parser::Application::build(settings(&bp_env), bp_listener).await.unwrap();
    tokio::spawn(app.run_until_stopped());
    let zl_env = HashMap::from([
        ("INTERNAL_TOKEN", INTERNAL_TOKEN.to_owned()),
        ("MAPI_URL", mapi.clone()),
        ("BLOCK_PARSER_URL", block_parser.clone()),
        ("ZMQ_CONNECTION_TEST_INTERVAL_SEC", "1".to_owned()),
    ]);
    let app = zmq_listener::Application::build(settings(&zl_env), listener_listener).await.unwrap();
    tokio::spawn(app.run_until_stopped());
    Stack { mapi, block_parser, listener: listener_url, http: reqwest::Client::new(), mapi_db, _bp_db: bp_db }
}

impl Stack {
    fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.mapi))
            .header("x-internal-token", INTERNAL_TOKEN)
            .header("x-caller-admin", "true")
    }

    async fn add_node(&self, node: &BitcoindNode) {
        let body = json!({"id": format!("127.0.0.1:{}", node.rpc_port), "username": node.rpc_user, "password": node.rpc_password});
        let resp = self.admin(reqwest::Method::POST, "/api/v1/Node").json(&body).send().await.unwrap();
        assert_eq!(resp.status(), 201);
    }

    /// The rows of a query on mapi's database (schema `mapi`), as JSON objects.
    async fn mapi_rows(&self, sql: &str) -> Vec<Value> {
        test_support::query_json(self.mapi_db.url(), "mapi", sql).await
    }

    async fn zmq_status(&self) -> Vec<Value> {
        self.admin(reqwest::Method::GET, "/api/v1/status/zmq").send().await.unwrap().json().await.unwrap()
    }

    /// Waits until `check` holds for the node's `status/zmq` entry.
    async fn wait_status(&self, node: &BitcoindNode, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        let id = format!("127.0.0.1:{}", node.rpc_port);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let all = self.zmq_status().await;
            if let Some(entry) = all.iter().find(|s| s["nodeId"] == id.as_str())
                && check(entry)
            {
                return entry.clone();
            }
            assert!(Instant::now() < deadline, "{what}: {all:#?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test]
async fn a_node_is_subscribed_its_blocks_reach_block_parser_at_once_and_a_restart_is_survived() {
    let mut node = BitcoindNode::start().await;
    let s = stack().await;
    s.add_node(&node).await;
    let entry = s.wait_status(&node, "subscribed", |e| e["isResponding"] == true).await;
    assert_eq!(entry["lastError"], "");
    let endpoint = &entry["endpoints"][0];
    assert_eq!(endpoint["address"], node.zmq_endpoint());
    let mut topics: Vec<&str> =
        endpoint["topic"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
    topics.sort();
    assert_eq!(
        topics,
        ["pubdiscardedfrommempool", "pubhashblock", "pubinvalidtx", "pubrawtx", "pubremovedfrommempoolblock"],
        "rawtx too: an indexer is configured (the default)"
    );
    // Silent for longer than the test interval: the connection was tested with the node.
    s.wait_status(&node, "tested while silent", |e| !e["endpoints"][0]["lastPingAt"].is_null()).await;

    // Block-parser's own round saw the node list before the node was added; past the list's
    // lifetime, a block announced over ZMQ makes it follow at once.
    tokio::time::sleep(Duration::from_secs(6)).await;
    for _ in 0..2 {
        node.generate(1).await;
        let tip = node.rpc("getbestblockhash", json!([])).await;
        let started = Instant::now();
        loop {
            let resp = s
                .http
                .get(format!("{}/api/v1/headers/{}", s.block_parser, tip.as_str().unwrap()))
                .send()
                .await
                .unwrap();
            if resp.status() == 200 {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(5), "block-parser did not hear of the block");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    }
    let entry =
        s.wait_status(&node, "a message was seen", |e| !e["endpoints"][0]["lastMessageAt"].is_null()).await;
    let seen = entry["endpoints"][0]["lastMessageAt"].as_str().unwrap().to_owned();

    // The node restarts: the subscription reconnects and carries the next blocks (a block mined
    // before the subscriber is back in is the catch-up's, so blocks are mined until one arrives).
    node.restart().await;
    let id = format!("127.0.0.1:{}", node.rpc_port);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        node.generate(1).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let all = s.zmq_status().await;
        let entry = all.iter().find(|e| e["nodeId"] == id.as_str()).unwrap();
        let newer = entry["endpoints"][0]["lastMessageAt"].as_str().is_some_and(|t| t > seen.as_str());
        if entry["isResponding"] == true && newer {
            break;
        }
        assert!(Instant::now() < deadline, "not resubscribed after the restart: {all:#?}");
    }
}

#[tokio::test]
async fn nodes_follow_the_admin_list_and_an_unreachable_node_shows_its_error() {
    use diesel_async::{AsyncConnection, RunQueryDsl};
    let node =
        BitcoindNode::start_with(test_support::NodeOptions { fund_wallet: false, ..Default::default() })
            .await;
    let s = stack().await;
    s.add_node(&node).await;
    s.wait_status(&node, "subscribed", |e| e["isResponding"] == true).await;

    // A node that stopped answering (stored as it was; the admin API checks nodes on the way in).
    let dead = test_support::free_port();
    let mut conn = diesel_async::AsyncPgConnection::establish(s.mapi_db.url()).await.unwrap();
    diesel::sql_query(format!(
        "INSERT INTO mapi.nodes (host, port, username, password) VALUES ('127.0.0.1', {dead}, 'u', 'p')"
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    let dead_id = format!("127.0.0.1:{dead}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let all = s.zmq_status().await;
        let entry = all.iter().find(|e| e["nodeId"] == dead_id.as_str()).unwrap().clone();
        if entry["lastError"].as_str().is_some_and(|e| e.contains("Unable to")) {
            assert_eq!(entry["isResponding"], false);
            break;
        }
        assert!(Instant::now() < deadline, "{all:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A node that publishes no ZMQ topics (the admin API refuses one; stored as it was): its
    // status says so.
    let silent = BitcoindNode::start_with(test_support::NodeOptions {
        fund_wallet: false,
        zmq: false,
        ..Default::default()
    })
    .await;
    diesel::sql_query(format!(
        "INSERT INTO mapi.nodes (host, port, username, password) VALUES ('127.0.0.1', {}, '{}', '{}')",
        silent.rpc_port, silent.rpc_user, silent.rpc_password
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    let entry = s
        .wait_status(&silent, "the missing topics are reported", |e| {
            e["lastError"].as_str().is_some_and(|t| t.contains("does not publish pubhashblock"))
        })
        .await;
    assert_eq!(entry["isResponding"], false, "{entry}");
    assert_eq!(entry["endpoints"], json!([]), "{entry}");

    // Removed through the admin API: the listener drops it.
    let id = format!("127.0.0.1:{}", node.rpc_port);
    let resp = s.admin(reqwest::Method::DELETE, &format!("/api/v1/Node/{id}")).send().await.unwrap();
    assert_eq!(resp.status(), 204);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let statuses: Vec<Value> = s
            .http
            .get(format!("{}/internal/status", s.listener))
            .header("x-internal-token", INTERNAL_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if !statuses.iter().any(|e| e["nodeId"] == id.as_str()) {
            break;
        }
        assert!(Instant::now() < deadline, "the removed node is still subscribed: {statuses:#?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The status is internal: no credential, no answer.
    let bare = s.http.get(format!("{}/internal/status", s.listener)).send().await.unwrap();
    assert_eq!(bare.status(), 401);
}

#[tokio::test]
async fn a_conflicting_transaction_sent_to_the_node_is_a_double_spend_attempt_of_the_ds_check_tx() {
    let node = BitcoindNode::start().await;
    node.generate(5).await;
    let s = stack().await;
    s.add_node(&node).await;
    s.wait_status(&node, "subscribed", |e| e["isResponding"] == true).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let coin = node.coins().await.remove(0);
    let x = node.spend(&coin, 1000, 0).await;
    let y = node.spend(&coin, 2000, 0).await;
    let body = json!({"rawtx": x, "dsCheck": true, "callbackUrl": "https://r.example/{callbackReason}"});
    let resp = s
        .http
        .post(format!("{}/mapi/tx", s.mapi))
        .header("x-internal-token", INTERNAL_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    let env: Value = resp.json().await.unwrap();
    let payload: Value = serde_json::from_str(env["payload"].as_str().unwrap()).unwrap();
    assert_eq!(payload["returnResult"], "success", "{payload}");

    // Straight to the node: refused for the conflict, published as invalidtx.
    let refused = node.rpc_result("sendrawtransaction", json!([y])).await.unwrap_err();
    assert!(refused.contains("258") || refused.contains("conflict"), "{refused}");

    let txid = |hex: &str| bsv_primitives::Transaction::parse_hex(hex).unwrap().txid();
    let deadline = Instant::now() + Duration::from_secs(20);
    let rows = loop {
        let rows = s
            .mapi_rows(
                "SELECT encode(d.ds_txid, 'hex') AS ds, encode(d.ds_tx_payload, 'hex') AS payload, \
                        encode(t.txid, 'hex') AS txid \
                 FROM tx_mempool_double_spend_attempts d JOIN txs t USING (tx_internal_id)",
            )
            .await;
        if !rows.is_empty() {
            break rows;
        }
        assert!(Instant::now() < deadline, "no double-spend attempt was recorded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["txid"], hex::encode(txid(&x).internal()));
    assert_eq!(rows[0]["ds"], hex::encode(txid(&y).internal()));
    assert_eq!(rows[0]["payload"], y);
    let callbacks = s.mapi_rows("SELECT reason, url, payload FROM callbacks").await;
    assert_eq!(callbacks.len(), 1, "{callbacks:?}");
    assert_eq!(callbacks[0]["reason"], "doubleSpendAttempt");
    assert_eq!(callbacks[0]["url"], "https://r.example/doubleSpendAttempt");
    assert_eq!(callbacks[0]["payload"]["blockHash"], "");
    assert_eq!(callbacks[0]["payload"]["blockHeight"], -1);
    assert_eq!(callbacks[0]["payload"]["callbackTxId"], txid(&x).to_string());
    assert_eq!(callbacks[0]["payload"]["callbackPayload"]["doubleSpendTxId"], txid(&y).to_string());

    // The same conflict again: nothing new.
    let _ = node.rpc_result("sendrawtransaction", json!([y])).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(s.mapi_rows("SELECT 1 FROM callbacks").await.len(), 1);
}
