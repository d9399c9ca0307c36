//! The admin API: Api-Key (admin flag from the gateway) required, validation, 404/405/409, and
//! node passwords never returned.

use serde_json::{Value, json};
use test_support::BitcoindNode;

use crate::helpers::{As, fees, spawn_app};

#[tokio::test]
async fn policy_quotes_admin() {
    let app = spawn_app().await;
    // Not admin (or a forged admin flag): 401.
    for who in [As::Anonymous, As::Forged("x", "y"), As::Identity("x", "y")] {
        assert_eq!(app.get("/api/v1/PolicyQuote", who).await.status(), 401);
    }
    let resp = app.post("/api/v1/PolicyQuote", As::Admin, &json!({"fees": fees(5, 10)})).await;
    assert_eq!(resp.status(), 201);
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let created: Value = resp.json().await.unwrap();
    assert_eq!(location, format!("/api/v1/PolicyQuote/{}", created["id"]));
    assert_eq!(created["identity"], Value::Null);
    let got: Value = app.get(&location, As::Admin).await.json().await.unwrap();
    assert_eq!(got, created);
    assert_eq!(app.get("/api/v1/PolicyQuote/999999", As::Admin).await.status(), 404);
    assert_eq!(app.get("/api/v1/FeeQuote/999999", As::Admin).await.status(), 404, "the older name works too");

    // Quotes are immutable.
    for method in [reqwest::Method::PUT, reqwest::Method::DELETE] {
        let resp = app.request(method.clone(), &location, As::Admin).json(&json!({})).send().await.unwrap();
        assert_eq!(resp.status(), 405, "{method}");
    }

    // Validation: 400 with a JSON body, never 500.
    for body in [
        json!({}),
        json!({"fees": []}),
        json!({"fees": fees(1, 1), "identity": "only-identity"}),
        json!({"fees": fees(1, 1), "identity": " ", "identityProvider": " "}),
        json!({"fees": fees(1, 1), "validFrom": "2000-01-01T00:00:00Z"}),
        json!({"fees": [{"feeType": "standard", "miningFee": {"satoshis": -1, "bytes": 1}, "relayFee": {"satoshis": 1, "bytes": 1}}]}),
        json!({"fees": [{"feeType": "standard", "miningFee": {"satoshis": 1, "bytes": 0}, "relayFee": {"satoshis": 1, "bytes": 1}}]}),
        json!({"fees": [{"feeType": "standard", "miningFee": {"satoshis": 1, "bytes": 1}, "relayFee": {"satoshis": 1, "bytes": 1}},
                        {"feeType": "standard", "miningFee": {"satoshis": 1, "bytes": 1}, "relayFee": {"satoshis": 1, "bytes": 1}}]}),
        json!("not an object"),
    ] {
        let resp = app.post("/api/v1/PolicyQuote", As::Admin, &body).await;
        assert_eq!(resp.status(), 400, "{body}");
        let problem: Value = resp.json().await.unwrap();
        assert!(problem["detail"].as_str().is_some_and(|d| !d.is_empty()), "{body}");
    }

    // Filters: identity scope, anonymous, current.
    let ident = json!({"identity": "m", "identityProvider": "p", "fees": fees(7, 10)});
    assert_eq!(app.post("/api/v1/PolicyQuote", As::Admin, &ident).await.status(), 201);
    let all: Vec<Value> = app.get("/api/v1/PolicyQuote", As::Admin).await.json().await.unwrap();
    assert_eq!(all.len(), 3, "initial anonymous quote + 2");
    let mine: Vec<Value> =
        app.get("/api/v1/PolicyQuote?identity=m&identityProvider=p", As::Admin).await.json().await.unwrap();
    assert_eq!(mine.len(), 1);
    let with_anon: Vec<Value> = app
        .get("/api/v1/PolicyQuote?identity=m&identityProvider=p&anonymous=true", As::Admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(with_anon.len(), 3);
    let current: Vec<Value> =
        app.get("/api/v1/PolicyQuote?current=true", As::Admin).await.json().await.unwrap();
    assert_eq!(current.len(), 2, "one current quote per identity");
    assert!(current.iter().any(|q| q["id"] == created["id"]));
}

#[tokio::test]
async fn nodes_admin_checks_nodes_and_never_returns_passwords() {
    let node =
        BitcoindNode::start_with(test_support::NodeOptions { fund_wallet: false, ..Default::default() })
            .await;
    let app = spawn_app().await;
    let resp = app.add_node(&node).await;
    assert_eq!(resp.status(), 201);
    let id = format!("127.0.0.1:{}", node.rpc_port);
    assert_eq!(resp.headers()["location"], format!("/api/v1/Node/{id}").as_str());
    let body = resp.text().await.unwrap();
    assert!(!body.contains(&node.rpc_password), "no password in the answer");

    // Duplicate: 409.
    assert_eq!(app.add_node(&node).await.status(), 409);

    // The siblings (block-parser, zmq-listener) get what they need to reach it, the password
    // included, on the internal API only: the credential is required, identity headers are not
    // enough.
    let internal = app.get("/internal/nodes", As::Anonymous).await;
    assert_eq!(internal.status(), 200);
    let listed: Vec<Value> = internal.json().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], id);
    assert_eq!(listed[0]["password"], node.rpc_password);
    assert_eq!(listed[0]["rpcUrl"], format!("http://127.0.0.1:{}", node.rpc_port));
    for who in [As::Forged("x", "y")] {
        assert_eq!(app.get("/internal/nodes", who).await.status(), 401);
    }
    let bare = app.http.get(format!("{}/internal/nodes", app.url)).send().await.unwrap();
    assert_eq!(bare.status(), 401);
    // A node that does not answer, or refuses the credentials: 400.
    let port = test_support::free_port();
    let resp = app
        .post(
            "/api/v1/Node",
            As::Admin,
            &json!({"id": format!("127.0.0.1:{port}"), "username": "u", "password": "p"}),
        )
        .await;
    assert_eq!(resp.status(), 400);
    let resp = app
        .post("/api/v1/Node", As::Admin, &json!({"id": format!("localhost:{}", node.rpc_port), "username": node.rpc_user, "password": "wrong"}))
        .await;
    assert_eq!(resp.status(), 400);
    // Malformed ids and missing fields: 400.
    for body in [
        json!({"id": "nohost", "username": "u"}),
        json!({"id": "h:x", "username": "u"}),
        json!({"id": "h:1"}),
    ] {
        assert_eq!(app.post("/api/v1/Node", As::Admin, &body).await.status(), 400, "{body}");
    }

    let list = app.get("/api/v1/Node", As::Admin).await.text().await.unwrap();
    assert!(list.contains(&id) && !list.contains(&node.rpc_password));
    let one: Value =
        app.get(&format!("/api/v1/Node/{}", id.to_uppercase()), As::Admin).await.json().await.unwrap();
    assert_eq!(one["id"], id.as_str());
    assert_eq!(one["status"], 600);
    assert!(one.get("password").is_none());
    assert_eq!(app.get("/api/v1/Node", As::Anonymous).await.status(), 401);

    // Update with the same credentials: 204; unknown node: 404.
    let update = json!({"username": node.rpc_user, "password": node.rpc_password, "remarks": "updated"});
    let resp = app
        .request(reqwest::Method::PUT, &format!("/api/v1/Node/{id}"), As::Admin)
        .json(&update)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let resp = app
        .request(reqwest::Method::PUT, "/api/v1/Node/127.0.0.1:1", As::Admin)
        .json(&update)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);

    // Delete: 204, also when already gone.
    for _ in 0..2 {
        let resp = app
            .request(reqwest::Method::DELETE, &format!("/api/v1/Node/{id}"), As::Admin)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 204);
    }
    let list: Vec<Value> = app.get("/api/v1/Node", As::Admin).await.json().await.unwrap();
    assert!(list.is_empty());
}

