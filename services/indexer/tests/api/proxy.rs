//! Proxy mode against a real HTTP + websocket upstream started here, which stands for the
//! third-party indexer: it records what it receives and sends spend frames. peer-channels (the
//! account sockets) and the notifier (match delivery) are the real services; the callback
//! receiver is a real HTTP server.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use futures_util::StreamExt;
use serde_json::{Value, json};
use test_support::{RecordingReceiver, TestDatabase};
use tokio_tungstenite::tungstenite::Message;

const INTERNAL_TOKEN: &str = "indexer-proxy-internal-token";

#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    query: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

#[derive(Default)]
struct Upstream {
    seen: Mutex<Vec<Seen>>,
    ws_open: AtomicBool,
    sessions: Mutex<Vec<actix_ws::Session>>,
}

async fn record(up: web::Data<Upstream>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or_default().to_owned()))
        .collect();
    let path = req.path().to_owned();
    up.seen.lock().unwrap().push(Seen {
        method: req.method().to_string(),
        path: path.clone(),
        query: req.query_string().to_owned(),
        headers,
        body: body.to_vec(),
    });
    match path.as_str() {
        p if p == format!("/api/v1/transaction/{}", "00".repeat(32)) => HttpResponse::NotFound().finish(),
        p if p.starts_with("/api/v1/transaction/") && p.len() > 30 && !p.contains("filter") => {
            HttpResponse::Ok().body("raw-tx-bytes")
        }
        "/api/v1/merkle-proof/ab" => HttpResponse::Ok().json(json!({"index": 0})),
        "/api/v1/transaction/filter" if body.windows(64).any(|w| w == "ff".repeat(32).as_bytes()) => {
            HttpResponse::BadRequest().finish()
        }
        "/api/v1/transaction/filter" => {
            HttpResponse::Ok().json(json!({"dateCreated": "2026-12-02T00:00:00"}))
        }
        "/api/v1/output-spend/notifications" => HttpResponse::Ok().json("[]"),
        "/api/v1/output-spend" => HttpResponse::Ok().body(vec![7u8; 104]),
        "/api/v1/restoration/search" => HttpResponse::Ok().body(vec![0u8; 102]),
        _ => HttpResponse::Ok().finish(),
    }
}

async fn ws(
    up: web::Data<Upstream>,
    req: HttpRequest,
    stream: web::Payload,
) -> actix_web::Result<HttpResponse> {
    if !up.ws_open.load(Ordering::SeqCst) {
        return Ok(HttpResponse::ServiceUnavailable().finish());
    }
    let (resp, session, mut incoming) = actix_ws::handle(&req, stream)?;
    up.sessions.lock().unwrap().push(session);
    actix_web::rt::spawn(async move { while incoming.next().await.is_some() {} });
    Ok(resp)
}

