//! Delivery as a receiver sees it: the request, retries, backoff, dead letters and their
//! redelivery through the gateway's admin API, sealed bodies, refused targets.

use std::time::Duration;

use base64::Engine;
use serde_json::Value;
use test_support::{ChaosProxy, RecordingReceiver};

use crate::helpers::*;

const SUCCESS: &str = "merchantapi_notificationshandler_successful_callbacks_counter";
const FAILED: &str = "merchantapi_notificationshandler_failed_callbacks_counter";

async fn admin_list(s: &Alone, which: &str) -> Vec<Value> {
    let resp = s
        .http
        .get(format!("{}/api/v1/notifications/{which}", s.gateway))
        .header("api-key", ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

#[tokio::test]
async fn the_envelope_goes_as_posted_with_the_token_verbatim_and_two_failures_then_a_2xx_count_once() {
    let s = alone(&[]).await;
    let receiver = RecordingReceiver::start().await;
    receiver.script_statuses(&[500, 500]);
    let mut req = request("k1", &format!("{}/cb/merkleProof?x=1", receiver.url()), r#"{"payload":"p"}"#);
    req.token = Some("Bearer xyz 123".into());
    let answer = hand_over(&s.http, &s.notifier, vec![req.clone()]).await;
    assert_eq!(answer["new"], 1);
    // The same key again (a repeated hand-over) adds nothing.
    assert_eq!(hand_over(&s.http, &s.notifier, vec![req]).await["new"], 0);

    let got = receiver.wait_for(3, Duration::from_secs(20)).await;
    for r in &got {
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/cb/merkleProof");
        assert_eq!(r.query, "x=1");
        assert_eq!(r.header("authorization"), Some("Bearer xyz 123"));
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(&r.body[..], br#"{"payload":"p"}"#);
    }
    // Retried after the backoff (1 s, then 2 s), not at once.
    assert!(got[1].received_at - got[0].received_at >= Duration::from_millis(900));
    assert!(got[2].received_at - got[1].received_at >= Duration::from_millis(1900));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(receiver.requests().len(), 3, "delivered once the receiver said 200, then left alone");
    assert_eq!(metric(&s.http, &s.notifier, SUCCESS).await, 1.0);
    assert_eq!(metric(&s.http, &s.notifier, FAILED).await, 2.0);
    assert!(admin_list(&s, "failed").await.is_empty());
    let text = s.http.get(format!("{}/metrics", s.notifier)).send().await.unwrap().text().await.unwrap();
    for name in [
        "merchantapi_notificationshandler_callback_duration_seconds_count",
        "merchantapi_notificationshandler_notification_in_queue",
        "merchantapi_notificationshandler_notification_with_error",
    ] {
        assert!(text.contains(name), "{name} in /metrics");
    }
}

#[tokio::test]
async fn what_the_instant_queue_cannot_hold_is_delivered_by_the_background_job() {
    let s = alone(&[
        ("NOTIFICATION_INSTANT_NOTIFICATIONS_QUEUE_SIZE", "10"),
        ("NOTIFICATION_MAX_NOTIFICATIONS_IN_BATCH", "3"),
    ])
    .await;
    let receiver = RecordingReceiver::start().await;
    let url = format!("{}/cb", receiver.url());
    let requests = (0..200).map(|n| request(&format!("q{n}"), &url, &format!("{{\"n\":{n}}}"))).collect();
    let answer = hand_over(&s.http, &s.notifier, requests).await;
    assert_eq!(answer["new"], 200);
    // The queue holds 10 (a few more get in as the tasks take batches out meanwhile).
    assert!(answer["queued"].as_u64().unwrap() < 50, "{answer}");
    let got = receiver.wait_for(200, Duration::from_secs(30)).await;
    let distinct: std::collections::HashSet<_> = got.iter().map(|r| r.body.clone()).collect();
    assert_eq!(distinct.len(), 200);
}

#[tokio::test]
async fn a_receiver_unreachable_for_30_seconds_gets_its_notification_when_it_is_back() {
    let s = alone(&[]).await;
    let receiver = RecordingReceiver::start().await;
    let proxy = ChaosProxy::start(format!("127.0.0.1:{}", receiver_port(&receiver)).parse().unwrap()).await;
    proxy.cut();
    let url = format!("http://{}/cb", proxy.addr());
    hand_over(&s.http, &s.notifier, vec![request("down", &url, "{}")]).await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(receiver.requests().is_empty());
    let failed = admin_list(&s, "failed").await;
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(failed[0]["errorCount"].as_i64().unwrap() >= 5, "{failed:?}");
    assert!(failed[0].get("token").is_none());
    proxy.restore();
    let got = receiver.wait_for(1, Duration::from_secs(15)).await;
    assert_eq!(got.len(), 1);
    eventually(Duration::from_secs(5), "the failed list to empty", || async {
        admin_list(&s, "failed").await.is_empty().then_some(())
    })
    .await;
}

fn receiver_port(receiver: &RecordingReceiver) -> u16 {
    receiver.url().rsplit(':').next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn after_the_retry_count_a_notification_is_dead_listed_and_redelivered_through_the_admin_api() {
    let s = alone(&[("NOTIFICATION_NOTIFICATIONS_RETRY_COUNT", "3")]).await;
    let receiver = RecordingReceiver::start().await;
    receiver.set_status(503);
    let url = format!("{}/cb", receiver.url());
    hand_over(&s.http, &s.notifier, vec![request("a", &url, "{\"n\":1}"), request("b", &url, "{\"n\":2}")])
        .await;
    let dead = eventually(Duration::from_secs(20), "two dead letters", || async {
        let dead = admin_list(&s, "dead").await;
        (dead.len() == 2).then_some(dead)
    })
    .await;
    assert_eq!(receiver.requests().len(), 6, "three attempts each");
    for d in &dead {
        assert_eq!(d["errorCount"], 3);
        assert_eq!(d["attempts"], 3);
        assert_eq!(d["lastError"], "callback answered 503 Service Unavailable");
        assert_eq!(d["callbackReason"], "merkleProof");
        assert!(d["deadAt"].is_string() && d["nextAttemptAt"].is_null(), "{d}");
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(receiver.requests().len(), 6, "no attempt after the dead letter");
    assert_eq!(metric(&s.http, &s.notifier, "notifier_dead_lettered_total").await, 2.0);

    // The admin API needs the key.
    let id = dead[0]["id"].as_i64().unwrap();
    let path = format!("{}/api/v1/notifications/{id}/redeliver", s.gateway);
    assert_eq!(s.http.post(&path).send().await.unwrap().status(), 401);
    assert_eq!(
        s.http.get(format!("{}/api/v1/notifications/dead", s.gateway)).send().await.unwrap().status(),
        401
    );

    receiver.set_status(200);
    let resp = s.http.post(&path).header("api-key", ADMIN_KEY).send().await.unwrap();
    assert_eq!(resp.status(), 202);
    let got = receiver.wait_for(7, Duration::from_secs(10)).await;
    assert_eq!(&got[6].body[..], b"{\"n\":1}", "the first one (listed by id)");
    assert_eq!(admin_list(&s, "dead").await.len(), 1);
    // Nothing left to redeliver under that id.
    let again = s.http.post(&path).header("api-key", ADMIN_KEY).send().await.unwrap();
    assert_eq!(again.status(), 404);

    // All of them.
    let resp = s
        .http
        .post(format!("{}/api/v1/notifications/redeliver", s.gateway))
        .header("api-key", ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    receiver.wait_for(8, Duration::from_secs(10)).await;
    assert!(admin_list(&s, "dead").await.is_empty());
    assert_eq!(&receiver.requests()[7].body[..], b"{\"n\":2}");
}

#[tokio::test]
async fn a_sealed_box_body_opens_with_libsodium_and_goes_as_octet_stream() {
    let s = alone(&[]).await;
    let receiver = RecordingReceiver::start().await;
    let pair = String::from_utf8(libsodium(&["keypair"], b"")).unwrap();
    let (pk, sk) = pair.split_once(' ').unwrap();
    let key = base64::engine::general_purpose::STANDARD.encode(hex::decode(pk).unwrap());
    let body = r#"{"payload":"{\"callbackReason\":\"merkleProof\"}","signature":"30","publicKey":"02"}"#;
    let mut req = request("sealed", &format!("{}/cb", receiver.url()), body);
    req.encryption = Some(format!("libsodium sealed_box {key}"));
    hand_over(&s.http, &s.notifier, vec![req]).await;
    let got = receiver.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got[0].header("content-type"), Some("application/octet-stream"));
    assert_ne!(&got[0].body[..], body.as_bytes());
    let opened = libsodium(&["open", pk, sk], &got[0].body);
    assert_eq!(opened, body.as_bytes());
}

#[tokio::test]
async fn private_targets_are_dead_lettered_when_blocked_even_behind_a_dns_name() {
    let s = alone(&[("NOTIFICATION_BLOCK_PRIVATE_TARGETS", "true")]).await;
    let receiver = RecordingReceiver::start().await;
    let port = receiver_port(&receiver);
    hand_over(
        &s.http,
        &s.notifier,
        vec![
            request("literal", &format!("http://127.0.0.1:{port}/cb"), "{}"),
            request("name", &format!("http://localhost:{port}/cb"), "{}"),
            request("v6", &format!("http://[::1]:{port}/cb"), "{}"),
            request("scheme", &format!("ftp://127.0.0.1:{port}/cb"), "{}"),
        ],
    )
    .await;
    let dead = eventually(Duration::from_secs(10), "four dead letters", || async {
        let dead = admin_list(&s, "dead").await;
        (dead.len() == 4).then_some(dead)
    })
    .await;
    for d in &dead {
        assert_eq!(d["errorCount"], 1, "dead at once: {d}");
        let error = d["lastError"].as_str().unwrap();
        assert!(
            error.contains("not a public address")
                || error.contains("non-public")
                || error.contains("http or https"),
            "{error}"
        );
    }
    assert!(receiver.requests().is_empty(), "nothing reached the private address");
}
