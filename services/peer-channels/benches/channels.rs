//! Peer-channels figures (never pass/fail): messages/s written through the gateway (one channel
//! and 16 channels) and read, with the CPU µs per message of the gateway, peer-channels,
//! PostgreSQL and this client (release processes; median of 3 runs of `BENCH_MESSAGES`, 5 000),
//! and websocket notification latency (write sent → frame received) with 1 000 subscribers, on one
//! replica and across two replicas. Run with `scripts/bench` (it builds the release binaries);
//! needs PostgreSQL.
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};
use test_support::cpu::{CpuMeter, Watched};
use test_support::{ServiceProcess, TestDatabase};

const TOKEN: &str = "bench-internal-token-0123456789";

fn binary(name: &str) -> String {
    let path = test_support::workspace_root().join("target/release").join(name);
    assert!(path.exists(), "{} is missing: run `cargo build --release -p {name}`", path.display());
    path.to_string_lossy().into_owned()
}

/// A peer-channels replica as its own release process.
async fn replica(db: &TestDatabase) -> ServiceProcess {
    let env: HashMap<&str, String> = HashMap::from([
        ("DATABASE_URL", db.url().to_owned()),
        ("INTERNAL_TOKEN", TOKEN.to_owned()),
        ("RUST_LOG", "warn".to_owned()),
        ("BLOCK_PARSER_URL", format!("http://127.0.0.1:{}", test_support::free_port())),
        ("TIPS_POLL_INTERVAL_MS", "0".to_owned()),
    ]);
    ServiceProcess::start(&binary("peer-channels"), &env).await
}

/// A gateway process in front of `peer_channels`.
async fn gateway(db: &TestDatabase, peer_channels: &str) -> ServiceProcess {
    let env: HashMap<&str, String> = HashMap::from([
        ("DATABASE_URL", db.url().to_owned()),
        ("INTERNAL_TOKEN", TOKEN.to_owned()),
        ("RUST_LOG", "warn".to_owned()),
        ("PEER_CHANNELS_URL", peer_channels.to_owned()),
    ]);
    ServiceProcess::start(&binary("gateway"), &env).await
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

/// One measured run: ops/s and the CPU µs per operation of each process.
struct Run {
    rate: f64,
    cpu_us: BTreeMap<String, f64>,
}

async fn measured<F, Fut>(total: usize, concurrency: usize, watched: &[(String, Watched)], make: F) -> Run
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let meter = CpuMeter::start(watched.to_vec());
    let counter = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let rate = load(total, concurrency, move || {
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        make(n)
    })
    .await;
    let cpu_us =
        meter.elapsed().into_iter().map(|(k, v)| (k, v.as_secs_f64() * 1e6 / total as f64)).collect();
    Run { rate, cpu_us }
}

fn median(mut runs: Vec<Run>) -> Run {
    runs.sort_by(|a, b| a.rate.total_cmp(&b.rate));
    runs.swap_remove(runs.len() / 2)
}

