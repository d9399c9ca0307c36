//! Sign-up and account lookup.

use base64::Engine;
use diesel::sql_types::{BigInt, Bytea};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use time::Duration;

use crate::helpers::{
    Options, VECTOR_TIME, account_get_vector, signed_body, spawn_app, spawn_app_with, vectors,
};

#[tokio::test]
async fn independent_signatures_sign_up_compressed_and_uncompressed_keys() {
    let app = spawn_app().await;
    for v in vectors() {
        let resp = app.post_json(&v.path(), &v.body()).await;
        assert_eq!(resp.status(), 200, "{}: {}", v.case, resp.text().await.unwrap());
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body.as_object().unwrap().len(), 2, "exactly public_key_hex and api_key");
        assert_eq!(body["public_key_hex"], v.public_key_hex);
        let token = body["api_key"].as_str().unwrap().to_owned();
        assert_eq!(token.len(), 88);
        assert_eq!(base64::engine::general_purpose::URL_SAFE.decode(&token).unwrap().len(), 64);

        // The token works; the same signed message is not accepted twice.
        let me: serde_json::Value = app.get_account(&token).await.json().await.unwrap();
        assert_eq!(me["public_key_hex"], v.public_key_hex);
        assert_eq!(app.post_json(&v.path(), &v.body()).await.status(), 401, "a replay");
    }
    // A later sign-up of the same key (a new message) adds a token without revoking the first.
    let first: serde_json::Value = app.sign_up(9, VECTOR_TIME).await.json().await.unwrap();
    let second: serde_json::Value =
        app.sign_up(9, VECTOR_TIME + Duration::seconds(1)).await.json().await.unwrap();
    let (first, second) = (first["api_key"].as_str().unwrap(), second["api_key"].as_str().unwrap());
    assert_ne!(first, second);
    assert_eq!(app.get_account(first).await.status(), 200);
    assert_eq!(app.get_account(second).await.status(), 200);
    // Four keys signed up: four accounts, five tokens, stored hashed.
    let mut conn = AsyncPgConnection::establish(app.db.url()).await.unwrap();
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let n: N =
        diesel::sql_query("SELECT count(*) AS n FROM accounts.accounts").get_result(&mut conn).await.unwrap();
    assert_eq!(n.n, 4);
    #[derive(diesel::QueryableByName)]
    struct D {
        #[diesel(sql_type = Bytea)]
        token_sha256: Vec<u8>,
    }
    let digests: Vec<D> =
        diesel::sql_query("SELECT token_sha256 FROM accounts.master_tokens").load(&mut conn).await.unwrap();
    assert_eq!(digests.len(), 5);
    assert!(digests.iter().all(|d| d.token_sha256.len() == 32));
}

#[tokio::test]
async fn bad_signatures_stale_or_future_times_and_wrong_urls_are_401() {
    let v = &vectors()[0];
    let app = spawn_app().await;

    let mut tampered = v.body();
    let mut sig = hex::decode(&v.signature_hex).unwrap();
    sig[10] ^= 1;
    tampered["signature_hex"] = hex::encode(&sig).into();
    assert_eq!(app.post_json(&v.path(), &tampered).await.status(), 401);

    // The vector signed for /register, posted to /key: another endpoint.
    assert_eq!(app.post_json("/api/v1/account/key", &v.body()).await.status(), 401);

    // Another key than the one that signed.
    let mut other_key = v.body();
    other_key["public_key_hex"] = vectors()[1].public_key_hex.clone().into();
    assert_eq!(app.post_json(&v.path(), &other_key).await.status(), 401);

    for offset in [Duration::minutes(6), Duration::minutes(-6)] {
        let app = spawn_app_with(Options { now: VECTOR_TIME + offset, ..Options::default() }).await;
        assert_eq!(app.post_json(&v.path(), &v.body()).await.status(), 401, "clock offset {offset}");
    }
    // Inside the window is fine.
    let app = spawn_app_with(Options { now: VECTOR_TIME + Duration::minutes(4), ..Options::default() }).await;
    assert_eq!(app.post_json(&v.path(), &v.body()).await.status(), 200);
}

#[tokio::test]
async fn malformed_requests_are_400_never_500() {
    let v = &vectors()[0];
    let app = spawn_app().await;
    let path = v.path();
    for body in [
        "",
        "{not json",
        "[]",
        r#"{"public_key_hex":"02"}"#,
        r#"{"public_key_hex":"zz","signature_hex":"00","message_hex":"00"}"#,
    ] {
        let resp = app.post_raw(&path, body).await;
        assert_eq!(resp.status(), 400, "{body:?}");
        let problem: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(problem["status"], 400);
    }
    let mut bad = v.body();
    bad["public_key_hex"] = "02abcdef".into();
    assert_eq!(app.post_json(&path, &bad).await.status(), 400, "not a curve point");
    let mut bad = v.body();
    bad["signature_hex"] = "1f00".into();
    assert_eq!(app.post_json(&path, &bad).await.status(), 400, "short signature");
    let mut bad = v.body();
    bad["message_hex"] = "xyz".into();
    assert_eq!(app.post_json(&path, &bad).await.status(), 400, "bad message hex");

    // GET /api/v1/account: a non-Bearer header is 400, an unknown token 401.
    let resp = app
        .http
        .get(format!("{}/api/v1/account", app.url))
        .header("authorization", "Basic x")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(app.get_account("unknown").await.status(), 401);
}

