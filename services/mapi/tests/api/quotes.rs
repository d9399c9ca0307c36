//! Fee and policy quotes against a real regtest node.

use bsv_primitives::{JsonEnvelope, KeyNetwork, PrivateKey};
use serde_json::{Value, json};
use test_support::BitcoindNode;
use wire_model::mapi::QuotePayload;

use crate::helpers::{As, fees, spawn_app};

fn miner_id() -> String {
    PrivateKey::from_bytes(&[0x11; 32], KeyNetwork::Testnet).unwrap().public_key().to_hex()
}

async fn envelope(resp: reqwest::Response) -> (JsonEnvelope, QuotePayload) {
    assert_eq!(resp.status(), 200);
    let env: JsonEnvelope = resp.json().await.unwrap();
    let signer = env.verify().expect("the envelope verifies");
    assert_eq!(signer.to_hex(), miner_id());
    let payload: QuotePayload = env.payload_as().unwrap();
    (env, payload)
}

#[tokio::test]
async fn quotes_are_signed_envelopes_naming_the_nodes_tip() {
    let node = BitcoindNode::start().await;
    let app = spawn_app().await;
    assert_eq!(app.get("/mapi/feeQuote", As::Anonymous).await.status(), 503, "no nodes yet");
    assert_eq!(app.add_node(&node).await.status(), 201);

    let (env, payload) = envelope(app.get("/mapi/feeQuote", As::Anonymous).await).await;
    assert_eq!(env.public_key.as_deref(), Some(miner_id().as_str()));
    assert_eq!(payload.miner_id, miner_id());
    assert_eq!(payload.api_version, "1.5.0");
    assert_eq!(payload.current_highest_block_height, 101);
    let best = node.rpc("getbestblockhash", json!([])).await;
    assert_eq!(payload.current_highest_block_hash.to_string(), best.as_str().unwrap());
    assert_eq!(payload.expiry_time.0 - payload.timestamp.0, time::Duration::minutes(10));
    let fee_json = serde_json::to_value(&payload.fees).unwrap();
    assert_eq!(fee_json, fees(100, 200), "the reference's initial anonymous quote");
    let raw: Value = serde_json::from_str(&env.payload).unwrap();
    assert!(raw.get("policies").is_none(), "feeQuote has no policies");
    assert_eq!(raw["callbacks"], json!([{"ipAddress": "10.0.0.1"}, {"ipAddress": "[::1]:8443"}]));

    // A new block moves the tip in the next quote.
    node.generate(1).await;
    let (_, payload) = envelope(app.get("/mapi/feeQuote", As::Anonymous).await).await;
    assert_eq!(payload.current_highest_block_height, 102);
}

#[tokio::test]
async fn identities_get_their_own_quotes_and_forged_identities_are_anonymous() {
    let node =
        BitcoindNode::start_with(test_support::NodeOptions { fund_wallet: false, ..Default::default() })
            .await;
    let app = spawn_app().await;
    assert_eq!(app.add_node(&node).await.status(), 201);
    let policies = json!({"maxtxsizepolicy": 99999, "skipscriptflags": ["MINIMALDATA"]});
    let resp = app
        .post(
            "/api/v1/PolicyQuote",
            As::Admin,
            &json!({"identity": "merchant-1", "identityProvider": "https://issuer.example", "fees": fees(1, 1000), "policies": policies}),
        )
        .await;
    assert_eq!(resp.status(), 201);

    let me = As::Identity("merchant-1", "https://issuer.example");
    let (_, payload) = envelope(app.get("/mapi/feeQuote", me).await).await;
    assert_eq!(serde_json::to_value(&payload.fees).unwrap(), fees(1, 1000));
    let (env, payload) = envelope(app.get("/mapi/policyQuote", me).await).await;
    assert_eq!(payload.policies.map(Value::Object), Some(policies));
    assert!(env.verify().is_ok());

    // An identity without a quote of its own: 404 (no fallback to anonymous).
    let stranger = As::Identity("merchant-2", "https://issuer.example");
    assert_eq!(app.get("/mapi/feeQuote", stranger).await.status(), 404);
    // Identity headers without the internal credential are ignored: the anonymous quote.
    let (_, payload) =
        envelope(app.get("/mapi/feeQuote", As::Forged("merchant-1", "https://issuer.example")).await).await;
    assert_eq!(serde_json::to_value(&payload.fees).unwrap(), fees(100, 200));
}
