//! Requests/s, latency and CPU per request through the gateway against the same upstream reached
//! directly: the gateway runs as its own release process (its CPU from `/proc`), the client and
//! the upstream in this one; `BENCH_SECONDS` (5) per run, median of 3 per concurrency.
//!
//! Run with `scripts/bench` (needs PostgreSQL, for the gateway's accounts schema; builds the
//! release binary first). Prints figures, never fails on them. Goals: at most 40 µs of gateway CPU
//! per proxied request and at most 1 ms added p99 at concurrency 16.
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use actix_web::{App, HttpResponse, web};
use test_support::cpu::{CpuMeter, Watched};

const BODY: &str = r#"{"payload":"{\"apiVersion\":\"1.5.0\",\"timestamp\":\"2026-11-23T12:00:00Z\",\"fees\":[{\"feeType\":\"standard\",\"miningFee\":{\"satoshis\":500,\"bytes\":1000},\"relayFee\":{\"satoshis\":250,\"bytes\":1000}}]}","signature":"3044022000","publicKey":"02ab","encoding":"UTF-8","mimetype":"application/json"}"#;

fn upstream() -> test_support::RunningServer {
    test_support::serve(1, || {
        App::new().default_service(web::to(|| async {
            HttpResponse::Ok().content_type("application/json").body(BODY)
        }))
    })
}

struct Figures {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
}

async fn load(url: &str, concurrency: usize, duration: Duration) -> Figures {
    let client = reqwest::Client::builder().pool_max_idle_per_host(concurrency).build().unwrap();
    // Warm up connections.
    for _ in 0..concurrency {
        client.get(url).send().await.unwrap().bytes().await.unwrap();
    }
    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let client = client.clone();
        let url = url.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(16_384);
            while Instant::now() < deadline {
                let t = Instant::now();
                let resp = client.get(&url).send().await.unwrap();
                assert!(resp.status().is_success());
                resp.bytes().await.unwrap();
                latencies.push(t.elapsed());
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_unstable();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)].as_secs_f64() * 1000.0;
    Figures { rps: all.len() as f64 / elapsed, p50_ms: pct(0.50), p99_ms: pct(0.99) }
}

fn binary(name: &str) -> String {
    let path = test_support::workspace_root().join("target/release").join(name);
    assert!(path.exists(), "{} is missing: run `cargo build --release -p {name}`", path.display());
    path.to_string_lossy().into_owned()
}

/// One run's figures with the CPU µs per request of each process.
struct Run {
    figures: Figures,
    cpu_us: BTreeMap<String, f64>,
}

async fn measured(url: &str, concurrency: usize, duration: Duration, meter: Vec<(String, Watched)>) -> Run {
    let meter = CpuMeter::start(meter);
    let figures = load(url, concurrency, duration).await;
    let requests = figures.rps * duration.as_secs_f64();
    let cpu_us = meter.elapsed().into_iter().map(|(k, v)| (k, v.as_secs_f64() * 1e6 / requests)).collect();
    Run { figures, cpu_us }
}

fn median(mut runs: Vec<Run>) -> Run {
    runs.sort_by(|a, b| a.figures.rps.total_cmp(&b.figures.rps));
    runs.swap_remove(runs.len() / 2)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let upstream = upstream();
        let upstream_url = upstream.url.clone();
        let db = test_support::TestDatabase::create().await;
        let env: HashMap<&str, String> = HashMap::from([
            ("DATABASE_URL", db.url().to_owned()),
            ("INTERNAL_TOKEN", "bench-internal-token-0123456789".to_owned()),
            ("MAPI_URL", upstream_url.clone()),
            ("RUST_LOG", "warn".to_owned()),
        ]);
        // The gateway as its own release process, so its CPU is its own.
        let gateway = test_support::ServiceProcess::start(&binary("gateway"), &env).await;
        let gateway_url = format!("{}/mapi/feeQuote", gateway.url);
        let direct_url = format!("{upstream_url}/mapi/feeQuote");
        let duration = Duration::from_secs(
            std::env::var("BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(5),
        );
        let me = std::process::id();

        println!(
            "gateway proxy overhead: GET /mapi/feeQuote ({} B body), {}s per run, median of 3; the gateway a release process",
            BODY.len(),
            duration.as_secs()
        );
        println!(
            "{:>5} {:>10} {:>10} {:>6} {:>9} {:>9} {:>9} {:>9} {:>10} {:>12} {:>12}",
            "conc", "direct rps", "gw rps", "ratio", "dir p50", "gw p50", "dir p99", "gw p99", "added p99",
            "gateway µs", "client+up µs"
        );
        for concurrency in [1, 16, 64] {
            let mut direct = Vec::new();
            let mut through = Vec::new();
            for _ in 0..3 {
                direct.push(
                    measured(&direct_url, concurrency, duration, vec![("bench".into(), Watched::Pid(me))]).await,
                );
                through.push(
                    measured(
                        &gateway_url,
                        concurrency,
                        duration,
                        vec![("bench".into(), Watched::Pid(me)), ("gateway".into(), Watched::Pid(gateway.pid()))],
                    )
                    .await,
                );
            }
            let (d, g) = (median(direct), median(through));
            println!(
                "{:>5} {:>10.0} {:>10.0} {:>6.2} {:>7.2}ms {:>7.2}ms {:>7.2}ms {:>7.2}ms {:>8.2}ms {:>12.1} {:>12.1}",
                concurrency,
                d.figures.rps,
                g.figures.rps,
                g.figures.rps / d.figures.rps,
                d.figures.p50_ms,
                g.figures.p50_ms,
                d.figures.p99_ms,
                g.figures.p99_ms,
                g.figures.p99_ms - d.figures.p99_ms,
                g.cpu_us["gateway"],
                g.cpu_us["bench"],
            );
        }
        println!("goals: gateway <= 40 µs CPU per proxied request; added p99 <= 1 ms at concurrency 16");
        drop(gateway);
        drop(db);
    });
}