fn print_row(label: &str, run: &Run, goal: &str) {
    let cpu: Vec<String> = run.cpu_us.iter().map(|(k, v)| format!("{k} {v:.0}")).collect();
    println!("{label:<44} {:>9.0} msg/s   CPU µs/op: {}   {goal}", run.rate, cpu.join(", "));
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let db = TestDatabase::create().await;
        let gw_db = TestDatabase::create().await;
        let first = replica(&db).await;
        let second = replica(&db).await;
        let gw = gateway(&gw_db, &first.url).await;
        let base = first.url.clone();
        let http = reqwest::Client::builder().pool_max_idle_per_host(128).build().unwrap();
        let per_run: usize = std::env::var("BENCH_MESSAGES").ok().and_then(|s| s.parse().ok()).unwrap_or(5000);
        let watched = vec![
            ("bench".to_owned(), Watched::Pid(std::process::id())),
            ("gateway".to_owned(), Watched::Pid(gw.pid())),
            ("peer-channels".to_owned(), Watched::Pid(first.pid())),
            ("postgres".to_owned(), Watched::Named("postgres".into())),
        ];
        println!(
            "peer channels through the gateway (release processes), {per_run} requests per run, median of 3, \
             2 cores shared with PostgreSQL and the client"
        );
        for (concurrency, channels, goal) in [
            (1, 1, ""),
            (16, 1, "(goal one channel >= 3000 msg/s)"),
            (16, 16, ""),
            (64, 16, "(goal >= 10000 msg/s)"),
        ] {
            let mut targets = Vec::new();
            for _ in 0..channels {
                let (id, owner) = channel(&http, &base).await;
                targets.push((format!("{}/api/v1/channel/{id}", gw.url), owner));
            }
            let targets = Arc::new(targets);
            let mut runs = Vec::new();
            for _ in 0..3 {
                let (h, t) = (http.clone(), targets.clone());
                runs.push(
                    measured(per_run, concurrency, &watched, move |n| {
                        let (url, owner) = &t[n % t.len()];
                        let req = h.post(url).bearer_auth(owner).json(&json!({"bench": "message", "n": n}));
                        async move {
                            assert_eq!(req.send().await.unwrap().status(), 200);
                        }
                    })
                    .await,
                );
            }
            print_row(&format!("write, concurrency {concurrency}, {channels} channel(s)"), &median(runs), goal);
        }
        // Reads of a channel holding 10 messages.
        let (rid, rowner) = channel(&http, &base).await;
        let rurl = format!("{}/api/v1/channel/{rid}", gw.url);
        for _ in 0..10 {
            http.post(&rurl).bearer_auth(&rowner).json(&json!({"n": 1})).send().await.unwrap();
        }
        let reads = |label: String, goal: String| {
            let (h, u, o, w) = (http.clone(), rurl.clone(), rowner.clone(), watched.clone());
            async move {
                let mut rates = Vec::new();
                for concurrency in [1, 16] {
                    let mut runs = Vec::new();
                    for _ in 0..3 {
                        let (h, u, o) = (h.clone(), u.clone(), o.clone());
                        runs.push(
                            measured(per_run, concurrency, &w, move |_| {
                                let req = h.get(&u).bearer_auth(&o);
                                async move {
                                    let resp = req.send().await.unwrap();
                                    assert_eq!(resp.status(), 200);
                                    let _ = resp.bytes().await.unwrap();
                                }
                            })
                            .await,
                        );
                    }
                    let run = median(runs);
                    print_row(&format!("{label}, concurrency {concurrency}"), &run, &goal);
                    rates.push(run.rate);
                }
                rates
            }
        };
        let small = reads("read of 10 messages".into(), String::new()).await;
        // The same reads with a million messages of another channel in the table (as a
        // deployment that has run for a while holds), written straight into it and analysed.
        channel(&http, &base).await;
        let million = 1_000_000;
        test_support::execute_sql(
            db.url(),
            peer_channels::SCHEMA,
            &format!(
                "INSERT INTO messages (channel_id, seq, from_token, received_at, content_type, payload) \
                 SELECT (SELECT max(id) FROM channels), g, NULL, now(), 'application/json', \
                 convert_to('{{\"bench\": \"message\", \"n\": ' || g || '}}', 'UTF8') \
                 FROM generate_series(1, {million}) g; \
                 UPDATE channels SET head_sequence = {million} WHERE id = (SELECT max(id) FROM channels); \
                 ANALYZE messages"
            ),
        )
        .await;
        let large = reads(format!("read of 10 messages, {million} in the table"), "(goal within 20 % of the above)".into()).await;
        for ((concurrency, a), b) in [1, 16].iter().zip(&small).zip(&large) {
            println!("reads with {million} messages in the table at concurrency {concurrency}: {:.2} of the rate without", b / a);
        }
        let subscribers: usize = std::env::var("BENCH_SUBSCRIBERS").ok().and_then(|s| s.parse().ok()).unwrap_or(1000);
        let rounds = 20;
        let (p50, p99, max) = latency(&base, std::slice::from_ref(&base), subscribers, rounds).await;
        println!("notification latency, {subscribers} subscribers on the writer's replica, {rounds} writes: p50 {p50:.2?} p99 {p99:.2?} max {max:.2?} (goal p99 <= 10 ms)");
        let second_url = second.url.clone();
        let (p50, p99, max) = latency(&base, std::slice::from_ref(&second_url), subscribers, rounds).await;
        println!("notification latency, {subscribers} subscribers on another replica, {rounds} writes: p50 {p50:.2?} p99 {p99:.2?} max {max:.2?}");
        drop((gw, first, second));
    });
}
