//! A ZMQ subscriber for the node's notifications, on tokio, that reconnects by itself.
//!
//! Built on the pure-Rust `zeromq` crate. Its `connect` waits until the publisher answers, so the
//! connection is made inside a task with a timeout and a retry loop; once connected, the socket
//! itself reconnects and re-subscribes when the node restarts.

use std::time::Duration;

use bsv_primitives::{BlockHash, Txid};
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use zeromq::{Socket, SocketOptions, SocketRecv, SubSocket};

use crate::rpc_types::CollidedTx;

/// The notification topics mAPI listens to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ZmqTopic {
    /// A new best block (body: 32-byte hash).
    HashBlock,
    /// A transaction the node rejected (body: JSON).
    InvalidTx,
    /// A transaction dropped from the mempool (body: JSON).
    DiscardedFromMempool,
    /// A transaction removed from the mempool because a block included it (body: JSON).
    RemovedFromMempoolBlock,
    /// A transaction accepted into the mempool or connected in a block (body: its raw bytes).
    RawTx,
}

impl ZmqTopic {
    /// Every topic.
    pub const ALL: [ZmqTopic; 5] = [
        ZmqTopic::HashBlock,
        ZmqTopic::InvalidTx,
        ZmqTopic::DiscardedFromMempool,
        ZmqTopic::RemovedFromMempoolBlock,
        ZmqTopic::RawTx,
    ];

    /// The topic string on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ZmqTopic::HashBlock => "hashblock",
            ZmqTopic::InvalidTx => "invalidtx",
            ZmqTopic::DiscardedFromMempool => "discardedfrommempool",
            ZmqTopic::RemovedFromMempoolBlock => "removedfrommempoolblock",
            ZmqTopic::RawTx => "rawtx",
        }
    }

    /// The topic for a wire string.
    pub fn from_wire(s: &[u8]) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str().as_bytes() == s)
    }
}

/// Body of an `invalidtx` notification.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvalidTxInfo {
    /// The rejected transaction.
    pub txid: Txid,
    /// Whether it arrived in a block.
    #[serde(default, alias = "fromblock")]
    pub from_block: bool,
    /// Where it came from (`p2p`, `rpc`, ...).
    #[serde(default)]
    pub source: Option<String>,
    /// Its size.
    #[serde(default)]
    pub size: u64,
    /// Its hex (omitted by the node for very large transactions).
    #[serde(default)]
    pub hex: Option<String>,
    /// Rejected for double spending.
    #[serde(default)]
    pub is_double_spend_detected: bool,
    /// Rejected for conflicting with the mempool.
    #[serde(default)]
    pub is_mempool_conflict_detected: bool,
    /// Rejected for missing inputs.
    #[serde(default)]
    pub is_missing_inputs: bool,
    /// The node's reject code (258 mempool conflict, 18 double spend, ...).
    #[serde(default)]
    pub rejection_code: Option<i64>,
    /// The node's reason text.
    #[serde(default)]
    pub rejection_reason: Option<String>,
    /// The transactions it collided with.
    #[serde(default)]
    pub collided_with: Vec<CollidedTx>,
}

/// Body of `discardedfrommempool` and `removedfrommempoolblock` notifications.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MempoolRemoval {
    /// The removed transaction.
    pub txid: Txid,
    /// Why (`collision-in-block-tx`, `included-in-block`, ...).
    #[serde(default)]
    pub reason: String,
    /// The block transaction it collided with, for `collision-in-block-tx`.
    #[serde(default)]
    pub collided_with: Option<CollidedTx>,
    /// The block involved, when the node says.
    #[serde(default)]
    pub blockhash: Option<BlockHash>,
}

/// A decoded notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ZmqEvent {
    /// A new block was connected.
    HashBlock(BlockHash),
    /// A transaction was rejected.
    InvalidTx(Box<InvalidTxInfo>),
    /// A transaction was dropped from the mempool.
    DiscardedFromMempool(MempoolRemoval),
    /// A transaction left the mempool because it was mined.
    RemovedFromMempoolBlock(MempoolRemoval),
    /// A transaction's raw bytes.
    RawTx(bytes::Bytes),
}

