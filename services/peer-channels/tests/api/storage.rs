//! Storage behaviour: gapless sequences under concurrent writers, read state without a row per
//! token per message, pruning with an injected clock.

use std::collections::HashSet;

use db_kit::{Db, DbSettings};
use diesel::sql_types::{BigInt, Text};
use diesel_async::RunQueryDsl;
use reqwest::Method;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::helpers::stack;

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

async fn count(db: &Db, sql: &str) -> i64 {
    let mut conn = db.conn().await.unwrap();
    diesel::sql_query(sql).get_result::<Count>(&mut conn).await.unwrap().n
}

fn channel_db(url: &str) -> Db {
    Db::new(DbSettings::new(url, peer_channels::SCHEMA)).unwrap()
}

#[tokio::test]
async fn sixty_four_concurrent_writers_get_sequences_without_gaps_or_duplicates() {
    let s = stack().await;
    let master = s.account().await;
    let (id, _) = s.channel(&master, false).await;
    let mut writers = Vec::new();
    for _ in 0..64 {
        writers.push(s.token(&master, &id, true, true).await.1);
    }
    let per_writer = 4;
    let s = std::sync::Arc::new(s);
    let mut tasks = Vec::new();
    for (w, token) in writers.into_iter().enumerate() {
        let (s, id) = (s.clone(), id.clone());
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for i in 0..per_writer {
                let seq = s.write(&id, &token, &json!({"writer": w, "i": i})).await;
                seqs.push((seq, json!({"writer": w, "i": i})));
            }
            seqs
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort_unstable_by_key(|(seq, _)| *seq);
    let n = 64 * per_writer as i64;
    assert_eq!(all.iter().map(|(s, _)| *s).collect::<Vec<_>>(), (1..=n).collect::<Vec<_>>());
    let listed: Value = s.get_json(&format!("/api/v1/channel/{id}"), &format!("Bearer {master}")).await;
    let seqs: Vec<i64> = listed.as_array().unwrap().iter().map(|m| m["sequence"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=n).collect::<Vec<_>>());
    // Concurrent writes are merged into shared statements: each writer's answer names the
    // sequence its own message got.
    use base64::Engine;
    for (message, (seq, written)) in listed.as_array().unwrap().iter().zip(&all) {
        assert_eq!(message["sequence"], *seq);
        let bytes =
            base64::engine::general_purpose::STANDARD.decode(message["payload"].as_str().unwrap()).unwrap();
        assert_eq!(serde_json::from_slice::<Value>(&bytes).unwrap(), *written, "message {seq}");
    }
    // 65 tokens × 256 messages of read state, and not one row for it: only explicit marks are rows.
    let db = channel_db(s.db.url());
    assert_eq!(count(&db, "SELECT count(*) AS n FROM message_marks").await, 0);
    let head: Value = s.get_json(&format!("/api/v1/channel/manage/{id}"), &format!("Bearer {master}")).await;
    assert_eq!(head["head_sequence"], n);
}

#[tokio::test]
async fn marking_everything_read_moves_a_watermark_instead_of_writing_rows() {
    let s = stack().await;
    let master = s.account().await;
    let (id, owner) = s.channel(&master, false).await;
    let (_, reader) = s.token(&master, &id, true, false).await;
    for i in 0..50 {
        s.write(&id, &owner, &json!({"i": i})).await;
    }
    let r = format!("Bearer {reader}");
    let unread = |s: &crate::helpers::Stack, r: String| {
        let path = format!("/api/v1/channel/{id}?unread=true");
        let req = s.req(Method::GET, &path, Some(&r));
        async move {
            let v: Value = req.send().await.unwrap().json().await.unwrap();
            v.as_array().unwrap().iter().map(|m| m["sequence"].as_i64().unwrap()).collect::<Vec<_>>()
        }
    };
    assert_eq!(unread(&s, r.clone()).await.len(), 50);
    // One out of order, then everything up to 40.
    let resp = s
        .req(Method::POST, &format!("/api/v1/channel/{id}/45"), Some(&r))
        .json(&json!({"read": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = s
        .req(Method::POST, &format!("/api/v1/channel/{id}/40?older=true"), Some(&r))
        .json(&json!({"read": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let expected: Vec<i64> = (41..=50).filter(|s| *s != 45).collect();
    assert_eq!(unread(&s, r.clone()).await, expected);
    let db = channel_db(s.db.url());
    assert_eq!(count(&db, "SELECT count(*) AS n FROM message_marks").await, 1, "only the out-of-order mark");
    // Unread up to 10: 1..=10 unread again, 11..=40 and 45 stay read.
    let resp = s
        .req(Method::POST, &format!("/api/v1/channel/{id}/10?older=true"), Some(&r))
        .json(&json!({"read": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut expected: Vec<i64> = (1..=10).collect();
    expected.extend((41..=50).filter(|s| *s != 45));
    assert_eq!(unread(&s, r).await, expected);
}

#[tokio::test]
async fn pruning_removes_exactly_the_expired_messages() {
    let s = stack().await;
    let master = s.account().await;
    let make = |auto_prune: bool, max: Value| {
        json!({"public_read": true, "public_write": true, "sequenced": false,
            "retention": {"min_age_days": 0, "max_age_days": max, "auto_prune": auto_prune}})
    };
    let pruned = s.create_channel(&master, make(true, json!(1))).await;
    let kept_flag = s.create_channel(&master, make(false, json!(1))).await;
    let kept_no_max = s.create_channel(&master, make(true, Value::Null)).await;
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let db = channel_db(s.db.url());
    // Ages: 3 days, 1 day + 1 s, exactly 1 day, 23 h.
    let ages = [3 * 86_400, 86_401, 86_400, 82_800];
    for channel in [&pruned, &kept_flag, &kept_no_max] {
        let id = channel["id"].as_str().unwrap();
        let owner = channel["access_tokens"][0]["token"].as_str().unwrap();
        for (i, age) in ages.iter().enumerate() {
            let seq = s.write(id, owner, &json!({"i": i})).await;
            let mut conn = db.conn().await.unwrap();
            diesel::sql_query(
                "UPDATE messages SET received_at = $1::timestamptz - make_interval(secs => $2) \
                 WHERE seq = $3 AND channel_id = (SELECT id FROM channels WHERE external_id = $4)",
            )
            .bind::<diesel::sql_types::Timestamptz, _>(now)
            .bind::<BigInt, _>(*age as i64)
            .bind::<BigInt, _>(seq)
            .bind::<Text, _>(id)
            .execute(&mut conn)
            .await
            .unwrap();
        }
    }
    let removed = peer_channels::store::prune(&db, now).await.unwrap();
    assert_eq!(removed, 2, "the 3-day and the 1-day-plus-1-second messages of the pruned channel");
    let left = |channel: &Value| {
        let id = channel["id"].as_str().unwrap().to_owned();
        let req = s.req(Method::GET, &format!("/api/v1/channel/{id}"), Some(&format!("Bearer {master}")));
        async move {
            let v: Value = req.send().await.unwrap().json().await.unwrap();
            v.as_array().unwrap().iter().map(|m| m["sequence"].as_i64().unwrap()).collect::<HashSet<_>>()
        }
    };
    assert_eq!(left(&pruned).await, HashSet::from([3, 4]));
    assert_eq!(left(&kept_flag).await.len(), 4);
    assert_eq!(left(&kept_no_max).await.len(), 4);
    // Idempotent: a second round removes nothing.
    assert_eq!(peer_channels::store::prune(&db, now).await.unwrap(), 0);
}

#[tokio::test]
async fn concurrent_writes_across_channels_are_merged_without_errors_or_gaps() {
    let s = stack().await;
    let master = s.account().await;
    let mut channels = Vec::new();
    for _ in 0..8 {
        channels.push(s.channel(&master, false).await);
    }
    let s = std::sync::Arc::new(s);
    let channels = std::sync::Arc::new(channels);
    let mut tasks = Vec::new();
    for w in 0..48usize {
        let (s, channels) = (s.clone(), channels.clone());
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for i in 0..8usize {
                // Each writer walks the channels in its own order: merged statements hold rows of
                // several channels at once, in every combination.
                let (id, token) = &channels[(w * 3 + i * (1 + w % 5)) % channels.len()];
                got.push((id.clone(), s.write(id, token, &json!({"w": w, "i": i})).await));
            }
            got
        }));
    }
    let mut by_channel: std::collections::HashMap<String, Vec<i64>> = std::collections::HashMap::new();
    for t in tasks {
        for (id, seq) in t.await.unwrap() {
            by_channel.entry(id).or_default().push(seq);
        }
    }
    let mut total = 0;
    for (_, mut seqs) in by_channel {
        seqs.sort_unstable();
        total += seqs.len();
        assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
    }
    assert_eq!(total, 48 * 8);
}
