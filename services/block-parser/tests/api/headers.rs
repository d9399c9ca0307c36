//! The headers API against the node's own `getblockheader`, the tips websocket, reorgs and deep
//! forks.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};
use test_support::{BitcoindNode, NodeOptions};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{INTERNAL_TOKEN, stack};

async fn best_hash(node: &BitcoindNode) -> String {
    node.rpc("getbestblockhash", json!([])).await.as_str().unwrap().to_owned()
}

async fn node_header(node: &BitcoindNode, hash: &str) -> (Value, Vec<u8>) {
    let json = node.rpc("getblockheader", json!([hash, true])).await;
    let raw = hex::decode(node.rpc("getblockheader", json!([hash, false])).await.as_str().unwrap()).unwrap();
    (json, raw)
}

#[tokio::test]
async fn every_endpoint_agrees_with_the_nodes_headers_in_json_and_binary() {
    let node = BitcoindNode::start().await;
    node.generate(9).await;
    // History arrives 16 headers a round: the first walk stops short and the gaps are filled.
    let s = stack(&[("HEADER_WALK_BATCH", "16")]).await;
    s.add_node(&node).await;
    let tip = best_hash(&node).await;
    s.wait_for_tip(&tip).await;
    let height = node.rpc("getblockcount", json!([])).await.as_u64().unwrap();
    assert_eq!(height, 110);

    // Every height, JSON and binary, by height and by hash (once the history is filled in).
    let deadline = Instant::now() + Duration::from_secs(20);
    while s.json("/api/v1/headers/by-height?height=0&count=2000").await.as_array().unwrap().len() as u64
        <= height
    {
        assert!(Instant::now() < deadline, "the history was not filled in");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let all: Vec<Value> =
        serde_json::from_value(s.json("/api/v1/headers/by-height?height=0&count=2000").await).unwrap();
    assert_eq!(all.len() as u64, height + 1, "the history down to genesis");
    let raw_all = s.bytes("/api/v1/headers/by-height?height=0&count=2000").await;
    assert_eq!(raw_all.len() as u64, 80 * (height + 1));
    for (h, ours) in all.iter().enumerate() {
        let hash = node.rpc("getblockhash", json!([h])).await.as_str().unwrap().to_owned();
        let (theirs, raw) = node_header(&node, &hash).await;
        assert_eq!(ours["hash"], hash);
        assert_eq!(ours["version"], theirs["version"]);
        assert_eq!(ours["merkleRoot"], theirs["merkleroot"]);
        assert_eq!(ours["creationTimestamp"], theirs["time"]);
        assert_eq!(
            ours["difficultyTarget"].as_u64().unwrap(),
            u64::from_str_radix(theirs["bits"].as_str().unwrap(), 16).unwrap()
        );
        assert_eq!(ours["nonce"], theirs["nonce"]);
        assert_eq!(ours["transactionCount"], theirs["num_tx"]);
        assert_eq!(ours["work"], 2, "regtest's target is worth 2");
        if h > 0 {
            assert_eq!(ours["prevBlockHash"], theirs["previousblockhash"]);
        }
        assert_eq!(&raw_all[80 * h..80 * (h + 1)], &raw[..], "height {h}");
        assert_eq!(s.bytes(&format!("/api/v1/headers/{hash}")).await, raw);
        assert_eq!(&s.json(&format!("/api/v1/headers/{hash}")).await, ours);
    }
    // A window, and the defaults (height 0, count 1).
    let window: Vec<Value> =
        serde_json::from_value(s.json("/api/v1/headers/by-height?height=100&count=5").await).unwrap();
    assert_eq!(
        window.iter().map(|h| h["hash"].clone()).collect::<Vec<_>>(),
        all[100..105].iter().map(|h| h["hash"].clone()).collect::<Vec<_>>()
    );
    let first: Vec<Value> = serde_json::from_value(s.json("/api/v1/headers/by-height").await).unwrap();
    assert_eq!(first, all[..1]);

    // Tips: the best one, JSON and 84-byte records.
    let tips: Vec<Value> = serde_json::from_value(s.json("/api/v1/headers/tips").await).unwrap();
    assert_eq!(tips.len(), 1);
    let (theirs, raw) = node_header(&node, &tip).await;
    assert_eq!(tips[0]["state"], "LONGEST_CHAIN");
    assert_eq!(tips[0]["height"], height);
    assert_eq!(tips[0]["header"]["hash"], tip);
    assert_eq!(
        tips[0]["chainWork"].as_u64().unwrap(),
        u64::from_str_radix(theirs["chainwork"].as_str().unwrap().trim_start_matches('0'), 16).unwrap()
    );
    let record = s.bytes("/api/v1/headers/tips?longest_chain=1").await;
    assert_eq!(&record[..80], &raw[..]);
    assert_eq!(u32::from_le_bytes(record[80..84].try_into().unwrap()) as u64, height);

    // Mistakes: 4xx with JSON bodies.
    for (path, status) in [
        ("/api/v1/headers/nothex", 400),
        (&format!("/api/v1/headers/{}", "ab".repeat(32))[..], 404),
        ("/api/v1/headers/by-height?count=0", 400),
        ("/api/v1/headers/by-height?count=2001", 400),
        ("/api/v1/headers/by-height?height=x", 400),
    ] {
        let resp = s.get(path, "application/json").await;
        assert_eq!(resp.status(), status, "{path}");
        let problem: Value = resp.json().await.unwrap();
        assert_eq!(problem["status"], status);
    }

    // The gateway routes the headers API here (no HeaderSV needed).
    let via_gateway: Vec<Value> =
        s.http.get(format!("{}/api/v1/headers/tips", s.gateway)).send().await.unwrap().json().await.unwrap();
    assert_eq!(via_gateway[0]["header"]["hash"], tip);
}

/// The next binary frame within `wait`.
async fn next_binary(
    socket: &mut tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    wait: Duration,
) -> Option<Vec<u8>> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, socket.next()).await {
            Ok(Some(Ok(Message::Binary(b)))) => return Some(b.to_vec()),
            Ok(Some(Ok(_))) => {}
            _ => return None,
        }
    }
}

