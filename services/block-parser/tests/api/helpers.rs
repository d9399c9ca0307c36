//! A real mapi (the node list), a real gateway, and the block-parser under test, on loopback.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use test_support::{BitcoindNode, TestDatabase};

pub const INTERNAL_TOKEN: &str = "block-parser-test-internal-token";
pub const WIF: &str = "cN9spWsvaxA8taS7DFMxnk1yJD2gaF2PX1npuTpy3vuZFJdwavaw";

pub struct Stack {
    pub mapi: String,
    /// mapi's database (its tables are inspected directly).
    pub mapi_db: String,
    pub block_parser: String,
    pub gateway: String,
    pub http: reqwest::Client,
    _dbs: Vec<TestDatabase>,
}

fn settings<S: service_kit::ServiceSettings>(env: &HashMap<&str, String>) -> S {
    service_kit::settings::load_from(None, |k| env.get(k).cloned()).unwrap()
}

/// A mapi on `database` that registers with the block-parser at `block_parser`.
async fn spawn_mapi(database: &str, block_parser: &str) -> String {
    let env = HashMap::from([
        ("BLOCK_PARSER_URL", block_parser.to_owned()),
        ("ZMQ_LISTENER_URL", format!("http://127.0.0.1:{}", test_support::free_port())),
        ("DATABASE_URL", database.to_owned()),
        ("INTERNAL_TOKEN", INTERNAL_TOKEN.to_owned()),
        ("WIF_PRIVATEKEY", WIF.to_owned()),
        ("MEMPOOL_CHECKER_DISABLED", "true".to_owned()),
    ]);
    let app = mapi::Application::build(settings(&env), test_support::local_listener()).await.unwrap();
    let url = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    url
}

/// A gateway on `database` in front of `mapi` and `block_parser`.
async fn spawn_gateway(database: &str, mapi: &str, block_parser: &str) -> String {
    let env = HashMap::from([
        ("DATABASE_URL", database.to_owned()),
        ("INTERNAL_TOKEN", INTERNAL_TOKEN.to_owned()),
        ("MAPI_URL", mapi.to_owned()),
        ("BLOCK_PARSER_URL", block_parser.to_owned()),
    ]);
    let app = gateway::Application::build(
        settings(&env),
        test_support::local_listener(),
        Arc::new(gateway::clock::SystemClock),
    )
    .await
    .unwrap();
    let url = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    url
}

/// mapi, block-parser (with `extra` settings) and a gateway in front of them.
pub async fn stack(extra: &[(&str, &str)]) -> Stack {
    test_support::init_test_tracing();
    let (mapi_db, bp_db, gw_db) =
        (TestDatabase::create().await, TestDatabase::create().await, TestDatabase::create().await);
    let bp_listener = test_support::local_listener();
    let block_parser = format!("http://127.0.0.1:{}", bp_listener.local_addr().unwrap().port());
    let mapi = spawn_mapi(mapi_db.url(), &block_parser).await;

    let mut bp_env = HashMap::from([
        ("DATABASE_URL", bp_db.url().to_owned()),
        ("INTERNAL_TOKEN", INTERNAL_TOKEN.to_owned()),
        ("MAPI_URL", mapi.clone()),
        ("CATCH_UP_INTERVAL_MS", "200".to_owned()),
    ]);
    for (k, v) in extra {
        bp_env.insert(k, (*v).to_owned());
    }
    let app = block_parser::Application::build(settings(&bp_env), bp_listener).await.unwrap();
    tokio::spawn(app.run_until_stopped());

    let gateway = spawn_gateway(gw_db.url(), &mapi, &block_parser).await;
    Stack {
        mapi,
        mapi_db: mapi_db.url().to_owned(),
        block_parser,
        gateway,
        http: reqwest::Client::new(),
        _dbs: vec![mapi_db, bp_db, gw_db],
    }
}

/// mapi and a gateway, with block-parser run elsewhere (a process the test controls) at `bp_url`.
pub async fn stack_with_external_block_parser(
    mapi_db: &TestDatabase,
    gw_db: &TestDatabase,
    bp_url: &str,
) -> Stack {
    let mapi = spawn_mapi(mapi_db.url(), bp_url).await;
    let gateway = spawn_gateway(gw_db.url(), &mapi, bp_url).await;
    Stack {
        mapi,
        mapi_db: mapi_db.url().to_owned(),
        block_parser: bp_url.to_owned(),
        gateway,
        http: reqwest::Client::new(),
        _dbs: Vec::new(),
    }
}

