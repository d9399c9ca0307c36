//! DSNT (mAPI reference §4): every error string and score of the query and submit endpoints,
//! bans keyed by the caller's address and lifted after `DS_HOST_BAN_TIME_SEC`, a real proof
//! checked with the node's `verifyscript`, and the node itself querying and submitting to us
//! through the gateway, which ends in exactly one `doubleSpendAttempt` callback.

use std::time::Duration;

use serde_json::{Value, json};
use test_support::{BitcoindNode, NodeOptions, RawTx, RecordingReceiver};

use crate::helpers::*;

const BAN_SECS: &str = "2";

fn dsnt_settings() -> Vec<(&'static str, String)> {
    vec![
        ("DS_HOST_BAN_TIME_SEC", BAN_SECS.to_owned()),
        ("DS_MAX_NUM_OF_TX_QUERIES", "3".to_owned()),
        ("DS_MAX_NUM_OF_UNKNOWN_QUERIES", "3".to_owned()),
        ("DS_CACHED_TX_REQUESTS_COOLDOWN_PERIOD_SEC", "60".to_owned()),
        ("DS_UNKNOWN_TX_QUERY_COOLDOWN_PERIOD_SEC", "60".to_owned()),
    ]
}

/// A DSNT caller at `address`, as the gateway forwards it (mapi believes `x-forwarded-for` only
/// beside the internal credential).
struct Caller<'a> {
    s: &'a Stack,
    address: String,
}

/// What a DSNT endpoint answered.
#[derive(Debug)]
struct Answer {
    status: u16,
    dsnt: Option<String>,
    body: String,
}

impl Caller<'_> {
    async fn send(&self, req: reqwest::RequestBuilder) -> Answer {
        let resp = req
            .header("x-internal-token", INTERNAL_TOKEN)
            .header("x-forwarded-for", &self.address)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let dsnt = resp.headers().get("x-bsv-dsnt").map(|v| v.to_str().unwrap().to_owned());
        Answer { status, dsnt, body: resp.text().await.unwrap() }
    }

    async fn query(&self, txid: &str) -> Answer {
        self.send(self.s.http.get(format!("{}/dsnt/1/query/{txid}", self.s.mapi))).await
    }

    async fn submit(&self, query: &str, body: Vec<u8>) -> Answer {
        self.send(
            self.s
                .http
                .post(format!("{}/dsnt/1/submit?{query}", self.s.mapi))
                .header("content-type", "application/octet-stream")
                .body(body),
        )
        .await
    }
}

fn caller(s: &Stack, n: u32) -> Caller<'_> {
    Caller { s, address: format!("198.51.100.{n}") }
}

fn refused(a: &Answer, message: &str) {
    assert_eq!((a.status, a.body.as_str()), (400, message), "{a:?}");
}

/// A node, the stack (no zmq-listener: attempts come from DSNT only), and a dsCheck transaction
/// X accepted through mapi, with Y spending the same coin (not sent anywhere).
struct Fixture {
    node: BitcoindNode,
    s: Stack,
    receiver: RecordingReceiver,
    x: String,
    y: String,
    /// The coin X and Y spend.
    coin: Value,
}

async fn fixture(node_options: NodeOptions, gateway_listener: Option<std::net::TcpListener>) -> Fixture {
    let node = BitcoindNode::start_with(node_options).await;
    node.generate(5).await;
    let s = stack(StackOptions { gateway_listener, mapi_extra: dsnt_settings(), ..StackOptions::default() })
        .await;
    s.add_node(&node).await;
    let receiver = RecordingReceiver::start().await;
    let coin = node.coins().await.remove(0);
    let x = with_dsnt_output(&node, &coin).await;
    let y = node.spend(&coin, 2000, 0).await;
    let url = format!("{}/cb/{{callbackReason}}", receiver.url());
    s.submit(json!({"rawtx": x, "dsCheck": true, "callbackUrl": url})).await;
    Fixture { node, s, receiver, x, y, coin }
}

