//! The real gateway in front of the real mapi: the JWT is checked at the edge and its identity
//! selects the caller's quote; the admin key opens the admin API.

use std::collections::HashMap;
use std::sync::Arc;

use bsv_primitives::JsonEnvelope;
use serde_json::{Value, json};
use test_support::{BitcoindNode, TestDatabase};
use wire_model::mapi::QuotePayload;

use crate::helpers::{INTERNAL_TOKEN, fees, spawn_app};

const ISSUER: &str = "https://issuer.example";
const JWT_KEY: &str = "jwt-key-for-the-e2e-test-0123456789";
const ADMIN_KEY: &str = "admin-key-for-the-e2e-test-0123";

fn jwt(exp_offset: i64) -> String {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"sub": "merchant-1", "iss": ISSUER, "exp": now + exp_offset}),
        &jsonwebtoken::EncodingKey::from_secret(JWT_KEY.as_bytes()),
    )
    .unwrap()
}

#[tokio::test]
async fn a_jwt_at_the_gateway_selects_the_special_quote_at_mapi() {
    let node =
        BitcoindNode::start_with(test_support::NodeOptions { fund_wallet: false, ..Default::default() })
            .await;
    let mapi = spawn_app().await;
    let gateway_db = TestDatabase::create().await;
    let env: HashMap<&str, String> = HashMap::from([
        ("DATABASE_URL", gateway_db.url().to_owned()),
        ("INTERNAL_TOKEN", INTERNAL_TOKEN.to_owned()),
        ("MAPI_URL", mapi.url.clone()),
        ("RESTADMIN_APIKEY", ADMIN_KEY.to_owned()),
        ("IDENTITY_PROVIDERS", json!([{"issuer": ISSUER, "symmetricSecurityKey": JWT_KEY}]).to_string()),
    ]);
    let settings: gateway::settings::GatewaySettings =
        service_kit::settings::load_from(None, |k| env.get(k).cloned()).unwrap();
    let app = gateway::Application::build(
        settings,
        test_support::local_listener(),
        Arc::new(gateway::clock::SystemClock),
    )
    .await
    .unwrap();
    let gw = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    let http = reqwest::Client::new();

    // Admin through the gateway: add the node and a quote for merchant-1.
    let admin = |path: &str, body: Value| {
        http.post(format!("{gw}{path}")).header("api-key", ADMIN_KEY).json(&body).send()
    };
    let node_body = json!({"id": format!("127.0.0.1:{}", node.rpc_port), "username": node.rpc_user, "password": node.rpc_password});
    assert_eq!(admin("/api/v1/Node", node_body).await.unwrap().status(), 201);
    let quote = json!({"identity": "merchant-1", "identityProvider": ISSUER, "fees": fees(3, 1000)});
    assert_eq!(admin("/api/v1/PolicyQuote", quote).await.unwrap().status(), 201);
    let wrong_key =
        http.get(format!("{gw}/api/v1/PolicyQuote")).header("api-key", "nope").send().await.unwrap();
    assert_eq!(wrong_key.status(), 401);

    let quote_of = |token: Option<String>| {
        let mut req = http.get(format!("{gw}/mapi/feeQuote"));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    let special: JsonEnvelope = quote_of(Some(jwt(600))).await.unwrap().json().await.unwrap();
    special.verify().unwrap();
    let payload: QuotePayload = special.payload_as().unwrap();
    assert_eq!(serde_json::to_value(&payload.fees).unwrap(), fees(3, 1000));

    let anonymous: JsonEnvelope = quote_of(None).await.unwrap().json().await.unwrap();
    let payload: QuotePayload = anonymous.payload_as().unwrap();
    assert_eq!(serde_json::to_value(&payload.fees).unwrap(), fees(100, 200));

    assert_eq!(quote_of(Some(jwt(-600))).await.unwrap().status(), 401, "expired JWT");

    // Paths match case-insensitively, as in the reference (ASP.NET routing).
    for path in ["/api/v1/status/ZMQ", "/api/v1/policyquote", "/API/V1/NODE", "/api/v1/Status/TX"] {
        let resp = http.get(format!("{gw}{path}")).header("api-key", ADMIN_KEY).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
    }
    for path in ["/mapi/feequote", "/MAPI/POLICYQUOTE"] {
        let env: JsonEnvelope = http.get(format!("{gw}{path}")).send().await.unwrap().json().await.unwrap();
        env.verify().unwrap();
    }
}
