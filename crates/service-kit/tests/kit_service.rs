//! A service built with the kit, over real HTTP, with its database behind a link we can cut.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use actix_web::middleware::from_fn;
use actix_web::{HttpResponse, web};
use db_kit::{Db, DbSettings};
use secrecy::SecretString;
use serde::Deserialize;
use service_kit::internal::{INTERNAL_TOKEN_HEADER, require_internal};
use service_kit::settings::LogFormat;
use service_kit::{ApiError, InternalClient, InternalCredential, Kit, Metrics, Readiness, base_app};
use test_support::{ChaosProxy, RecordingReceiver, TestDatabase};

const SECRET: &str = "kit-test-internal-secret";

#[derive(Deserialize)]
struct Item {
    label: String,
}

async fn create_item(item: web::Json<Item>) -> Result<HttpResponse, ApiError> {
    if item.label.is_empty() {
        return Err(ApiError::bad_request("label must not be empty"));
    }
    Ok(HttpResponse::Created().json(serde_json::json!({"label": item.label})))
}

async fn relay(
    client: web::Data<InternalClient>,
    target: web::Data<String>,
) -> Result<HttpResponse, ApiError> {
    let resp = client.get(&format!("{}/downstream", target.get_ref())).send().await;
    let status = resp.map_err(|e| ApiError::unavailable(e.to_string()))?.status().as_u16();
    Ok(HttpResponse::Ok().json(serde_json::json!({"downstream": status})))
}

struct TestService {
    url: String,
    http: reqwest::Client,
    _server: test_support::RunningServer,
}

fn database_addr(url: &str) -> SocketAddr {
    let after_at = url.split('@').nth(1).unwrap();
    let host_port = after_at.split('/').next().unwrap();
    let host_port = if host_port.contains(':') { host_port.to_owned() } else { format!("{host_port}:5432") };
    let host_port = host_port.replace("localhost", "127.0.0.1");
    host_port.parse().unwrap()
}

async fn spawn_service(db: Db, downstream: String) -> TestService {
    // One subscriber per process, kept alive for the whole run (tests may share a process).
    static TELEMETRY: OnceLock<Option<service_kit::telemetry::TelemetryGuard>> = OnceLock::new();
    TELEMETRY.get_or_init(|| service_kit::telemetry::init("kit-test", LogFormat::Text, None).ok());
    let credential = InternalCredential::new(SecretString::from(SECRET.to_owned()));
    let kit = Kit {
        metrics: Metrics::new("kit-test").unwrap(),
        readiness: Readiness::new().with_db(db),
        credential: credential.clone(),
    };
    let client = web::Data::new(InternalClient::new(credential, Duration::from_secs(5)).unwrap());
    let target = web::Data::new(downstream);
    let server = test_support::serve(2, move || {
        base_app(kit.clone())
            .app_data(client.clone())
            .app_data(target.clone())
            .route("/items", web::post().to(create_item))
            .route("/relay", web::get().to(relay))
            .service(
                web::resource("/bytes")
                    .route(web::post().to(|body: web::Bytes| async move { HttpResponse::Ok().body(body) })),
            )
            .route(
                "/whoami",
                web::get().to(|caller: service_kit::internal::TrustedCaller| async move {
                    HttpResponse::Ok().json(caller)
                }),
            )
            .service(
                web::scope("/internal")
                    .wrap(from_fn(require_internal))
                    .route("/ping", web::get().to(|| async { HttpResponse::Ok().body("pong") })),
            )
    });
    TestService { url: server.url.clone(), http: reqwest::Client::new(), _server: server }
}

