//! The notifier on a real PostgreSQL, alone or behind the whole stack (real nodes, mapi,
//! block-parser, zmq-listener, a gateway), delivering to real recording HTTP receivers.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use test_support::{BitcoindNode, TestDatabase};
use wire_model::internal::{NotificationRequest, NotificationRequests};

pub const INTERNAL_TOKEN: &str = "notifier-test-internal-token";
pub const ADMIN_KEY: &str = "notifier-test-admin-key-0123456789";
pub const WIF: &str = "cN9spWsvaxA8taS7DFMxnk1yJD2gaF2PX1npuTpy3vuZFJdwavaw";

pub fn settings<S: service_kit::ServiceSettings>(env: &HashMap<&str, String>) -> S {
    service_kit::settings::load_from(None, |k| env.get(k).cloned()).unwrap()
}

/// The notifier's settings for tests: quick retries, private targets allowed (receivers listen on
/// loopback), plus `extra`.
pub fn notifier_env(database: &str, extra: &[(&'static str, &str)]) -> HashMap<&'static str, String> {
    let mut env = HashMap::from([
        ("DATABASE_URL", database.to_owned()),
        ("INTERNAL_TOKEN", INTERNAL_TOKEN.to_owned()),
        ("NOTIFICATION_NOTIFICATION_INTERVAL_SEC", "1".to_owned()),
        ("NOTIFICATION_MAX_BACKOFF_SEC", "4".to_owned()),
        ("NOTIFICATION_LEASE_SEC", "6".to_owned()),
        ("NOTIFICATION_BLOCK_PRIVATE_TARGETS", "false".to_owned()),
    ]);
    for (k, v) in extra {
        env.insert(*k, (*v).to_owned());
    }
    env
}

/// A notifier in this process on `database`.
pub async fn spawn_notifier_on(database: &str, extra: &[(&'static str, &str)]) -> String {
    let env = notifier_env(database, extra);
    let app = notifier::Application::build(settings(&env), test_support::local_listener()).await.unwrap();
    let url = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    url
}

/// A notifier alone, with a gateway in front for its admin API.
pub struct Alone {
    pub notifier: String,
    pub gateway: String,
    pub http: reqwest::Client,
    _dbs: [TestDatabase; 2],
}

pub async fn alone(extra: &[(&'static str, &str)]) -> Alone {
    test_support::init_test_tracing();
    let db = TestDatabase::create().await;
    let gw_db = TestDatabase::create().await;
    let notifier = spawn_notifier_on(db.url(), extra).await;
    let unused = format!("http://127.0.0.1:{}", test_support::free_port());
    let gateway =
        spawn_gateway(gw_db.url(), &unused, &unused, &notifier, test_support::local_listener()).await;
    Alone { notifier, gateway, http: reqwest::Client::new(), _dbs: [db, gw_db] }
}

/// A gateway in front of mapi, block-parser and the notifier, on `listener`.
pub async fn spawn_gateway(
    database: &str,
    mapi: &str,
    block_parser: &str,
    notifier: &str,
    listener: std::net::TcpListener,
) -> String {
    let env = HashMap::from([
        ("DATABASE_URL", database.to_owned()),
        ("INTERNAL_TOKEN", INTERNAL_TOKEN.to_owned()),
        ("RESTADMIN_APIKEY", ADMIN_KEY.to_owned()),
        ("MAPI_URL", mapi.to_owned()),
        ("BLOCK_PARSER_URL", block_parser.to_owned()),
        ("NOTIFIER_URL", notifier.to_owned()),
        ("PEER_CHANNELS_URL", format!("http://127.0.0.1:{}", test_support::free_port())),
    ]);
    let app = gateway::Application::build(settings(&env), listener, Arc::new(gateway::clock::SystemClock))
        .await
        .unwrap();
    let url = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    url
}

/// A notification request as mapi would send it.
pub fn request(key: &str, url: &str, body: &str) -> NotificationRequest {
    NotificationRequest {
        key: key.to_owned(),
        url: url.to_owned(),
        token: None,
        encryption: None,
        body: body.to_owned(),
        txid: Some(format!("{:0>64}", key.len())),
        reason: Some("merkleProof".to_owned()),
    }
}

/// Hands requests to a notifier's intake; returns its answer.
pub async fn hand_over(http: &reqwest::Client, notifier: &str, requests: Vec<NotificationRequest>) -> Value {
    let resp = http
        .post(format!("{notifier}/internal/notifications"))
        .header("x-internal-token", INTERNAL_TOKEN)
        .json(&NotificationRequests { notifications: requests })
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

/// A metric's value on a service's `/metrics` (0 when absent).
pub async fn metric(http: &reqwest::Client, service: &str, name: &str) -> f64 {
    let text = http.get(format!("{service}/metrics")).send().await.unwrap().text().await.unwrap();
    text.lines()
        .find_map(|l| {
            let rest = l.strip_prefix(name)?;
            let value = match rest.strip_prefix('{') {
                Some(labelled) => labelled.split_once("} ")?.1,
                None => rest.strip_prefix(' ')?,
            };
            Some(value.trim().parse().unwrap())
        })
        .unwrap_or(0.0)
}

/// Polls `check` every 100 ms until it holds, or panics after `limit` with `what`.
pub async fn eventually<F, Fut, T>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The whole chain-event path: a node, mapi, block-parser, zmq-listener, the notifier and a
/// gateway in front, in this process, each on its own database.
pub struct Stack {
    pub mapi: String,
    pub gateway: String,
    pub http: reqwest::Client,
    pub mapi_db: TestDatabase,
    _dbs: Vec<TestDatabase>,
}

/// Options of [`stack`].
#[derive(Default)]
pub struct StackOptions {
    /// Run zmq-listener (double-spend attempts from `invalidtx`).
    pub zmq_listener: bool,
    /// The gateway's listener (its port may be needed before the stack starts, e.g. by a node's
    /// `-dsendpointport`).
    pub gateway_listener: Option<std::net::TcpListener>,
    /// More mapi settings.
    pub mapi_extra: Vec<(&'static str, String)>,
}

pub async fn stack(options: StackOptions) -> Stack {
    test_support::init_test_tracing();
    let (mapi_db, bp_db, n_db, gw_db) = (
        TestDatabase::create().await,
        TestDatabase::create().await,
        TestDatabase::create().await,
        TestDatabase::create().await,
    );
    let notifier = spawn_notifier_on(n_db.url(), &[]).await;
    let bp_listener = test_support::local_listener();
    let block_parser = format!("http://127.0.0.1:{}", bp_listener.local_addr().unwrap().port());
    let zl_listener = test_support::local_listener();
    let zmq_listener = format!("http://127.0.0.1:{}", zl_listener.local_addr().unwrap().port());
    let mut mapi_env = HashMap::from([
        ("BLOCK_PARSER_URL", block_parser.clone()),
        ("ZMQ_LISTENER_URL", zmq_listener.clone()),
        ("NOTIFIER_URL", notifier.clone()),
        ("DATABASE_URL", mapi_db.url().to_owned()),
        ("INTERNAL_TOKEN", INTERNAL_TOKEN.to_owned()),
        ("WIF_PRIVATEKEY", WIF.to_owned()),
        ("MEMPOOL_CHECKER_DISABLED", "true".to_owned()),
    ]);
    for (k, v) in &options.mapi_extra {
        mapi_env.insert(k, v.clone());
    }
    let app = mapi::Application::build(settings(&mapi_env), test_support::local_listener()).await.unwrap();
    let mapi = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    let bp_env = HashMap::from([
        ("DATABASE_URL", bp_db.url().to_owned()),
        ("INTERNAL_TOKEN", INTERNAL_TOKEN.to_owned()),
        ("MAPI_URL", mapi.clone()),
        ("CATCH_UP_INTERVAL_MS", "200".to_owned()),
    ]);
    let app = block_parser::Application::build(settings(&bp_env), bp_listener).await.unwrap();
    tokio::spawn(app.run_until_stopped());
    if options.zmq_listener {
        let zl_env = HashMap::from([
            ("INTERNAL_TOKEN", INTERNAL_TOKEN.to_owned()),
            ("MAPI_URL", mapi.clone()),
            ("BLOCK_PARSER_URL", block_parser.clone()),
        ]);
        let app = zmq_listener::Application::build(settings(&zl_env), zl_listener).await.unwrap();
        tokio::spawn(app.run_until_stopped());
    }
    let gw_listener = options.gateway_listener.unwrap_or_else(test_support::local_listener);
    let gateway = spawn_gateway(gw_db.url(), &mapi, &block_parser, &notifier, gw_listener).await;
    Stack { mapi, gateway, http: reqwest::Client::new(), mapi_db, _dbs: vec![bp_db, n_db, gw_db] }
}

impl Stack {
    /// Registers a node with mapi through the gateway's admin API.
    pub async fn add_node(&self, node: &BitcoindNode) {
        let resp = self
            .http
            .post(format!("{}/api/v1/Node", self.gateway))
            .header("api-key", ADMIN_KEY)
            .json(&json!({"id": format!("127.0.0.1:{}", node.rpc_port), "username": node.rpc_user, "password": node.rpc_password}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    }

    /// Waits until block-parser follows `node`'s best block (blocks mined after it are parsed).
    pub async fn wait_for_tip(&self, node: &BitcoindNode) {
        let best = node.rpc("getbestblockhash", json!([])).await;
        eventually(Duration::from_secs(30), "block-parser to follow the node", || async {
            let status = self.admin_json("/api/v1/status/blockparser").await?;
            (status["bestBlockHash"] == best).then_some(())
        })
        .await;
    }

    /// `GET` on the gateway's admin API; `None` while it does not answer JSON.
    pub async fn admin_json(&self, path: &str) -> Option<Value> {
        let resp = self
            .http
            .get(format!("{}{path}", self.gateway))
            .header("api-key", ADMIN_KEY)
            .send()
            .await
            .ok()?;
        resp.json().await.ok()
    }

    /// Submits one transaction through the gateway; returns the payload, which must be a success.
    pub async fn submit(&self, body: Value) -> Value {
        let resp = self.http.post(format!("{}/mapi/tx", self.gateway)).json(&body).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let env: Value = resp.json().await.unwrap();
        let payload: Value = serde_json::from_str(env["payload"].as_str().unwrap()).unwrap();
        assert_eq!(payload["returnResult"], "success", "{payload}");
        payload
    }

    /// Rows of a query on mapi's database.
    pub async fn mapi_rows(&self, sql: &str) -> Vec<Value> {
        test_support::query_json(self.mapi_db.url(), "mapi", sql).await
    }
}

/// A verified callback envelope's payload.
pub fn verified_payload(body: &[u8]) -> Value {
    let envelope: bsv_primitives::JsonEnvelope = serde_json::from_slice(body).unwrap();
    let key = envelope.verify().expect("the callback envelope verifies");
    let wif_key = bsv_primitives::PrivateKey::from_wif(WIF).unwrap().public_key();
    assert_eq!(key.to_hex(), wif_key.to_hex(), "signed by the miner's key");
    assert_eq!(envelope.encoding, "UTF-8");
    assert_eq!(envelope.mimetype, "application/json");
    let payload: Value = serde_json::from_str(&envelope.payload).unwrap();
    assert_eq!(payload["minerId"], key.to_hex());
    assert_eq!(payload["apiVersion"], "1.5.0");
    // The reference's order: callbackPayload first.
    assert!(envelope.payload.starts_with("{\"callbackPayload\":"), "{}", envelope.payload);
    payload
}

/// The display-order txid of a transaction given as hex.
pub fn txid_of(hex: &str) -> String {
    test_support::txid_of(&hex::decode(hex).unwrap())
}

/// Opens a sealed box with the system's libsodium (an implementation independent of the
/// notifier's), through Python's ctypes; `keypair` makes a key pair the same way.
pub fn libsodium(args: &[&str], stdin: &[u8]) -> Vec<u8> {
    use std::io::Write;
    const SCRIPT: &str = r#"
import ctypes, ctypes.util, sys
name = ctypes.util.find_library("sodium") or "libsodium.so.23"
lib = ctypes.CDLL(name)
assert lib.sodium_init() >= 0
if sys.argv[1] == "keypair":
    pk, sk = ctypes.create_string_buffer(32), ctypes.create_string_buffer(32)
    assert lib.crypto_box_keypair(pk, sk) == 0
    sys.stdout.write(pk.raw.hex() + " " + sk.raw.hex())
else:
    pk, sk = bytes.fromhex(sys.argv[2]), bytes.fromhex(sys.argv[3])
    c = sys.stdin.buffer.read()
    m = ctypes.create_string_buffer(max(len(c) - 48, 1))
    if lib.crypto_box_seal_open(m, c, ctypes.c_ulonglong(len(c)), pk, sk) != 0:
        sys.exit("crypto_box_seal_open failed")
    sys.stdout.buffer.write(m.raw[: len(c) - 48])
"#;
    let mut child = std::process::Command::new("python3")
        .arg("-c")
        .arg(SCRIPT)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "libsodium: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}
