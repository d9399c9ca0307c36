//! Traces across services, as an operator's collector receives them: the services run as their
//! own processes exporting OTLP/HTTP (protobuf) to a receiver started here, which decodes the
//! real export. A submission through gateway -> mapi -> node, and a block through block-parser ->
//! mapi, each make one trace with spans of both services, the callee's server span a child of the
//! caller's span; so does the hand-over of the block's callback from mapi to the notifier.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpResponse, web};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message;
use serde_json::json;
use test_support::{BitcoindNode, ServiceProcess, TestDatabase};

const TOKEN: &str = "traces-internal-token-0123456789";
const ADMIN_KEY: &str = "traces-admin-key-0123456789";

/// One exported span.
#[derive(Debug, Clone)]
struct Span {
    service: String,
    name: String,
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    parent_span_id: Vec<u8>,
    /// `http.route` of a request span.
    route: String,
}

fn text(value: Option<&opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(AnyValue::StringValue(s)) => s.clone(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

type Spans = Arc<Mutex<Vec<Span>>>;

async fn receive(body: web::Bytes, spans: web::Data<Spans>) -> HttpResponse {
    let request = match ExportTraceServiceRequest::decode(body) {
        Ok(r) => r,
        Err(_) => return HttpResponse::BadRequest().finish(),
    };
    let mut got = spans.lock().unwrap();
    for resource_spans in request.resource_spans {
        let service = resource_spans
            .resource
            .iter()
            .flat_map(|r| r.attributes.iter())
            .find(|a| a.key == "service.name")
            .map(|a| text(a.value.as_ref()))
            .unwrap_or_default();
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                let route =
                    span.attributes.iter().find(|a| a.key == "http.route").map(|a| text(a.value.as_ref()));
                got.push(Span {
                    service: service.clone(),
                    route: route.unwrap_or_default(),
                    name: span.name,
                    trace_id: span.trace_id,
                    span_id: span.span_id,
                    parent_span_id: span.parent_span_id,
                });
            }
        }
    }
    HttpResponse::Ok().content_type("application/x-protobuf").body(Vec::new())
}

/// An OTLP/HTTP receiver: `POST /v1/traces` with the protobuf export.
fn collector() -> (test_support::RunningServer, Spans) {
    let spans: Spans = Arc::default();
    let data = web::Data::new(spans.clone());
    let server = test_support::serve(1, move || {
        App::new()
            .app_data(data.clone())
            .app_data(web::PayloadConfig::new(64 * 1024 * 1024))
            .route("/v1/traces", web::post().to(receive))
    });
    (server, spans)
}

