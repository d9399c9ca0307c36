//! Native mode's account-bound endpoints over HTTP, in JSON and binary, with the reference's
//! status codes (no node is needed for these; the chain endpoints are exercised end to end with a
//! real node in `crates/all-in-one/tests/indexer_flow.rs`).

use std::collections::HashMap;

use serde_json::{Value, json};
use test_support::TestDatabase;

const INTERNAL_TOKEN: &str = "indexer-native-internal-token";

struct Native {
    url: String,
    http: reqwest::Client,
    _db: TestDatabase,
}

async fn native() -> Native {
    test_support::init_test_tracing();
    let db = TestDatabase::create().await;
    let nowhere = || format!("http://127.0.0.1:{}", test_support::free_port());
    let env: HashMap<&str, String> = HashMap::from([
        ("DATABASE_URL", db.url().to_owned()),
        ("INTERNAL_TOKEN", INTERNAL_TOKEN.to_owned()),
        ("MAPI_URL", nowhere()),
        ("BLOCK_PARSER_URL", nowhere()),
        ("PEER_CHANNELS_URL", nowhere()),
        ("NOTIFIER_URL", nowhere()),
    ]);
    let settings: indexer::settings::IndexerSettings =
        service_kit::settings::load_from(None, |k| env.get(k).cloned()).unwrap();
    let app = indexer::Application::build(settings, test_support::local_listener()).await.unwrap();
    let url = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    Native { url, http: reqwest::Client::new(), _db: db }
}

impl Native {
    fn req(&self, method: reqwest::Method, path: &str, account: Option<i64>) -> reqwest::RequestBuilder {
        let mut r = self.http.request(method, format!("{}{path}", self.url));
        if let Some(a) = account {
            r = r.header("x-internal-token", INTERNAL_TOKEN).header("x-caller-account", a.to_string());
        }
        r
    }

    async fn register(&self, account: Option<i64>, content_type: &str, body: Vec<u8>) -> reqwest::Response {
        self.req(reqwest::Method::POST, "/api/v1/transaction/filter", account)
            .header("accept", "application/json")
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap()
    }

    async fn delete(&self, account: i64, content_type: &str, body: Vec<u8>) -> reqwest::Response {
        self.req(reqwest::Method::POST, "/api/v1/transaction/filter:delete", Some(account))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap()
    }

    async fn list(&self, account: i64, accept: &str) -> reqwest::Response {
        self.req(reqwest::Method::GET, "/api/v1/transaction/filter", Some(account))
            .header("accept", accept)
            .send()
            .await
            .unwrap()
    }
}

fn binary_entry(hash: [u8; 32], seconds: u32) -> Vec<u8> {
    let mut b = hash.to_vec();
    b.extend_from_slice(&seconds.to_be_bytes());
    b
}

#[tokio::test]
async fn tip_filters_register_list_and_delete_in_json_and_binary() {
    let n = native().await;
    let (a, b) = (1, 2);
    assert_eq!(n.register(None, "application/json", b"[]".to_vec()).await.status(), 401);
    assert_eq!(n.register(Some(a), "application/json", Vec::new()).await.status(), 400, "no body");
    assert_eq!(n.register(Some(a), "application/json", b"[]".to_vec()).await.status(), 400, "no entries");
    assert_eq!(n.register(Some(a), "text/plain", b"x".to_vec()).await.status(), 400);
    assert_eq!(
        n.register(Some(a), "application/octet-stream", vec![0; 35]).await.status(),
        400,
        "not 36-byte records"
    );
    let short = json!([["aa".repeat(32), 299]]).to_string().into_bytes();
    assert_eq!(n.register(Some(a), "application/json", short).await.status(), 400, "under 300 s");
    let long = json!([["aa".repeat(32), 7 * 24 * 3600 + 1]]).to_string().into_bytes();
    assert_eq!(n.register(Some(a), "application/json", long).await.status(), 400, "over 7 days");

    // Binary and JSON registrations; a repeat of any hash refuses the whole request (10024).
    let resp = n.register(Some(a), "application/octet-stream", binary_entry([0x11; 32], 600)).await;
    assert_eq!(resp.status(), 200);
    let created: Value = resp.json().await.unwrap();
    assert_eq!(created["dateCreated"].as_str().unwrap().len(), 19);
    let json_entry = json!([["22".repeat(32), 3600]]).to_string().into_bytes();
    assert_eq!(n.register(Some(a), "application/json", json_entry.clone()).await.status(), 200);
    let both = json!([["33".repeat(32), 3600], ["22".repeat(32), 3600]]).to_string().into_bytes();
    let dup = n.register(Some(a), "application/json", both).await;
    assert_eq!(dup.status(), 400);
    assert!(dup.status().canonical_reason().is_some());
    assert_eq!(
        n.register(Some(b), "application/json", json_entry).await.status(),
        200,
        "another account may"
    );

    let listed = n.list(a, "application/octet-stream").await;
    assert_eq!(listed.headers()["content-type"], "application/octet-stream");
    let bytes = listed.bytes().await.unwrap();
    assert_eq!(bytes.len(), 80, "two 40-byte records, the failed batch left nothing: {bytes:?}");
    let json_list: Value = n.list(a, "application/json").await.json().await.unwrap();
    let rows: Value = serde_json::from_str(json_list.as_str().unwrap()).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 2);
    assert!(rows.as_array().unwrap().iter().any(|r| r[2] == 600));
    assert_eq!(n.list(a, "*/*").await.status(), 400, "the reference refuses */* here");

    // Deletion, all or nothing (10025), binary or JSON.
    let missing = [[0x11u8; 32], [0x44; 32]].concat();
    assert_eq!(n.delete(a, "application/octet-stream", missing).await.status(), 400);
    assert_eq!(n.delete(a, "application/octet-stream", vec![0x11; 32]).await.status(), 200);
    assert_eq!(
        n.delete(a, "application/json", json!(["22".repeat(32)]).to_string().into_bytes()).await.status(),
        200
    );
    assert_eq!(n.delete(a, "application/json", b"[]".to_vec()).await.status(), 400, "no hashes");
    assert_eq!(n.list(a, "application/octet-stream").await.bytes().await.unwrap().len(), 0);
    assert_eq!(
        n.list(b, "application/octet-stream").await.bytes().await.unwrap().len(),
        40,
        "b's own remains"
    );
}

