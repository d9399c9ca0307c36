//! A gateway and peer-channels replicas on loopback, accounts signed up through the gateway.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use k256::ecdsa::signature::hazmat::PrehashSigner;
use k256::ecdsa::{Signature, SigningKey};
use serde_json::{Value, json};
use test_support::TestDatabase;
use tokio_tungstenite::tungstenite::Message as WsMessage;

pub const INTERNAL_TOKEN: &str = "peer-channels-test-internal-token";
pub const PUBLIC_URL: &str = "https://channels.example";

pub struct Stack {
    pub gateway: String,
    /// Replicas of peer-channels on the same database.
    pub replicas: Vec<String>,
    pub http: reqwest::Client,
    pub db: TestDatabase,
    pub gateway_db: TestDatabase,
}

/// Starts one peer-channels replica on `db_url`.
pub async fn spawn_replica(db_url: &str, extra: &[(&str, &str)]) -> String {
    let mut env: HashMap<&str, String> = HashMap::from([
        ("DATABASE_URL", db_url.to_owned()),
        ("INTERNAL_TOKEN", INTERNAL_TOKEN.to_owned()),
        ("HREF_HOST", "channels.example".to_owned()),
        ("HREF_PORT", "443".to_owned()),
        // No headers API runs here: nothing listens there.
        ("BLOCK_PARSER_URL", format!("http://127.0.0.1:{}", test_support::free_port())),
    ]);
    for (k, v) in extra {
        env.insert(k, (*v).to_owned());
    }
    let settings: peer_channels::settings::PeerChannelsSettings =
        service_kit::settings::load_from(None, |k| env.get(k).cloned()).unwrap();
    let app = peer_channels::Application::build(settings, test_support::local_listener()).await.unwrap();
    let url = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    url
}

/// A gateway in front of the first of `replicas` peer-channels replicas.
pub async fn stack_with(replicas: usize, extra: &[(&str, &str)]) -> Stack {
    test_support::init_test_tracing();
    let db = TestDatabase::create().await;
    let mut urls = Vec::new();
    for _ in 0..replicas {
        urls.push(spawn_replica(db.url(), extra).await);
    }
    let gateway_db = TestDatabase::create().await;
    let gateway = spawn_gateway(gateway_db.url(), &urls[0]).await;
    Stack { gateway, replicas: urls, http: reqwest::Client::new(), db, gateway_db }
}

