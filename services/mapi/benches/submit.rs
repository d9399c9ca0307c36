//! Submission throughput and CPU per transaction of every process (node, mapi, gateway,
//! block-parser (registrations), PostgreSQL, this client): straight to the node's `sendrawtransactions`, through `mapi`, and
//! through the gateway in front of it (both release processes), batch 100 at concurrency 4 and
//! single transactions at concurrency 16; median of 3 runs of `BENCH_TXS` (5 000) transactions.
//! Prints figures, never fails on them.
//!
//! Run with `scripts/bench` (needs PostgreSQL; starts its own regtest node; builds the release
//! binaries). `BENCH_CONFIGS` (e.g. `1x1,100x8`) picks batch x concurrency pairs.
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use node_client::rpc_types::SendRawTx;
use node_client::{RpcClient, RpcConfig};
use serde_json::{Value, json};
use test_support::cpu::{CpuMeter, Watched};
use test_support::{BitcoindNode, ServiceProcess, TestDatabase};

const TOKEN: &str = "bench-internal-token-0123456789";
const WIF: &str = "cN9spWsvaxA8taS7DFMxnk1yJD2gaF2PX1npuTpy3vuZFJdwavaw";

/// Makes `n` transactions, each spending its own confirmed `OP_TRUE` output (built here, no
/// signing: fast enough for runs of thousands), fanned out 2 500 per parent.
async fn make_txs(node: &BitcoindNode, n: usize) -> Vec<String> {
    let value = 20_000;
    let mut txs = Vec::with_capacity(n);
    let mut parents = Vec::new();
    let mut left = n;
    while left > 0 {
        let k = left.min(2500);
        let coin =
            node.coins().await.into_iter().find(|c| c["amount"].as_f64().unwrap_or(0.0) > 1.0).unwrap();
        parents.push((node.fan_out(&coin, k, value).await, k));
        left -= k;
        node.generate(1).await;
    }
    for (parent, k) in parents {
        for vout in 0..k {
            txs.push(test_support::spend_op_true(&parent, vout as u32, value, 500, 0));
        }
    }
    txs
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Path {
    Direct,
    Mapi,
    Gateway,
}

/// Sends `txs` in batches of `batch` with `concurrency` workers; returns transactions per second.
async fn run(
    path: Path,
    txs: Vec<String>,
    batch: usize,
    concurrency: usize,
    rpc: &RpcClient,
    mapi: &str,
    gateway: &str,
) -> f64 {
    let batches: Vec<Vec<String>> = txs.chunks(batch).map(<[String]>::to_vec).collect();
    let queue = Arc::new(tokio::sync::Mutex::new(batches));
    let http = reqwest::Client::new();
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let queue = queue.clone();
        let (rpc, http, mapi, gateway) = (rpc.clone(), http.clone(), mapi.to_owned(), gateway.to_owned());
        workers.push(tokio::spawn(async move {
            loop {
                let Some(b) = queue.lock().await.pop() else { break };
                match path {
                    Path::Direct => {
                        let items: Vec<SendRawTx> = b
                            .iter()
                            .map(|hex| SendRawTx {
                                hex: hex.clone(),
                                allowhighfees: false,
                                dontcheckfee: true,
                                listunconfirmedancestors: false,
                                config: None,
                            })
                            .collect();
                        let answer = rpc.send_raw_transactions(&items).await.unwrap();
                        assert!(answer.invalid.is_empty(), "{answer:?}");
                    }
                    Path::Mapi | Path::Gateway => {
                        let base = if path == Path::Mapi { &mapi } else { &gateway };
                        let req = if b.len() == 1 {
                            http.post(format!("{base}/mapi/tx")).json(&json!({"rawtx": b[0]}))
                        } else {
                            let body: Vec<Value> = b.iter().map(|hex| json!({"rawtx": hex})).collect();
                            http.post(format!("{base}/mapi/txs")).json(&body)
                        };
                        let resp = req.header("x-internal-token", TOKEN).send().await.unwrap();
                        assert!(resp.status().is_success(), "{}", resp.status());
                        let env: Value = resp.json().await.unwrap();
                        let payload: Value = serde_json::from_str(env["payload"].as_str().unwrap()).unwrap();
                        let failures = payload["failureCount"]
                            .as_u64()
                            .unwrap_or(u64::from(payload["returnResult"] != "success"));
                        assert_eq!(failures, 0, "{payload}");
                    }
                }
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    txs.len() as f64 / started.elapsed().as_secs_f64()
}

fn binary(name: &str) -> String {
    let path = test_support::workspace_root().join("target/release").join(name);
    assert!(path.exists(), "{} is missing: run `cargo build --release -p {name}`", path.display());
    path.to_string_lossy().into_owned()
}

/// One run: tx/s and CPU µs per transaction of each process.
struct Measured {
    rate: f64,
    cpu_us: BTreeMap<String, f64>,
}

fn median(mut runs: Vec<Measured>) -> Measured {
    runs.sort_by(|a, b| a.rate.total_cmp(&b.rate));
    runs.swap_remove(runs.len() / 2)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let per_run: usize = std::env::var("BENCH_TXS").ok().and_then(|s| s.parse().ok()).unwrap_or(5000);
        // `BENCH_CONFIGS=1x16,100x4` picks batch x concurrency pairs.
        let configs: Vec<(usize, usize)> = std::env::var("BENCH_CONFIGS")
            .ok()
            .map(|s| {
                s.split(',')
                    .filter_map(|p| p.split_once('x'))
                    .filter_map(|(b, c)| Some((b.trim().parse().ok()?, c.trim().parse().ok()?)))
                    .collect()
            })
            .unwrap_or_else(|| vec![(100, 4), (1, 16)]);
        let paths = [Path::Direct, Path::Mapi, Path::Gateway];
        // Enough RPC threads and queue for 32 concurrent callers (the node's defaults are 4 / 16).
        let node = BitcoindNode::start_with(test_support::NodeOptions {
            extra_args: vec!["-rpcthreads=32".into(), "-rpcworkqueue=512".into()],
            ..Default::default()
        })
        .await;
        node.generate(60).await;
        let mut pool = make_txs(&node, per_run * 3 * configs.len() * paths.len()).await;
        let rpc = RpcClient::new(RpcConfig::new(node.rpc_url().parse().unwrap(), node.rpc_user.clone(), node.rpc_password.clone().into())).unwrap();

        let (mapi_db, gw_db, bp_db) =
            (TestDatabase::create().await, TestDatabase::create().await, TestDatabase::create().await);
        // mapi registers every transaction with block-parser before sending it: the real service.
        let bp_port = test_support::free_port();
        let env: HashMap<&str, String> = HashMap::from([
            ("DATABASE_URL", mapi_db.url().to_owned()),
            ("INTERNAL_TOKEN", TOKEN.to_owned()),
            ("WIF_PRIVATEKEY", WIF.to_owned()),
            ("MEMPOOL_CHECKER_DISABLED", "true".to_owned()),
            ("RUST_LOG", "warn".to_owned()),
            ("BLOCK_PARSER_URL", format!("http://127.0.0.1:{bp_port}")),
        ]);
        let mapi = ServiceProcess::start(&binary("mapi"), &env).await;
        let bp_env: HashMap<&str, String> = HashMap::from([
            ("DATABASE_URL", bp_db.url().to_owned()),
            ("INTERNAL_TOKEN", TOKEN.to_owned()),
            ("MAPI_URL", mapi.url.clone()),
            ("RUST_LOG", "warn".to_owned()),
        ]);
        let parser = ServiceProcess::start_on(&binary("block-parser"), &bp_env, bp_port).await;
        let mapi_url = mapi.url.clone();
        let node_body = json!({"id": format!("127.0.0.1:{}", node.rpc_port), "username": node.rpc_user, "password": node.rpc_password});
        let added = reqwest::Client::new()
            .post(format!("{mapi_url}/api/v1/Node"))
            .header("x-internal-token", TOKEN)
            .header("x-caller-admin", "true")
            .json(&node_body)
            .send()
            .await
            .unwrap();
        assert_eq!(added.status(), 201);
        let env: HashMap<&str, String> = HashMap::from([
            ("DATABASE_URL", gw_db.url().to_owned()),
            ("INTERNAL_TOKEN", TOKEN.to_owned()),
            ("MAPI_URL", mapi_url.clone()),
            ("RUST_LOG", "warn".to_owned()),
        ]);
        let gw = ServiceProcess::start(&binary("gateway"), &env).await;
        let gateway_url = gw.url.clone();
        let watched = vec![
            ("bench".to_owned(), Watched::Pid(std::process::id())),
            ("bitcoind".to_owned(), Watched::Pid(node.pid().unwrap())),
            ("mapi".to_owned(), Watched::Pid(mapi.pid())),
            ("gateway".to_owned(), Watched::Pid(gw.pid())),
            ("block-parser".to_owned(), Watched::Pid(parser.pid())),
            ("postgres".to_owned(), Watched::Named("postgres".into())),
        ];

        println!(
            "submission: {per_run} transactions per run, median of 3, one regtest node, mapi and the gateway as release processes, 2 cores shared"
        );
        for (batch, concurrency) in configs {
            let mut medians = Vec::new();
            for path in paths {
                let mut runs = Vec::new();
                for _ in 0..3 {
                    let txs: Vec<String> = pool.drain(..per_run).collect();
                    let meter = CpuMeter::start(watched.clone());
                    let rate = run(path, txs, batch, concurrency, &rpc, &mapi_url, &gateway_url).await;
                    let cpu_us = meter
                        .elapsed()
                        .into_iter()
                        .map(|(k, v)| (k, v.as_secs_f64() * 1e6 / per_run as f64))
                        .collect();
                    runs.push(Measured { rate, cpu_us });
                }
                medians.push((path, median(runs)));
            }
            let direct_rate = medians[0].1.rate;
            let direct_cpu: f64 = medians[0].1.cpu_us.values().sum();
            for (path, m) in &medians {
                let total: f64 = m.cpu_us.values().sum();
                let cpu: Vec<String> = m.cpu_us.iter().map(|(k, v)| format!("{k} {v:.0}")).collect();
                println!(
                    "batch {batch:>3} x concurrency {concurrency:>2} {:<8} {:>7.0} tx/s ({:.2} of direct)  CPU µs/tx: {} = {:.0} ({:.2}x direct)",
                    format!("{path:?}"),
                    m.rate,
                    m.rate / direct_rate,
                    cpu.join(", "),
                    total,
                    total / direct_cpu
                );
            }
        }
        println!(
            "goals: batch 100: total CPU per tx <= 1.2x direct, tx/s >= 0.85 of direct; single tx at concurrency 16: \
             total CPU per tx <= 3x the node's batched per-tx CPU, tx/s >= the node's own single-tx rate (2x its goal)"
        );
        drop((mapi, gw, parser, mapi_db, gw_db, bp_db));
    });
}
