//! Peer-channels figures (never pass/fail): messages/s written and read at concurrency 1, 16 and
//! 64, and websocket notification latency (write sent → frame received) with 1 000 subscribers,
//! on one replica and across two replicas. Talks to the service directly (the gateway's cost is
//! measured by its own bench). Run with `scripts/bench`; needs PostgreSQL.
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};
use test_support::TestDatabase;

const TOKEN: &str = "bench-internal-token-0123456789";

async fn replica(db: &TestDatabase) -> String {
    let env: HashMap<&str, String> =
        HashMap::from([("DATABASE_URL", db.url().to_owned()), ("INTERNAL_TOKEN", TOKEN.to_owned())]);
    let settings: peer_channels::settings::PeerChannelsSettings =
        service_kit::settings::load_from(None, |k| env.get(k).cloned()).unwrap();
    let app = peer_channels::Application::build(settings, test_support::local_listener()).await.unwrap();
    let url = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    url
}

/// A channel of account 1 (as the gateway would vouch); returns (id, owner token).
async fn channel(http: &reqwest::Client, base: &str) -> (String, String) {
    let v: Value = http
        .post(format!("{base}/api/v1/channel/manage"))
        .header("x-internal-token", TOKEN)
        .header("x-caller-account", "1")
        .json(&json!({"public_read": true, "public_write": true, "sequenced": false,
            "retention": {"min_age_days": 0, "max_age_days": 0, "auto_prune": false}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (v["id"].as_str().unwrap().to_owned(), v["access_tokens"][0]["token"].as_str().unwrap().to_owned())
}

/// Runs `total` requests from `concurrency` workers; returns requests per second.
async fn load<F, Fut>(total: usize, concurrency: usize, make: F) -> f64
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let make = Arc::new(make);
    let left = Arc::new(std::sync::atomic::AtomicUsize::new(total));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (make, left) = (make.clone(), left.clone());
        workers.push(tokio::spawn(async move {
            while left
                .fetch_update(
                    std::sync::atomic::Ordering::Relaxed,
                    std::sync::atomic::Ordering::Relaxed,
                    |n| n.checked_sub(1),
                )
                .is_ok()
            {
                make().await;
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    total as f64 / started.elapsed().as_secs_f64()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Latency from sending a write on `write_base` to each of `subscribers` sockets on `sub_bases`.
async fn latency(
    write_base: &str,
    sub_bases: &[String],
    subscribers: usize,
    rounds: usize,
) -> (Duration, Duration, Duration) {
    let http = reqwest::Client::new();
    let (id, owner) = channel(&http, write_base).await;
    let token = owner.replace('=', "%3D");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(i64, Instant)>();
    for i in 0..subscribers {
        let base = &sub_bases[i % sub_bases.len()];
        let url =
            format!("{}/api/v1/channel/{id}/notify?token={token}", base.replacen("http://", "ws://", 1));
        let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let tx = tx.clone();
        tokio::spawn(async move {
            while let Some(Ok(m)) = socket.next().await {
                if let tokio_tungstenite::tungstenite::Message::Text(t) = m {
                    let v: Value = serde_json::from_str(t.as_str()).unwrap();
                    let _ = tx.send((v["sequence"].as_i64().unwrap(), Instant::now()));
                }
            }
        });
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut samples = Vec::with_capacity(subscribers * rounds);
    for _ in 0..rounds {
        let sent = Instant::now();
        let resp = http
            .post(format!("{write_base}/api/v1/channel/{id}"))
            .bearer_auth(&owner)
            .json(&json!({"ping": true}))
            .send()
            .await
            .unwrap();
        let seq = resp.json::<Value>().await.unwrap()["sequence"].as_i64().unwrap();
        let mut got = 0;
        while got < subscribers {
            let (s, at) = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.unwrap().unwrap();
            if s == seq {
                samples.push(at - sent);
                got += 1;
            }
        }
    }
    samples.sort_unstable();
    (percentile(&samples, 0.5), percentile(&samples, 0.99), *samples.last().unwrap())
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let db = TestDatabase::create().await;
        let base = replica(&db).await;
        let second = replica(&db).await;
        let http = reqwest::Client::new();
        let per_run: usize = std::env::var("BENCH_MESSAGES").ok().and_then(|s| s.parse().ok()).unwrap_or(2000);
        println!("peer channels, one replica, {per_run} requests per run, 2 cores shared with PostgreSQL and the client");
        println!("{:>6} {:>16} {:>16} {:>16}", "conc", "write msg/s", "read req/s", "read msg/s");
        for concurrency in [1, 16, 64] {
            let (id, owner) = channel(&http, &base).await;
            let url = format!("{base}/api/v1/channel/{id}");
            let (h, u, o) = (http.clone(), url.clone(), owner.clone());
            let writes = load(per_run, concurrency, move || {
                let req = h.post(&u).bearer_auth(&o).json(&json!({"bench": "message", "n": 1}));
                async move {
                    assert_eq!(req.send().await.unwrap().status(), 200);
                }
            })
            .await;
            // Reads of a channel holding 10 messages.
            let (rid, rowner) = channel(&http, &base).await;
            let rurl = format!("{base}/api/v1/channel/{rid}");
            for _ in 0..10 {
                http.post(&rurl).bearer_auth(&rowner).json(&json!({"n": 1})).send().await.unwrap();
            }
            let (h, u, o) = (http.clone(), rurl.clone(), rowner.clone());
            let reads = load(per_run, concurrency, move || {
                let req = h.get(&u).bearer_auth(&o);
                async move {
                    let resp = req.send().await.unwrap();
                    assert_eq!(resp.status(), 200);
                    let _ = resp.bytes().await.unwrap();
                }
            })
            .await;
            println!("{concurrency:>6} {writes:>16.0} {reads:>16.0} {:>16.0}", reads * 10.0);
        }
        let subscribers: usize = std::env::var("BENCH_SUBSCRIBERS").ok().and_then(|s| s.parse().ok()).unwrap_or(1000);
        let rounds = 20;
        let (p50, p99, max) = latency(&base, std::slice::from_ref(&base), subscribers, rounds).await;
        println!("notification latency, {subscribers} subscribers on the writer's replica, {rounds} writes: p50 {p50:.2?} p99 {p99:.2?} max {max:.2?}");
        let (p50, p99, max) = latency(&base, std::slice::from_ref(&second), subscribers, rounds).await;
        println!("notification latency, {subscribers} subscribers on another replica, {rounds} writes: p50 {p50:.2?} p99 {p99:.2?} max {max:.2?}");
    });
}
