//! Routing to real upstream servers, the auth matrix, `/internal` tricks, limits and websockets.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{
    ADMIN_KEY, INTERNAL_TOKEN, JWT_ISSUER, JWT_KEY, Options, WsUpstream, jwt, spawn_app, spawn_app_with,
};

#[tokio::test]
async fn each_path_class_reaches_its_upstream_intact() {
    let app = spawn_app_with(Options {
        env: vec![("EXPOSE_HEADER_SV_APIS", "1".into()), ("EXPOSE_INDEXER_APIS", "1".into())],
        ..Options::default()
    })
    .await;
    let master = app.master_token(0).await;
    let u = &app.upstreams;
    type Case<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, &'a test_support::RecordingReceiver);
    let cases: Vec<Case<'_>> = vec![
        ("POST", "/mapi/tx?merkleProof=true&callbackUrl=http%3A%2F%2Fx", vec![], &u.mapi),
        ("GET", "/dsnt/1/query/abc", vec![], &u.mapi),
        ("PUT", "/api/v1/Node/host:1", vec![("api-key", ADMIN_KEY)], &u.mapi),
        ("POST", "/api/v1/channel/manage", vec![("authorization", "Bearer MASTER")], &u.peer_channels),
        (
            "POST",
            "/api/v1/channel/abc%3D%3D?x=1",
            vec![("authorization", "Bearer some-channel-token")],
            &u.peer_channels,
        ),
        ("GET", "/api/v1/headers/by-height?height=0&count=2", vec![], &u.header_sv),
        ("POST", "/api/v1/transaction/filter:delete", vec![("authorization", "Bearer MASTER")], &u.indexer),
    ];
    for (method, path_query, headers, upstream) in cases {
        let before = upstream.requests().len();
        let mut req = app
            .http
            .request(method.parse().unwrap(), format!("{}{path_query}", app.url))
            .header("x-custom", "kept")
            .header("x-caller-account", "999")
            .header("x-internal-token", "forged")
            .body(format!("body of {method} {path_query}"));
        for (k, v) in &headers {
            req = req.header(*k, v.replace("MASTER", &master));
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 200, "{method} {path_query}");
        let got = upstream.wait_for(before + 1, Duration::from_secs(5)).await;
        let r = got.last().unwrap();
        let (path, query) = path_query.split_once('?').unwrap_or((path_query, ""));
        assert_eq!(r.method, method, "{path_query}");
        assert_eq!(r.path, path.replace("%3D", "="), "{path_query}");
        assert_eq!(r.query, query, "{path_query}");
        assert_eq!(&r.body[..], format!("body of {method} {path_query}").as_bytes());
        let third_party = std::ptr::eq(upstream, &u.header_sv);
        if third_party {
            // Someone else's service: no credential, no identity, no client credential.
            for h in ["x-internal-token", "x-caller-account", "authorization", "x-custom", "x-forwarded-for"]
            {
                assert_eq!(r.header(h), None, "{h} reached a third party on {path_query}");
            }
            continue;
        }
        assert_eq!(r.header("x-custom"), Some("kept"));
        assert_eq!(
            r.header("x-internal-token"),
            Some(INTERNAL_TOKEN),
            "the gateway's credential, not the client's"
        );
        assert_ne!(r.header("x-caller-account"), Some("999"), "clients cannot set identity headers");
    }
    // A master token on a channel route is resolved to the account.
    let last = u.peer_channels.requests();
    assert!(last[0].header("x-caller-account").is_some());
    assert_eq!(last[1].header("x-caller-account"), None, "a channel token is passed on, not resolved");
    assert_eq!(last[1].header("authorization"), Some("Bearer some-channel-token"));
    // The indexer service is ours: a master token names the account, and is not passed on.
    let indexed = u.indexer.requests();
    assert!(indexed[0].header("x-caller-account").is_some_and(|a| a != "999"));
    assert_eq!(indexed[0].header("authorization"), None);
}

#[tokio::test]
async fn every_internal_spelling_is_404() {
    let app = spawn_app().await;
    for path in [
        "/internal/x",
        "/INTERNAL/x",
        "//internal/x",
        "/%69nternal/x",
        "/%2Finternal/x",
        "/%252Finternal/x",
        "/mapi/../internal/x",
        "/mapi/%2e%2e/internal/x",
        "/mapi%2F..%2Finternal/x",
        "/./internal/x",
        "/mapi/..%5Cinternal/x",
        "/api/v1/channel/manage/../../../../internal/x",
    ] {
        assert_eq!(app.raw_status(path).await, 404, "{path}");
    }
    for u in [&app.upstreams.mapi, &app.upstreams.peer_channels, &app.upstreams.block_parser] {
        assert!(u.requests().is_empty(), "nothing reached an upstream");
    }
}

