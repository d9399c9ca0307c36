//! The OpenAPI documents and the browsable page, over real HTTP.

use crate::helpers::spawn_app;

#[tokio::test]
async fn docs_page_and_documents_are_served() {
    let app = spawn_app().await;
    let resp = app.get("/docs").await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let html = resp.text().await.unwrap();
    for title in [
        "Merchant API (mAPI) 1.5.0",
        "mAPI admin API",
        "Peer channels",
        "Accounts and discovery",
        "Headers",
        "Indexer",
        "ARC",
    ] {
        assert!(html.contains(title), "{title}");
    }
    for name in ["mapi", "mapi-admin", "accounts", "peer-channels", "headers", "indexer", "arc"] {
        let resp = app.get(&format!("/docs/{name}.json")).await;
        assert_eq!(resp.status(), 200, "{name}");
        let doc: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(doc["openapi"], "3.0.3");
    }
    assert_eq!(app.get("/docs/nope.json").await.status(), 404);
}

#[tokio::test]
async fn the_public_metrics_need_the_admin_key_or_the_internal_credential() {
    let app = spawn_app().await;
    assert_eq!(app.get("/health").await.status(), 200, "liveness stays open");
    assert_eq!(app.get("/metrics").await.status(), 401);
    let with = |name: &'static str, value: String| {
        app.http.get(format!("{}/metrics", app.url)).header(name, value).send()
    };
    assert_eq!(with("authorization", "Bearer wrong".into()).await.unwrap().status(), 401);
    let ok = with("authorization", format!("Bearer {}", crate::helpers::ADMIN_KEY)).await.unwrap();
    assert_eq!(ok.status(), 200);
    assert!(ok.text().await.unwrap().contains("http_requests_total"));
    assert_eq!(with("x-internal-token", crate::helpers::INTERNAL_TOKEN.into()).await.unwrap().status(), 200);
}
