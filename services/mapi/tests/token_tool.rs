//! The `mapi-token` binary: its tokens validate, with itself and with the gateway's providers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

const KEY: &str = "token-tool-test-key-0123456789";

fn run(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mapi-token")).args(args).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
}

fn generate(days: &str) -> String {
    let (ok, out) = run(&[
        "generate",
        "-n",
        "merchant-7",
        "-d",
        days,
        "-k",
        KEY,
        "-i",
        "https://issuer.example",
        "-a",
        "mapi",
    ]);
    assert!(ok, "{out}");
    let line = out.lines().find(|l| l.starts_with("Bearer ")).expect("the bearer header line");
    line.trim_start_matches("Bearer ").to_owned()
}

#[test]
fn generated_tokens_round_trip() {
    let token = generate("30");
    let (ok, out) = run(&["validate", "-k", KEY, "-t", &token]);
    assert!(ok, "{out}");
    assert!(out.contains("merchant-7"));
    let (ok, _) = run(&["validate", "-k", KEY, "-t", &token, "-i", "https://issuer.example", "-a", "mapi"]);
    assert!(ok);

    // The gateway accepts it for the configured provider and takes the name as the identity.
    let providers = gateway::auth::JwtProviders::parse(Some(
        &serde_json::json!([{"issuer": "https://issuer.example", "audience": "mapi", "symmetricSecurityKey": KEY}]).to_string(),
    ))
    .unwrap();
    assert_eq!(
        providers.validate(&token),
        Some(("merchant-7".to_owned(), "https://issuer.example".to_owned()))
    );
}

#[test]
fn wrong_key_wrong_issuer_and_expired_tokens_fail() {
    let token = generate("30");
    assert!(!run(&["validate", "-k", "another-key-0123456789abcdef", "-t", &token]).0);
    assert!(!run(&["validate", "-k", KEY, "-t", &token, "-i", "https://other.example"]).0);
    let expired = generate("-1");
    let (ok, out) = run(&["validate", "-k", KEY, "-t", &expired]);
    assert!(!ok);
    assert!(out.contains("not valid"), "{out}");
    assert!(!run(&["generate", "-n", "x", "-d", "1", "-k", "short", "-i", "i"]).0, "short keys are refused");
}