fn env(pairs: &[(&'static str, String)]) -> HashMap<&'static str, String> {
    let mut env: HashMap<&str, String> = HashMap::from([
        ("INTERNAL_TOKEN", TOKEN.to_owned()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100".to_owned()),
        ("RUST_LOG", "info".to_owned()),
    ]);
    env.extend(pairs.iter().cloned());
    env
}

/// Waits for a trace in which the request span of `callee` for `route` is the child of a span of
/// `caller`; returns (caller span, callee span).
async fn find_link(spans: &Spans, caller: &str, callee: &str, route: &str) -> (Span, Span) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        {
            let spans = spans.lock().unwrap();
            for child in spans.iter().filter(|s| s.service == callee && s.route == route) {
                if let Some(parent) = spans.iter().find(|p| {
                    p.service == caller && p.span_id == child.parent_span_id && p.trace_id == child.trace_id
                }) {
                    return (parent.clone(), child.clone());
                }
            }
            if Instant::now() > deadline {
                let seen: Vec<(&str, &str, &str)> =
                    spans.iter().map(|s| (s.service.as_str(), s.name.as_str(), s.route.as_str())).collect();
                panic!("no {callee} span under a {caller} span; spans: {seen:?}");
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_submission_and_a_block_each_make_one_trace_across_services() {
    test_support::init_test_tracing();
    let (otlp, spans) = collector();
    let node = BitcoindNode::start().await;
    node.generate(5).await;
    let (mapi_db, bp_db, gw_db, n_db) = (
        TestDatabase::create().await,
        TestDatabase::create().await,
        TestDatabase::create().await,
        TestDatabase::create().await,
    );
    let bp_port = test_support::free_port();
    let notifier = ServiceProcess::start(
        &test_support::service_binary("notifier"),
        &env(&[
            ("DATABASE_URL", n_db.url().to_owned()),
            ("NOTIFICATION_BLOCK_PRIVATE_TARGETS", "false".to_owned()),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.url.clone()),
        ]),
    )
    .await;
    let receiver = test_support::RecordingReceiver::start().await;
    let mapi = ServiceProcess::start(
        &test_support::service_binary("mapi"),
        &env(&[
            ("DATABASE_URL", mapi_db.url().to_owned()),
            ("WIF_PRIVATEKEY", "cN9spWsvaxA8taS7DFMxnk1yJD2gaF2PX1npuTpy3vuZFJdwavaw".to_owned()),
            ("MEMPOOL_CHECKER_DISABLED", "true".to_owned()),
            ("BLOCK_PARSER_URL", format!("http://127.0.0.1:{bp_port}")),
            ("NOTIFIER_URL", notifier.url.clone()),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.url.clone()),
        ]),
    )
    .await;
    let gateway = ServiceProcess::start(
        &test_support::service_binary("gateway"),
        &env(&[
            ("DATABASE_URL", gw_db.url().to_owned()),
            ("RESTADMIN_APIKEY", ADMIN_KEY.to_owned()),
            ("MAPI_URL", mapi.url.clone()),
            ("BLOCK_PARSER_URL", format!("http://127.0.0.1:{bp_port}")),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.url.clone()),
        ]),
    )
    .await;
    let block_parser = ServiceProcess::start_on(
        &test_support::service_binary("block-parser"),
        &env(&[
            ("DATABASE_URL", bp_db.url().to_owned()),
            ("MAPI_URL", mapi.url.clone()),
            ("CATCH_UP_INTERVAL_MS", "200".to_owned()),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.url.clone()),
        ]),
        bp_port,
    )
    .await;
    let http = reqwest::Client::new();
    let added = http
        .post(format!("{}/api/v1/Node", gateway.url))
        .header("api-key", ADMIN_KEY)
        .json(&json!({"id": format!("127.0.0.1:{}", node.rpc_port), "username": node.rpc_user, "password": node.rpc_password}))
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), 201);

    // gateway -> mapi -> node.
    let coin = node.coins().await.remove(0);
    let tx = node.spend(&coin, 1000, 0).await;
    let callback = format!("{}/cb", receiver.url());
    let resp = http
        .post(format!("{}/mapi/tx", gateway.url))
        .json(&json!({"rawtx": tx, "merkleProof": true, "callbackUrl": callback}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (g, m) = find_link(&spans, "gateway", "mapi", "/mapi/tx").await;
    assert_eq!(g.trace_id, m.trace_id);
    eprintln!("submission trace: gateway {:?} {:?} -> mapi {:?} {:?}", g.name, g.route, m.name, m.route);

    // block-parser -> mapi: the block's events.
    let best = node.rpc("getbestblockhash", json!([])).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status: serde_json::Value = http
            .get(format!("{}/internal/status", block_parser.url))
            .header("x-internal-token", TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if status["bestBlockHash"] == best {
            break;
        }
        assert!(Instant::now() < deadline, "block-parser did not follow the node");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    node.generate(1).await;
    let (b, m) = find_link(&spans, "block-parser", "mapi", "/internal/chain-events").await;
    assert_eq!(b.trace_id, m.trace_id);
    eprintln!("block trace: block-parser {:?} {:?} -> mapi {:?} {:?}", b.name, b.route, m.name, m.route);
    // mapi -> notifier: the block's callback.
    let (m, n) = find_link(&spans, "mapi", "notifier", "/internal/notifications").await;
    assert_eq!(m.trace_id, n.trace_id);
    eprintln!("callback trace: mapi {:?} -> notifier {:?} {:?}", m.name, n.name, n.route);
    receiver.wait_for(1, Duration::from_secs(20)).await;
    drop((mapi, gateway, block_parser, notifier));
}
