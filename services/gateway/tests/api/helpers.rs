//! `spawn_app`: the real gateway on 127.0.0.1 port 0 with a fresh database and a fixed clock.

use std::collections::HashMap;
use std::sync::Arc;

use gateway::Application;
use gateway::clock::FixedClock;
use gateway::settings::GatewaySettings;
use serde::Deserialize;
use test_support::{RecordingReceiver, TestDatabase};
use time::OffsetDateTime;
use time::macros::datetime;

/// The instant the signed test vectors name.
pub const VECTOR_TIME: OffsetDateTime = datetime!(2026-11-23 12:00:00 UTC);

/// The credential internal services expect.
pub const INTERNAL_TOKEN: &str = "gateway-test-internal-token";

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

#[derive(Deserialize)]
struct VectorFile {
    vectors: Vec<Vector>,
    account_get: Vector,
}

fn vector_file() -> VectorFile {
    serde_json::from_str(include_str!("../data/signed_messages.json")).unwrap()
}

/// Sign-up signatures made by libsecp256k1 (coincurve), kept as test data.
pub fn vectors() -> Vec<Vector> {
    vector_file().vectors
}

/// A signature for `GET /api/v1/account` by the key of the first sign-up vector.
pub fn account_get_vector() -> Vector {
    vector_file().account_get
}

/// Real HTTP servers standing where the internal services will be.
pub struct Upstreams {
    pub mapi: RecordingReceiver,
    pub peer_channels: RecordingReceiver,
    pub block_parser: RecordingReceiver,
    pub header_sv: RecordingReceiver,
    pub indexer: RecordingReceiver,
}

impl Upstreams {
    pub async fn start() -> Self {
        Self {
            mapi: RecordingReceiver::start().await,
            peer_channels: RecordingReceiver::start().await,
            block_parser: RecordingReceiver::start().await,
            header_sv: RecordingReceiver::start().await,
            indexer: RecordingReceiver::start().await,
        }
    }
}

pub struct TestApp {
    pub url: String,
    pub http: reqwest::Client,
    pub db: TestDatabase,
    pub upstreams: Upstreams,
    pub port: u16,
}

pub struct Options {
    pub now: OffsetDateTime,
    pub signups_per_minute: u32,
    /// Another gateway replica's database (a fresh one when `None`).
    pub database: Option<String>,
    /// Extra or overriding environment variables.
    pub env: Vec<(&'static str, String)>,
}

impl Default for Options {
    fn default() -> Self {
        Self { now: VECTOR_TIME, signups_per_minute: 1000, database: None, env: Vec::new() }
    }
}

pub const ADMIN_KEY: &str = "admin-key-for-tests-0123456789";
pub const JWT_ISSUER: &str = "https://issuer.example";
pub const JWT_KEY: &str = "jwt-symmetric-key-for-tests-0123456789";

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Options::default()).await
}

pub async fn spawn_app_with(options: Options) -> TestApp {
    let db = TestDatabase::create().await;
    let upstreams = Upstreams::start().await;
    let database_url = options.database.clone().unwrap_or_else(|| db.url().to_owned());
    let mut env: HashMap<&str, String> = HashMap::from([
        ("DATABASE_URL", database_url),
        ("INTERNAL_TOKEN", INTERNAL_TOKEN.to_owned()),
        ("PUBLIC_URL", PUBLIC_URL.to_owned()),
        ("SIGNUP_RATE_PER_MINUTE", options.signups_per_minute.to_string()),
        ("MAPI_URL", upstreams.mapi.url().to_owned()),
        ("PEER_CHANNELS_URL", upstreams.peer_channels.url().to_owned()),
        ("BLOCK_PARSER_URL", upstreams.block_parser.url().to_owned()),
        ("HEADER_SV_URL", upstreams.header_sv.url().to_owned()),
        ("INDEXER_SERVICE_URL", upstreams.indexer.url().to_owned()),
        ("RESTADMIN_APIKEY", ADMIN_KEY.to_owned()),
        (
            "IDENTITY_PROVIDERS",
            serde_json::json!([{"issuer": JWT_ISSUER, "audience": "mapi", "symmetricSecurityKey": JWT_KEY}])
                .to_string(),
        ),
    ]);
    for (k, v) in options.env {
        env.insert(k, v);
    }
    let settings: GatewaySettings =
        service_kit::settings::load_from(None, |k| env.get(k).cloned()).expect("settings");
    let listener = test_support::local_listener();
    let app = Application::build(settings, listener, Arc::new(FixedClock(options.now))).await.expect("build");
    let port = app.port();
    let url = format!("http://127.0.0.1:{port}");
    tokio::spawn(app.run_until_stopped());
    let app = TestApp { url, http: reqwest::Client::new(), db, upstreams, port };
    app.wait_until_ready().await;
    app
}

