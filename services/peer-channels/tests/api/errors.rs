//! Client mistakes get 4xx with a JSON body, never 5xx.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::stack_with;

#[tokio::test]
async fn client_mistakes_get_clear_4xx_answers() {
    let s = stack_with(1, &[("MAX_MESSAGE_CONTENT_LENGTH", "1024")]).await;
    let master = s.account().await;
    let (id, owner) = s.channel(&master, false).await;
    let o = format!("Bearer {owner}");
    let a = format!("Bearer {master}");
    let path = format!("/api/v1/channel/{id}");
    let check = |resp: reqwest::Response, want: u16| async move {
        assert_eq!(resp.status(), want, "{:?}", resp.url().path());
        let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(ct.contains("json"), "{ct}");
        let problem: Value = resp.json().await.unwrap();
        assert_eq!(problem["status"], want);
        problem
    };
    // Oversized (declared and chunked) → 413.
    let big = vec![b'a'; 1025];
    check(
        s.req(Method::POST, &path, Some(&o))
            .header("content-type", "application/octet-stream")
            .body(big.clone())
            .send()
            .await
            .unwrap(),
        413,
    )
    .await;
    let chunks = futures_util::stream::iter(
        big.chunks(100).map(|c| Ok::<_, std::io::Error>(c.to_vec())).collect::<Vec<_>>(),
    );
    check(
        s.req(Method::POST, &path, Some(&o))
            .header("content-type", "application/octet-stream")
            .body(reqwest::Body::wrap_stream(chunks))
            .send()
            .await
            .unwrap(),
        413,
    )
    .await;
    // Exactly the limit is fine.
    let resp = s
        .req(Method::POST, &path, Some(&o))
        .header("content-type", "application/octet-stream")
        .body(vec![1u8; 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // Wrong content type, empty body, bad JSON message → 400.
    let p = check(
        s.req(Method::POST, &path, Some(&o))
            .header("content-type", "text/plain")
            .body("x")
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    assert!(p["detail"].as_str().unwrap().starts_with("10020"));
    check(
        s.req(Method::POST, &path, Some(&o))
            .header("content-type", "application/octet-stream")
            .body("")
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    check(
        s.req(Method::POST, &path, Some(&o))
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    // Non-numeric and non-positive sequences → 400.
    for seq in ["abc", "0", "-1", "99999999999999999999"] {
        check(
            s.req(Method::POST, &format!("{path}/{seq}"), Some(&o))
                .json(&json!({"read": true}))
                .send()
                .await
                .unwrap(),
            400,
        )
        .await;
        check(s.req(Method::DELETE, &format!("{path}/{seq}"), Some(&o)).send().await.unwrap(), 400).await;
    }
    // Bad JSON bodies and missing fields → 400.
    check(
        s.req(Method::POST, &format!("{path}/1"), Some(&o))
            .header("content-type", "application/json")
            .body("{")
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    check(
        s.req(Method::POST, &format!("{path}/1"), Some(&o))
            .json(&json!({"unread": true}))
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    check(
        s.req(Method::POST, "/api/v1/channel/manage", Some(&a))
            .header("content-type", "application/json")
            .body("[1,")
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    let p = check(
        s.req(Method::POST, "/api/v1/channel/manage", Some(&a))
            .json(&json!({"public_read": true}))
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("Missing property"));
    check(
        s.req(Method::POST, "/api/v1/channel/manage", Some(&a))
            .json(&json!({"public_read": true, "public_write": true, "sequenced": true, "retention": {"min_age_days": -1, "max_age_days": 1, "auto_prune": true}}))
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    check(
        s.req(Method::POST, &format!("/api/v1/channel/manage/{id}"), Some(&a))
            .json(&json!({"locked": true}))
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    check(
        s.req(Method::POST, &format!("/api/v1/channel/manage/{id}/api-token"), Some(&a))
            .json(&json!({"description": 5, "can_read": true, "can_write": true}))
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    check(
        s.req(Method::GET, &format!("/api/v1/channel/manage/{id}/api-token/abc"), Some(&a))
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    // Unknown things → 404.
    check(s.req(Method::GET, "/api/v1/channel/manage/nope", Some(&a)).send().await.unwrap(), 404).await;
    check(
        s.req(Method::GET, &format!("/api/v1/channel/manage/{id}/api-token/999999"), Some(&a))
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;
    check(
        s.req(Method::POST, &format!("{path}/77"), Some(&o))
            .json(&json!({"read": true}))
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;
    // A management body beyond the service's limit: 413, still JSON.
    let huge = format!("{{\"description\": \"{}\"}}", "x".repeat(300 * 1024));
    check(
        s.req(Method::POST, &format!("/api/v1/channel/manage/{id}/api-token"), Some(&a))
            .header("content-type", "application/json")
            .body(huge)
            .send()
            .await
            .unwrap(),
        413,
    )
    .await;
    // Reads must accept JSON (checked first).
    check(s.req(Method::GET, &path, Some(&o)).header("accept", "text/plain").send().await.unwrap(), 400)
        .await;
}