#[tokio::test]
async fn callback_settings_follow_the_references_checks() {
    let n = native().await;
    let post = |body: Value| n.req(reqwest::Method::POST, "/api/v1/indexer", Some(3)).json(&body).send();
    assert_eq!(n.req(reqwest::Method::GET, "/api/v1/indexer", None).send().await.unwrap().status(), 401);
    let empty: Value =
        n.req(reqwest::Method::GET, "/api/v1/indexer", Some(3)).send().await.unwrap().json().await.unwrap();
    assert_eq!(empty, json!({"tipFilterCallbackUrl": null, "tipFilterCallbackToken": null}));
    for (body, reason) in [
        (json!({"tipFilterCallbackUrl": "ftp://x.example"}), "10004"),
        (json!({"tipFilterCallbackToken": "Bearer abcdefgh"}), "10004"),
        (json!({"tipFilterCallbackUrl": "https://x.example", "tipFilterCallbackToken": "short"}), "10032"),
        (
            json!({"tipFilterCallbackUrl": "https://x.example", "tipFilterCallbackToken": "Bearer \u{7f}abcdefgh"}),
            "10033",
        ),
    ] {
        let resp = post(body.clone()).await.unwrap();
        assert_eq!(resp.status(), 400, "{body}");
        let text = resp.text().await.unwrap();
        assert!(text.contains(reason), "{body}: {text}");
    }
    let set = json!({"tipFilterCallbackUrl": " https://x.example/api/v1/channel/abc ", "tipFilterCallbackToken": "Bearer abcdefgh"});
    let saved: Value = post(set).await.unwrap().json().await.unwrap();
    assert_eq!(saved["tipFilterCallbackUrl"], "https://x.example/api/v1/channel/abc", "trimmed");
    let cleared: Value = post(json!({})).await.unwrap().json().await.unwrap();
    assert_eq!(
        cleared,
        json!({"tipFilterCallbackUrl": null, "tipFilterCallbackToken": null}),
        "both overwritten"
    );
    let wrong_type = n
        .req(reqwest::Method::POST, "/api/v1/indexer", Some(3))
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_type.status(), 400);
}

#[tokio::test]
async fn chain_endpoints_refuse_bad_input_and_restoration_needs_an_external_indexer() {
    let n = native().await;
    let bad = n.req(reqwest::Method::GET, "/api/v1/transaction/nothex", None).send().await.unwrap();
    assert_eq!(bad.status(), 400);
    let target = n
        .req(reqwest::Method::GET, &format!("/api/v1/merkle-proof/{}?targetType=nope", "ab".repeat(32)), None)
        .send()
        .await
        .unwrap();
    assert_eq!(target.status(), 400);
    let spend = |ct: &str, body: &str| {
        n.req(reqwest::Method::POST, "/api/v1/output-spend", None)
            .header("content-type", ct)
            .body(body.to_owned())
            .send()
    };
    assert_eq!(spend("application/json", "").await.unwrap().status(), 400, "no body");
    assert_eq!(spend("application/json", "{}").await.unwrap().status(), 400, "not a list");
    assert_eq!(spend("application/json", r#"[["zz", 1]]"#).await.unwrap().status(), 400);
    assert_eq!(spend("text/plain", "[]").await.unwrap().status(), 400);
    let watch = n
        .req(reqwest::Method::POST, "/api/v1/output-spend/notifications", None)
        .header("content-type", "application/octet-stream")
        .body(vec![0u8; 36])
        .send()
        .await
        .unwrap();
    assert_eq!(watch.status(), 401);
    let restoration = n
        .req(reqwest::Method::POST, "/api/v1/restoration/search", None)
        .json(&json!({"filterKeys": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(restoration.status(), 404);
}
