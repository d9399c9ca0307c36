//! SIGTERM: the tips websocket is closed ("going away"), the chain follower stops, and the process
//! exits within `SHUTDOWN_GRACE_SECS`.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::StreamExt;
use test_support::{ServiceProcess, TestDatabase};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::helpers::INTERNAL_TOKEN;

#[tokio::test]
async fn sigterm_closes_the_tips_socket_stops_the_follower_and_exits_within_the_grace_period() {
    let db = TestDatabase::create().await;
    let grace = Duration::from_secs(10);
    let env: HashMap<&str, String> = HashMap::from([
        ("DATABASE_URL", db.url().to_owned()),
        ("INTERNAL_TOKEN", INTERNAL_TOKEN.to_owned()),
        // No mapi there: the follower's rounds fail and it keeps trying.
        ("MAPI_URL", format!("http://127.0.0.1:{}", test_support::free_port())),
        ("SHUTDOWN_GRACE_SECS", grace.as_secs().to_string()),
    ]);
    let service = ServiceProcess::start(env!("CARGO_BIN_EXE_block-parser"), &env).await;
    let url = format!("{}/api/v1/headers/tips/websocket", service.url.replacen("http://", "ws://", 1));
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();

    let stopped = service.terminate(Duration::from_secs(30)).await;
    assert!(stopped.status.success(), "{:?}\n{}", stopped.status, stopped.log);
    assert!(stopped.took < grace, "exited {:?} after SIGTERM", stopped.took);
    let workers = stopped.events("worker stopped");
    let mut names: Vec<&str> = workers.iter().filter_map(|w| w["worker"].as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["block parser", "chain follower", "outbox"], "{}", stopped.log);
    assert_eq!(stopped.events("shutdown complete")[0]["workers.stopped"], true);
    let mut close = None;
    while let Some(Ok(frame)) = socket.next().await {
        if let Message::Close(c) = frame {
            close = c;
            break;
        }
    }
    assert_eq!(close.map(|c| c.code), Some(CloseCode::Away));
}
