//! Every log line of a run that uses every kind of token (in headers and in websocket query
//! strings, valid, revoked and wrong), captured at TRACE level, holds none of them. Its own test
//! binary, so its subscriber sees everything in the process.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "api/helpers.rs"]
#[allow(dead_code, reason = "shared with the api test binary, which uses the rest")]
mod helpers;

use std::time::Duration;

use helpers::{INTERNAL_TOKEN, stack_with, ws};
use serde_json::json;

fn query(token: &str) -> String {
    token.replace('=', "%3D")
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_hold_no_token() {
    // TRACE everywhere, with the caps every service applies (see `service_kit::telemetry`).
    let capture = test_support::LogCapture::install(&service_kit::telemetry::SECRET_SAFE_DIRECTIVES);

    let s = stack_with(1, &[("WEBSOCKET_HEARTBEAT_SECS", "1")]).await;
    let master = s.account().await;
    let (id, owner) = s.channel(&master, true).await;
    let (revoked_id, revoked) = s.token(&master, &id, true, true).await;
    let (_, reader) = s.token(&master, &id, true, false).await;
    let resp = s
        .req(
            reqwest::Method::DELETE,
            &format!("/api/v1/channel/manage/{id}/api-token/{revoked_id}"),
            Some(&format!("Bearer {master}")),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let wrong = "wrong-token-but-secret-looking-0123456789".to_owned();
    let mut channel_socket =
        ws(&s.gateway, &format!("/api/v1/channel/{id}/notify?token={}", query(&reader)), None).await.unwrap();
    let mut account_socket =
        ws(&s.gateway, &format!("/api/v1/web-socket?token={}", query(&master)), None).await.unwrap();
    for token in [&revoked, &wrong] {
        assert_eq!(
            ws(&s.gateway, &format!("/api/v1/channel/{id}/notify?token={}", query(token)), None).await.err(),
            Some(401)
        );
    }
    assert_eq!(
        ws(&s.gateway, &format!("/api/v1/web-socket?token={}", query(&wrong)), None).await.err(),
        Some(401)
    );
    s.write(&id, &owner, &json!({"n": 1})).await;
    for token in [&owner, &reader, &revoked, &wrong, &master] {
        let auth = format!("Bearer {token}");
        let path = format!("/api/v1/channel/{id}");
        let _ = s.req(reqwest::Method::GET, &path, Some(&auth)).send().await.unwrap();
        let _ = s.req(reqwest::Method::POST, &path, Some(&auth)).json(&json!({"n": 2})).send().await.unwrap();
        let _ = s
            .req(reqwest::Method::POST, &format!("{path}/1"), Some(&auth))
            .json(&json!({"read": true}))
            .send()
            .await
            .unwrap();
        let _ = s.req(reqwest::Method::GET, "/api/v1/channel/manage/list", Some(&auth)).send().await.unwrap();
    }
    let _ = helpers::next_json(&mut channel_socket, Duration::from_secs(2)).await;
    let _ = helpers::next_frame(&mut account_socket, Duration::from_secs(2)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let logs = capture.text();
    assert!(logs.contains("peer-channels") || logs.contains("peer_channels"), "the capture saw the service");
    for secret in [&master, &owner, &reader, &revoked, &wrong, &INTERNAL_TOKEN.to_owned()] {
        assert!(!logs.contains(secret.as_str()), "a token appears in the logs");
        if let Some(at) = logs.find(&query(secret)) {
            let line_start = logs[..at].rfind('\n').map_or(0, |i| i + 1);
            let line_end = logs[at..].find('\n').map_or(logs.len(), |i| at + i);
            panic!("a query-encoded token appears in the logs: {}", &logs[line_start..line_end]);
        }
    }
}
