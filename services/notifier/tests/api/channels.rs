//! A peer channel as the callback target (the SPV channel setup of the mAPI reference): the
//! `callbackUrl` is the channel's URL at the gateway and the token `Bearer <write token>`, so
//! each notification becomes a message in the channel and the account's socket announces it.

use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};
use test_support::BitcoindNode;

use crate::helpers::*;

#[path = "../../../peer-channels/tests/api/helpers.rs"]
#[allow(dead_code)]
mod merchant;

#[tokio::test]
async fn merkle_proofs_land_in_the_merchants_channel_and_its_account_socket_says_so() {
    let node = BitcoindNode::start().await;
    node.generate(5).await;
    let s = stack(StackOptions::default()).await;
    s.add_node(&node).await;
    s.wait_for_tip(&node).await;

    // The merchant's side: an account, a channel, a write token, the account socket.
    let merchant = merchant::stack().await;
    let master = merchant.account().await;
    let (channel, owner) = merchant.channel(&master, false).await;
    let (_, write) = merchant.token(&master, &channel, false, true).await;
    let path = format!("/api/v1/web-socket?token={}", encode(&master));
    let mut socket = merchant::ws(&merchant.gateway, &path, None).await.unwrap();

    let coin = node.coins().await.remove(0);
    let tx = node.spend(&coin, 1000, 0).await;
    let url = format!("{}/api/v1/channel/{channel}", merchant.gateway);
    s.submit(json!({"rawtx": tx, "merkleProof": true, "merkleFormat": "TSC", "callbackUrl": url,
                    "callbackToken": format!("Bearer {write}")}))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let block = node.generate(1).await.remove(0);

    let note = merchant::next_json(&mut socket, Duration::from_secs(20)).await.expect("a notification");
    assert_eq!(note["message_type"], "bsvapi.channels.notification", "{note}");
    assert_eq!(note["result"]["channel_id"], channel.as_str(), "{note}");
    assert_eq!(note["result"]["content_type"], "application/json");
    let messages: Vec<Value> = merchant
        .req(reqwest::Method::GET, &format!("/api/v1/channel/{channel}"), Some(&format!("Bearer {owner}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!(messages[0]["content_type"], "application/json");
    // The channel keeps the body byte for byte (base64 in the message list).
    let envelope =
        base64::engine::general_purpose::STANDARD.decode(messages[0]["payload"].as_str().unwrap()).unwrap();
    let payload = verified_payload(&envelope);
    assert_eq!(payload["callbackReason"], "merkleProof");
    assert_eq!(payload["blockHash"], block);
    assert_eq!(payload["callbackTxId"], txid_of(&tx));
}

fn encode(token: &str) -> String {
    token
        .bytes()
        .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}
