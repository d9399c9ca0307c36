//! Websocket notifications: across replicas, resumable without loss, closed on revocation,
//! the account socket's modes.

use std::time::Duration;

use futures_util::SinkExt;
use reqwest::Method;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::helpers::{closed_within, next_frame, next_json, stack, stack_with, ws};
use crate::scenarios::urlencode;

const WAIT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn a_write_on_one_replica_reaches_subscribers_on_every_replica() {
    let s = stack_with(2, &[]).await;
    let master = s.account().await;
    let (id, owner) = s.channel(&master, false).await;
    let (_, reader) = s.token(&master, &id, true, false).await;
    let path = format!("/api/v1/channel/{id}/notify?token={}", urlencode(&reader));
    // One subscriber through the gateway (replica 0), one straight on replica 1.
    let mut here = ws(&s.gateway, &path, None).await.unwrap();
    let mut there = ws(&s.replicas[1], &path, None).await.unwrap();
    let seq = s.write(&id, &owner, &json!({"hello": 1})).await;
    for socket in [&mut here, &mut there] {
        let n = next_json(socket, WAIT).await.expect("notification on every replica");
        assert_eq!(n["sequence"], seq);
        assert_eq!(n["channel_id"], id);
        let mut keys: Vec<String> = n.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, ["channel_id", "content_type", "received", "sequence"]);
    }
    // A write straight on replica 1 reaches the gateway's subscriber on replica 0.
    let resp = s
        .http
        .post(format!("{}/api/v1/channel/{id}", s.replicas[1]))
        .bearer_auth(&owner)
        .json(&json!({"hello": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(next_json(&mut here, WAIT).await.unwrap()["sequence"], seq + 1);
}

#[tokio::test]
async fn a_subscriber_that_reconnects_with_since_gets_every_missed_notification_once() {
    let s = stack().await;
    let master = s.account().await;
    let (id, owner) = s.channel(&master, false).await;
    let (_, reader) = s.token(&master, &id, true, false).await;
    let base = format!("/api/v1/channel/{id}/notify?token={}", urlencode(&reader));
    let mut socket = ws(&s.gateway, &base, None).await.unwrap();
    for i in 0..3 {
        s.write(&id, &owner, &json!({"i": i})).await;
    }
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(next_json(&mut socket, WAIT).await.unwrap()["sequence"].as_i64().unwrap());
    }
    assert_eq!(seen, [1, 2, 3]);
    socket.close(None).await.unwrap();
    drop(socket);
    // Missed while away.
    for i in 3..8 {
        s.write(&id, &owner, &json!({"i": i})).await;
    }
    let mut socket = ws(&s.gateway, &format!("{base}&since=3"), None).await.unwrap();
    // Written while the replay runs and after it.
    let writer = {
        let (s_http, url, owner) = (s.http.clone(), s.url(&format!("/api/v1/channel/{id}")), owner.clone());
        tokio::spawn(async move {
            for i in 8..12 {
                let resp = s_http.post(&url).bearer_auth(&owner).json(&json!({"i": i})).send().await.unwrap();
                assert_eq!(resp.status(), 200);
            }
        })
    };
    let mut got = Vec::new();
    while got.len() < 9 {
        let n = next_json(&mut socket, WAIT).await.expect("every missed and new notification");
        got.push(n["sequence"].as_i64().unwrap());
    }
    writer.await.unwrap();
    assert_eq!(got, (4..=12).collect::<Vec<_>>(), "in order, each once");
    let extra = next_json(&mut socket, Duration::from_millis(500)).await;
    assert!(extra.is_none(), "no duplicates: {extra:?}");
    // A `since` beyond the head counts from the head: the next write still arrives.
    let mut ahead = ws(&s.gateway, &format!("{base}&since=1000"), None).await.unwrap();
    let seq = s.write(&id, &owner, &json!({"after": "ahead"})).await;
    assert_eq!(next_json(&mut ahead, WAIT).await.unwrap()["sequence"], seq);
    // A bad `since` is a client mistake.
    assert_eq!(ws(&s.gateway, &format!("{base}&since=x"), None).await.err(), Some(400));
}

#[tokio::test]
async fn revoking_a_token_closes_its_open_socket_at_once() {
    let s = stack().await;
    let master = s.account().await;
    let (id, owner) = s.channel(&master, false).await;
    let (token_id, reader) = s.token(&master, &id, true, false).await;
    let mut socket =
        ws(&s.gateway, &format!("/api/v1/channel/{id}/notify?token={}", urlencode(&reader)), None)
            .await
            .unwrap();
    let resp = s
        .req(
            Method::DELETE,
            &format!("/api/v1/channel/manage/{id}/api-token/{token_id}"),
            Some(&format!("Bearer {master}")),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    s.write(&id, &owner, &json!({"after": "revocation"})).await;
    assert!(next_frame(&mut socket, WAIT).await.is_none(), "closed, and nothing sent after revocation");
}

#[tokio::test]
async fn the_account_socket_speaks_json_or_binary_and_skips_the_accounts_own_writes() {
    let s = stack().await;
    let master = s.account().await;
    let (id, owner) = s.channel(&master, false).await;
    let (_, other) = s.token(&master, &id, true, true).await;
    let path = format!("/api/v1/web-socket?token={}", urlencode(&master));
    let mut json_socket = ws(&s.gateway, &path, None).await.unwrap();
    let mut binary_socket = ws(&s.gateway, &path, Some("application/octet-stream")).await.unwrap();
    s.write(&id, &owner, &json!({"own": true})).await;
    let seq = s.write(&id, &other, &json!({"other": true})).await;
    let n = next_json(&mut json_socket, WAIT).await.unwrap();
    assert_eq!(n["message_type"], "bsvapi.channels.notification");
    assert_eq!(n["result"]["sequence"], seq, "the owner's own write was skipped");
    match next_frame(&mut binary_socket, WAIT).await.unwrap() {
        WsMessage::Binary(b) => {
            assert_eq!(&b[..4], &1u32.to_be_bytes());
            let result: Value = serde_json::from_slice(&b[4..]).unwrap();
            assert_eq!(result["sequence"], seq);
            assert_eq!(result.as_object().unwrap().len(), 4);
        }
        other => panic!("expected a binary frame, got {other:?}"),
    }
    // Any client data frame closes the account socket.
    json_socket.send(WsMessage::Text("hello".into())).await.unwrap();
    assert!(next_frame(&mut json_socket, WAIT).await.is_none());
    // Another account's master token gets nothing of this account.
    let stranger = s.account().await;
    let mut theirs =
        ws(&s.gateway, &format!("/api/v1/web-socket?token={}", urlencode(&stranger)), None).await.unwrap();
    s.write(&id, &other, &json!({"again": true})).await;
    assert!(next_frame(&mut theirs, Duration::from_millis(500)).await.is_none());
}

#[tokio::test]
async fn sockets_that_fall_behind_the_fan_out_still_get_every_notification_in_order() {
    // A fan-out that holds two events: a burst of writes overruns it, so the sockets must notice
    // and read what they missed from the database.
    // Catch-ups read the database three messages at a time, so they page too.
    let s = stack_with(1, &[("WEBSOCKET_FANOUT_CAPACITY", "2"), ("MESSAGE_PAGE_SIZE", "3")]).await;
    let master = s.account().await;
    let (id, owner) = s.channel(&master, false).await;
    let (_, other) = s.token(&master, &id, true, true).await;
    let mut channel_socket =
        ws(&s.gateway, &format!("/api/v1/channel/{id}/notify?token={}", urlencode(&owner)), None)
            .await
            .unwrap();
    let mut account_socket =
        ws(&s.gateway, &format!("/api/v1/web-socket?token={}", urlencode(&master)), None).await.unwrap();
    // Writer 0 is the owner (the account socket skips its writes), writers 1..8 another token.
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let token = if w == 0 { owner.clone() } else { other.clone() };
            let (http, url) = (s.http.clone(), s.url(&format!("/api/v1/channel/{id}")));
            tokio::spawn(async move {
                let mut seqs = Vec::new();
                for i in 0..10 {
                    let resp = http
                        .post(&url)
                        .bearer_auth(&token)
                        .json(&json!({"w": w, "i": i}))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(resp.status(), 200);
                    seqs.push(resp.json::<Value>().await.unwrap()["sequence"].as_i64().unwrap());
                }
                (w, seqs)
            })
        })
        .collect();
    let mut not_owner: Vec<i64> = Vec::new();
    for w in writers {
        let (w, seqs) = w.await.unwrap();
        if w != 0 {
            not_owner.extend(seqs);
        }
    }
    not_owner.sort_unstable();
    let mut got = Vec::new();
    while got.len() < 80 {
        let n = next_json(&mut channel_socket, WAIT).await.expect("every channel notification");
        got.push(n["sequence"].as_i64().unwrap());
    }
    assert_eq!(got, (1..=80).collect::<Vec<_>>());
    assert!(next_json(&mut channel_socket, Duration::from_millis(300)).await.is_none());
    let mut got = Vec::new();
    while got.len() < not_owner.len() {
        let n = next_json(&mut account_socket, WAIT).await.expect("every account notification");
        got.push(n["result"]["sequence"].as_i64().unwrap());
    }
    assert_eq!(got, not_owner, "every write but the owner's, in order, once");
    assert!(next_json(&mut account_socket, Duration::from_millis(300)).await.is_none());
}

