//! Every log line of a run that exercises every credential, captured at TRACE level, holds no
//! token, key or password. Its own test binary, so its subscriber sees everything in the process.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "api/helpers.rs"]
#[allow(dead_code, reason = "shared with the api test binary, which uses the rest")]
mod helpers;

use helpers::{ADMIN_KEY, INTERNAL_TOKEN, JWT_ISSUER, JWT_KEY, jwt, spawn_app, vectors};

#[tokio::test(flavor = "multi_thread")]
async fn logs_hold_no_token_key_or_password() {
    let capture = test_support::LogCapture::install(&service_kit::telemetry::SECRET_SAFE_DIRECTIVES);

    let app = spawn_app().await;
    let mut secrets = vec![ADMIN_KEY.to_owned(), INTERNAL_TOKEN.to_owned(), JWT_KEY.to_owned()];
    // Sign-ups (tokens issued), token use, failures, JWTs, admin key, proxying, websockets.
    for i in 0..2 {
        secrets.push(app.master_token(i).await);
    }
    let valid_jwt = jwt(JWT_KEY, JWT_ISSUER, 600);
    let bad_jwt = jwt("wrong-key-0123456789abcdef", JWT_ISSUER, 600);
    secrets.push(valid_jwt.clone());
    secrets.push(bad_jwt.clone());
    for (path, name, value) in [
        ("/api/v1/account", "authorization", format!("Bearer {}", secrets[3])),
        ("/api/v1/account", "authorization", "Bearer not-a-real-token-but-secret-looking".to_owned()),
        ("/api/v1/channel/manage/list", "authorization", format!("Bearer {}", secrets[4])),
        ("/api/v1/channel/abc", "authorization", "Bearer channel-token-secret-value".to_owned()),
        ("/mapi/feeQuote", "authorization", format!("Bearer {valid_jwt}")),
        ("/mapi/feeQuote", "authorization", format!("Bearer {bad_jwt}")),
        ("/api/v1/PolicyQuote", "api-key", ADMIN_KEY.to_owned()),
        ("/api/v1/PolicyQuote", "api-key", "wrong-admin-key-secret".to_owned()),
    ] {
        let _ = app.http.get(format!("{}{path}", app.url)).header(name, value).send().await.unwrap();
    }
    secrets.push("not-a-real-token-but-secret-looking".into());
    secrets.push("channel-token-secret-value".into());
    secrets.push("wrong-admin-key-secret".into());
    // The signed sign-up material is not secret, but the signature must not be needed in logs.
    let v = &vectors()[0];
    let _ = app.post_json(&v.path(), &v.body()).await;

    let log = capture.text();
    assert!(log.len() > 1000, "the capture saw the run ({} bytes)", log.len());
    assert!(log.contains("master token issued"), "the gateway's own events were captured");
    assert!(log.contains("hyper") || log.contains("reqwest"), "library TRACE events were captured");
    for secret in &secrets {
        assert!(!log.contains(secret.as_str()), "a secret reached the logs: {}…", &secret[..8]);
    }
}
