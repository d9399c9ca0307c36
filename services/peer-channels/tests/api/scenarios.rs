//! The scenarios of the reference's `test_peer_channels.py`, as black-box HTTP and websockets
//! through the gateway (accounts signed up over HTTP instead of written into the database).

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{next_json, stack, ws};

/// No auth → 400, `Basic` → 400, bad Bearer → 401.
async fn auth_triple(stack: &crate::helpers::Stack, method: Method, path: &str, body: &Value) {
    for (auth, status) in [(None, 400), (Some("Basic xyz"), 400), (Some("Bearer bad bearer token"), 401)] {
        let resp = stack.req(method.clone(), path, auth).json(body).send().await.unwrap();
        assert_eq!(resp.status(), status, "{method} {path} with {auth:?}");
        let problem: Value = resp.json().await.unwrap();
        assert!(!problem["detail"].as_str().unwrap().is_empty());
    }
}

#[tokio::test]
async fn the_reference_scenarios_pass_as_black_box_http() {
    let s = stack().await;
    let master = s.account().await;
    let a = format!("Bearer {master}");
    let create_body = json!({
        "public_read": true, "public_write": true, "sequenced": true,
        "retention": {"min_age_days": 0, "max_age_days": 0, "auto_prune": true}
    });

    // 1. The server answers at its root.
    assert_eq!(s.http.get(s.url("/")).send().await.unwrap().status(), 200);

    // 2. Create channel (auth triple first).
    auth_triple(&s, Method::POST, "/api/v1/channel/manage", &create_body).await;
    let channel = s.create_channel(&master, create_body.clone()).await;
    let id = channel["id"].as_str().unwrap().to_owned();
    assert_eq!(URL_SAFE.decode(&id).unwrap().len(), 64);
    assert_eq!(channel["href"], format!("https://channels.example/api/v1/channel/{id}"));
    assert_eq!(channel["public_read"], true);
    assert_eq!(channel["sequenced"], true);
    assert_eq!(channel["locked"], false);
    assert_eq!(channel["head_sequence"], 0);
    assert_eq!(channel["retention"], json!({"min_age_days": 0, "max_age_days": 0, "auto_prune": true}));
    let owner = &channel["access_tokens"][0];
    assert_eq!(owner["description"], "Owner");
    assert_eq!((owner["can_read"].clone(), owner["can_write"].clone()), (json!(true), json!(true)));
    let owner_token = owner["token"].as_str().unwrap().to_owned();
    assert_eq!(URL_SAFE.decode(&owner_token).unwrap().len(), 64);
    let owner_id = owner["id"].as_i64().unwrap();
    let o = format!("Bearer {owner_token}");

    // 3. Create a read-only token: exactly these keys.
    let resp = s
        .req(Method::POST, &format!("/api/v1/channel/manage/{id}/api-token"), Some(&a))
        .json(&json!({"description": "read only", "can_read": true, "can_write": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let ro: Value = resp.json().await.unwrap();
    let mut keys: Vec<&str> = ro.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["can_read", "can_write", "description", "id", "token"]);
    assert_eq!((ro["can_read"].clone(), ro["can_write"].clone()), (json!(true), json!(false)));
    let ro_id = ro["id"].as_i64().unwrap();
    assert!(ro_id > owner_id);
    let r = format!("Bearer {}", ro["token"].as_str().unwrap());

    // 4. A second channel; list has both; details; amend echoes.
    let _second = s.create_channel(&master, create_body.clone()).await;
    let list: Value = s.get_json("/api/v1/channel/manage/list", &a).await;
    assert_eq!(list.as_array().unwrap().len(), 2);
    let details: Value = s.get_json(&format!("/api/v1/channel/manage/{id}"), &a).await;
    assert_eq!(details["id"], id);
    assert_eq!(details["access_tokens"].as_array().unwrap().len(), 2);
    assert!(details["access_tokens"][0]["token"].is_null(), "a token is shown only when issued");
    let amend = json!({"public_read": false, "public_write": true, "locked": false});
    let resp = s
        .req(Method::POST, &format!("/api/v1/channel/manage/{id}"), Some(&a))
        .json(&amend)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap(), amend);

    // 5. Token details and list.
    let t: Value = s.get_json(&format!("/api/v1/channel/manage/{id}/api-token/{ro_id}"), &a).await;
    assert_eq!(t["id"], ro_id);
    assert_eq!(t["description"], "read only");
    let tokens: Value = s.get_json(&format!("/api/v1/channel/manage/{id}/api-token"), &a).await;
    let ids: Vec<i64> = tokens.as_array().unwrap().iter().map(|t| t["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, [owner_id, ro_id]);

    // 6. Write rejections: auth before body checks.
    let path = format!("/api/v1/channel/{id}");
    auth_triple(&s, Method::POST, &path, &json!({"key": "value"})).await;
    let resp = s
        .req(Method::POST, &path, Some(&o))
        .header("content-type", "application/text")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let resp = s.req(Method::POST, &path, Some(&r)).json(&json!({"key": "value"})).send().await.unwrap();
    assert_eq!(resp.status(), 401);

    // 7. O writes.
    let resp = s.req(Method::POST, &path, Some(&o)).json(&json!({"key": "value"})).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let m: Value = resp.json().await.unwrap();
    assert_eq!(m["sequence"], 1);
    assert_eq!(m["content_type"], "application/json");
    assert_eq!(STANDARD.decode(m["payload"].as_str().unwrap()).unwrap(), br#"{"key":"value"}"#);
    assert!(m["received"].as_str().unwrap().ends_with('Z'));

    // 8. R's HEAD and unread list.
    let resp = s.req(Method::HEAD, &path, Some(&r)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["etag"], "1");
    assert_eq!(resp.headers()["channel-flags"], "r");
    assert!(resp.bytes().await.unwrap().is_empty());
    let resp = s.req(Method::GET, &format!("{path}?unread=true"), Some(&r)).send().await.unwrap();
    assert_eq!(resp.headers()["etag"], "1");
    let unread: Value = resp.json().await.unwrap();
    assert_eq!(unread.as_array().unwrap().len(), 1);
    assert_eq!(unread[0]["sequence"], 1);

    // 9. Mark read (older) with R; an unknown sequence is 404.
    let resp = s
        .req(Method::POST, &format!("{path}/1?older=true"), Some(&r))
        .json(&json!({"read": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = s
        .req(Method::POST, &format!("{path}/2"), Some(&r))
        .json(&json!({"read": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let unread: Value = s.get_json(&format!("{path}?unread=true"), &r).await;
    assert_eq!(unread, json!([]));

    // 10. Deletes with read-only tokens are per token.
    let (_, r2_token) = s.token(&master, &id, true, false).await;
    let r2 = format!("Bearer {r2_token}");
    assert_eq!(s.req(Method::DELETE, &format!("{path}/2"), Some(&r)).send().await.unwrap().status(), 404);
    let unread: Value = s.get_json(&format!("{path}?unread=true"), &r2).await;
    assert_eq!(unread[0]["sequence"], 1, "a new token sees the history as unread");
    let unread: Value = s.get_json(&format!("{path}?unread=true"), &o).await;
    assert_eq!(unread, json!([]), "the writer has read its own message");
    let all: Value = s.get_json(&path, &o).await;
    assert_eq!(all[0]["sequence"], 1);

    // 11. O deletes seq 1 (then it is gone for O only); seq 2 → 404; auth triple.
    assert_eq!(s.req(Method::DELETE, &format!("{path}/1"), Some(&o)).send().await.unwrap().status(), 200);
    assert_eq!(s.req(Method::DELETE, &format!("{path}/1"), Some(&o)).send().await.unwrap().status(), 404);
    assert_eq!(s.req(Method::DELETE, &format!("{path}/2"), Some(&o)).send().await.unwrap().status(), 404);
    auth_triple(&s, Method::DELETE, &format!("{path}/1"), &json!(null)).await;
    let all: Value = s.get_json(&path, &o).await;
    assert_eq!(all, json!([]));
    let all: Value = s.get_json(&path, &r2).await;
    assert_eq!(all[0]["sequence"], 1);

    // 12. Channel websocket with O: 10 writes, 10 frames (the writer's own included). The channel
    //     is sequenced, so use an unsequenced one for ten writes in a row.
    let (free, free_owner) = s.channel(&master, false).await;
    let mut socket =
        ws(&s.gateway, &format!("/api/v1/channel/{free}/notify?token={}", urlencode(&free_owner)), None)
            .await
            .unwrap();
    for i in 0..10 {
        s.write(&free, &free_owner, &json!({"n": i})).await;
    }
    for seq in 1..=10 {
        let n = next_json(&mut socket, Duration::from_secs(5)).await.expect("notification");
        assert_eq!(n["sequence"], seq);
        assert_eq!(n["channel_id"], free);
        assert_eq!(n["content_type"], "application/json");
    }

    // 13. Account websocket (JSON): a second read-write token writes 10 messages → 10 frames.
    let mut account_socket =
        ws(&s.gateway, &format!("/api/v1/web-socket?token={}", urlencode(&master)), None).await.unwrap();
    let (_, rw) = s.token(&master, &free, true, true).await;
    for i in 0..10 {
        s.write(&free, &rw, &json!({"n": i})).await;
    }
    for seq in 11..=20 {
        let n = next_json(&mut account_socket, Duration::from_secs(5)).await.expect("account notification");
        assert_eq!(n["message_type"], "bsvapi.channels.notification");
        assert_eq!(n["result"]["sequence"], seq);
        assert_eq!(n["result"]["content_type"], "application/json");
        assert_eq!(URL_SAFE.decode(n["result"]["channel_id"].as_str().unwrap()).unwrap().len(), 64);
    }

    // The channel socket saw those ten too (every writer, the reference's rule).
    for seq in 11..=20 {
        assert_eq!(
            next_json(&mut socket, Duration::from_secs(5)).await.expect("channel notification")["sequence"],
            seq
        );
    }

    // 14. Revoke → 204; the revoked token no longer works anywhere.
    let resp = s
        .req(Method::DELETE, &format!("/api/v1/channel/manage/{id}/api-token/{ro_id}"), Some(&a))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(s.req(Method::GET, &path, Some(&r)).send().await.unwrap().status(), 401);
    assert_eq!(
        s.req(Method::GET, "/api/v1/channel/manage/list", Some(&r)).send().await.unwrap().status(),
        401
    );

    // 16. Bad-token websocket handshakes → 401; no token → 400.
    assert_eq!(
        ws(&s.gateway, &format!("/api/v1/channel/{free}/notify?token=bad"), None).await.err(),
        Some(401)
    );
    assert_eq!(ws(&s.gateway, &format!("/api/v1/channel/{free}/notify"), None).await.err(), Some(400));
    assert_eq!(ws(&s.gateway, "/api/v1/web-socket?token=bad", None).await.err(), Some(401));

    // 15. Delete every channel → 204 each; nothing left.
    let list: Value = s.get_json("/api/v1/channel/manage/list", &a).await;
    for c in list.as_array().unwrap() {
        let resp = s
            .req(Method::DELETE, &format!("/api/v1/channel/manage/{}", c["id"].as_str().unwrap()), Some(&a))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 204);
    }
    let list: Value = s.get_json("/api/v1/channel/manage/list", &a).await;
    assert_eq!(list, json!([]));
    assert_eq!(
        s.req(Method::GET, &format!("/api/v1/channel/manage/{id}/api-token"), Some(&a))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    // The open socket of the deleted channel was closed.
    assert!(next_json(&mut socket, Duration::from_secs(5)).await.is_none());
}

#[tokio::test]
async fn retention_and_token_flags_follow_the_spv_functional_tests() {
    let s = stack().await;
    let master = s.account().await;
    let a = format!("Bearer {master}");
    // Invalid retention → 400.
    let bad = json!({"public_read": true, "public_write": true, "sequenced": false,
        "retention": {"min_age_days": 5, "max_age_days": 2, "auto_prune": true}});
    let resp = s.req(Method::POST, "/api/v1/channel/manage", Some(&a)).json(&bad).send().await.unwrap();
    assert_eq!(resp.status(), 400);
    // Delete with min_age_days 2 → 400 (10017); with 0 → 200.
    let kept = s
        .create_channel(
            &master,
            json!({"public_read": true, "public_write": true, "sequenced": false,
            "retention": {"min_age_days": 2, "max_age_days": null, "auto_prune": false}}),
        )
        .await;
    let kept_id = kept["id"].as_str().unwrap();
    let kept_owner = kept["access_tokens"][0]["token"].as_str().unwrap();
    assert_eq!(kept["retention"]["max_age_days"], Value::Null);
    s.write(kept_id, kept_owner, &json!({"a": 1})).await;
    let resp = s
        .req(Method::DELETE, &format!("/api/v1/channel/{kept_id}/1"), Some(&format!("Bearer {kept_owner}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let (id, owner) = s.channel(&master, false).await;
    s.write(&id, &owner, &json!({"a": 1})).await;
    // A can_write=false token: write → 401; a can_read=false token: read and mark → 401.
    let (_, ro) = s.token(&master, &id, true, false).await;
    let (_, wo) = s.token(&master, &id, false, true).await;
    let path = format!("/api/v1/channel/{id}");
    assert_eq!(
        s.req(Method::POST, &path, Some(&format!("Bearer {ro}")))
            .json(&json!({}))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(s.req(Method::GET, &path, Some(&format!("Bearer {wo}"))).send().await.unwrap().status(), 401);
    assert_eq!(
        s.req(Method::POST, &format!("{path}/1"), Some(&format!("Bearer {wo}")))
            .json(&json!({"read": true}))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let resp =
        s.req(Method::DELETE, &format!("{path}/1"), Some(&format!("Bearer {owner}"))).send().await.unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn sequenced_and_locked_channels_refuse_writes_with_the_references_reasons() {
    let s = stack().await;
    let master = s.account().await;
    let (id, owner) = s.channel(&master, true).await;
    let (_, other) = s.token(&master, &id, true, true).await;
    let path = format!("/api/v1/channel/{id}");
    s.write(&id, &other, &json!({"from": "other"})).await;
    // The owner has an unread message: a sequenced channel refuses its write.
    let resp = s
        .req(Method::POST, &path, Some(&format!("Bearer {owner}")))
        .json(&json!({"x": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    // The reason text clients log, in the status line (through the gateway) and the body.
    let reason = resp.extensions().get::<hyper::ext::ReasonPhrase>().map(|r| r.as_bytes().to_vec());
    assert_eq!(
        reason.as_deref(),
        Some(&b"10002: Sequencing failure. This channel still has unread messages. Write failed."[..])
    );
    let problem: Value = resp.json().await.unwrap();
    assert!(problem["detail"].as_str().unwrap().starts_with("10002"));
    // Once read, it may write.
    let resp = s
        .req(Method::POST, &format!("{path}/1"), Some(&format!("Bearer {owner}")))
        .json(&json!({"read": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(s.write(&id, &owner, &json!({"x": 2})).await, 2);
    // Mark unread (older) brings it back; mark read again clears it.
    let resp = s
        .req(Method::POST, &format!("{path}/2?older=true"), Some(&format!("Bearer {owner}")))
        .json(&json!({"read": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let unread: Value = s.get_json(&format!("{path}?unread=true"), &format!("Bearer {owner}")).await;
    let seqs: Vec<i64> = unread.as_array().unwrap().iter().map(|m| m["sequence"].as_i64().unwrap()).collect();
    assert_eq!(seqs, [1, 2]);
    // Locked: 400 10001.
    let a = format!("Bearer {master}");
    let amend = json!({"public_read": true, "public_write": true, "locked": true});
    assert_eq!(
        s.req(Method::POST, &format!("/api/v1/channel/manage/{id}"), Some(&a))
            .json(&amend)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let resp = s
        .req(Method::POST, &path, Some(&format!("Bearer {other}")))
        .json(&json!({"x": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let problem: Value = resp.json().await.unwrap();
    assert!(problem["detail"].as_str().unwrap().starts_with("10001"));
}

/// Percent-encodes a token for a query string.
pub fn urlencode(token: &str) -> String {
    token.replace('=', "%3D").replace('-', "%2D").replace('_', "%5F")
}
