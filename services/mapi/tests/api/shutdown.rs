//! SIGTERM: the mempool checker finishes its round and stops, the callback outbox and the DSNT
//! sweeper stop, requests drain, and the process exits within `SHUTDOWN_GRACE_SECS`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use test_support::{ServiceProcess, TestDatabase};

use crate::helpers::{INTERNAL_TOKEN, WIF};

#[tokio::test]
async fn sigterm_stops_the_mempool_checker_and_exits_within_the_grace_period() {
    let db = TestDatabase::create().await;
    let grace = Duration::from_secs(10);
    let env: HashMap<&str, String> = HashMap::from([
        ("DATABASE_URL", db.url().to_owned()),
        ("INTERNAL_TOKEN", INTERNAL_TOKEN.to_owned()),
        ("WIF_PRIVATEKEY", WIF.to_owned()),
        ("SHUTDOWN_GRACE_SECS", grace.as_secs().to_string()),
        ("MEMPOOL_CHECKER_INTERVAL_SEC", "1".to_owned()),
        ("MEMPOOL_CHECKER_UNSUCCESSFUL_INTERVAL_SEC", "1".to_owned()),
        // Nothing listens there: the callback outbox runs (and retries) all the same.
        ("NOTIFIER_URL", format!("http://127.0.0.1:{}", test_support::free_port())),
    ]);
    let service = ServiceProcess::start(env!("CARGO_BIN_EXE_mapi"), &env).await;
    // The checker is running (it holds its lock).
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = http.get(format!("{}/metrics", service.url)).send().await.unwrap().text().await.unwrap();
        if text.lines().any(|l| l.starts_with("mapi_mempool_checker_active") && l.ends_with(" 1")) {
            break;
        }
        assert!(Instant::now() < deadline, "the mempool checker did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let stopped = service.terminate(Duration::from_secs(30)).await;
    assert!(stopped.status.success(), "{:?}\n{}", stopped.status, stopped.log);
    assert!(stopped.took < grace, "exited {:?} after SIGTERM", stopped.took);
    let workers = stopped.events("worker stopped");
    let mut names: Vec<&str> = workers.iter().filter_map(|w| w["worker"].as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["callback outbox", "dsnt sweeper", "mempool checker", "registration"],
        "{}",
        stopped.log
    );
    assert_eq!(stopped.events("shutdown complete")[0]["workers.stopped"], true, "{}", stopped.log);
}
