//! Submission throughput: transactions per second sent straight to the node's
//! `sendrawtransactions`, through `mapi`, and through the gateway in front of `mapi`, for batch
//! sizes 1 and 100 at concurrency 1, 8 and 32. Prints figures, never fails on them.
//!
//! Run with `scripts/bench` (needs PostgreSQL; starts its own regtest node). `BENCH_TXS` sets the
//! transactions per run (default 200); `BENCH_CONFIGS` (e.g. `1x1,100x8`) picks batch x concurrency
//! pairs.
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use node_client::rpc_types::SendRawTx;
use node_client::{RpcClient, RpcConfig};
use serde_json::{Value, json};
use test_support::{BitcoindNode, TestDatabase};

const TOKEN: &str = "bench-internal-token-0123456789";
const WIF: &str = "cN9spWsvaxA8taS7DFMxnk1yJD2gaF2PX1npuTpy3vuZFJdwavaw";

/// Makes `n` signed transactions, each spending its own confirmed output.
async fn make_txs(node: &BitcoindNode, n: usize) -> Vec<String> {
    let mut addresses = Vec::new();
    for _ in 0..n {
        addresses.push(node.new_address().await);
    }
    // Fan out in chunks (one sendmany per 500 outputs), then confirm.
    for chunk in addresses.chunks(500) {
        let outputs: serde_json::Map<String, Value> =
            chunk.iter().map(|a| (a.clone(), json!(0.0002))).collect();
        node.rpc("sendmany", json!(["", outputs])).await;
    }
    node.generate(1).await;
    let coins: Vec<Value> = serde_json::from_value(node.rpc("listunspent", json!([1])).await).unwrap();
    let small: Vec<&Value> = coins.iter().filter(|c| c["amount"].as_f64() == Some(0.0002)).take(n).collect();
    assert_eq!(small.len(), n);
    let mut txs = Vec::with_capacity(n);
    for coin in small {
        let to = node.new_address().await;
        let raw = node
            .rpc(
                "createrawtransaction",
                json!([[{"txid": coin["txid"], "vout": coin["vout"]}], {to: 0.00019}]),
            )
            .await;
        let signed = node.rpc("signrawtransaction", json!([raw])).await;
        txs.push(signed["hex"].as_str().unwrap().to_owned());
    }
    txs
}

#[derive(Clone, Copy, PartialEq)]
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

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let per_run: usize = std::env::var("BENCH_TXS").ok().and_then(|s| s.parse().ok()).unwrap_or(200);
        // `BENCH_CONFIGS=1x1,100x8` runs only those batch x concurrency pairs.
        let configs: Vec<(usize, usize)> = std::env::var("BENCH_CONFIGS")
            .ok()
            .map(|s| {
                s.split(',')
                    .filter_map(|p| p.split_once('x'))
                    .filter_map(|(b, c)| Some((b.trim().parse().ok()?, c.trim().parse().ok()?)))
                    .collect()
            })
            .unwrap_or_else(|| vec![(1, 1), (1, 8), (1, 32), (100, 1), (100, 8), (100, 32)]);
        let paths = [Path::Direct, Path::Mapi, Path::Gateway];
        // Enough RPC threads and queue for 32 concurrent callers (the node's defaults are 4 / 16).
        let node = BitcoindNode::start_with(test_support::NodeOptions {
            extra_args: vec!["-rpcthreads=32".into(), "-rpcworkqueue=512".into()],
            ..Default::default()
        })
        .await;
        node.generate(20).await;
        let mut pool = make_txs(&node, per_run * configs.len() * paths.len()).await;
        let rpc = RpcClient::new(RpcConfig::new(node.rpc_url().parse().unwrap(), node.rpc_user.clone(), node.rpc_password.clone().into())).unwrap();

        let mapi_db = TestDatabase::create().await;
        let env: HashMap<&str, String> = HashMap::from([
            ("DATABASE_URL", mapi_db.url().to_owned()),
            ("INTERNAL_TOKEN", TOKEN.to_owned()),
            ("WIF_PRIVATEKEY", WIF.to_owned()),
            ("MEMPOOL_CHECKER_DISABLED", "true".to_owned()),
        ]);
        let settings: mapi::settings::MapiSettings = service_kit::settings::load_from(None, |k| env.get(k).cloned()).unwrap();
        let app = mapi::Application::build(settings, test_support::local_listener()).await.unwrap();
        let mapi_url = format!("http://127.0.0.1:{}", app.port());
        tokio::spawn(app.run_until_stopped());
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

        let gw_db = TestDatabase::create().await;
        let env: HashMap<&str, String> = HashMap::from([
            ("DATABASE_URL", gw_db.url().to_owned()),
            ("INTERNAL_TOKEN", TOKEN.to_owned()),
            ("MAPI_URL", mapi_url.clone()),
        ]);
        let settings: gateway::settings::GatewaySettings = service_kit::settings::load_from(None, |k| env.get(k).cloned()).unwrap();
        let gw = gateway::Application::build(settings, test_support::local_listener(), Arc::new(gateway::clock::SystemClock)).await.unwrap();
        let gateway_url = format!("http://127.0.0.1:{}", gw.port());
        tokio::spawn(gw.run_until_stopped());

        println!("submission throughput (tx/s), {per_run} transactions per run, one regtest node, 2 cores shared");
        println!("{:>6} {:>6} {:>10} {:>10} {:>10} {:>12} {:>14}", "batch", "conc", "direct", "mapi", "gateway", "mapi/direct", "gateway/direct");
        for (batch, concurrency) in configs {
            let mut figures = Vec::new();
            for path in paths {
                let txs: Vec<String> = pool.drain(..per_run).collect();
                figures.push(run(path, txs, batch, concurrency, &rpc, &mapi_url, &gateway_url).await);
            }
            println!(
                "{:>6} {:>6} {:>10.0} {:>10.0} {:>10.0} {:>12.2} {:>14.2}",
                batch, concurrency, figures[0], figures[1], figures[2], figures[1] / figures[0], figures[2] / figures[0]
            );
        }
        // Where mapi's time goes: its own histograms of the node calls it waits for.
        let metrics = reqwest::get(format!("{mapi_url}/metrics")).await.unwrap().text().await.unwrap();
        let value = |name: &str| -> f64 {
            metrics
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().last())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0)
        };
        for h in ["merchantapi_rpcmulticlient_gettxouts_duration_seconds", "merchantapi_rpcmulticlient_sendrawtxs_duration_seconds"] {
            let (sum, count) = (value(&format!("{h}_sum")), value(&format!("{h}_count")));
            if count > 0.0 {
                println!("{h}: {count} calls, mean {:.2} ms", sum / count * 1000.0);
            }
        }
        let http_sum = value("http_request_duration_seconds_sum{method=\"POST\",route=\"/mapi/tx\"");
        let http_count = value("http_request_duration_seconds_count{method=\"POST\",route=\"/mapi/tx\"");
        if http_count > 0.0 {
            println!("POST /mapi/tx: {http_count} requests, mean {:.2} ms in mapi", http_sum / http_count * 1000.0);
        }
        drop((mapi_db, gw_db));
    });
}