#[tokio::test]
async fn sign_ups_and_failed_attempts_are_rate_limited_per_address() {
    let app = spawn_app_with(Options { signups_per_minute: 3, ..Options::default() }).await;
    for i in 0..3 {
        assert_eq!(app.sign_up(1, VECTOR_TIME + Duration::seconds(i)).await.status(), 200);
    }
    assert_eq!(app.sign_up(1, VECTOR_TIME + Duration::seconds(3)).await.status(), 429);

    let app = spawn_app_with(Options { signups_per_minute: 3, ..Options::default() }).await;
    for _ in 0..3 {
        assert_eq!(app.get_account("guess").await.status(), 401);
    }
    assert_eq!(app.get_account("guess").await.status(), 429);
}

#[tokio::test]
async fn endpoints_document_lists_the_enabled_apis() {
    let app = spawn_app().await;
    let resp = app.get("/api/v1/endpoints").await;
    assert_eq!(resp.status(), 200);
    let doc: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(doc["apiType"], "bsvapi.endpoint");
    assert_eq!(doc["baseUrl"], "https://gateway.example");
    assert_eq!(doc["timestamp"], "2026-11-23T12:00:00Z");
    assert_eq!(doc["expiryTime"], "2026-11-24T12:00:00Z");
    let kinds: Vec<_> =
        doc["endpoints"].as_array().unwrap().iter().map(|e| e["apiType"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"bsvapi.account") && kinds.contains(&"bsvapi.channel"));
    assert!(kinds.contains(&"bsvapi.headers"), "the headers API is native: always on");
    assert!(kinds.contains(&"bsvapi.transaction"), "the native indexer APIs are on by default");
    assert!(!kinds.contains(&"bsvapi.restoration"), "restoration search needs an external indexer");
    assert_eq!(app.get("/health").await.status(), 200);
    assert_eq!(app.get("/ready").await.status(), 200);
}

#[tokio::test]
async fn the_endpoints_document_lists_exactly_the_indexer_apis_served() {
    let kinds = |doc: serde_json::Value| -> Vec<(String, Option<String>)> {
        doc["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["apiType"].as_str().unwrap().to_owned(), e["baseURL"].as_str().map(str::to_owned)))
            .collect()
    };
    let proxy = spawn_app_with(Options {
        env: vec![("INDEXER_URL", "http://indexer.example:49241".into())],
        ..Options::default()
    })
    .await;
    let listed = kinds(proxy.get("/api/v1/endpoints").await.json().await.unwrap());
    assert!(
        listed.contains(&("bsvapi.restoration".into(), Some("/api/v1/restoration".into()))),
        "{listed:?}"
    );
    assert!(listed.contains(&("bsvapi.output-spend".into(), Some("/api/v1/output-spend".into()))));
    let off =
        spawn_app_with(Options { env: vec![("EXPOSE_INDEXER_APIS", "0".into())], ..Options::default() })
            .await;
    let listed = kinds(off.get("/api/v1/endpoints").await.json().await.unwrap());
    assert!(listed.iter().all(|(k, _)| k != "bsvapi.transaction" && k != "bsvapi.restoration"), "{listed:?}");
    assert_eq!(off.get("/api/v1/transaction/ab").await.status(), 404, "not routed when off");
}

#[tokio::test]
async fn get_account_with_a_signed_body_issues_a_fresh_token_to_the_key_holder() {
    let app = spawn_app().await;
    let g = account_get_vector();
    let get =
        |body: serde_json::Value| app.http.get(format!("{}/api/v1/account", app.url)).json(&body).send();
    // Unknown key: 401.
    assert_eq!(get(g.body()).await.unwrap().status(), 401);
    // After sign-up with the same key: 200 and a new working token.
    let first = &vectors()[0];
    assert_eq!(app.post_json(&first.path(), &first.body()).await.status(), 200);
    let resp = get(g.body()).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["public_key_hex"], g.public_key_hex);
    let token = body["api_key"].as_str().unwrap();
    assert_eq!(app.get_account(token).await.status(), 200);
    // The GET signature is not accepted for sign-up (another endpoint in the message).
    assert_eq!(app.post_json("/api/v1/account/register", &g.body()).await.status(), 401);
}

