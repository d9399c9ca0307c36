//! Callback delivery figures (never pass/fail), with the notifier as a release process on
//! PostgreSQL and the receivers in this process:
//!
//! 1. callbacks/s to one fast local receiver, and the CPU µs per callback of the notifier,
//!    PostgreSQL (all backends) and this process (the receiver and the client that hands the
//!    notifications over, 500 per request as mapi does), median of 3 runs;
//! 2. one host that stalls 2 s among 20 fast hosts: the fast hosts' p99 delivery time with and
//!    without it (goal: at most 10 % worse).
//!
//! Run with `scripts/bench` (it builds the release binary first).
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use test_support::cpu::{CpuMeter, Watched};
use test_support::{RecordingReceiver, ServiceProcess, TestDatabase};
use wire_model::internal::{NotificationRequest, NotificationRequests};

const TOKEN: &str = "bench-internal-token-0123456789";

fn binary(name: &str) -> String {
    let path = test_support::workspace_root().join("target/release").join(name);
    assert!(path.exists(), "{} is missing: run `cargo build --release -p {name}`", path.display());
    path.to_string_lossy().into_owned()
}

async fn notifier(db: &TestDatabase, extra: &[(&'static str, &str)]) -> ServiceProcess {
    let mut env: HashMap<&str, String> = HashMap::from([
        ("DATABASE_URL", db.url().to_owned()),
        ("INTERNAL_TOKEN", TOKEN.to_owned()),
        ("NOTIFICATION_BLOCK_PRIVATE_TARGETS", "false".to_owned()),
        ("RUST_LOG", "warn".to_owned()),
    ]);
    for (k, v) in extra {
        env.insert(k, (*v).to_owned());
    }
    ServiceProcess::start(&binary("notifier"), &env).await
}

fn body(n: usize) -> String {
    // About the size of a signed merkleProof envelope.
    format!(
        "{{\"payload\":\"{{\\\"callbackPayload\\\":{{\\\"index\\\":{n},\\\"nodes\\\":[]}},\\\"pad\\\":\\\"{}\\\"}}\",\"signature\":\"30\",\"publicKey\":\"02\",\"encoding\":\"UTF-8\",\"mimetype\":\"application/json\"}}",
        "ab".repeat(700)
    )
}

async fn hand_over(http: &reqwest::Client, url: &str, requests: Vec<NotificationRequest>) {
    for chunk in requests.chunks(500) {
        let resp = http
            .post(format!("{url}/internal/notifications"))
            .header("x-internal-token", TOKEN)
            .json(&NotificationRequests { notifications: chunk.to_vec() })
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
}

fn request(key: String, url: String, n: usize) -> NotificationRequest {
    NotificationRequest {
        key,
        url,
        token: Some("Bearer merchant".into()),
        encryption: None,
        body: body(n),
        txid: None,
        reason: Some("merkleProof".into()),
    }
}

struct Throughput {
    rate: f64,
    cpu_us: Vec<(String, f64)>,
}

async fn throughput_run(n: usize) -> Throughput {
    let db = TestDatabase::create().await;
    let service = notifier(&db, &[("NOTIFICATION_INSTANT_NOTIFICATIONS_QUEUE_SIZE", "5000")]).await;
    let receiver = RecordingReceiver::start().await;
    let http = reqwest::Client::new();
    let meter = CpuMeter::start(vec![
        ("notifier".into(), Watched::Pid(service.pid())),
        ("postgres (all)".into(), Watched::Named("postgres".into())),
        ("bench (receiver, client)".into(), Watched::Pid(std::process::id())),
    ]);
    let started = Instant::now();
    let url = format!("{}/cb", receiver.url());
    hand_over(&http, &service.url, (0..n).map(|i| request(format!("t{i}"), url.clone(), i)).collect()).await;
    receiver.wait_for(n, Duration::from_secs(300)).await;
    let took = started.elapsed();
    let cpu = meter.elapsed();
    drop(service);
    Throughput {
        rate: n as f64 / took.as_secs_f64(),
        cpu_us: cpu.into_iter().map(|(k, v)| (k, v.as_secs_f64() * 1e6 / n as f64)).collect(),
    }
}

/// p99 of the fast hosts' delivery times (from the hand-over), with or without a stalling host.
async fn fast_hosts_p99(with_stalling_host: bool, per_host: usize) -> Duration {
    let db = TestDatabase::create().await;
    let service = notifier(&db, &[("NOTIFICATION_INSTANT_NOTIFICATION_TASKS", "10")]).await;
    let mut fast = Vec::new();
    for _ in 0..20 {
        fast.push(RecordingReceiver::start().await);
    }
    let stalling = RecordingReceiver::start().await;
    stalling.set_delay(Duration::from_secs(2));
    let http = reqwest::Client::new();
    let mut requests = Vec::new();
    for i in 0..per_host {
        for (h, r) in fast.iter().enumerate() {
            requests.push(request(format!("f{h}-{i}"), format!("{}/cb", r.url()), i));
        }
        if with_stalling_host {
            requests.push(request(format!("s-{i}"), format!("{}/cb", stalling.url()), i));
        }
    }
    let started = Instant::now();
    hand_over(&http, &service.url, requests).await;
    let mut times = Vec::new();
    for r in &fast {
        for got in r.wait_for(per_host, Duration::from_secs(120)).await {
            times.push(got.received_at - started);
        }
    }
    times.sort();
    drop(service);
    times[(times.len() * 99 / 100).min(times.len() - 1)]
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let n: usize = std::env::var("BENCH_CALLBACKS").ok().and_then(|s| s.parse().ok()).unwrap_or(20_000);
        println!("notifier: {n} callbacks to one fast local receiver (release process, default settings, queue 5000)");
        let mut runs = Vec::new();
        for i in 0..3 {
            let run = throughput_run(n).await;
            println!("  run {}: {:.0} callbacks/s", i + 1, run.rate);
            runs.push(run);
        }
        runs.sort_by(|a, b| a.rate.total_cmp(&b.rate));
        let median = &runs[1];
        println!("callbacks/s (median of 3): {:.0}   (no goal set)", median.rate);
        println!("  {:<26} {:>14}", "process", "CPU µs/callback");
        for (label, us) in &median.cpu_us {
            println!("  {label:<26} {us:>14.1}   (no goal set)");
        }

        let per_host = 100;
        println!("notifier: 20 fast hosts x {per_host} callbacks, with and without one host that stalls 2 s (10 tasks)");
        let mut without = Vec::new();
        let mut with = Vec::new();
        for _ in 0..3 {
            without.push(fast_hosts_p99(false, per_host).await);
            with.push(fast_hosts_p99(true, per_host).await);
        }
        without.sort();
        with.sort();
        let (a, b) = (without[1], with[1]);
        println!(
            "fast hosts' p99 (median of 3): {:.0} ms alone, {:.0} ms beside a stalling host: {:+.1} % (goal <= +10 %)",
            a.as_secs_f64() * 1000.0,
            b.as_secs_f64() * 1000.0,
            (b.as_secs_f64() / a.as_secs_f64() - 1.0) * 100.0
        );
    });
}