impl Stack {
    /// Registers a node with mapi (as the admin API does).
    pub async fn add_node(&self, node: &BitcoindNode) {
        let resp = self
            .http
            .post(format!("{}/api/v1/Node", self.mapi))
            .header("x-internal-token", INTERNAL_TOKEN)
            .header("x-caller-admin", "true")
            .json(&json!({"id": format!("127.0.0.1:{}", node.rpc_port), "username": node.rpc_user, "password": node.rpc_password}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    }

    /// `GET` on block-parser with an `Accept` header.
    pub async fn get(&self, path: &str, accept: &str) -> reqwest::Response {
        self.http.get(format!("{}{path}", self.block_parser)).header("accept", accept).send().await.unwrap()
    }

    pub async fn json(&self, path: &str) -> Value {
        let resp = self.get(path, "application/json").await;
        assert_eq!(resp.status(), 200, "{path}");
        resp.json().await.unwrap()
    }

    pub async fn bytes(&self, path: &str) -> Vec<u8> {
        let resp = self.get(path, "application/octet-stream").await;
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(resp.headers()["content-type"], "application/octet-stream");
        resp.bytes().await.unwrap().to_vec()
    }

    /// The rows of a query on mapi's database (schema `mapi`), as JSON objects.
    pub async fn mapi_rows(&self, sql: &str) -> Vec<Value> {
        test_support::query_json(&self.mapi_db, "mapi", sql).await
    }

    /// Submits a transaction through the gateway (anonymously) and returns the envelope's payload.
    pub async fn submit(&self, body: Value) -> Value {
        let resp = self.http.post(format!("{}/mapi/tx", self.gateway)).json(&body).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let env: Value = resp.json().await.unwrap();
        let payload: Value = serde_json::from_str(env["payload"].as_str().unwrap()).unwrap();
        assert_eq!(payload["returnResult"], "success", "{payload}");
        payload
    }

    /// Submits transactions through the gateway (`POST /mapi/txs`, anonymously, `options` on
    /// each) in requests of at most 1000; every one must be accepted.
    pub async fn submit_many(&self, hexes: &[String], options: &Value) {
        for chunk in hexes.chunks(1000) {
            let body: Vec<Value> = chunk
                .iter()
                .map(|h| {
                    let mut item = options.clone();
                    item["rawtx"] = json!(h);
                    item
                })
                .collect();
            let resp = self.http.post(format!("{}/mapi/txs", self.gateway)).json(&body).send().await.unwrap();
            assert_eq!(resp.status(), 200);
            let env: Value = resp.json().await.unwrap();
            let payload: Value = serde_json::from_str(env["payload"].as_str().unwrap()).unwrap();
            assert_eq!(payload["failureCount"], 0, "{}", payload["txs"][0]);
        }
    }

    /// `GET /mapi/tx/{txid}` through the gateway: the payload.
    pub async fn tx_status(&self, txid: &str, query: &str) -> Value {
        let resp = self.http.get(format!("{}/mapi/tx/{txid}{query}", self.gateway)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{txid}");
        let env: Value = resp.json().await.unwrap();
        serde_json::from_str(env["payload"].as_str().unwrap()).unwrap()
    }

    /// Waits until `GET /mapi/tx/{txid}` reports `block` (display hex; `None`: no block), and
    /// returns the payload and how long it took.
    pub async fn wait_for_block_of(&self, txid: &str, block: Option<&str>) -> (Value, Duration) {
        let started = Instant::now();
        loop {
            let p = self.tx_status(txid, "").await;
            if p["blockHash"].as_str() == block {
                return (p, started.elapsed());
            }
            assert!(started.elapsed() < Duration::from_secs(30), "{txid}: {p} (waiting for {block:?})");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the query on mapi's database returns `n` rows.
    pub async fn wait_for_rows(&self, sql: &str, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let rows = self.mapi_rows(sql).await;
            if rows.len() >= n {
                return rows;
            }
            assert!(Instant::now() < deadline, "{sql}: {rows:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the best tip is `hash` (display hex).
    pub async fn wait_for_tip(&self, hash: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let resp = self.get("/api/v1/headers/tips?longest_chain=1", "application/json").await;
            if resp.status() == 200 {
                let tips: Value = resp.json().await.unwrap();
                if tips[0]["header"]["hash"] == hash {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "the best tip did not become {hash}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