impl TestService {
    async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(format!("{}{path}", self.url)).send().await.unwrap()
    }

    async fn wait_ready_status(&self, want: u16) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let resp = self.get("/ready").await;
            let status = resp.status().as_u16();
            let body: serde_json::Value = resp.json().await.unwrap();
            if status == want {
                return body;
            }
            assert!(Instant::now() < deadline, "/ready stayed {status}: {body}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn health_ready_and_metrics_over_real_http() {
    let test_db = TestDatabase::create().await;
    let proxy = ChaosProxy::start(database_addr(test_db.url())).await;
    let proxied_url =
        test_db.url().replacen(&database_addr(test_db.url()).to_string(), &proxy.addr().to_string(), 1);
    let proxied_url = if proxied_url == test_db.url() {
        // The URL had no explicit port or used a host name: rebuild it around the proxy.
        format!("postgres://postgres@{}/{}", proxy.addr(), test_db.name())
    } else {
        proxied_url
    };
    let mut settings = DbSettings::new(proxied_url, "kit");
    settings.acquire_timeout_ms = 1000;
    let db = Db::new(settings).unwrap();
    let receiver = RecordingReceiver::start().await;
    let app = spawn_service(db, receiver.url().to_owned()).await;

    let resp = app.get("/health").await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().contains_key("x-request-id"));
    let body = app.wait_ready_status(200).await;
    assert_eq!(body["checks"]["database"], "ok");

    // The database goes away: not ready (503) naming the check; liveness is unaffected.
    proxy.cut();
    let body = app.wait_ready_status(503).await;
    assert_ne!(body["checks"]["database"], "ok");
    assert_eq!(app.get("/health").await.status(), 200);

    // It comes back: ready again.
    proxy.restore();
    app.wait_ready_status(200).await;

    // Metrics in the Prometheus text format, by route.
    let text = app.get("/metrics").await.text().await.unwrap();
    assert!(
        text.lines().any(|l| l.starts_with("http_requests_total{")
            && l.contains(r#"route="/ready""#)
            && l.contains(r#"status="503""#)),
        "{text}"
    );
    assert!(text.contains("http_request_duration_seconds_bucket"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_are_json_internal_routes_need_the_credential_and_traces_propagate() {
    let test_db = TestDatabase::create().await;
    let db = Db::new(DbSettings::new(test_db.url(), "kit")).unwrap();
    let receiver = RecordingReceiver::start().await;
    let app = spawn_service(db, receiver.url().to_owned()).await;

    // Unknown path: JSON 404.
    let resp = app.get("/nope").await;
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "not_found");

    // Bad JSON, wrong type, missing field: 400 with a JSON body; a handler's own check too.
    for (ct, payload) in [
        ("application/json", "{not json"),
        ("application/json", r#"{"label": 5}"#),
        ("application/json", r#"{}"#),
        ("application/json", r#"{"label": ""}"#),
    ] {
        let resp = app
            .http
            .post(format!("{}/items", app.url))
            .header("content-type", ct)
            .body(payload)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{payload}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["status"], 400);
        assert!(body["detail"].as_str().is_some());
    }
    let resp = app
        .http
        .post(format!("{}/items", app.url))
        .header("content-type", "text/plain")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 415);
    let big = format!(r#"{{"label":"{}"}}"#, "x".repeat(2 * 1024 * 1024));
    let resp = app
        .http
        .post(format!("{}/items", app.url))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    // Errors the framework answers by itself are JSON too, with their status and headers kept.
    let resp = app.http.post(format!("{}/bytes", app.url)).body(vec![0u8; 300 * 1024]).send().await.unwrap();
    assert_eq!(resp.status(), 413);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let problem: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(
        (problem["status"].clone(), problem["code"].clone()),
        (413.into(), "payload_too_large".into())
    );
    let resp = app.http.delete(format!("{}/bytes", app.url)).send().await.unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");

    // Internal routes: 401 without or with a wrong credential, 200 with it.
    assert_eq!(app.get("/internal/ping").await.status(), 401);
    let wrong = app
        .http
        .get(format!("{}/internal/ping", app.url))
        .header(INTERNAL_TOKEN_HEADER, "nope")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let right = app
        .http
        .get(format!("{}/internal/ping", app.url))
        .header(INTERNAL_TOKEN_HEADER, SECRET)
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), 200);

    // Trace context: the caller's trace id reaches the downstream call, with the credential.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let resp = app
        .http
        .get(format!("{}/relay", app.url))
        .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let got = receiver.wait_for(1, Duration::from_secs(5)).await;
    let traceparent =
        got[0].header("traceparent").unwrap_or_else(|| panic!("no traceparent in {:?}", got[0].headers));
    assert!(traceparent.starts_with(&format!("00-{trace_id}-")), "{traceparent}");
    assert!(!traceparent.contains("00f067aa0ba902b7"), "a new span id for the hop");
    assert_eq!(got[0].header(INTERNAL_TOKEN_HEADER), Some(SECRET));
}

#[tokio::test(flavor = "multi_thread")]
async fn identity_headers_count_only_with_the_internal_credential() {
    let test_db = TestDatabase::create().await;
    let db = Db::new(DbSettings::new(test_db.url(), "kit")).unwrap();
    let receiver = RecordingReceiver::start().await;
    let app = spawn_service(db, receiver.url().to_owned()).await;
    let whoami = |credential: Option<&str>| {
        let mut req = app
            .http
            .get(format!("{}/whoami", app.url))
            .header("x-caller-account", "42")
            .header("x-caller-identity", "merchant")
            .header("x-caller-identity-provider", "issuer")
            .header("x-caller-admin", "true");
        if let Some(c) = credential {
            req = req.header(INTERNAL_TOKEN_HEADER, c);
        }
        req.send()
    };
    let forged: serde_json::Value = whoami(None).await.unwrap().json().await.unwrap();
    assert_eq!(forged, serde_json::json!({"account": null, "identity": null, "admin": false}));
    let wrong: serde_json::Value = whoami(Some("wrong")).await.unwrap().json().await.unwrap();
    assert_eq!(wrong["account"], serde_json::Value::Null);
    let trusted: serde_json::Value = whoami(Some(SECRET)).await.unwrap().json().await.unwrap();
    assert_eq!(
        trusted,
        serde_json::json!({"account": 42, "identity": ["merchant", "issuer"], "admin": true})
    );
}