#[tokio::test]
async fn an_upstream_that_is_down_or_silent_gets_a_json_error_in_time() {
    // Down: nothing listens on the port.
    let down = test_support::free_port();
    // Silent: accepts connections and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let app = spawn_app_with(Options {
        env: vec![
            ("MAPI_URL", format!("http://127.0.0.1:{down}")),
            ("PEER_CHANNELS_URL", format!("http://{silent_addr}")),
            ("UPSTREAM_TIMEOUT_MS", "700".into()),
        ],
        ..Options::default()
    })
    .await;
    let started = Instant::now();
    let resp = app.get("/mapi/feeQuote").await;
    assert_eq!(resp.status(), 503);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "unavailable");

    let resp = app.get("/api/v1/channel/abc").await;
    assert_eq!(resp.status(), 504);
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}

#[tokio::test]
async fn bodies_over_the_route_limit_are_413() {
    let app =
        spawn_app_with(Options { env: vec![("MAX_BODY_BYTES", "1000".into())], ..Options::default() }).await;
    let url = format!("{}/api/v1/channel/abc", app.url);
    let resp = app.http.post(&url).body(vec![b'x'; 2000]).send().await.unwrap();
    assert_eq!(resp.status(), 413);
    // Chunked (no Content-Length): counted while streaming.
    let chunks = futures_util::stream::iter((0..20).map(|_| Ok::<_, std::io::Error>(vec![b'y'; 100])));
    let resp = app.http.post(&url).body(reqwest::Body::wrap_stream(chunks)).send().await.unwrap();
    assert_eq!(resp.status(), 413);
    // Under the limit, streamed: passes.
    let chunks = futures_util::stream::iter((0..5).map(|_| Ok::<_, std::io::Error>(vec![b'z'; 100])));
    let resp = app.http.post(&url).body(reqwest::Body::wrap_stream(chunks)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let got = app.upstreams.peer_channels.requests();
    assert_eq!(got.last().unwrap().body.len(), 500);
}

#[tokio::test]
async fn websocket_frames_pass_both_ways() {
    let ws = WsUpstream::start().await;
    let app =
        spawn_app_with(Options { env: vec![("PEER_CHANNELS_URL", ws.url.clone())], ..Options::default() })
            .await;
    let master = app.master_token(0).await;

    // Channel websocket (token passed on) and the account websocket (master token resolved).
    for path in [
        "/api/v1/channel/abc/notify?token=channel-token".to_owned(),
        format!("/api/v1/web-socket?token={master}"),
    ] {
        let url = format!("ws://127.0.0.1:{}{path}", app.port);
        let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let greeting = socket.next().await.unwrap().unwrap();
        assert_eq!(greeting, Message::text("hello from upstream"));
        socket.send(Message::text("ping 1")).await.unwrap();
        assert_eq!(socket.next().await.unwrap().unwrap(), Message::text("echo: ping 1"));
        socket.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
        assert_eq!(socket.next().await.unwrap().unwrap(), Message::binary(vec![1u8, 2, 3]));
        socket.close(None).await.unwrap();
    }
    let handshakes = ws.handshakes.lock().unwrap().clone();
    assert_eq!(handshakes.len(), 2);
    let header = |h: &Vec<(String, String)>, n: &str| h.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    assert_eq!(header(&handshakes[0], "x-internal-token").as_deref(), Some(INTERNAL_TOKEN));
    assert_eq!(header(&handshakes[0], "x-caller-account"), None);
    assert!(header(&handshakes[1], "x-caller-account").is_some());

    // A bad master token on the account websocket never reaches the upstream.
    let url = format!("ws://127.0.0.1:{}/api/v1/web-socket?token=nope", app.port);
    let err = tokio_tungstenite::connect_async(url).await.unwrap_err();
    match err {
        tokio_tungstenite::tungstenite::Error::Http(resp) => assert_eq!(resp.status(), 401),
        other => panic!("expected 401, got {other:?}"),
    }
    assert_eq!(ws.handshakes.lock().unwrap().len(), 2);
}

/// The credentials of the auth matrix.
#[derive(Debug, Clone, Copy)]
enum Cred {
    None,
    Malformed,
    WrongApiKey,
    RightApiKey,
    JwtValid,
    JwtExpired,
    JwtWrongKey,
    JwtWrongIssuer,
    OwnMaster,
    OtherMaster,
    ChannelToken,
}

#[tokio::test]
async fn auth_matrix() {
    use Cred::*;
    let app = spawn_app().await;
    let own = app.master_token(0).await;
    let other = app.master_token(1).await;
    let header = |c: Cred| -> Option<(&'static str, String)> {
        match c {
            None => Option::None,
            Malformed => Some(("authorization", "Basic eHl6".into())),
            WrongApiKey => Some(("api-key", "wrong-admin-key".into())),
            RightApiKey => Some(("api-key", ADMIN_KEY.into())),
            JwtValid => Some(("authorization", format!("Bearer {}", jwt(JWT_KEY, JWT_ISSUER, 600)))),
            JwtExpired => Some(("authorization", format!("Bearer {}", jwt(JWT_KEY, JWT_ISSUER, -600)))),
            JwtWrongKey => Some((
                "authorization",
                format!("Bearer {}", jwt("another-key-0123456789abcdef", JWT_ISSUER, 600)),
            )),
            JwtWrongIssuer => {
                Some(("authorization", format!("Bearer {}", jwt(JWT_KEY, "https://evil.example", 600))))
            }
            OwnMaster => Some(("authorization", format!("Bearer {own}"))),
            OtherMaster => Some(("authorization", format!("Bearer {other}"))),
            ChannelToken => Some(("authorization", format!("Bearer {}", "c".repeat(86) + "=="))),
        }
    };
    // Expected status per route class (columns in Cred order).
    let creds = [
        None,
        Malformed,
        WrongApiKey,
        RightApiKey,
        JwtValid,
        JwtExpired,
        JwtWrongKey,
        JwtWrongIssuer,
        OwnMaster,
        OtherMaster,
        ChannelToken,
    ];
    let table: [(&str, [u16; 11]); 7] = [
        ("/mapi/feeQuote", [200, 401, 200, 200, 200, 401, 401, 401, 401, 401, 401]),
        ("/api/v1/PolicyQuote", [401, 401, 401, 200, 401, 401, 401, 401, 401, 401, 401]),
        ("/api/v1/channel/manage/list", [400, 400, 400, 400, 401, 401, 401, 401, 200, 200, 401]),
        ("/api/v1/channel/some-channel", [200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
        ("/api/v1/headers/tips", [200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
        ("/api/v1/account", [400, 400, 400, 400, 401, 401, 401, 401, 200, 200, 401]),
        ("/api/v1/endpoints", [200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
    ];
    let mut failures = Vec::new();
    for (path, expected) in table {
        for (cred, want) in creds.iter().zip(expected) {
            let mut req = app.http.get(format!("{}{path}", app.url));
            if let Some((k, v)) = header(*cred) {
                req = req.header(k, v);
            }
            let got = req.send().await.unwrap().status().as_u16();
            if got != want {
                failures.push(format!("{path} with {cred:?}: expected {want}, got {got}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Identity reaches mAPI for a valid JWT, and the admin flag for the Api-Key; neither token
    // nor key is forwarded.
    let got = app.upstreams.mapi.requests();
    let jwt_req =
        got.iter().find(|r| r.header("x-caller-identity").is_some()).expect("a JWT call reached mapi");
    assert_eq!(jwt_req.header("x-caller-identity"), Some("merchant-1"));
    assert_eq!(jwt_req.header("x-caller-identity-provider"), Some(JWT_ISSUER));
    assert_eq!(jwt_req.header("authorization"), Option::None);
    let admin_req =
        got.iter().find(|r| r.header("x-caller-admin").is_some()).expect("an admin call reached mapi");
    assert_eq!(admin_req.header("api-key"), Option::None);
    // Another account's master token acts as that account.
    let channel_calls = app.upstreams.peer_channels.requests();
    let accounts: std::collections::HashSet<_> =
        channel_calls.iter().filter_map(|r| r.header("x-caller-account").map(str::to_owned)).collect();
    assert_eq!(accounts.len(), 2);
}

#[tokio::test]
async fn an_arc_api_key_is_anonymous_and_stays_at_the_gateway() {
    let app = spawn_app().await;
    let before = app.upstreams.mapi.requests().len();
    let resp =
        app.http.get(format!("{}/v1/policy", app.url)).bearer_auth("some-arc-api-key").send().await.unwrap();
    assert_eq!(resp.status(), 200, "ARC does not check API keys; neither does its route here");
    let got = app.upstreams.mapi.wait_for(before + 1, Duration::from_secs(5)).await;
    let r = got.last().unwrap();
    assert_eq!(r.path, "/v1/policy");
    assert_eq!(r.header("authorization"), None, "the key is not passed on");
    assert_eq!(r.header("x-caller-identity"), None, "anonymous");
}