/// What a subscription reports: events, and changes of its connection state (for status APIs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ZmqNotice {
    /// Connected (again) to the publisher.
    Connected,
    /// A notification arrived; `sequence` is the publisher's per-topic counter.
    Event {
        /// The decoded notification.
        event: ZmqEvent,
        /// The publisher's sequence number, when present.
        sequence: Option<u32>,
    },
    /// A notification could not be decoded; it is reported, not dropped silently.
    Malformed {
        /// The topic, lossy UTF-8.
        topic: String,
        /// What was wrong.
        error: String,
    },
    /// Connecting failed; the subscription retries after a backoff.
    ConnectFailed {
        /// Why.
        error: String,
    },
}

/// Settings of a subscription.
#[derive(Debug, Clone)]
pub struct ZmqOptions {
    /// How long one connection attempt may wait for the publisher.
    pub connect_timeout: Duration,
    /// First retry delay; doubles up to `max_backoff`.
    pub initial_backoff: Duration,
    /// Longest retry delay.
    pub max_backoff: Duration,
    /// Notices buffered before the subscriber waits for the consumer.
    pub buffer: usize,
}

impl Default for ZmqOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(30),
            buffer: 1024,
        }
    }
}

/// A running subscription to one publisher. Dropping it stops the background task.
#[derive(Debug)]
pub struct ZmqSubscription {
    rx: mpsc::Receiver<ZmqNotice>,
    cancel: CancellationToken,
    endpoint: String,
}

impl ZmqSubscription {
    /// Starts subscribing to `topics` at `endpoint` (e.g. `tcp://127.0.0.1:28332`).
    pub fn start(endpoint: impl Into<String>, topics: &[ZmqTopic], options: ZmqOptions) -> Self {
        let endpoint = endpoint.into();
        let (tx, rx) = mpsc::channel(options.buffer.max(1));
        let cancel = CancellationToken::new();
        let task = run(endpoint.clone(), topics.to_vec(), options, tx, cancel.clone());
        tokio::spawn(task);
        Self { rx, cancel, endpoint }
    }

    /// The publisher's endpoint.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The next notice; `None` once the subscription stopped.
    pub async fn recv(&mut self) -> Option<ZmqNotice> {
        self.rx.recv().await
    }

    /// The next decoded event, skipping connection notices.
    pub async fn next_event(&mut self) -> Option<ZmqEvent> {
        loop {
            if let ZmqNotice::Event { event, .. } = self.recv().await? {
                return Some(event);
            }
        }
    }

    /// Stops the subscription.
    pub fn stop(&self) {
        self.cancel.cancel();
    }
}

