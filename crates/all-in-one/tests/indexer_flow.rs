//! The wallet's flow against the native indexer, every service running on a real PostgreSQL and a
//! real regtest node: an account and a peer channel, a tip filter for a P2PKH pushdata hash with
//! the channel as callback, a payment to it (the match arrives as a channel message and on the
//! account socket), the block that mines it (the block match too), an outpoint watched and spent
//! (a notification in the mempool and again when mined), and the chain-data endpoints on the way.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine;
use futures_util::StreamExt;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use test_support::{BitcoindNode, TestDatabase};
use tokio_tungstenite::tungstenite::Message;

const ADMIN_KEY: &str = "indexer-flow-admin-key-0123456789";

struct Stack {
    gateway: String,
    indexer: String,
    http: reqwest::Client,
    _db: TestDatabase,
}

async fn start(node: &BitcoindNode) -> Stack {
    test_support::init_test_tracing();
    let db = TestDatabase::create().await;
    let gateway_port = test_support::free_port();
    let gateway = format!("http://127.0.0.1:{gateway_port}");
    let mut env: HashMap<String, String> = HashMap::from([
        ("DATABASE_URL".into(), db.url().to_owned()),
        ("INTERNAL_TOKEN".into(), "indexer-flow-internal-token".into()),
        ("WIF_PRIVATEKEY".into(), "cN9spWsvaxA8taS7DFMxnk1yJD2gaF2PX1npuTpy3vuZFJdwavaw".into()),
        ("RESTADMIN_APIKEY".into(), ADMIN_KEY.into()),
        ("LISTEN_ADDR".into(), format!("127.0.0.1:{gateway_port}")),
        ("PUBLIC_URL".into(), gateway.clone()),
        ("HREF_HOST".into(), "127.0.0.1".into()),
        ("HREF_PORT".into(), gateway_port.to_string()),
        ("NOTIFICATION_BLOCK_PRIVATE_TARGETS".into(), "false".into()),
        ("BLOCK_POLL_INTERVAL_MS".into(), "200".into()),
        ("CATCH_UP_INTERVAL_MS".into(), "200".into()),
    ]);
    for (_, var, _) in all_in_one::INTERNAL {
        env.insert(var.into(), format!("http://127.0.0.1:{}", test_support::free_port()));
    }
    let lookup = |k: &str| env.get(k).cloned();
    let all = all_in_one::AllInOne::build(&lookup, None).await.unwrap();
    let indexer_port = all.ports().iter().find(|(s, _)| *s == "indexer").unwrap().1;
    tokio::spawn(all.run_until_stopped());
    let indexer = format!("http://127.0.0.1:{indexer_port}");
    let stack = Stack { gateway, indexer, http: reqwest::Client::new(), _db: db };
    let node_body = json!({"id": format!("127.0.0.1:{}", node.rpc_port), "username": node.rpc_user, "password": node.rpc_password});
    let added =
        stack.http.post(stack.url("/api/v1/Node")).header("api-key", ADMIN_KEY).json(&node_body).send().await;
    assert_eq!(added.unwrap().status(), 201);
    stack
}

