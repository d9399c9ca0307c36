//! Channel reads and socket catch-ups read the database a page at a time: the wire format is the
//! same, and memory stays bounded whatever a channel holds.

use std::time::Duration;

use base64::Engine as _;
use diesel::sql_types::{BigInt, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use futures_util::StreamExt;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{next_json, stack, stack_with, ws};
use crate::scenarios::urlencode;

#[tokio::test]
async fn a_channel_larger_than_a_page_reads_the_same_and_streams() {
    let s = stack_with(1, &[("MESSAGE_PAGE_SIZE", "3")]).await;
    let master = s.account().await;
    let (id, owner) = s.channel(&master, false).await;
    let (_, reader) = s.token(&master, &id, true, false).await;
    for i in 1..=10 {
        s.write(&id, &owner, &json!({"i": i})).await;
    }
    let read = |query: &'static str| {
        s.req(Method::GET, &format!("/api/v1/channel/{id}{query}"), Some(&format!("Bearer {reader}"))).send()
    };
    let resp = read("").await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("content-length").is_none(), "more than a page is streamed");
    let messages: Vec<Value> = resp.json().await.unwrap();
    let seqs: Vec<i64> = messages.iter().map(|m| m["sequence"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=10).collect::<Vec<_>>());
    for m in &messages {
        let payload =
            base64::engine::general_purpose::STANDARD.decode(m["payload"].as_str().unwrap()).unwrap();
        let body: Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(body["i"], m["sequence"]);
        assert_eq!(m.as_object().unwrap().len(), 4);
    }
    // Marked read up to 4, message 7 deleted for this token: the unread ones, across pages.
    let mark = s
        .req(Method::POST, &format!("/api/v1/channel/{id}/4?older=true"), Some(&format!("Bearer {reader}")))
        .json(&json!({"read": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(mark.status(), 200);
    let delete = s
        .req(Method::DELETE, &format!("/api/v1/channel/{id}/7"), Some(&format!("Bearer {reader}")))
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), 200);
    let unread: Vec<Value> = read("?unread=true").await.unwrap().json().await.unwrap();
    let seqs: Vec<i64> = unread.iter().map(|m| m["sequence"].as_i64().unwrap()).collect();
    assert_eq!(seqs, vec![5, 6, 8, 9, 10]);
    // Exactly one page: one piece, as before.
    let (id2, owner2) = s.channel(&master, false).await;
    for i in 1..=2 {
        s.write(&id2, &owner2, &json!({"i": i})).await;
    }
    let resp = s
        .req(Method::GET, &format!("/api/v1/channel/{id2}"), Some(&format!("Bearer {owner2}")))
        .send()
        .await
        .unwrap();
    assert!(resp.headers().get("content-length").is_some());
    assert_eq!(resp.json::<Vec<Value>>().await.unwrap().len(), 2);

    // A socket catching up from the start gets every message once, in order, across pages.
    let mut socket =
        ws(&s.gateway, &format!("/api/v1/channel/{id}/notify?token={}&since=0", urlencode(&owner)), None)
            .await
            .unwrap();
    for expected in 1..=10 {
        assert_eq!(next_json(&mut socket, Duration::from_secs(5)).await.unwrap()["sequence"], expected);
    }
}

/// The peak resident memory of this process since the last reset, in bytes (`VmHWM`).
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

#[tokio::test(flavor = "multi_thread")]
async fn reading_a_channel_of_128_mib_holds_a_page_not_the_channel() {
    const MESSAGES: i64 = 2000;
    const SIZE: i64 = 64 * 1024;
    let s = stack().await;
    let master = s.account().await;
    let (id, owner) = s.channel(&master, false).await;
    // 2000 messages of 64 KiB, written straight into the database (a stored channel, however it
    // got there).
    let mut conn = AsyncPgConnection::establish(s.db.url()).await.unwrap();
    diesel::sql_query(
        "WITH c AS (SELECT id FROM peer_channels.channels WHERE external_id = $1), \
              t AS (SELECT min(tk.id) AS id FROM peer_channels.channel_tokens tk, c WHERE tk.channel_id = c.id) \
         INSERT INTO peer_channels.messages (channel_id, seq, from_token, received_at, content_type, payload) \
         SELECT c.id, g, t.id, now(), 'application/octet-stream', decode(repeat('ab', $3::int), 'hex') \
         FROM c, t, generate_series(1, $2) AS g",
    )
    .bind::<Text, _>(&id)
    .bind::<BigInt, _>(MESSAGES)
    .bind::<BigInt, _>(SIZE)
    .execute(&mut conn)
    .await
    .unwrap();
    diesel::sql_query("UPDATE peer_channels.channels SET head_sequence = $2 WHERE external_id = $1")
        .bind::<Text, _>(&id)
        .bind::<BigInt, _>(MESSAGES)
        .execute(&mut conn)
        .await
        .unwrap();

    // Reset the peak (Linux: writing 5 to clear_refs), then read the whole channel through the
    // gateway, counting as it streams (the client, in this process too, keeps nothing).
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    let before = peak_rss();
    let resp = s
        .req(Method::GET, &format!("/api/v1/channel/{id}"), Some(&format!("Bearer {owner}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.bytes_stream();
    let (mut bytes, mut messages, mut tail) = (0usize, 0usize, Vec::new());
    while let Some(chunk) = body.next().await {
        let chunk = chunk.unwrap();
        bytes += chunk.len();
        tail.extend_from_slice(&chunk);
        messages += count(&tail, b"\"sequence\":");
        // Keep only what a marker split across chunks needs.
        let keep = tail.len().saturating_sub(10);
        tail.drain(..keep);
    }
    let grew = peak_rss().saturating_sub(before);
    assert_eq!(messages, MESSAGES as usize);
    let payload_text = (MESSAGES * SIZE * 4 / 3) as usize;
    assert!(bytes > payload_text, "{bytes} bytes");
    // Loading the channel at once would hold its 128 MiB, their 171 MiB of base64 and the JSON.
    assert!(grew < 100 * 1024 * 1024, "the peak grew by {} MiB", grew / 1024 / 1024);
}

fn count(haystack: &[u8], needle: &[u8]) -> usize {
    haystack.windows(needle.len()).filter(|w| *w == needle).count()
}