impl Drop for ZmqSubscription {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

async fn run(
    endpoint: String,
    topics: Vec<ZmqTopic>,
    options: ZmqOptions,
    tx: mpsc::Sender<ZmqNotice>,
    cancel: CancellationToken,
) {
    let mut backoff = options.initial_backoff;
    loop {
        let mut socket_options = SocketOptions::default();
        socket_options.connect_timeout(options.connect_timeout);
        let mut socket = SubSocket::with_options(socket_options);
        let connected = async {
            for topic in &topics {
                socket.subscribe(topic.as_str()).await?;
            }
            socket.connect(&endpoint).await
        };
        let result = tokio::select! {
            _ = cancel.cancelled() => return,
            r = connected => r,
        };
        if let Err(e) = result {
            tracing::debug!(zmq.endpoint = %endpoint, error = %e, "zmq connect failed");
            if tx.send(ZmqNotice::ConnectFailed { error: e.to_string() }).await.is_err() {
                return;
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(options.max_backoff);
            continue;
        }
        backoff = options.initial_backoff;
        tracing::info!(zmq.endpoint = %endpoint, "zmq connected");
        if tx.send(ZmqNotice::Connected).await.is_err() {
            return;
        }
        loop {
            let message = tokio::select! {
                _ = cancel.cancelled() => return,
                m = socket.recv() => m,
            };
            let notice = match message {
                Ok(m) => decode(&m.into_vec()),
                Err(e) => {
                    tracing::warn!(zmq.endpoint = %endpoint, error = %e, "zmq receive failed; reconnecting");
                    break;
                }
            };
            if tx.send(notice).await.is_err() {
                return;
            }
        }
    }
}

/// Decodes a multipart message `[topic, body, sequence]`.
pub fn decode(frames: &[bytes::Bytes]) -> ZmqNotice {
    let topic_bytes = frames.first().map(|f| f.as_ref()).unwrap_or_default();
    let topic_name = String::from_utf8_lossy(topic_bytes).into_owned();
    let malformed = |error: String| ZmqNotice::Malformed { topic: topic_name.clone(), error };
    let Some(topic) = ZmqTopic::from_wire(topic_bytes) else {
        return malformed("unknown topic".into());
    };
    let Some(body) = frames.get(1) else {
        return malformed("no body frame".into());
    };
    let sequence = frames.get(2).and_then(|f| <[u8; 4]>::try_from(f.as_ref()).ok()).map(u32::from_le_bytes);
    let event = match topic {
        ZmqTopic::HashBlock => match <[u8; 32]>::try_from(body.as_ref()) {
            // The node publishes the hash in display order.
            Ok(h) => Ok(ZmqEvent::HashBlock(BlockHash::from_display_bytes(h))),
            Err(_) => Err(format!("hashblock body is {} bytes, not 32", body.len())),
        },
        ZmqTopic::InvalidTx => {
            serde_json::from_slice(body).map(|i| ZmqEvent::InvalidTx(Box::new(i))).map_err(|e| e.to_string())
        }
        ZmqTopic::DiscardedFromMempool => {
            serde_json::from_slice(body).map(ZmqEvent::DiscardedFromMempool).map_err(|e| e.to_string())
        }
        ZmqTopic::RemovedFromMempoolBlock => {
            serde_json::from_slice(body).map(ZmqEvent::RemovedFromMempoolBlock).map_err(|e| e.to_string())
        }
        ZmqTopic::RawTx => Ok(ZmqEvent::RawTx(body.clone())),
    };
    match event {
        Ok(event) => ZmqNotice::Event { event, sequence },
        Err(e) => malformed(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn decodes_each_topic_and_reports_bad_bodies() {
        let hash = [0xab; 32];
        let n = decode(&[
            Bytes::from_static(b"hashblock"),
            Bytes::copy_from_slice(&hash),
            Bytes::from_static(&[7, 0, 0, 0]),
        ]);
        assert_eq!(
            n,
            ZmqNotice::Event {
                event: ZmqEvent::HashBlock(BlockHash::from_display_bytes(hash)),
                sequence: Some(7)
            }
        );
        let txid = "11".repeat(32);
        let body = format!(
            r#"{{"fromBlock":false,"txid":"{txid}","rejectionCode":258,"collidedWith":[{{"txid":"{txid}","size":1,"hex":"00"}}]}}"#
        );
        let ZmqNotice::Event { event: ZmqEvent::InvalidTx(info), .. } =
            decode(&[Bytes::from_static(b"invalidtx"), Bytes::from(body)])
        else {
            panic!("not decoded");
        };
        assert_eq!(info.rejection_code, Some(258));
        assert_eq!(info.collided_with.len(), 1);
        let body = format!(r#"{{"txid":"{txid}","reason":"included-in-block"}}"#);
        assert!(matches!(
            decode(&[Bytes::from_static(b"removedfrommempoolblock"), Bytes::from(body)]),
            ZmqNotice::Event { event: ZmqEvent::RemovedFromMempoolBlock(_), sequence: None }
        ));
        assert!(matches!(
            decode(&[Bytes::from_static(b"hashblock"), Bytes::from_static(b"x")]),
            ZmqNotice::Malformed { .. }
        ));
        assert!(matches!(decode(&[Bytes::from_static(b"other")]), ZmqNotice::Malformed { .. }));
        assert!(matches!(decode(&[]), ZmqNotice::Malformed { .. }));
    }
}