/// Starts a gateway replica on `database` in front of `peer_channels`; waits until it is ready.
pub async fn spawn_gateway(database: &str, peer_channels: &str) -> String {
    let env: HashMap<&str, String> = HashMap::from([
        ("DATABASE_URL", database.to_owned()),
        ("INTERNAL_TOKEN", INTERNAL_TOKEN.to_owned()),
        ("PUBLIC_URL", PUBLIC_URL.to_owned()),
        ("PEER_CHANNELS_URL", peer_channels.to_owned()),
        ("SIGNUP_RATE_PER_MINUTE", "10000".to_owned()),
    ]);
    let settings: gateway::settings::GatewaySettings =
        service_kit::settings::load_from(None, |k| env.get(k).cloned()).unwrap();
    let gw = gateway::Application::build(
        settings,
        test_support::local_listener(),
        Arc::new(gateway::clock::SystemClock),
    )
    .await
    .unwrap();
    let url = format!("http://127.0.0.1:{}", gw.port());
    tokio::spawn(gw.run_until_stopped());
    let http = reqwest::Client::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while http.get(format!("{url}/ready")).send().await.map(|r| r.status().as_u16()).unwrap_or(0) != 200 {
        assert!(std::time::Instant::now() < deadline, "the gateway did not become ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    url
}

pub async fn stack() -> Stack {
    stack_with(1, &[]).await
}

static NEXT_KEY: AtomicU8 = AtomicU8::new(1);

impl Stack {
    /// Signs up a new account through the gateway; returns its master token.
    pub async fn account(&self) -> String {
        let mut secret = [0u8; 32];
        secret[0] = NEXT_KEY.fetch_add(1, Ordering::Relaxed);
        secret[1..17].copy_from_slice(&std::process::id().to_be_bytes().repeat(4));
        secret[31] = 7;
        let key = SigningKey::from_slice(&secret).unwrap();
        let now = time::OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
        let when = now.format(&time::format_description::well_known::Rfc3339).unwrap();
        let message = format!("{PUBLIC_URL}/api/v1/account/register {when}");
        let digest = gateway::accounts::signed_message::message_digest(message.as_bytes());
        let sig: Signature = key.sign_prehash(&digest).unwrap();
        let mut compact = vec![31u8];
        compact.extend_from_slice(&sig.to_bytes());
        let body = json!({
            "public_key_hex": hex::encode(key.verifying_key().to_sec1_point(true).as_bytes()),
            "signature_hex": hex::encode(compact),
            "message_hex": hex::encode(message.as_bytes()),
        });
        let resp = self
            .http
            .post(format!("{}/api/v1/account/register", self.gateway))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
        let v: Value = resp.json().await.unwrap();
        v["api_key"].as_str().unwrap().to_owned()
    }

    /// Another gateway replica (same accounts database) in front of the first peer-channels replica.
    pub async fn another_gateway(&self) -> String {
        spawn_gateway(self.gateway_db.url(), &self.replicas[0]).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.gateway)
    }

    /// A request through the gateway with an optional `Authorization` value.
    pub fn req(&self, method: reqwest::Method, path: &str, auth: Option<&str>) -> reqwest::RequestBuilder {
        let r = self.http.request(method, self.url(path));
        match auth {
            Some(a) => r.header("authorization", a),
            None => r,
        }
    }

    /// `GET` with an `Authorization` value; the JSON answer.
    pub async fn get_json(&self, path: &str, auth: &str) -> Value {
        self.req(reqwest::Method::GET, path, Some(auth)).send().await.unwrap().json().await.unwrap()
    }

    /// Creates a channel with the master token; returns (channel id, owner token).
    pub async fn channel(&self, master: &str, sequenced: bool) -> (String, String) {
        let v = self
            .create_channel(
                master,
                json!({
                    "public_read": true, "public_write": true, "sequenced": sequenced,
                    "retention": {"min_age_days": 0, "max_age_days": 0, "auto_prune": true}
                }),
            )
            .await;
        (v["id"].as_str().unwrap().to_owned(), v["access_tokens"][0]["token"].as_str().unwrap().to_owned())
    }

    pub async fn create_channel(&self, master: &str, body: Value) -> Value {
        let resp = self
            .req(reqwest::Method::POST, "/api/v1/channel/manage", Some(&format!("Bearer {master}")))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.json().await.unwrap()
    }

    /// Issues a token; returns (id, token).
    pub async fn token(&self, master: &str, channel: &str, read: bool, write: bool) -> (i64, String) {
        let resp = self
            .req(
                reqwest::Method::POST,
                &format!("/api/v1/channel/manage/{channel}/api-token"),
                Some(&format!("Bearer {master}")),
            )
            .json(&json!({"description": "test", "can_read": read, "can_write": write}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let v: Value = resp.json().await.unwrap();
        (v["id"].as_i64().unwrap(), v["token"].as_str().unwrap().to_owned())
    }

    /// Writes a JSON message with `token`; returns its sequence.
    pub async fn write(&self, channel: &str, token: &str, body: &Value) -> i64 {
        let resp = self
            .req(
                reqwest::Method::POST,
                &format!("/api/v1/channel/{channel}"),
                Some(&format!("Bearer {token}")),
            )
            .json(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let v: Value = resp.json().await.unwrap();
        v["sequence"].as_i64().unwrap()
    }
}

pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a websocket at `base` (http URL) + `path`; `Err(status)` when the handshake is refused.
pub async fn ws(base: &str, path: &str, accept: Option<&str>) -> Result<Socket, u16> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let url = format!("{}{path}", base.replacen("http://", "ws://", 1));
    let mut request = url.into_client_request().unwrap();
    if let Some(a) = accept {
        request.headers_mut().insert("accept", a.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, _)) => Ok(socket),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
        Err(e) => panic!("websocket failed: {e}"),
    }
}

/// The next text or binary frame within `wait`, skipping pings.
pub async fn next_frame(socket: &mut Socket, wait: Duration) -> Option<WsMessage> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, socket.next()).await {
            Err(_) => return None,
            Ok(None) | Ok(Some(Err(_))) => return None,
            Ok(Some(Ok(WsMessage::Ping(p)))) => {
                let _ = socket.send(WsMessage::Pong(p)).await;
            }
            Ok(Some(Ok(m @ (WsMessage::Text(_) | WsMessage::Binary(_))))) => return Some(m),
            Ok(Some(Ok(WsMessage::Close(_)))) => return None,
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// The next text frame as JSON.
pub async fn next_json(socket: &mut Socket, wait: Duration) -> Option<Value> {
    match next_frame(socket, wait).await? {
        WsMessage::Text(t) => Some(serde_json::from_str(t.as_str()).unwrap()),
        other => panic!("expected a text frame, got {other:?}"),
    }
}

/// True when the socket is closed by the other side (a close frame or the end of the stream)
/// within `wait`; frames before it are skipped.
pub async fn closed_within(socket: &mut Socket, wait: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, socket.next()).await {
            Err(_) => return false,
            Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(WsMessage::Close(_)))) => return true,
            Ok(Some(Ok(_))) => {}
        }
    }
}