#[tokio::test]
async fn sockets_are_pinged_at_the_heartbeat_interval() {
    use futures_util::StreamExt;
    let s = stack_with(1, &[("WEBSOCKET_HEARTBEAT_SECS", "1")]).await;
    let master = s.account().await;
    let (id, owner) = s.channel(&master, false).await;
    for path in [
        format!("/api/v1/channel/{id}/notify?token={}", urlencode(&owner)),
        format!("/api/v1/web-socket?token={}", urlencode(&master)),
    ] {
        let mut socket = ws(&s.gateway, &path, None).await.unwrap();
        let frame =
            tokio::time::timeout(Duration::from_secs(5), socket.next()).await.expect("a frame in time");
        assert!(matches!(frame, Some(Ok(WsMessage::Ping(_)))), "{path}: {frame:?}");
    }
}

#[tokio::test]
async fn a_replica_whose_listener_connection_dies_catches_up_without_loss() {
    use diesel_async::RunQueryDsl;
    let s = stack_with(2, &[]).await;
    let master = s.account().await;
    let (id, owner) = s.channel(&master, false).await;
    let (_, reader) = s.token(&master, &id, true, false).await;
    // The subscriber sits on replica 1; writes go through the gateway to replica 0.
    let mut socket =
        ws(&s.replicas[1], &format!("/api/v1/channel/{id}/notify?token={}", urlencode(&reader)), None)
            .await
            .unwrap();
    let first = s.write(&id, &owner, &json!({"before": true})).await;
    assert_eq!(next_json(&mut socket, WAIT).await.unwrap()["sequence"], first);

    // Cut every LISTEN connection of this database (both replicas'), then write while they are down.
    let db = db_kit::Db::new(db_kit::DbSettings::new(s.db.url(), peer_channels::SCHEMA)).unwrap();
    let mut conn = db.conn().await.unwrap();
    #[derive(diesel::QueryableByName)]
    struct Killed {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let killed: Killed = diesel::sql_query(
        "SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity \
         WHERE datname = current_database() AND application_name = $1",
    )
    .bind::<diesel::sql_types::Text, _>(peer_channels::events::LISTENER_NAME)
    .get_result(&mut conn)
    .await
    .unwrap();
    assert_eq!(killed.n, 2, "one listener per replica");
    let during: Vec<i64> = {
        let mut v = Vec::new();
        for i in 0..3 {
            v.push(s.write(&id, &owner, &json!({"during": i})).await);
        }
        v
    };
    // Readiness says so while the listener reconnects, and recovers.
    let ready =
        |base: String| async move { reqwest::get(format!("{base}/ready")).await.unwrap().status().as_u16() };
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while ready(s.replicas[1].clone()).await != 200 {
        assert!(std::time::Instant::now() < deadline, "replica 1 did not become ready again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // No further write: the reconnect alone must bring what was missed.
    let mut got = Vec::new();
    while got.len() < during.len() {
        let n = next_json(&mut socket, Duration::from_secs(15)).await.expect("every missed notification");
        got.push(n["sequence"].as_i64().unwrap());
    }
    assert_eq!(got, during, "the writes made while the listener was down, once each");
    let after = s.write(&id, &owner, &json!({"after": true})).await;
    assert_eq!(next_json(&mut socket, WAIT).await.unwrap()["sequence"], after);
}

#[tokio::test]
async fn the_owning_accounts_master_token_opens_its_channels_notify_socket() {
    let s = stack().await;
    let master = s.account().await;
    let other_account = s.account().await;
    let (id, owner) = s.channel(&master, false).await;
    let (_, writer) = s.token(&master, &id, false, true).await;
    let path = |token: &str| format!("/api/v1/channel/{id}/notify?token={}", urlencode(token));
    let mut socket = ws(&s.gateway, &path(&master), None).await.expect("the master token opens it");
    let seq = s.write(&id, &writer, &json!({"to": "the account"})).await;
    assert_eq!(next_json(&mut socket, WAIT).await.unwrap()["sequence"], seq);
    // The account's own writes (its owner token) are on its channel socket too.
    let seq = s.write(&id, &owner, &json!({"from": "the account"})).await;
    assert_eq!(next_json(&mut socket, WAIT).await.unwrap()["sequence"], seq);
    // Another account's master token does not reach the channel; nothing at all is a bad request.
    assert_eq!(ws(&s.gateway, &path(&other_account), None).await.err(), Some(404));
    assert_eq!(ws(&s.gateway, &format!("/api/v1/channel/{id}/notify"), None).await.err(), Some(400));
    // The account socket: no token 400 (as the reference), a wrong one 401.
    assert_eq!(ws(&s.gateway, "/api/v1/web-socket", None).await.err(), Some(400));
    assert_eq!(ws(&s.gateway, "/api/v1/web-socket?token=nope", None).await.err(), Some(401));
}

#[tokio::test]
async fn revoking_a_master_token_closes_its_sockets_on_every_gateway_replica() {
    let s = stack().await;
    let second_gateway = s.another_gateway().await;
    let master = s.account().await;
    let (id, owner) = s.channel(&master, false).await;
    let mut on_first =
        ws(&s.gateway, &format!("/api/v1/web-socket?token={}", urlencode(&master)), None).await.unwrap();
    let mut on_second =
        ws(&second_gateway, &format!("/api/v1/channel/{id}/notify?token={}", urlencode(&master)), None)
            .await
            .unwrap();
    let (_, reader) = s.token(&master, &id, true, false).await;
    let mut channel_token_socket =
        ws(&second_gateway, &format!("/api/v1/channel/{id}/notify?token={}", urlencode(&reader)), None)
            .await
            .unwrap();

    // Revoked through the first replica: both sockets close at once, on both replicas.
    let resp = s.http.delete(s.url("/api/v1/account/token")).bearer_auth(&master).send().await.unwrap();
    assert_eq!(resp.status(), 204);
    assert!(closed_within(&mut on_first, WAIT).await, "the account socket on the first replica");
    assert!(closed_within(&mut on_second, WAIT).await, "the notify socket on the second replica");
    assert_eq!(
        ws(&second_gateway, &format!("/api/v1/web-socket?token={}", urlencode(&master)), None).await.err(),
        Some(401)
    );
    // A socket opened with a channel token is not the master token's: it stays open.
    let seq = s.write(&id, &owner, &json!({"still": "here"})).await;
    assert_eq!(next_json(&mut channel_token_socket, WAIT).await.unwrap()["sequence"], seq);
}