#[tokio::test]
async fn the_tips_websocket_sends_each_new_best_tip() {
    let node = BitcoindNode::start().await;
    // A long catch-up interval: only the hashblock announcement makes it quick.
    let s = stack(&[("CATCH_UP_INTERVAL_MS", "60000")]).await;
    s.add_node(&node).await;
    // The first round ran before the node was listed; woken until the list (read again every
    // few seconds) has it.
    let wake = || {
        s.http
            .post(format!("{}/internal/blocks", s.block_parser))
            .header("x-internal-token", INTERNAL_TOKEN)
            .send()
    };
    let tip = best_hash(&node).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while s.get(&format!("/api/v1/headers/{tip}"), "application/json").await.status() != 200 {
        assert_eq!(wake().await.unwrap().status(), 202);
        assert!(Instant::now() < deadline, "the node's chain was not followed");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    s.wait_for_tip(&tip).await;
    let url = format!("{}/api/v1/headers/tips/websocket", s.gateway.replacen("http://", "ws://", 1));
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    for _ in 0..3 {
        node.generate(1).await;
        let started = Instant::now();
        assert_eq!(wake().await.unwrap().status(), 202);
        let frame = next_binary(&mut socket, Duration::from_secs(5)).await.expect("a frame for the new tip");
        assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
        let tip = best_hash(&node).await;
        let (theirs, raw) = node_header(&node, &tip).await;
        assert_eq!(frame.len(), 84);
        assert_eq!(&frame[..80], &raw[..]);
        assert_eq!(
            u64::from(u32::from_le_bytes(frame[80..].try_into().unwrap())),
            theirs["height"].as_u64().unwrap()
        );
    }
    // The announcement is internal: the gateway does not route it, and a caller without the
    // credential is refused.
    let anonymous = s.http.post(format!("{}/internal/blocks", s.block_parser)).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
}

#[tokio::test]
async fn account_websockets_get_each_new_tip_as_bsvapi_headers_tip() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let node = BitcoindNode::start().await;
    let s = stack(&[]).await;
    s.add_node(&node).await;
    s.wait_for_tip(&best_hash(&node).await).await;
    let db = test_support::TestDatabase::create().await;
    let env: std::collections::HashMap<&str, String> = std::collections::HashMap::from([
        ("DATABASE_URL", db.url().to_owned()),
        ("INTERNAL_TOKEN", INTERNAL_TOKEN.to_owned()),
        ("BLOCK_PARSER_URL", s.block_parser.clone()),
        ("TIPS_POLL_INTERVAL_MS", "200".to_owned()),
    ]);
    let settings: peer_channels::settings::PeerChannelsSettings =
        service_kit::settings::load_from(None, |k| env.get(k).cloned()).unwrap();
    let app = peer_channels::Application::build(settings, test_support::local_listener()).await.unwrap();
    let url = format!("ws://127.0.0.1:{}/api/v1/web-socket", app.port());
    tokio::spawn(app.run_until_stopped());
    // Two account sockets, JSON and binary mode, as the gateway opens them for account 1.
    let mut sockets = Vec::new();
    for accept in ["application/json", "application/octet-stream"] {
        let mut request = url.clone().into_client_request().unwrap();
        let headers = request.headers_mut();
        headers.insert("x-internal-token", INTERNAL_TOKEN.parse().unwrap());
        headers.insert("x-caller-account", "1".parse().unwrap());
        headers.insert("accept", accept.parse().unwrap());
        sockets.push(tokio_tungstenite::connect_async(request).await.unwrap().0);
    }
    // The poller's first read is its baseline.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let block = node.generate(1).await.remove(0);
    for socket in &mut sockets {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let frame = loop {
            match tokio::time::timeout_at(deadline, socket.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => break serde_json::from_str::<Value>(&t).unwrap(),
                Ok(Some(Ok(_))) => {}
                other => panic!("no tip frame: {other:?}"),
            }
        };
        assert_eq!(frame["message_type"], "bsvapi.headers.tip");
        let longest: Vec<&Value> =
            frame["result"].as_array().unwrap().iter().filter(|t| t["state"] == "LONGEST_CHAIN").collect();
        assert_eq!(longest.len(), 1, "{frame}");
        assert_eq!(longest[0]["header"]["hash"], block);
    }
}

