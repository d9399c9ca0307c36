//! SIGTERM: proxied websockets are closed ("going away"), the sweeper and the revocation listener
//! stop, and the process exits within `SHUTDOWN_GRACE_SECS`.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::StreamExt;
use test_support::{ServiceProcess, TestDatabase};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::helpers::{INTERNAL_TOKEN, WsUpstream};

#[tokio::test]
async fn sigterm_closes_proxied_sockets_stops_the_workers_and_exits_within_the_grace_period() {
    let db = TestDatabase::create().await;
    let upstream = WsUpstream::start().await;
    let grace = Duration::from_secs(10);
    let env: HashMap<&str, String> = HashMap::from([
        ("DATABASE_URL", db.url().to_owned()),
        ("INTERNAL_TOKEN", INTERNAL_TOKEN.to_owned()),
        ("PEER_CHANNELS_URL", upstream.url.clone()),
        ("SHUTDOWN_GRACE_SECS", grace.as_secs().to_string()),
    ]);
    let service = ServiceProcess::start(env!("CARGO_BIN_EXE_gateway"), &env).await;
    let url = format!(
        "{}/api/v1/channel/abc/notify?token=channel-token",
        service.url.replacen("http://", "ws://", 1)
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    assert_eq!(socket.next().await.unwrap().unwrap(), WsMessage::text("hello from upstream"));

    let stopped = service.terminate(Duration::from_secs(30)).await;
    assert!(stopped.status.success(), "{:?}\n{}", stopped.status, stopped.log);
    assert!(stopped.took < grace, "exited {:?} after SIGTERM; an open socket must not hold it", stopped.took);
    let mut workers: Vec<String> = stopped
        .events("worker stopped")
        .iter()
        .filter_map(|e| e["worker"].as_str().map(str::to_owned))
        .collect();
    workers.sort();
    assert_eq!(workers, ["gateway listener", "sweeper"], "{}", stopped.log);
    assert_eq!(stopped.events("shutdown complete")[0]["workers.stopped"], true);
    let mut close = None;
    while let Some(Ok(frame)) = socket.next().await {
        if let WsMessage::Close(c) = frame {
            close = c;
            break;
        }
    }
    assert_eq!(close.map(|c| c.code), Some(CloseCode::Away));
}
