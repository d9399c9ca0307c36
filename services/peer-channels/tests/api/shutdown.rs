//! SIGTERM: open websockets are closed ("going away"), the listener and the pruner stop, and the
//! process exits well within `SHUTDOWN_GRACE_SECS`.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::StreamExt;
use test_support::{ServiceProcess, TestDatabase};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::helpers::INTERNAL_TOKEN;

#[tokio::test]
async fn sigterm_closes_the_sockets_stops_the_workers_and_exits_within_the_grace_period() {
    let db = TestDatabase::create().await;
    let grace = Duration::from_secs(10);
    let env: HashMap<&str, String> = HashMap::from([
        ("DATABASE_URL", db.url().to_owned()),
        ("INTERNAL_TOKEN", INTERNAL_TOKEN.to_owned()),
        ("SHUTDOWN_GRACE_SECS", grace.as_secs().to_string()),
        ("WEBSOCKET_HEARTBEAT_SECS", "600".to_owned()),
        ("PRUNER_INTERVAL_SECS", "3600".to_owned()),
        ("BLOCK_PARSER_URL", format!("http://127.0.0.1:{}", test_support::free_port())),
    ]);
    let service = ServiceProcess::start(env!("CARGO_BIN_EXE_peer-channels"), &env).await;
    // An account socket, as the gateway opens it for account 1.
    let mut request = format!("{}/api/v1/web-socket", service.url.replacen("http://", "ws://", 1))
        .into_client_request()
        .unwrap();
    request.headers_mut().insert("x-internal-token", INTERNAL_TOKEN.parse().unwrap());
    request.headers_mut().insert("x-caller-account", "1".parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();

    let stopped = service.terminate(Duration::from_secs(30)).await;
    assert!(stopped.status.success(), "{:?}\n{}", stopped.status, stopped.log);
    assert!(stopped.took < grace, "exited {:?} after SIGTERM; an open socket must not hold it", stopped.took);
    let mut workers: Vec<String> =
        stopped.events("worker stopped").iter().map(|e| e["worker"].as_str().unwrap().to_owned()).collect();
    workers.sort();
    assert_eq!(workers, ["notification listener", "pruner", "tips"], "{}", stopped.log);
    let complete = stopped.events("shutdown complete");
    assert_eq!(complete.len(), 1, "{}", stopped.log);
    assert_eq!(complete[0]["workers.stopped"], true);
    // The socket was told the service is going away.
    let mut close = None;
    while let Some(Ok(frame)) = socket.next().await {
        if let WsMessage::Close(c) = frame {
            close = c;
            break;
        }
    }
    assert_eq!(close.map(|c| c.code), Some(CloseCode::Away));
}