/// X: spends `coin` to an anyone-can-spend output, with a DSNT output naming 127.0.0.1 and input
/// 0 (`OP_FALSE OP_RETURN "dsnt" <version 1, one IPv4 address, one input: 0>`), signed by the
/// node's wallet.
async fn with_dsnt_output(node: &BitcoindNode, coin: &Value) -> String {
    let amount = (coin["amount"].as_f64().unwrap() * 1e8).round() as u64;
    let mut dsnt = vec![0x00, 0x6a, 0x04];
    dsnt.extend_from_slice(b"dsnt");
    dsnt.extend_from_slice(&[0x08, 0x01, 0x01, 127, 0, 0, 1, 0x01, 0x00]);
    let unsigned = RawTx {
        inputs: vec![(
            coin["txid"].as_str().unwrap().to_owned(),
            coin["vout"].as_u64().unwrap() as u32,
            vec![],
        )],
        outputs: vec![(amount - 1000, test_support::OP_TRUE.to_vec()), (0, dsnt)],
    };
    let signed = node.rpc("signrawtransaction", json!([unsigned.to_hex()])).await;
    assert_eq!(signed["complete"], true, "{signed}");
    signed["hex"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn queries_answer_interest_in_the_header_and_too_many_or_bad_ones_ban_until_the_ban_time_passes() {
    let f = fixture(NodeOptions::default(), None).await;
    let x = txid_of(&f.x);
    let unknown = "aa".repeat(32);

    // Interested in X, not in an unknown transaction.
    let a = caller(&f.s, 1).query(&x).await;
    assert_eq!((a.status, a.dsnt.as_deref(), a.body.as_str()), (200, Some("1"), ""));
    let a = caller(&f.s, 1).query(&unknown).await;
    assert_eq!((a.status, a.dsnt.as_deref()), (200, Some("0")));

    // A bad txid bans at once (score 100); the ban shows as 403 until the ban time has passed.
    let c = caller(&f.s, 2);
    refused(&c.query("not-a-txid").await, "Invalid 'txid' format. (banned)");
    assert_eq!(c.query(&x).await.status, 403);
    assert_eq!(c.submit("txid=a", vec![1]).await.status, 403);
    // The Host header a caller chooses does not matter: its address does.
    let renamed =
        c.send(f.s.http.get(format!("{}/dsnt/1/query/{x}", f.s.mapi)).header("host", "other.example")).await;
    assert_eq!(renamed.status, 403);
    assert_eq!(caller(&f.s, 3).query(&x).await.status, 200, "another address is not banned");
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_eq!(c.query(&x).await.status, 200, "the ban ran out");

    // The third query of one known transaction within the cool-down bans.
    let c = caller(&f.s, 4);
    assert_eq!(c.query(&x).await.status, 200);
    assert_eq!(c.query(&x).await.status, 200);
    let a = c.query(&x).await;
    refused(&a, "Query for known transaction id requested too many times. (banned)");
    assert_eq!(a.dsnt.as_deref(), Some("1"));
    assert_eq!(c.query(&x).await.status, 403);

    // The third query of unknown transactions bans too.
    let c = caller(&f.s, 5);
    assert_eq!(c.query(&"bb".repeat(32)).await.status, 200);
    assert_eq!(c.query(&"cc".repeat(32)).await.status, 200);
    let a = c.query(&"dd".repeat(32)).await;
    refused(&a, "Query for unknown transaction id requested too many times. (banned)");
    assert_eq!(a.dsnt.as_deref(), Some("0"));
    assert_eq!(c.query(&x).await.status, 403);
}

#[tokio::test]
async fn submissions_are_checked_step_by_step_with_the_references_messages_and_scores() {
    let f = fixture(NodeOptions::default(), None).await;
    let (x, y) = (txid_of(&f.x), txid_of(&f.y));
    let y_bytes = hex::decode(&f.y).unwrap();
    let other = "ab".repeat(32);

    // Each of these costs 100: banned at once (a fresh caller for each).
    let hundred: Vec<(String, Vec<u8>, String)> = vec![
        ("n=0&ctxid=".to_owned() + &y + "&cn=0", y_bytes.clone(), "'txid' must not be null or empty.".into()),
        (format!("txid={x}&n=0&cn=0"), y_bytes.clone(), "'ctxid' must not be null or empty.".into()),
        (format!("txid=zz&n=0&ctxid={y}&cn=0"), y_bytes.clone(), "Invalid 'txid' format.".into()),
        (format!("txid={x}&n=0&ctxid=zz&cn=0"), y_bytes.clone(), "Invalid 'ctxid' format.".into()),
        (
            format!("txid={x}&n=0&ctxid={y}&cn=0"),
            y_bytes.clone(),
            "Submitted transactionId was not queried before making a call to submit, or it was already submitted."
                .into(),
        ),
    ];
    for (n, (query, body, message)) in hundred.into_iter().enumerate() {
        let c = caller(&f.s, 10 + n as u32);
        let a = c.submit(&query, body).await;
        refused(&a, &format!("{message} (banned)"));
        assert_eq!(a.dsnt.as_deref(), Some("1"), "{a:?}");
    }

    // Warnings cost 10: the tenth bans.
    let c = caller(&f.s, 20);
    let warnings = [
        (format!("txid={x}&n=0&ctxid={x}&cn=0"), "'ctxid' parameter must not be the same as 'txid'."),
        (format!("txid={x}&n=-1&ctxid={y}&cn=0"), "'n' must be equal or greater than 0."),
        (format!("txid={x}&ctxid={y}&cn=0"), "'n' must be equal or greater than 0."),
        (format!("txid={x}&n=0&ctxid={y}&cn=-5"), "'cn' must be equal or greater than 0."),
        (format!("txid={x}&n=0&ctxid={y}"), "'cn' must be equal or greater than 0."),
    ];
    for round in 0..2 {
        for (i, (query, message)) in warnings.iter().enumerate() {
            let a = c.submit(query, y_bytes.clone()).await;
            if round == 1 && i == warnings.len() - 1 {
                refused(&a, &format!("{message} (banned)"));
            } else {
                refused(&a, message);
            }
        }
    }
    assert_eq!(c.query(&x).await.status, 403);

    // After a query: the transaction's checks.
    let c = caller(&f.s, 30);
    assert_eq!(c.query(&x).await.dsnt.as_deref(), Some("1"));
    refused(
        &c.submit(&format!("txid={x}&n=1&ctxid={y}&cn=0"), y_bytes.clone()).await,
        "'n' parameter must not be greater than total number of inputs.",
    );
    let c = caller(&f.s, 31);
    c.query(&x).await;
    refused(
        &c.submit(&format!("txid={x}&n=0&ctxid={y}&cn=0"), vec![]).await,
        "Proof must not be empty. (banned)",
    );
    let c = caller(&f.s, 32);
    c.query(&x).await;
    refused(
        &c.submit(&format!("txid={x}&n=0&ctxid={other}&cn=0"), y_bytes.clone()).await,
        "Double-spend transaction does not match the 'ctxid' parameter. (banned)",
    );
    let c = caller(&f.s, 33);
    c.query(&x).await;
    let junk = vec![1u8, 2, 3];
    let junk_id = test_support::txid_of(&junk);
    refused(
        &c.submit(&format!("txid={x}&n=0&ctxid={junk_id}&cn=0"), junk).await,
        "'dsProof' is invalid. (banned)",
    );
    let c = caller(&f.s, 34);
    c.query(&x).await;
    refused(
        &c.submit(&format!("txid={x}&n=0&ctxid={y}&cn=1"), y_bytes.clone()).await,
        "'cn' parameter must not be greater than total number of inputs. (banned)",
    );
    // A transaction spending something else.
    let unrelated = f.node.spend(&f.node.coins().await[1], 1000, 0).await;
    let c = caller(&f.s, 35);
    c.query(&x).await;
    refused(
        &c.submit(
            &format!("txid={x}&n=0&ctxid={}&cn=0", txid_of(&unrelated)),
            hex::decode(&unrelated).unwrap(),
        )
        .await,
        "Transaction marked as double-spend does not spend same inputs as original transaction. (banned)",
    );
    // The same coin, but an unlocking script that fails.
    let coin = &f.coin;
    let forged = RawTx {
        inputs: vec![(
            coin["txid"].as_str().unwrap().to_owned(),
            coin["vout"].as_u64().unwrap() as u32,
            vec![0x51],
        )],
        outputs: vec![(1000, test_support::OP_TRUE.to_vec())],
    }
    .to_bytes();
    let c = caller(&f.s, 36);
    c.query(&x).await;
    let a = c.submit(&format!("txid={x}&n=0&ctxid={}&cn=0", test_support::txid_of(&forged)), forged).await;
    assert_eq!(a.status, 400, "{a:?}");
    assert!(
        a.body.starts_with("Invalid proof script. Reason: '") && a.body.ends_with("'. (banned)"),
        "{a:?}"
    );

    // A valid proof: 200 with x-bsv-dsnt 0, the attempt recorded, one callback.
    let c = caller(&f.s, 40);
    assert_eq!(c.query(&x).await.dsnt.as_deref(), Some("1"));
    let a = c.submit(&format!("TxId={x}&n=0&cTxId={y}&cn=0"), y_bytes.clone()).await;
    assert_eq!((a.status, a.dsnt.as_deref()), (200, Some("0")), "{a:?}");
    let got = f.receiver.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(got[0].path, "/cb/doubleSpendAttempt");
    let p = verified_payload(&got[0].body);
    assert_eq!(p["callbackTxId"], x);
    assert_eq!(p["callbackPayload"]["doubleSpendTxId"], y);
    assert_eq!(p["blockHeight"], -1);
    // Submitted once: the next submission was not preceded by a query, and X is no longer
    // waiting for a proof (a query says "not interested").
    refused(
        &c.submit(&format!("txid={x}&n=0&ctxid={y}&cn=0"), y_bytes.clone()).await,
        "Submitted transactionId was not queried before making a call to submit, or it was already submitted. (banned)",
    );
    assert_eq!(caller(&f.s, 41).query(&x).await.dsnt.as_deref(), Some("0"));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(f.receiver.requests().len(), 1);
}

#[tokio::test]
async fn the_node_queries_and_submits_through_the_gateway_and_the_merchant_gets_one_attempt_callback() {
    let gateway_listener = test_support::local_listener();
    let port = gateway_listener.local_addr().unwrap().port();
    let options = NodeOptions {
        extra_args: vec![format!("-dsendpointport={port}"), "-dsnotifylevel=2".to_owned()],
        ..NodeOptions::default()
    };
    let f = fixture(options, Some(gateway_listener)).await;
    let refused = f.node.rpc_result("sendrawtransaction", json!([f.y])).await.unwrap_err();
    assert!(refused.contains("258") || refused.contains("conflict"), "{refused}");
    let got = f.receiver.wait_for(1, Duration::from_secs(30)).await;
    assert_eq!(got[0].path, "/cb/doubleSpendAttempt");
    let p = verified_payload(&got[0].body);
    assert_eq!(p["callbackTxId"], txid_of(&f.x));
    assert_eq!(p["callbackPayload"]["doubleSpendTxId"], txid_of(&f.y));
    assert_eq!(p["callbackPayload"]["payload"], f.y);
    let attempts =
        f.s.mapi_rows("SELECT encode(ds_txid, 'hex') AS ds FROM tx_mempool_double_spend_attempts").await;
    assert_eq!(attempts.len(), 1, "{attempts:?}");
    // The node was told we are done (x-bsv-dsnt 0); the same conflict again changes nothing.
    let _ = f.node.rpc_result("sendrawtransaction", json!([f.y])).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(f.receiver.requests().len(), 1, "exactly one doubleSpendAttempt callback");
}