/// A VerifiableKeyData body: the key of `seed` signs `"<PUBLIC_URL><path> <at>"`.
pub fn signed_body(seed: u8, path: &str, at: OffsetDateTime) -> serde_json::Value {
    let key = k256::ecdsa::SigningKey::from_slice(&[seed; 32]).unwrap();
    let when = at.format(&time::format_description::well_known::Rfc3339).unwrap();
    let message = format!("{PUBLIC_URL}{path} {when}");
    let signature = gateway::accounts::signed_message::sign(&key, message.as_bytes());
    serde_json::json!({
        "public_key_hex": hex::encode(key.verifying_key().to_sec1_point(true).as_bytes()),
        "signature_hex": hex::encode(signature),
        "message_hex": hex::encode(message.as_bytes()),
    })
}

impl TestApp {
    /// Waits (a few seconds at most) until `/ready` answers 200, as an orchestrator would.
    pub async fn wait_until_ready(&self) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while self.get("/ready").await.status() != 200 {
            assert!(std::time::Instant::now() < deadline, "the gateway did not become ready");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Signs up the key of `seed` with a message signed at `at`; the answer.
    pub async fn sign_up(&self, seed: u8, at: OffsetDateTime) -> reqwest::Response {
        self.post_json("/api/v1/account/register", &signed_body(seed, "/api/v1/account/register", at)).await
    }

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

impl TestApp {
    /// Signs up the key of vector `i` and returns its master token.
    pub async fn master_token(&self, i: usize) -> String {
        let v = &vectors()[i];
        let body: serde_json::Value = self.post_json(&v.path(), &v.body()).await.json().await.unwrap();
        body["api_key"].as_str().unwrap().to_owned()
    }

    /// Sends raw request bytes (paths a URL library would normalise) and returns the status.
    pub async fn raw_status(&self, request_line_path: &str) -> u16 {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.unwrap();
        let req = format!("GET {request_line_path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.unwrap();
        let text = String::from_utf8_lossy(&buf);
        text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
    }
}

/// A mAPI JWT signed with `key` by `issuer`, expiring `exp_offset` seconds from now.
pub fn jwt(key: &str, issuer: &str, exp_offset: i64) -> String {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let claims = serde_json::json!({"sub": "merchant-1", "iss": issuer, "aud": "mapi", "exp": now + exp_offset, "iat": now});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(key.as_bytes()),
    )
    .unwrap()
}

/// A real websocket server standing in for peer-channels' websocket endpoints: it records the
/// handshake headers, greets, and echoes every frame.
/// Headers of each websocket handshake the upstream saw.
pub type Handshakes = std::sync::Arc<std::sync::Mutex<Vec<Vec<(String, String)>>>>;

pub struct WsUpstream {
    pub url: String,
    pub handshakes: Handshakes,
    _server: test_support::RunningServer,
}

impl WsUpstream {
    pub async fn start() -> Self {
        use actix_web::{App, HttpRequest, web};
        type Seen = Handshakes;
        async fn ws(
            req: HttpRequest,
            body: web::Payload,
            seen: web::Data<Seen>,
        ) -> actix_web::Result<actix_web::HttpResponse> {
            // The request target is recorded as the pseudo-header `:uri`.
            let mut recorded: Vec<(String, String)> = vec![(":uri".to_owned(), req.uri().to_string())];
            recorded.extend(
                req.headers().iter().map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned())),
            );
            seen.lock().unwrap().push(recorded);
            let (resp, mut session, mut stream) = actix_ws::handle(&req, body)?;
            actix_web::rt::spawn(async move {
                let _ = session.text("hello from upstream").await;
                use futures_util::StreamExt;
                while let Some(Ok(msg)) = stream.next().await {
                    match msg {
                        actix_ws::Message::Text(t) => {
                            let _ = session.text(format!("echo: {t}")).await;
                        }
                        actix_ws::Message::Binary(b) => {
                            let _ = session.binary(b).await;
                        }
                        actix_ws::Message::Close(_) => break,
                        _ => {}
                    }
                }
            });
            Ok(resp)
        }
        let seen: Seen = Default::default();
        let data = web::Data::new(seen.clone());
        let server =
            test_support::serve(1, move || App::new().app_data(data.clone()).default_service(web::to(ws)));
        Self { url: server.url.clone(), handshakes: seen, _server: server }
    }
}