#[tokio::test]
async fn a_nodes_zmq_endpoint_must_answer_and_be_its_own() {
    let node =
        BitcoindNode::start_with(test_support::NodeOptions { fund_wallet: false, ..Default::default() })
            .await;
    let app = spawn_app().await;
    let body = |host: &str, zmq: String| json!({"id": format!("{host}:{}", node.rpc_port), "username": node.rpc_user, "password": node.rpc_password, "zmqNotificationsEndpoint": zmq});
    // Nothing listens on this port: 400.
    let dead = format!("tcp://127.0.0.1:{}", test_support::free_port());
    let resp = app.post("/api/v1/Node", As::Admin, &body("127.0.0.1", dead)).await;
    assert_eq!(resp.status(), 400);
    let problem: Value = resp.json().await.unwrap();
    assert!(problem["detail"].as_str().unwrap().contains("ZMQ endpoint"), "{problem}");
    // The node's own publisher: 201; the same endpoint for another node id: 400.
    assert_eq!(
        app.post("/api/v1/Node", As::Admin, &body("127.0.0.1", node.zmq_endpoint())).await.status(),
        201
    );
    let resp = app.post("/api/v1/Node", As::Admin, &body("localhost", node.zmq_endpoint())).await;
    assert_eq!(resp.status(), 400);
}
