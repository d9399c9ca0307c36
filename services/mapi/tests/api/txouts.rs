//! `POST /mapi/txouts` against a real node.

use bsv_primitives::JsonEnvelope;
use serde_json::{Value, json};
use test_support::BitcoindNode;
use wire_model::mapi::{ReturnResult, TxOutsPayload};

use crate::helpers::{As, spawn_app};

#[tokio::test]
async fn outputs_with_selected_fields_missing_and_spent() {
    let node = BitcoindNode::start().await;
    let app = spawn_app().await;
    assert_eq!(app.add_node(&node).await.status(), 201);
    let funding = node.send_to_new_address(1.0).await;
    let spender = node.send_to_new_address(0.1).await;
    let spender_tx = node.rpc("getrawtransaction", json!([spender, true])).await;
    let spent = &spender_tx["vin"][0];

    let app = &app;
    let ask = |query: &str, body: Value| {
        let path = format!("/mapi/txouts{query}");
        async move {
            let resp = app.post(&path, As::Anonymous, &body).await;
            let status = resp.status().as_u16();
            (status, resp.text().await.unwrap())
        }
    };
    // The spender's own output is unspent (nothing was sent after it); its input is spent.
    let body = json!([{"txid": spender, "n": 0}, {"txid": funding, "n": 9}, {"txid": spent["txid"], "n": spent["vout"]}]);
    let (status, text) =
        ask("?includeMempool=true&returnField=value&returnField=CONFIRMATIONS", body.clone()).await;
    assert_eq!(status, 200, "{text}");
    let env: JsonEnvelope = serde_json::from_str(&text).unwrap();
    env.verify().unwrap();
    let p: TxOutsPayload = env.payload_as().unwrap();
    assert_eq!(p.return_result, ReturnResult::Success);
    assert_eq!(p.txouts.len(), 3);
    assert_eq!(p.txouts[0].confirmations, Some(0));
    assert!(p.txouts[0].value.is_some());
    assert_eq!(p.txouts[0].is_standard, None, "not asked for");
    assert_eq!(p.txouts[1].error.as_deref(), Some("missing"));
    assert_eq!(p.txouts[2].error.as_deref(), Some("spent"));
    assert_eq!(p.txouts[2].collided_with.as_ref().map(|c| c.txid.to_string()), Some(spender.clone()));

    // Not allowed field: 400; bad txid: 400.
    let (status, text) = ask("?returnField=scriptPubKey", body).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("Invalid return field selected"));
    let (status, _) = ask("", json!([{"txid": "zz", "n": 0}])).await;
    assert_eq!(status, 400);
}