#[tokio::test]
async fn a_signed_message_is_accepted_once_by_every_replica_even_at_the_same_moment() {
    let app = spawn_app().await;
    let replica =
        spawn_app_with(Options { database: Some(app.db.url().to_owned()), ..Options::default() }).await;
    let body = signed_body(3, "/api/v1/account/register", VECTOR_TIME);
    // Eight copies at once, half to each replica: one token is issued.
    let sends = (0..8).map(|i| {
        let target = if i % 2 == 0 { &app } else { &replica };
        target.post_json("/api/v1/account/register", &body)
    });
    let statuses: Vec<u16> =
        futures_util::future::join_all(sends).await.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == 200 || *s == 401), "{statuses:?}");
    // Later replays, on either replica: 401.
    for target in [&app, &replica] {
        assert_eq!(target.post_json("/api/v1/account/register", &body).await.status(), 401);
    }
    // The account message can be replayed neither.
    let get = signed_body(3, "/api/v1/account", VECTOR_TIME);
    let send =
        |t: &crate::helpers::TestApp| t.http.get(format!("{}/api/v1/account", t.url)).json(&get).send();
    assert_eq!(send(&app).await.unwrap().status(), 200);
    assert_eq!(send(&replica).await.unwrap().status(), 401);
}

#[tokio::test]
async fn used_messages_are_forgotten_once_their_window_has_passed() {
    let app = spawn_app().await;
    assert_eq!(app.sign_up(4, VECTOR_TIME).await.status(), 200);
    let db = db_kit::Db::new(db_kit::DbSettings::new(app.db.url(), "accounts")).unwrap();
    let forget = |at| gateway::accounts::store::forget_used_messages(&db, at);
    assert_eq!(forget(VECTOR_TIME + Duration::minutes(4)).await.unwrap(), 0, "inside the window: kept");
    assert_eq!(forget(VECTOR_TIME + Duration::minutes(6)).await.unwrap(), 1, "after it: forgotten");
}

#[tokio::test]
async fn only_compressed_and_uncompressed_keys_are_keys() {
    let app = spawn_app().await;
    let valid = signed_body(5, "/api/v1/account/register", VECTOR_TIME);
    let key = hex::decode(valid["public_key_hex"].as_str().unwrap()).unwrap();
    let mut compact = key.clone();
    compact[0] = 0x05;
    let mut hybrid = vec![0x06];
    hybrid.extend_from_slice(&[0x11; 64]);
    for bad in [compact, hybrid, vec![0x04; 65], vec![0x02; 32], vec![0x00]] {
        let mut body = valid.clone();
        body["public_key_hex"] = hex::encode(&bad).into();
        let resp = app.post_json("/api/v1/account/register", &body).await;
        assert_eq!(resp.status(), 400, "{}", hex::encode(&bad));
        let problem: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(problem["detail"], "Invalid key data type");
    }
    assert_eq!(app.post_json("/api/v1/account/register", &valid).await.status(), 200);
}

#[tokio::test]
async fn an_account_revokes_a_master_token_or_all_its_others() {
    let app = spawn_app().await;
    let token = |r: serde_json::Value| r["api_key"].as_str().unwrap().to_owned();
    let mut tokens = Vec::new();
    for i in 0..3 {
        tokens.push(token(app.sign_up(6, VECTOR_TIME + Duration::seconds(i)).await.json().await.unwrap()));
    }
    let delete = |path: &'static str, auth: Option<String>| {
        let mut r = app.http.delete(format!("{}{path}", app.url));
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        r.send()
    };
    // Logging out: the presented token only.
    let resp = delete("/api/v1/account/token", Some(format!("Bearer {}", tokens[0]))).await.unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(app.get_account(&tokens[0]).await.status(), 401);
    assert_eq!(app.get_account(&tokens[1]).await.status(), 200);
    assert_eq!(
        delete("/api/v1/account/token", Some(format!("Bearer {}", tokens[0]))).await.unwrap().status(),
        401
    );
    // After a leak: every other token, keeping the presented one.
    let resp = delete("/api/v1/account/tokens", Some(format!("Bearer {}", tokens[2]))).await.unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(app.get_account(&tokens[1]).await.status(), 401);
    assert_eq!(app.get_account(&tokens[2]).await.status(), 200);
    // Another account's tokens are untouched; no or a malformed credential is 400, a wrong one 401.
    let other = token(app.sign_up(7, VECTOR_TIME).await.json().await.unwrap());
    assert_eq!(
        delete("/api/v1/account/tokens", Some(format!("Bearer {}", tokens[2]))).await.unwrap().status(),
        204
    );
    assert_eq!(app.get_account(&other).await.status(), 200);
    assert_eq!(delete("/api/v1/account/token", None).await.unwrap().status(), 400);
    assert_eq!(delete("/api/v1/account/token", Some("Basic eHl6".into())).await.unwrap().status(), 400);
    assert_eq!(delete("/api/v1/account/token", Some("Bearer nope".into())).await.unwrap().status(), 401);
}
