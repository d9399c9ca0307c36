//! Tip-filter matching figures (never pass/fail): mempool transactions posted to the indexer (a
//! release process, native mode, on PostgreSQL) in batches of 500 as zmq-listener sends them,
//! with 100 000 pushdata hashes registered by 1 000 accounts and 1 transaction in 100 paying one
//! of them. Printed: transactions/s and the CPU µs per transaction of the indexer, PostgreSQL (all
//! backends) and this process (the client), median of 3 runs, beside the goal.
//!
//! Run with `scripts/bench` (it builds the release binary first).
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::time::Instant;

use sha2::{Digest, Sha256};
use test_support::cpu::{CpuMeter, Watched};
use test_support::{ServiceProcess, TestDatabase};

const TOKEN: &str = "bench-internal-token-0123456789";
const REGISTERED: i64 = 100_000;
const BATCH: usize = 500;
/// Goal: matching costs no more than accepting the transaction costs a node (~100 µs).
const GOAL_US: f64 = 100.0;

fn binary(name: &str) -> String {
    let path = test_support::workspace_root().join("target/release").join(name);
    assert!(path.exists(), "{} is missing: run `cargo build --release -p {name}`", path.display());
    path.to_string_lossy().into_owned()
}

/// The public key hash registration `i` is for (PostgreSQL computes the same in the insert).
fn registered_pkh(i: i64) -> [u8; 20] {
    let digest = Sha256::digest((i as i32).to_be_bytes());
    digest[..20].try_into().unwrap()
}

fn varint(out: &mut Vec<u8>, n: usize) {
    out.push(u8::try_from(n).unwrap());
}

fn p2pkh(out: &mut Vec<u8>, pkh: &[u8; 20]) {
    out.extend_from_slice(&5000u64.to_le_bytes());
    varint(out, 25);
    out.extend_from_slice(&[0x76, 0xa9, 20]);
    out.extend_from_slice(pkh);
    out.extend_from_slice(&[0x88, 0xac]);
}

/// A one-input, two-output P2PKH transaction (a signature and a public key in the input), hex.
fn transaction(n: u64, pays_registered: Option<i64>) -> String {
    let seed = Sha256::digest(n.to_le_bytes());
    let mut tx = 1u32.to_le_bytes().to_vec();
    varint(&mut tx, 1);
    tx.extend_from_slice(&seed);
    tx.extend_from_slice(&0u32.to_le_bytes());
    let mut script = vec![71];
    script.extend_from_slice(&[0x30; 71]);
    script.push(33);
    script.push(0x02);
    script.extend_from_slice(&seed);
    varint(&mut tx, script.len());
    tx.extend_from_slice(&script);
    tx.extend_from_slice(&u32::MAX.to_le_bytes());
    varint(&mut tx, 2);
    let pkh = pays_registered.map(registered_pkh).unwrap_or_else(|| seed[..20].try_into().unwrap());
    p2pkh(&mut tx, &pkh);
    p2pkh(&mut tx, &seed[12..32].try_into().unwrap());
    tx.extend_from_slice(&0u32.to_le_bytes());
    hex::encode(tx)
}

struct Run {
    rate: f64,
    cpu_us: Vec<(String, f64)>,
}

async fn run(txs: usize) -> Run {
    let db = TestDatabase::create().await;
    let nowhere = || format!("http://127.0.0.1:{}", test_support::free_port());
    let env: HashMap<&str, String> = HashMap::from([
        ("DATABASE_URL", db.url().to_owned()),
        ("INTERNAL_TOKEN", TOKEN.to_owned()),
        ("MAPI_URL", nowhere()),
        ("BLOCK_PARSER_URL", nowhere()),
        ("PEER_CHANNELS_URL", nowhere()),
        ("NOTIFIER_URL", nowhere()),
        ("RUST_LOG", "error".to_owned()),
    ]);
    let service = ServiceProcess::start(&binary("indexer"), &env).await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    test_support::execute_sql(
        db.url(),
        "indexer",
        &format!(
            "INSERT INTO tip_filters (account_id, pushdata_hash, flags, date_created, date_expires) \
             SELECT i % 1000, sha256(substring(sha256(int4send(i::int)) from 1 for 20)), 1, {now}, {now} + 86400 \
             FROM generate_series(1, {REGISTERED}) AS i; ANALYZE tip_filters;"
        ),
    )
    .await;
    let batches: Vec<String> = (0..txs)
        .map(|i| transaction(i as u64, (i % 100 == 0).then_some(1 + (i as i64 * 7919) % REGISTERED)))
        .collect::<Vec<_>>()
        .chunks(BATCH)
        .map(|c| serde_json::json!({ "txs": c }).to_string())
        .collect();
    let http = reqwest::Client::new();
    let url = format!("{}/internal/mempool-txs", service.url);
    // Warm up (plans, connections).
    let warm = serde_json::json!({"txs": [transaction(u64::MAX, Some(1))]}).to_string();
    let resp = http
        .post(&url)
        .header("x-internal-token", TOKEN)
        .header("content-type", "application/json")
        .body(warm)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let meter = CpuMeter::start(vec![
        ("indexer".into(), Watched::Pid(service.pid())),
        ("postgres (all)".into(), Watched::Named("postgres".into())),
        ("bench client".into(), Watched::Pid(std::process::id())),
    ]);
    let started = Instant::now();
    for body in batches {
        let resp = http
            .post(&url)
            .header("x-internal-token", TOKEN)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    let took = started.elapsed();
    let cpu = meter.elapsed();
    let metrics = http
        .get(format!("{}/metrics", service.url))
        .header("x-internal-token", TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let matched = metrics
        .lines()
        .find(|l| !l.starts_with('#') && l.contains("tip_filter_matches_total"))
        .and_then(|l| l.split_whitespace().last())
        .unwrap_or("?")
        .to_owned();
    println!(
        "  run: {txs} txs in {:.2} s, {matched} match batches queued (expected {})",
        took.as_secs_f64(),
        txs.div_ceil(100) + 1
    );
    drop(service);
    Run {
        rate: txs as f64 / took.as_secs_f64(),
        cpu_us: cpu.into_iter().map(|(k, v)| (k, v.as_secs_f64() * 1e6 / txs as f64)).collect(),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let txs: usize = std::env::var("BENCH_TXS").ok().and_then(|s| s.parse().ok()).unwrap_or(20_000);
        println!(
            "indexer: tip-filter matching of {txs} mempool txs (2 P2PKH outputs, 1 P2PKH input; 1 in 100 matches), \
             {REGISTERED} pushdata hashes registered, batches of {BATCH}, median of 3"
        );
        let mut runs = Vec::new();
        for _ in 0..3 {
            runs.push(run(txs).await);
        }
        println!("  {:.0} tx/s", median(runs.iter().map(|r| r.rate).collect()));
        let mut total = 0.0;
        for (i, (name, _)) in runs[0].cpu_us.iter().enumerate() {
            let m = median(runs.iter().map(|r| r.cpu_us[i].1).collect());
            if name != "bench client" {
                total += m;
            }
            println!("  CPU {name}: {m:.1} µs/tx");
        }
        println!("  CPU indexer + PostgreSQL: {total:.1} µs/tx (goal ≤ {GOAL_US:.0} µs/tx)");
    });
}
