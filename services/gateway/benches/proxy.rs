//! Requests/s and latency through the gateway against the same upstream reached directly.
//!
//! Run with `scripts/bench` (needs PostgreSQL, for the gateway's accounts schema). Prints figures,
//! never fails on them. Client, gateway and upstream share this machine, so the ratio (not the
//! absolute numbers) is the figure to watch: goal, the gateway costs under 15 % of throughput.
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{App, HttpResponse, web};

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
        let settings: gateway::settings::GatewaySettings =
            service_kit::settings::load_from(None, |k| env.get(k).cloned()).unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let app = gateway::Application::build(settings, listener, Arc::new(gateway::clock::SystemClock))
            .await
            .unwrap();
        let gateway_url = format!("http://127.0.0.1:{}/mapi/feeQuote", app.port());
        tokio::spawn(app.run_until_stopped());
        let direct_url = format!("{upstream_url}/mapi/feeQuote");
        let duration = Duration::from_secs(
            std::env::var("BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(4),
        );

        println!(
            "gateway proxy overhead: GET /mapi/feeQuote ({} B body), {}s per run",
            BODY.len(),
            duration.as_secs()
        );
        println!(
            "{:>6} {:>12} {:>12} {:>8} {:>10} {:>10} {:>10} {:>10}",
            "conc", "direct rps", "gateway rps", "ratio", "direct p50", "gw p50", "direct p99", "gw p99"
        );
        for concurrency in [1, 16, 64] {
            let direct = load(&direct_url, concurrency, duration).await;
            let through = load(&gateway_url, concurrency, duration).await;
            println!(
                "{:>6} {:>12.0} {:>12.0} {:>8.2} {:>9.2}ms {:>9.2}ms {:>9.2}ms {:>9.2}ms",
                concurrency,
                direct.rps,
                through.rps,
                through.rps / direct.rps,
                direct.p50_ms,
                through.p50_ms,
                direct.p99_ms,
                through.p99_ms
            );
        }
        drop(db);
    });
}