async fn start_upstream() -> (String, web::Data<Upstream>) {
    let up = web::Data::new(Upstream::default());
    let data = up.clone();
    let listener = test_support::local_listener();
    let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let server = HttpServer::new(move || {
        App::new().app_data(data.clone()).route("/ws", web::get().to(ws)).default_service(web::to(record))
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    (url, up)
}

fn settings<S: service_kit::ServiceSettings>(env: &HashMap<&str, String>) -> S {
    service_kit::settings::load_from(None, |k| env.get(k).cloned()).unwrap()
}

struct Stack {
    indexer: String,
    peer_channels: String,
    upstream: web::Data<Upstream>,
    http: reqwest::Client,
    _db: TestDatabase,
}

async fn stack() -> Stack {
    test_support::init_test_tracing();
    let db = TestDatabase::create().await;
    let (upstream_url, upstream) = start_upstream().await;
    let notifier_listener = test_support::local_listener();
    let notifier = format!("http://127.0.0.1:{}", notifier_listener.local_addr().unwrap().port());
    let channels_listener = test_support::local_listener();
    let peer_channels = format!("http://127.0.0.1:{}", channels_listener.local_addr().unwrap().port());
    let env: HashMap<&str, String> = HashMap::from([
        ("DATABASE_URL", db.url().to_owned()),
        ("INTERNAL_TOKEN", INTERNAL_TOKEN.to_owned()),
        ("INDEXER_URL", upstream_url),
        ("PEER_CHANNELS_URL", peer_channels.clone()),
        ("NOTIFIER_URL", notifier),
        ("INDEXER_RECONNECT_SECS", "1".to_owned()),
        ("SWEEP_INTERVAL_SECS", "1".to_owned()),
        ("NOTIFICATION_BLOCK_PRIVATE_TARGETS", "false".to_owned()),
        ("NOTIFICATION_NOTIFICATION_INTERVAL_SEC", "1".to_owned()),
        ("TIPS_POLL_INTERVAL_MS", "0".to_owned()),
        ("BLOCK_PARSER_URL", format!("http://127.0.0.1:{}", test_support::free_port())),
    ]);
    let app = notifier::Application::build(settings(&env), notifier_listener).await.unwrap();
    tokio::spawn(app.run_until_stopped());
    let app = peer_channels::Application::build(settings(&env), channels_listener).await.unwrap();
    tokio::spawn(app.run_until_stopped());
    let app = indexer::Application::build(settings(&env), test_support::local_listener()).await.unwrap();
    let indexer = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    Stack { indexer, peer_channels, upstream, http: reqwest::Client::new(), _db: db }
}

impl Stack {
    /// A request as the gateway sends it for `account` (or anonymous).
    fn req(&self, method: reqwest::Method, path: &str, account: Option<i64>) -> reqwest::RequestBuilder {
        let mut r = self.http.request(method, format!("{}{path}", self.indexer));
        if let Some(a) = account {
            r = r.header("x-internal-token", INTERNAL_TOKEN).header("x-caller-account", a.to_string());
        }
        r
    }

    fn seen(&self, path: &str) -> Vec<Seen> {
        self.upstream.seen.lock().unwrap().iter().filter(|s| s.path == path).cloned().collect()
    }

    /// Waits until the indexer's websocket to the upstream is open (a mirrored call stops being 503).
    async fn wait_connected(&self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        let probe = format!("{}/api/v1/transaction/{}", self.indexer, "ab".repeat(32));
        while self.http.get(&probe).send().await.unwrap().status() == 503 {
            assert!(Instant::now() < deadline, "the indexer did not connect to the upstream websocket");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test]
async fn the_proxy_mirrors_the_indexer_as_the_reference_does() {
    let s = stack().await;
    let account = 7;

    // The upstream's websocket is down: the mirrored endpoints answer 503 10026.
    let down = s
        .req(reqwest::Method::GET, &format!("/api/v1/transaction/{}", "ab".repeat(32)), None)
        .send()
        .await
        .unwrap();
    assert_eq!(down.status(), 503);
    assert!(down.text().await.unwrap().contains("10026"));
    let ready = s.http.get(format!("{}/ready", s.indexer)).send().await.unwrap();
    assert_eq!(ready.status(), 200, "the account's own data stays available");
    let register = s
        .req(reqwest::Method::POST, "/api/v1/transaction/filter", Some(account))
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .body(json!([["ab".repeat(32), 600]]).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(register.status(), 503, "checked before anything is stored");
    s.upstream.ws_open.store(true, Ordering::SeqCst);
    s.wait_connected().await;

    // Mirroring: Accept and Content-Type defaulted, nothing else passed on.
    let txid = "ab".repeat(32);
    let resp = s
        .req(reqwest::Method::GET, &format!("/api/v1/transaction/{txid}"), Some(account))
        .header("authorization", "Bearer client-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // reqwest sends `Accept: */*`: forwarded verbatim, and the answer is labelled JSON.
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert_eq!(&resp.bytes().await.unwrap()[..], b"raw-tx-bytes");
    let got = &s.seen(&format!("/api/v1/transaction/{txid}"))[0];
    assert_eq!(got.headers.get("accept").map(String::as_str), Some("*/*"));
    assert_eq!(got.headers.get("content-type").map(String::as_str), Some("application/octet-stream"));
    for secret in ["authorization", "x-internal-token", "x-caller-account", "traceparent"] {
        assert!(!got.headers.contains_key(secret), "{secret} reached the third-party indexer");
    }
    let binary = s
        .req(reqwest::Method::GET, &format!("/api/v1/transaction/{txid}"), None)
        .header("accept", "application/octet-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(binary.headers()["content-type"], "application/octet-stream");
    let missing = s
        .req(reqwest::Method::GET, &format!("/api/v1/transaction/{}", "00".repeat(32)), None)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404, "the indexer's status passed on");
    let proof = s
        .req(reqwest::Method::GET, "/api/v1/merkle-proof/ab?includeFullTx=1&other=x", None)
        .send()
        .await
        .unwrap();
    assert_eq!(proof.status(), 200);
    assert_eq!(
        s.seen("/api/v1/merkle-proof/ab")[0].query,
        "includeFullTx=1&targetType=hash",
        "only named parameters"
    );
    let empty = s.req(reqwest::Method::POST, "/api/v1/output-spend", None).send().await.unwrap();
    assert_eq!(empty.status(), 400, "no body provided");
    let spends = s
        .req(reqwest::Method::POST, "/api/v1/output-spend", None)
        .header("accept", "application/octet-stream")
        .header("content-type", "application/json")
        .body(json!([[txid, 0]]).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(spends.status(), 200);
    assert_eq!(spends.bytes().await.unwrap().len(), 104);
    assert_eq!(s.seen("/api/v1/output-spend")[0].headers["content-type"], "application/json", "passed on");
    let restoration = s
        .req(reqwest::Method::POST, "/api/v1/restoration/search", None)
        .header("accept", "application/octet-stream")
        .header("content-type", "application/json")
        .body(json!({"filterKeys": [txid]}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(restoration.status(), 200, "restoration search: proxy mode only");
    assert_eq!(restoration.bytes().await.unwrap().len(), 102);
    assert_eq!(
        s.seen("/api/v1/restoration/search")[0].body,
        json!({"filterKeys": [txid]}).to_string().into_bytes()
    );

    // Tip-filter registrations: stored per account, finalised on the indexer's 200.
    let hash = "cd".repeat(32);
    let unauthenticated = s
        .req(reqwest::Method::POST, "/api/v1/transaction/filter", None)
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .body(json!([[hash, 600]]).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);
    let post_filter = |body: Value| {
        s.req(reqwest::Method::POST, "/api/v1/transaction/filter", Some(account))
            .header("content-type", "application/json")
            .header("accept", "application/json")
            .body(body.to_string())
            .send()
    };
    let mut binary_entry = hex::decode("ce".repeat(32)).unwrap();
    binary_entry.extend_from_slice(&600u32.to_be_bytes());
    let binary = s
        .req(reqwest::Method::POST, "/api/v1/transaction/filter", Some(account))
        .header("content-type", "application/octet-stream")
        .header("accept", "application/json")
        .body(binary_entry.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(binary.status(), 200);
    assert_eq!(
        s.seen("/api/v1/transaction/filter")[0].body,
        binary_entry,
        "a binary body passed on as it came"
    );
    let ok = post_filter(json!([[hash, 600]])).await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(
        ok.json::<Value>().await.unwrap()["dateCreated"],
        "2026-12-02T00:00:00",
        "the indexer's answer"
    );
    let forwarded = &s.seen("/api/v1/transaction/filter")[1];
    assert!(forwarded.query.starts_with(&format!("account_id={account}&date_created=")));
    assert_eq!(post_filter(json!([[hash, 600]])).await.unwrap().status(), 400, "10024: already registered");
    let refused = post_filter(json!([["ff".repeat(32), 600]])).await.unwrap();
    assert_eq!(refused.status(), 400, "the indexer's refusal passed on");
    let list = |accept: &'static str| {
        s.req(reqwest::Method::GET, "/api/v1/transaction/filter", Some(account))
            .header("accept", accept)
            .send()
    };
    let listed: Value = list("application/json").await.unwrap().json().await.unwrap();
    let listed: Value = serde_json::from_str(listed.as_str().unwrap()).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2, "the refused registration was removed: {listed}");
    assert_eq!(list("application/octet-stream").await.unwrap().bytes().await.unwrap().len(), 80);
    assert_eq!(list("*/*").await.unwrap().status(), 400);

    // Deletion: JSON in, binary hashes to the indexer.
    let delete = s
        .req(reqwest::Method::POST, "/api/v1/transaction/filter:delete", Some(account))
        .header("content-type", "application/json")
        .body(json!([hash]).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), 200);
    let sent = &s.seen("/api/v1/transaction/filter:delete")[0];
    assert_eq!(sent.body, hex::decode(&hash).unwrap());
    assert_eq!(sent.headers["content-type"], "application/octet-stream");
    assert_eq!(sent.query, format!("account_id={account}"));
    assert_eq!(sent.method, "POST");
    let again = s
        .req(reqwest::Method::POST, "/api/v1/transaction/filter:delete", Some(account))
        .header("content-type", "application/json")
        .body(json!([hash]).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 400, "10025: not registered any more");

    // Output-spend notifications need the account socket; spends from the indexer reach it.
    let outpoint = json!([["ef".repeat(32), 3]]);
    let watch = || {
        s.req(reqwest::Method::POST, "/api/v1/output-spend/notifications", Some(account))
            .header("content-type", "application/json")
            .body(outpoint.to_string())
            .send()
    };
    assert_eq!(watch().await.unwrap().status(), 400, "not connected to the websocket");
    let ws_url = format!("{}/api/v1/web-socket", s.peer_channels.replacen("http", "ws", 1));
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(ws_url).unwrap();
    request.headers_mut().insert("x-internal-token", INTERNAL_TOKEN.parse().unwrap());
    request.headers_mut().insert("x-caller-account", account.to_string().parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let watched = loop {
        let r = watch().await.unwrap();
        if r.status() == 200 || Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(watched.status(), 200);
    let mut out_tx: [u8; 32] = hex::decode("ef".repeat(32)).unwrap().try_into().unwrap();
    out_tx.reverse();
    let spend =
        indexer::formats::OutputSpend { out: (out_tx, 3), in_tx: [9; 32], in_index: 1, block: [0; 32] };
    let session = s.upstream.sessions.lock().unwrap().last().cloned().unwrap();
    session.clone().binary(spend.to_bytes().to_vec()).await.unwrap();
    let frame = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(Ok(Message::Text(t))) = socket.next().await {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["message_type"] == "bsvapi.output-spends.notification" {
                    return v;
                }
            }
        }
    })
    .await
    .expect("the spend reached the account socket");
    assert_eq!(frame["result"], hex::encode(spend.to_bytes()));

    // Closing the socket unregisters the outpoint at the indexer.
    socket.close(None).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let unregistered = s.seen("/api/v1/output-spend/notifications:unregister");
        if let Some(u) = unregistered.first() {
            let mut expected = out_tx.to_vec();
            expected.extend_from_slice(&3u32.to_be_bytes());
            assert_eq!(u.body, expected);
            break;
        }
        assert!(Instant::now() < deadline, "no unregistration reached the indexer");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Tip-filter matches the indexer posts go to the account's callback, token verbatim; a
    // failed delivery is retried.
    let receiver = RecordingReceiver::start().await;
    receiver.script_statuses(&[500]);
    let set = s
        .req(reqwest::Method::POST, "/api/v1/indexer", Some(account))
        .json(&json!({"tipFilterCallbackUrl": receiver.url(), "tipFilterCallbackToken": "Bearer channel-write-token"}))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 200);
    let get: Value = s
        .req(reqwest::Method::GET, "/api/v1/indexer", Some(account))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(get["tipFilterCallbackToken"], "Bearer channel-write-token");
    let matches = json!({"blockId": null, "entries": [{"accountId": account, "matches": [
        {"pushDataHashHex": hash, "transactionId": txid, "transactionIndex": 0, "flags": 1}]}]});
    let posted =
        s.http.post(format!("{}/api/v1/tip-filter/matches", s.indexer)).json(&matches).send().await.unwrap();
    assert_eq!(posted.status(), 200);
    let got = receiver.wait_for(2, Duration::from_secs(20)).await;
    for attempt in &got[..2] {
        assert_eq!(attempt.header("authorization"), Some("Bearer channel-write-token"));
        assert_eq!(attempt.json(), json!({"blockId": null, "matches": matches["entries"][0]["matches"]}));
    }
}
