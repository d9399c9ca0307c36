//! Guards decide on the path the router matches; mAPI paths match case-insensitively; rate limits
//! key on the client behind trusted proxies; metric labels stay bounded; the account websocket's
//! credential rules.

use std::time::Duration;

use crate::helpers::{ADMIN_KEY, Options, VECTOR_TIME, WsUpstream, spawn_app, spawn_app_with};

/// Sends raw request bytes (paths a URL library would normalise) with extra header lines; the
/// status and the body.
async fn raw(port: u16, method: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn no_spelling_of_metrics_gets_past_the_admin_guard() {
    let app = spawn_app().await;
    let admin = format!("Bearer {ADMIN_KEY}");
    for path in [
        "/metrics",
        "/%6Detrics",
        "/%6detrics",
        "/%256Detrics",
        "//metrics",
        "/./metrics",
        "/x/../metrics",
        "/%2E/metrics",
        "/metrics/",
        "/%2Fmetrics",
        "/%5Cmetrics",
    ] {
        let (status, body) = raw(app.port, "GET", path, &[]).await;
        assert_eq!(status, 401, "{path}: {body}");
        assert!(!body.contains("http_requests_total"), "{path} leaked the metrics");
        let (status, body) = raw(app.port, "GET", path, &[("Authorization", &admin)]).await;
        assert_eq!(status, 200, "{path} with the admin key");
        assert!(body.contains("http_requests_total"), "{path}");
    }
}

#[tokio::test]
async fn mapi_paths_match_case_insensitively_and_reach_mapi_in_their_own_spelling() {
    let app = spawn_app().await;
    let key = [("Api-Key", ADMIN_KEY)];
    for (path, headers, upstream_path) in [
        ("/mapi/feequote", &[][..], "/mapi/feeQuote"),
        ("/MAPI/PolicyQuote", &[][..], "/mapi/policyQuote"),
        ("/mapi/TX/abcDEF", &[][..], "/mapi/tx/abcDEF"),
        ("/dsnt/1/QUERY/ab", &[][..], "/dsnt/1/query/ab"),
        ("/api/v1/policyquote", &key[..], "/api/v1/PolicyQuote"),
        ("/api/v1/FEEQUOTE/3", &key[..], "/api/v1/FeeQuote/3"),
        ("/api/v1/status/blockParser", &key[..], "/api/v1/status/blockparser"),
        ("/api/v1/unconfirmedtxs", &key[..], "/api/v1/unconfirmedTxs"),
        ("/api/v1/NODE/Host:1", &key[..], "/api/v1/Node/Host:1"),
        ("/api//v1/./Node", &key[..], "/api/v1/Node"),
    ] {
        let before = app.upstreams.mapi.requests().len();
        let (status, _) = raw(app.port, "GET", path, headers).await;
        assert_eq!(status, 200, "{path}");
        let got = app.upstreams.mapi.wait_for(before + 1, Duration::from_secs(5)).await;
        assert_eq!(got.last().unwrap().path, upstream_path, "{path}");
    }
    // The admin guard applies to every spelling.
    for path in ["/api/v1/policyquote", "/API/V1/NODE", "/api/v1/Status/Tx", "/api/v1/%55nconfirmedTxs"] {
        assert_eq!(raw(app.port, "GET", path, &[]).await.0, 401, "{path}");
    }
}

#[tokio::test]
async fn behind_trusted_proxies_rate_limits_key_on_the_forwarded_client() {
    let fail_as = |app: &crate::helpers::TestApp, forwarded: &'static str| {
        app.http
            .get(format!("{}/api/v1/account", app.url))
            .bearer_auth("wrong-token")
            .header("x-forwarded-for", forwarded)
            .send()
    };
    // Trusted: each forwarded client has its own bucket; a client's own header is not believed.
    let app = spawn_app_with(Options {
        signups_per_minute: 2,
        env: vec![("TRUSTED_PROXIES", "127.0.0.0/8, ::1".into())],
        ..Options::default()
    })
    .await;
    for _ in 0..2 {
        assert_eq!(fail_as(&app, "203.0.113.1").await.unwrap().status(), 401);
    }
    assert_eq!(fail_as(&app, "203.0.113.1").await.unwrap().status(), 429);
    assert_eq!(fail_as(&app, "6.6.6.6, 203.0.113.1").await.unwrap().status(), 429, "spoofed on the left");
    assert_eq!(fail_as(&app, "203.0.113.2").await.unwrap().status(), 401, "another client");
    // The upstream learns the client, not the proxy.
    let before = app.upstreams.mapi.requests().len();
    app.http
        .get(format!("{}/mapi/feeQuote", app.url))
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await
        .unwrap();
    let got = app.upstreams.mapi.wait_for(before + 1, Duration::from_secs(5)).await;
    assert_eq!(got.last().unwrap().header("x-forwarded-for"), Some("203.0.113.9"));

    // Not configured: the peer is the client, whatever the header says.
    let app = spawn_app_with(Options { signups_per_minute: 2, ..Options::default() }).await;
    for _ in 0..2 {
        assert_eq!(fail_as(&app, "203.0.113.1").await.unwrap().status(), 401);
    }
    assert_eq!(fail_as(&app, "203.0.113.2").await.unwrap().status(), 429, "one bucket: the peer's");
}

