//! `spawn_app`: the real gateway on 127.0.0.1 port 0 with a fresh database and a fixed clock.

use std::collections::HashMap;
use std::sync::Arc;

use gateway::Application;
use gateway::clock::FixedClock;
use gateway::settings::GatewaySettings;
use serde::Deserialize;
use test_support::TestDatabase;
use time::OffsetDateTime;
use time::macros::datetime;

/// The instant the signed test vectors name.
pub const VECTOR_TIME: OffsetDateTime = datetime!(2026-11-23 12:00:00 UTC);

/// The public URL the signed test vectors name.
pub const PUBLIC_URL: &str = "https://gateway.example";

#[derive(Debug, Clone, Deserialize)]
pub struct Vector {
    pub case: String,
    pub public_key_hex: String,
    pub message_hex: String,
    pub message: String,
    pub signature_hex: String,
}

impl Vector {
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({
            "public_key_hex": self.public_key_hex,
            "signature_hex": self.signature_hex,
            "message_hex": self.message_hex,
        })
    }

    /// The endpoint path the message names.
    pub fn path(&self) -> String {
        let url = self.message.split(' ').next().unwrap();
        url.strip_prefix(PUBLIC_URL).unwrap().to_owned()
    }
}

/// Signatures made by libsecp256k1 (coincurve), kept as test data.
pub fn vectors() -> Vec<Vector> {
    #[derive(Deserialize)]
    struct File {
        vectors: Vec<Vector>,
    }
    let file: File = serde_json::from_str(include_str!("../data/signed_messages.json")).unwrap();
    file.vectors
}

pub struct TestApp {
    pub url: String,
    pub http: reqwest::Client,
    pub db: TestDatabase,
}

pub struct Options {
    pub now: OffsetDateTime,
    pub signups_per_minute: u32,
}

impl Default for Options {
    fn default() -> Self {
        Self { now: VECTOR_TIME, signups_per_minute: 100 }
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Options::default()).await
}

pub async fn spawn_app_with(options: Options) -> TestApp {
    let db = TestDatabase::create().await;
    let env: HashMap<&str, String> = HashMap::from([
        ("DATABASE_URL", db.url().to_owned()),
        ("INTERNAL_TOKEN", "gateway-test-internal-token".to_owned()),
        ("PUBLIC_URL", PUBLIC_URL.to_owned()),
        ("SIGNUP_RATE_PER_MINUTE", options.signups_per_minute.to_string()),
    ]);
    let settings: GatewaySettings =
        service_kit::settings::load_from(None, |k| env.get(k).cloned()).expect("settings");
    let listener = test_support::local_listener();
    let app = Application::build(settings, listener, Arc::new(FixedClock(options.now))).await.expect("build");
    let url = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    TestApp { url, http: reqwest::Client::new(), db }
}

impl TestApp {
    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> reqwest::Response {
        self.http.post(format!("{}{path}", self.url)).json(body).send().await.unwrap()
    }

    pub async fn post_raw(&self, path: &str, body: &str) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.url))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap()
    }

    pub async fn get_account(&self, token: &str) -> reqwest::Response {
        self.http.get(format!("{}/api/v1/account", self.url)).bearer_auth(token).send().await.unwrap()
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(format!("{}{path}", self.url)).send().await.unwrap()
    }
}
