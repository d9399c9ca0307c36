//! Transport failures against real sockets: a node that accepts and never answers, a port nobody
//! listens on.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use node_client::{RpcClient, RpcConfig, RpcError, TransportError};

fn client_for(port: u16, timeout: Duration) -> RpcClient {
    let mut config =
        RpcConfig::new(format!("http://127.0.0.1:{port}").parse().unwrap(), "u", "p".to_owned().into());
    config.timeout = timeout;
    config.block_timeout = timeout;
    RpcClient::new(config).unwrap()
}

#[tokio::test]
async fn a_silent_node_times_out_and_counts_as_unreachable() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        loop {
            let (socket, _) = listener.accept().await.unwrap();
            open.push(socket); // accepted, never answered
        }
    });
    let rpc = client_for(port, Duration::from_millis(300));
    let started = Instant::now();
    let err = rpc.get_blockchain_info().await.unwrap_err();
    assert!(matches!(err, RpcError::Transport(TransportError::Timeout(_))), "{err:?}");
    assert!(err.is_unreachable());
    assert!(started.elapsed() < Duration::from_secs(5));
    let hash = "0000000000000000000000000000000000000000000000000000000000000000".parse().unwrap();
    assert!(matches!(
        rpc.get_block_stream(&hash).await,
        Err(RpcError::Transport(TransportError::Timeout(_)))
    ));
    held.abort();
}

#[tokio::test]
async fn nobody_listening_is_a_connect_error_after_the_retries() {
    let port = test_support::free_port();
    let err = client_for(port, Duration::from_secs(5)).get_blockchain_info().await.unwrap_err();
    assert!(matches!(err, RpcError::Transport(ref t) if t.is_connect()), "{err:?}");
    assert!(err.is_unreachable());
}
