//! SIGTERM: the subscriptions and the forwarder stop, and the process exits within
//! `SHUTDOWN_GRACE_SECS`.

use std::collections::HashMap;
use std::time::Duration;

use test_support::ServiceProcess;

use crate::listener::INTERNAL_TOKEN;

#[tokio::test]
async fn sigterm_stops_the_workers_and_exits_within_the_grace_period() {
    // A stand-in that answers the node list (empty) and /ready needs: a real mapi is not needed to
    // stop; the list endpoint is mapi's, so the real one is used.
    let db = test_support::TestDatabase::create().await;
    let mapi_env: HashMap<&str, String> = HashMap::from([
        ("DATABASE_URL", db.url().to_owned()),
        ("INTERNAL_TOKEN", INTERNAL_TOKEN.to_owned()),
        ("WIF_PRIVATEKEY", "cN9spWsvaxA8taS7DFMxnk1yJD2gaF2PX1npuTpy3vuZFJdwavaw".to_owned()),
        ("MEMPOOL_CHECKER_DISABLED", "true".to_owned()),
    ]);
    let settings: mapi::settings::MapiSettings =
        service_kit::settings::load_from(None, |k| mapi_env.get(k).cloned()).unwrap();
    let app = mapi::Application::build(settings, test_support::local_listener()).await.unwrap();
    let mapi = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());

    let grace = Duration::from_secs(10);
    let env: HashMap<&str, String> = HashMap::from([
        ("INTERNAL_TOKEN", INTERNAL_TOKEN.to_owned()),
        ("MAPI_URL", mapi),
        ("BLOCK_PARSER_URL", format!("http://127.0.0.1:{}", test_support::free_port())),
        ("SHUTDOWN_GRACE_SECS", grace.as_secs().to_string()),
    ]);
    let service = ServiceProcess::start(env!("CARGO_BIN_EXE_zmq-listener"), &env).await;
    let stopped = service.terminate(Duration::from_secs(30)).await;
    assert!(stopped.status.success(), "{:?}\n{}", stopped.status, stopped.log);
    assert!(stopped.took < grace, "exited {:?} after SIGTERM", stopped.took);
    let mut workers: Vec<String> = stopped
        .events("worker stopped")
        .iter()
        .filter_map(|e| e["worker"].as_str().map(str::to_owned))
        .collect();
    workers.sort();
    assert_eq!(workers, ["forwarder", "subscriptions"], "{}", stopped.log);
    assert_eq!(stopped.events("shutdown complete")[0]["workers.stopped"], true);
}