#[tokio::test]
async fn a_reorg_moves_the_best_chain_and_a_deep_fork_is_ignored() {
    let node = BitcoindNode::start().await;
    let s = stack(&[("MAX_BLOCK_CHAIN_LENGTH_FOR_FORK", "5")]).await;
    s.add_node(&node).await;
    let old_tip = best_hash(&node).await;
    s.wait_for_tip(&old_tip).await;

    // A one-block reorg: the tip is invalidated and two blocks are mined on its parent.
    node.rpc("invalidateblock", json!([old_tip])).await;
    node.generate(2).await;
    let new_tip = best_hash(&node).await;
    s.wait_for_tip(&new_tip).await;
    let tips: Vec<Value> = serde_json::from_value(s.json("/api/v1/headers/tips").await).unwrap();
    assert_eq!(tips.len(), 2, "{tips:#?}");
    assert_eq!(
        (tips[0]["state"].as_str(), tips[0]["header"]["hash"].as_str()),
        (Some("LONGEST_CHAIN"), Some(&new_tip[..]))
    );
    assert_eq!(
        (tips[1]["state"].as_str(), tips[1]["header"]["hash"].as_str()),
        (Some("STALE"), Some(&old_tip[..]))
    );
    // By height the best chain is the new branch's.
    let height = node.rpc("getblockcount", json!([])).await.as_u64().unwrap();
    let best: Vec<Value> = serde_json::from_value(
        s.json(&format!("/api/v1/headers/by-height?height={}&count=10", height - 1)).await,
    )
    .unwrap();
    assert_eq!(best[0]["hash"], node.rpc("getblockhash", json!([height - 1])).await);
    assert_eq!(best[1]["hash"], new_tip);

    // Another node whose chain shares nothing above genesis with ours, and has more work: its
    // fork point is far deeper than 5 blocks, so it is ignored.
    let stranger = BitcoindNode::start_with(NodeOptions::default()).await;
    stranger.generate(20).await;
    s.add_node(&stranger).await;
    tokio::time::sleep(Duration::from_secs(7)).await;
    let tips: Vec<Value> =
        serde_json::from_value(s.json("/api/v1/headers/tips?longest_chain=1").await).unwrap();
    assert_eq!(tips[0]["header"]["hash"], new_tip, "the deep fork was not followed");
    let stranger_tip = best_hash(&stranger).await;
    assert_eq!(s.get(&format!("/api/v1/headers/{stranger_tip}"), "application/json").await.status(), 404);
}