#[tokio::test]
async fn metric_labels_are_known_methods_and_route_templates() {
    let app = spawn_app().await;
    for i in 0..5 {
        let method = format!("BREW{i}");
        raw(app.port, &method, "/mapi/feeQuote", &[]).await;
        raw(app.port, "GET", &format!("/mapi/tx/{}", "ab".repeat(31) + &format!("{i:02}")), &[]).await;
        raw(app.port, "GET", &format!("/no/such/path/{i}"), &[]).await;
    }
    let (status, text) =
        raw(app.port, "GET", "/metrics", &[("Authorization", &format!("Bearer {ADMIN_KEY}"))]).await;
    assert_eq!(status, 200);
    let series: Vec<&str> = text.lines().filter(|l| l.starts_with("http_requests_total{")).collect();
    assert!(series.iter().any(|l| l.contains("method=\"other\"")), "{series:#?}");
    assert!(series.iter().any(|l| l.contains("route=\"/mapi/tx/{txid}\"")), "{series:#?}");
    for l in &series {
        assert!(!l.contains("BREW"), "a client's method became a label: {l}");
        assert!(!l.contains("abab"), "a txid became a label: {l}");
        assert!(!l.contains("/no/such"), "a raw path became a label: {l}");
    }
}

#[tokio::test]
async fn websockets_take_the_master_token_in_the_query_and_need_a_token() {
    let ws = WsUpstream::start().await;
    let app =
        spawn_app_with(Options { env: vec![("PEER_CHANNELS_URL", ws.url.clone())], ..Options::default() })
            .await;
    let body: serde_json::Value = app.sign_up(8, VECTOR_TIME).await.json().await.unwrap();
    let master = body["api_key"].as_str().unwrap().to_owned();

    // The account socket without a token is a bad request; a wrong token unauthorized.
    let status = |r: Result<_, tokio_tungstenite::tungstenite::Error>| match r {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => resp.status().as_u16(),
        Ok(_) => 101,
        Err(e) => panic!("{e}"),
    };
    let url = |path: &str| format!("ws://127.0.0.1:{}{path}", app.port);
    assert_eq!(status(tokio_tungstenite::connect_async(url("/api/v1/web-socket")).await), 400);
    assert_eq!(status(tokio_tungstenite::connect_async(url("/api/v1/web-socket?token=nope")).await), 401);

    // A channel's notify socket with the account's master token in the query: the account, and
    // the token stays at the gateway.
    let path = format!("/api/v1/channel/abc/notify?token={}&since=3", urlencode(&master));
    let (socket, _) = tokio_tungstenite::connect_async(url(&path)).await.unwrap();
    drop(socket);
    let handshakes = ws.handshakes.lock().unwrap().clone();
    let last = handshakes.last().unwrap();
    let header = |n: &str| last.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    assert!(header("x-caller-account").is_some(), "{last:?}");
    assert_eq!(header(":uri").as_deref(), Some("/api/v1/channel/abc/notify?since=3"));
    assert!(!last.iter().any(|(_, v)| v.contains(&master)), "the master token went upstream");

    // Outside a websocket handshake a query token is not a credential the gateway reads.
    let plain = format!("{}/api/v1/channel/abc?token={}", app.url, urlencode(&master));
    app.http.get(plain).send().await.unwrap();
    let handshakes = ws.handshakes.lock().unwrap().clone();
    let last = handshakes.last().unwrap();
    assert!(last.iter().any(|(k, v)| k == ":uri" && v.starts_with("/api/v1/channel/abc?")), "{last:?}");
    assert!(!last.iter().any(|(k, _)| k == "x-caller-account"), "{last:?}");
}

fn urlencode(s: &str) -> String {
    s.replace('=', "%3D")
}
