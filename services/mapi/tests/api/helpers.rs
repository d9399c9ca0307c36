//! `spawn_app`: the real mapi on port 0 with a fresh database; requests as the gateway sends them.

use std::collections::HashMap;

use mapi::Application;
use mapi::settings::MapiSettings;
use serde_json::{Value, json};
use test_support::{BitcoindNode, TestDatabase};

/// The internal credential of the test deployment.
pub const INTERNAL_TOKEN: &str = "mapi-test-internal-token";

/// The miner's key (regtest WIF of secret 0x11…11) and its compressed public key.
pub const WIF: &str = "cN9spWsvaxA8taS7DFMxnk1yJD2gaF2PX1npuTpy3vuZFJdwavaw";

pub struct TestApp {
    pub url: String,
    pub http: reqwest::Client,
    pub _db: TestDatabase,
}

/// Who the gateway says is calling.
#[derive(Clone, Copy)]
pub enum As<'a> {
    Anonymous,
    Admin,
    Identity(&'a str, &'a str),
    /// Identity headers without the internal credential: must be ignored.
    Forged(&'a str, &'a str),
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

pub async fn spawn_app_with(extra: &[(&'static str, &str)]) -> TestApp {
    spawn_replica(None, extra).await
}

/// A mapi on `database` (another replica's), or on a fresh database when `None`.
pub async fn spawn_replica(database: Option<&str>, extra: &[(&'static str, &str)]) -> TestApp {
    let db = TestDatabase::create().await;
    let mut env: HashMap<&str, String> = HashMap::from([
        ("DATABASE_URL", database.unwrap_or(db.url()).to_owned()),
        ("INTERNAL_TOKEN", INTERNAL_TOKEN.to_owned()),
        ("WIF_PRIVATEKEY", WIF.to_owned()),
        ("CALLBACK_IP_ADDRESSES", "10.0.0.1, [::1]:8443".to_owned()),
        // No sibling service runs in these tests: nothing listens there.
        ("BLOCK_PARSER_URL", format!("http://127.0.0.1:{}", test_support::free_port())),
        ("ZMQ_LISTENER_URL", format!("http://127.0.0.1:{}", test_support::free_port())),
    ]);
    for (k, v) in extra {
        env.insert(k, (*v).to_owned());
    }
    let settings: MapiSettings =
        service_kit::settings::load_from(None, |k| env.get(k).cloned()).expect("settings");
    let app = Application::build(settings, test_support::local_listener()).await.expect("build");
    let url = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    TestApp { url, http: reqwest::Client::new(), _db: db }
}

impl TestApp {
    pub fn request(&self, method: reqwest::Method, path: &str, who: As<'_>) -> reqwest::RequestBuilder {
        let req = self.http.request(method, format!("{}{path}", self.url));
        match who {
            As::Anonymous => req.header("x-internal-token", INTERNAL_TOKEN),
            As::Admin => req.header("x-internal-token", INTERNAL_TOKEN).header("x-caller-admin", "true"),
            As::Identity(i, p) => req
                .header("x-internal-token", INTERNAL_TOKEN)
                .header("x-caller-identity", i)
                .header("x-caller-identity-provider", p),
            As::Forged(i, p) => req
                .header("x-caller-identity", i)
                .header("x-caller-identity-provider", p)
                .header("x-caller-admin", "true"),
        }
    }

    pub async fn get(&self, path: &str, who: As<'_>) -> reqwest::Response {
        self.request(reqwest::Method::GET, path, who).send().await.unwrap()
    }

    pub async fn post(&self, path: &str, who: As<'_>, body: &Value) -> reqwest::Response {
        self.request(reqwest::Method::POST, path, who).json(body).send().await.unwrap()
    }

    /// The value of one of the service's Prometheus series (the first line that starts with `name`).
    pub async fn metric(&self, name: &str) -> f64 {
        let text = self.get("/metrics", As::Anonymous).await.text().await.unwrap();
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.split_whitespace().last()))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no metric {name}"))
    }

    /// Adds a node through the admin API.
    pub async fn add_node(&self, node: &BitcoindNode) -> reqwest::Response {
        self.post(
            "/api/v1/Node",
            As::Admin,
            &json!({"id": format!("127.0.0.1:{}", node.rpc_port), "username": node.rpc_user, "password": node.rpc_password, "remarks": "regtest"}),
        )
        .await
    }
}

/// Fees of a quote with one rate for everything.
pub fn fees(satoshis: u64, bytes: u64) -> Value {
    let rate = json!({"satoshis": satoshis, "bytes": bytes});
    json!([
        {"feeType": "standard", "miningFee": rate, "relayFee": rate},
        {"feeType": "data", "miningFee": rate, "relayFee": rate}
    ])
}

/// The confirmed coins of the wallet, largest first.
pub async fn coins(node: &BitcoindNode) -> Vec<Value> {
    node.coins().await
}

/// A signed transaction spending `coin` to a new address, paying `fee` satoshis, with an optional
/// data output of `data_len` bytes.
pub async fn spend(node: &BitcoindNode, coin: &Value, fee: u64, data_len: usize) -> String {
    node.spend(coin, fee, data_len).await
}
