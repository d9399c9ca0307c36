//! Envelopes signed by a MinerId server (a real HTTP server speaking the MinerId protocol).

use actix_web::{App, HttpRequest, HttpResponse, web};
use bsv_primitives::JsonEnvelope;
use k256::ecdsa::signature::hazmat::PrehashSigner;
use k256::ecdsa::{Signature, SigningKey};
use test_support::BitcoindNode;

use crate::helpers::{As, spawn_app_with};

const AUTH: &str = "Bearer minerid-secret";

fn key(byte: u8) -> SigningKey {
    SigningKey::from_slice(&[byte; 32]).unwrap()
}

fn public_hex(k: &SigningKey) -> String {
    hex::encode(k.verifying_key().to_sec1_point(true).as_bytes())
}

/// `/{alias}` answers the advertised key; `/{alias}/sign/{hash}` signs with `signing` (a
/// different key than advertised for the alias `rotated`). The variant with `/{minerId}` is not
/// served, so clients must fall back to the short form, as the protocol allows.
async fn handle(req: HttpRequest) -> HttpResponse {
    if req.headers().get("authorization").and_then(|v| v.to_str().ok()) != Some(AUTH) {
        return HttpResponse::Unauthorized().finish();
    }
    let parts: Vec<&str> = req.path().trim_start_matches('/').split('/').collect();
    let advertised = key(0x33);
    let signing = if parts[0] == "rotated" { key(0x44) } else { key(0x33) };
    match parts.as_slice() {
        [_alias] => HttpResponse::Ok().body(format!("\"{}\"", public_hex(&advertised))),
        [_alias, "sign", digest] => {
            let digest = hex::decode(digest).unwrap();
            let sig: Signature = signing.sign_prehash(&digest).unwrap();
            HttpResponse::Ok().body(hex::encode(sig.to_der().as_bytes()))
        }
        _ => HttpResponse::NotFound().finish(),
    }
}

#[tokio::test]
async fn a_minerid_server_signs_the_envelopes_and_a_rotated_key_is_caught() {
    let server = test_support::serve(1, || App::new().default_service(web::to(handle)));
    let node =
        BitcoindNode::start_with(test_support::NodeOptions { fund_wallet: false, ..Default::default() })
            .await;
    for (alias, expect_ok) in [("miner", true), ("rotated", false)] {
        let app = spawn_app_with(&[
            ("WIF_PRIVATEKEY", ""),
            ("MINERID_SERVER_URL", &server.url),
            ("MINERID_SERVER_ALIAS", alias),
            ("MINERID_SERVER_AUTHENTICATION", AUTH),
        ])
        .await;
        assert_eq!(app.add_node(&node).await.status(), 201);
        let resp = app.get("/mapi/feeQuote", As::Anonymous).await;
        if expect_ok {
            assert_eq!(resp.status(), 200);
            let env: JsonEnvelope = resp.json().await.unwrap();
            assert_eq!(env.verify().unwrap().to_hex(), public_hex(&key(0x33)));
            let payload: serde_json::Value = serde_json::from_str(&env.payload).unwrap();
            assert_eq!(payload["minerId"], public_hex(&key(0x33)));
        } else {
            assert_eq!(resp.status(), 503, "a signature that does not verify never leaves mapi");
        }
    }
}
