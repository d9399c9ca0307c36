//! At least once across a crash: the notifier killed with SIGKILL while 1,000 notifications wait
//! loses none; what was in flight is delivered again, and the duplicates are counted.

use std::collections::HashSet;
use std::time::Duration;

use test_support::{RecordingReceiver, ServiceProcess, TestDatabase};

use crate::helpers::*;

#[tokio::test]
async fn a_notifier_killed_with_1000_queued_delivers_every_one_after_a_restart() {
    test_support::init_test_tracing();
    let db = TestDatabase::create().await;
    let receiver = RecordingReceiver::start().await;
    // A receiver that takes 20 ms per callback: the queue drains over seconds, not at once.
    receiver.set_delay(Duration::from_millis(20));
    let env = notifier_env(db.url(), &[("NOTIFICATION_INSTANT_NOTIFICATIONS_QUEUE_SIZE", "2000")]);
    let port = test_support::free_port();
    let binary = env!("CARGO_BIN_EXE_notifier");
    let first = ServiceProcess::start_on(binary, &env, port).await;
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let total = 1000;
    let requests = (0..total)
        .map(|n| request(&format!("k{n}"), &format!("{}/cb", receiver.url()), &format!("{{\"n\":{n}}}")))
        .collect();
    let answer = hand_over(&http, &url, requests).await;
    assert_eq!(answer["new"], total);

    receiver.wait_for(50, Duration::from_secs(20)).await;
    first.kill();
    let before_restart = receiver.requests().len();
    assert!(before_restart < total, "killed while most were still queued ({before_restart} delivered)");

    let _second = ServiceProcess::start_on(binary, &env, port).await;
    let unique = eventually(Duration::from_secs(90), "every notification delivered", || async {
        let seen: HashSet<Vec<u8>> = receiver.requests().iter().map(|r| r.body.to_vec()).collect();
        (seen.len() == total).then_some(seen.len())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let received = receiver.requests().len();
    let duplicates = received - unique;
    eprintln!(
        "kill -9 with {total} queued: {before_restart} delivered before the kill, {unique} unique after the restart, \
         {duplicates} duplicates ({:.1} %)",
        duplicates as f64 * 100.0 / total as f64
    );
    assert!(duplicates * 100 <= total, "at most 1 % extra: {duplicates}");
    let waiting = test_support::query_json(
        db.url(),
        "notifier",
        "SELECT count(*) AS n FROM notifications WHERE delivered_at IS NULL",
    )
    .await;
    assert_eq!(waiting[0]["n"], 0);
}