impl Stack {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.gateway)
    }

    /// A new account's master token.
    async fn sign_up(&self) -> String {
        let key = k256::ecdsa::SigningKey::from_slice(&[7; 32]).unwrap();
        let when =
            time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap();
        let message = format!("{}/api/v1/account/register {when}", self.gateway);
        let signature = gateway::accounts::signed_message::sign(&key, message.as_bytes());
        let body = json!({
            "public_key_hex": hex::encode(key.verifying_key().to_sec1_point(true).as_bytes()),
            "signature_hex": hex::encode(signature),
            "message_hex": hex::encode(message.as_bytes()),
        });
        let resp = self.http.post(self.url("/api/v1/account/register")).json(&body).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        resp.json::<Value>().await.unwrap()["api_key"].as_str().unwrap().to_owned()
    }

    /// A GET with `accept` (reqwest's `*/*` when `None`).
    async fn get(&self, path: &str, accept: Option<&str>) -> reqwest::Response {
        let mut req = self.http.get(self.url(path));
        if let Some(accept) = accept {
            req = req.header("accept", accept);
        }
        req.send().await.unwrap()
    }

    /// A JSON POST with a bearer token, accepting JSON (the indexer endpoints refuse `*/*` where
    /// the reference does).
    async fn post(&self, path: &str, bearer: &str, body: Value) -> reqwest::Response {
        let req = self.http.post(self.url(path)).bearer_auth(bearer).header("accept", "application/json");
        req.json(&body).send().await.unwrap()
    }

    /// The channel's messages' decoded payloads, read with `token`.
    async fn messages(&self, channel: &str, token: &str) -> Vec<Value> {
        let resp = self
            .http
            .get(self.url(&format!("/api/v1/channel/{channel}")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let list: Vec<Value> = resp.json().await.unwrap();
        list.iter()
            .map(|m| {
                let raw =
                    base64::engine::general_purpose::STANDARD.decode(m["payload"].as_str().unwrap()).unwrap();
                serde_json::from_slice(&raw).unwrap()
            })
            .collect()
    }

    /// Waits until the channel holds a match batch for `txid` with `block_id`.
    async fn wait_for_match(&self, channel: &str, token: &str, txid: &str, block_id: Value) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let found = self.messages(channel, token).await.into_iter().find(|m| {
                m["blockId"] == block_id
                    && m["matches"].as_array().unwrap().iter().any(|x| x["transactionId"] == txid)
            });
            if let Some(m) = found {
                return m;
            }
            assert!(Instant::now() < deadline, "no match for {txid} in block {block_id}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next text frame whose `message_type` is `kind`.
async fn next_frame(socket: &mut Socket, kind: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let frame = tokio::time::timeout_at(deadline, socket.next()).await.expect(kind).unwrap().unwrap();
        if let Message::Text(text) = frame {
            let v: Value = serde_json::from_str(&text).unwrap();
            if v["message_type"] == kind {
                return v;
            }
        }
    }
}

/// Transactions the indexer has matched so far (its metric).
async fn matched(stack: &Stack) -> u64 {
    let metrics = stack
        .http
        .get(format!("{}/metrics", stack.indexer))
        .header("x-internal-token", "indexer-flow-internal-token")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    metrics
        .lines()
        .find(|l| !l.starts_with('#') && l.contains("indexer_transactions_matched_total"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Waits until mempool transactions reach the indexer: a ZMQ subscriber misses what is published
/// before its subscription reached the publisher, so a warm-up transaction is sent until one is
/// matched.
async fn wait_for_mempool_feed(stack: &Stack, node: &BitcoindNode) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let before = matched(stack).await;
    loop {
        node.send_to_new_address(0.01).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        if matched(stack).await > before {
            return;
        }
        assert!(Instant::now() < deadline, "no mempool transaction reached the indexer");
    }
}

/// Waits until zmq-listener takes every topic of the node, `rawtx` included.
async fn wait_for_subscriptions(stack: &Stack) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status: Value = stack
            .http
            .get(stack.url("/api/v1/status/zmq"))
            .header("api-key", ADMIN_KEY)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap_or_default();
        let ready = status.as_array().and_then(|nodes| nodes.first()).is_some_and(|n| {
            n["isResponding"] == true
                && n["endpoints"]
                    .as_array()
                    .is_some_and(|e| e.iter().any(|e| e["topic"].to_string().contains("pubrawtx")))
        });
        if ready {
            return;
        }
        assert!(Instant::now() < deadline, "zmq-listener did not subscribe: {status}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_wallet_learns_of_its_payment_and_its_spend_in_the_mempool_and_in_the_block() {
    let node = BitcoindNode::start().await;
    let stack = start(&node).await;
    let master = stack.sign_up().await;

    // A channel and a write token for the tip-filter callback, as ElectrumSV sets it up.
    let channel = stack.post("/api/v1/channel/manage", &master, json!({"public_read": false, "public_write": false, "sequenced": false, "retention": {"min_age_days": 0, "max_age_days": 0, "auto_prune": true}})).await;
    assert_eq!(channel.status(), 200);
    let channel: Value = channel.json().await.unwrap();
    let channel_id = channel["id"].as_str().unwrap().to_owned();
    let href = channel["href"].as_str().unwrap().to_owned();
    let owner = channel["access_tokens"][0]["token"].as_str().unwrap().to_owned();
    let token = stack
        .post(
            &format!("/api/v1/channel/manage/{channel_id}/api-token"),
            &master,
            json!({"description": "tips", "can_read": false, "can_write": true}),
        )
        .await;
    let write_token = token.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_owned();
    let settings = stack
        .post(
            "/api/v1/indexer",
            &master,
            json!({"tipFilterCallbackUrl": href, "tipFilterCallbackToken": format!("Bearer {write_token}")}),
        )
        .await;
    let status = settings.status();
    let settings: Value = settings.json().await.unwrap();
    assert_eq!(status, 200, "{settings}");
    assert_eq!(settings["tipFilterCallbackUrl"], href);

    // The account socket (JSON frames).
    let ws_url =
        format!("{}/api/v1/web-socket?token={}", stack.gateway.replacen("http", "ws", 1), urlencode(&master));
    let (mut socket, _) = tokio_tungstenite::connect_async(ws_url).await.unwrap();

    // A tip filter for a P2PKH address of the node's wallet.
    let address = node.new_address().await;
    let info = node.rpc("validateaddress", json!([address])).await;
    let script = info["scriptPubKey"].as_str().unwrap().to_owned();
    let pkh = hex::decode(&script[6..46]).unwrap();
    let pushdata_hash = hex::encode(Sha256::digest(&pkh));
    let registered = stack.post("/api/v1/transaction/filter", &master, json!([[pushdata_hash, 3600]])).await;
    assert_eq!(registered.status(), 200);
    let created: Value = registered.json().await.unwrap();
    assert!(created["dateCreated"].as_str().unwrap().len() == 19, "ISO without a zone: {created}");
    let again = stack.post("/api/v1/transaction/filter", &master, json!([[pushdata_hash, 3600]])).await;
    assert_eq!(again.status(), 400, "already registered (10024)");
    let star =
        stack.http.get(stack.url("/api/v1/transaction/filter")).bearer_auth(&master).send().await.unwrap();
    assert_eq!(star.status(), 400, "Accept */* is refused here, as in the reference");
    let listed = stack
        .http
        .get(stack.url("/api/v1/transaction/filter"))
        .bearer_auth(&master)
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    let listed: Value =
        serde_json::from_str(listed.json::<Value>().await.unwrap().as_str().unwrap()).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);

    wait_for_subscriptions(&stack).await;
    wait_for_mempool_feed(&stack, &node).await;

    // Pay to it: the mempool match arrives in the channel and is announced on the socket.
    let txid = node.rpc("sendtoaddress", json!([address, 1.0])).await.as_str().unwrap().to_owned();
    let matched = stack.wait_for_match(&channel_id, &owner, &txid, Value::Null).await;
    let m = &matched["matches"][0];
    assert_eq!(m["pushDataHashHex"], pushdata_hash);
    assert_eq!(m["flags"], 1, "in an output");
    let note = next_frame(&mut socket, "bsvapi.channels.notification").await;
    assert_eq!(note["result"]["channel_id"], channel_id);

    // The transaction endpoint, JSON and binary.
    let tx_hex: Value = stack.get(&format!("/api/v1/transaction/{txid}"), None).await.json().await.unwrap();
    let raw = stack
        .get(&format!("/api/v1/transaction/{txid}"), Some("application/octet-stream"))
        .await
        .bytes()
        .await
        .unwrap();
    assert_eq!(tx_hex.as_str().unwrap(), hex::encode(&raw));
    let vout = bsv_primitives::Transaction::parse(&raw)
        .unwrap()
        .as_chain_gang()
        .outputs
        .iter()
        .position(|o| hex::encode(&o.lock_script.0) == script)
        .unwrap();
    let unknown = stack.get(&format!("/api/v1/transaction/{}", "00".repeat(32)), None).await;
    assert_eq!(unknown.status(), 404);
    let not_mined = stack.get(&format!("/api/v1/merkle-proof/{txid}"), None).await;
    assert_eq!(not_mined.status(), 404);

    // Mine it: the block's match arrives too.
    let block = node.generate(1).await.remove(0);
    stack.wait_for_match(&channel_id, &owner, &txid, json!(block)).await;
    let note = next_frame(&mut socket, "bsvapi.channels.notification").await;
    assert_eq!(note["result"]["sequence"], 2, "the block's match, announced on the socket too");

    // Its proof, checked here against the node's header on our own.
    let proof: Value = stack
        .get(&format!("/api/v1/merkle-proof/{txid}?targetType=header"), None)
        .await
        .json()
        .await
        .unwrap();
    let header_hex = node.rpc("getblockheader", json!([block, false])).await;
    assert_eq!(proof["target"], header_hex);
    let tsc: bsv_primitives::TscProof = serde_json::from_value(proof.clone()).unwrap();
    let header = bsv_primitives::BlockHeader::from_hex(header_hex.as_str().unwrap()).unwrap();
    tsc.verify_root(&header.merkle_root()).unwrap();
    let binary = stack
        .get(&format!("/api/v1/merkle-proof/{txid}?includeFullTx=1"), Some("application/octet-stream"))
        .await
        .bytes()
        .await
        .unwrap();
    assert_eq!(binary[0], 1, "flags: full transaction, block hash target");

    // Watch the paid output, then spend it: a notification in the mempool, another when mined.
    let watch = stack.post("/api/v1/output-spend/notifications", &master, json!([[txid, vout]])).await;
    assert_eq!(watch.status(), 200);
    assert_eq!(
        watch.json::<Value>().await.unwrap(),
        json!("[]"),
        "not spent yet (double-encoded, as the reference)"
    );
    let amount = (info_amount(&node, &txid, vout).await * 1e8).round() as u64;
    let spend_hex = node.spend_outpoints(&[json!({"txid": txid, "vout": vout})], amount, 1000, 0).await;
    let spend_txid = node.rpc("sendrawtransaction", json!([spend_hex])).await.as_str().unwrap().to_owned();
    let spent = next_frame(&mut socket, "bsvapi.output-spends.notification").await;
    let record = hex::decode(spent["result"].as_str().unwrap()).unwrap();
    assert_eq!(record.len(), 104);
    let spend_id: bsv_primitives::Txid = spend_txid.parse().unwrap();
    assert_eq!(&record[36..68], spend_id.internal(), "the spending transaction");
    assert_eq!(&record[72..], &[0u8; 32], "in the mempool");
    let queried = stack
        .http
        .post(stack.url("/api/v1/output-spend"))
        .json(&json!([[txid, vout]]))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(queried[0][2], spend_txid);
    assert_eq!(queried[0][4], Value::Null);
    let binary = stack
        .http
        .post(stack.url("/api/v1/output-spend"))
        .header("accept", "application/octet-stream")
        .header("content-type", "application/octet-stream")
        .body(
            [&txid.parse::<bsv_primitives::Txid>().unwrap().internal()[..], &(vout as u32).to_be_bytes()]
                .concat(),
        )
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&binary[..], &record[..], "the same spend, binary");

    let block2 = node.generate(1).await.remove(0);
    let mined = next_frame(&mut socket, "bsvapi.output-spends.notification").await;
    let record = hex::decode(mined["result"].as_str().unwrap()).unwrap();
    let block2_hash: bsv_primitives::BlockHash = block2.parse().unwrap();
    assert_eq!(&record[72..], block2_hash.internal(), "in the block");
    let queried: Value = stack
        .http
        .post(stack.url("/api/v1/output-spend"))
        .json(&json!([[txid, vout]]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        queried[0][4],
        hex::encode(block2_hash.internal()),
        "the block, as the simple indexer writes it"
    );
}

async fn info_amount(node: &BitcoindNode, txid: &str, vout: usize) -> f64 {
    let tx = node.rpc("getrawtransaction", json!([txid, 1])).await;
    tx["vout"][vout]["value"].as_f64().unwrap()
}

fn urlencode(s: &str) -> String {
    s.replace('=', "%3D").replace('+', "%2B").replace('/', "%2F")
}
