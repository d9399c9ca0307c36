//! Forwarding to the services that act on notifications, over internal HTTP with retries
//! (double spends: [`crate::mempool`]). A
//! `hashblock` only wakes block-parser, which asks the nodes itself (a lost one is made good by its
//! next catch-up round), so a full queue drops the newest announcement instead of growing.

use std::time::Duration;

use bsv_primitives::BlockHash;
use service_kit::InternalClient;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Announcements waiting to be sent.
const QUEUE: usize = 1024;

/// Attempts per announcement.
const ATTEMPTS: u32 = 5;

/// Mempool transactions waiting for the indexer.
const RAW_TX_QUEUE: usize = 10_000;

/// Mempool transactions sent to the indexer per request at most.
const RAW_TX_BATCH: usize = 500;

/// Sends queued mempool transactions to the indexer in batches (what arrived while the last
/// request was in flight), a few attempts each, until `cancel`.
async fn send_raw_txs(
    client: InternalClient,
    url: String,
    mut queue: mpsc::Receiver<bytes::Bytes>,
    cancel: CancellationToken,
) {
    let mut batch = Vec::with_capacity(RAW_TX_BATCH);
    loop {
        let n = tokio::select! {
            _ = cancel.cancelled() => return,
            n = queue.recv_many(&mut batch, RAW_TX_BATCH) => n,
        };
        if n == 0 {
            return;
        }
        let body = serde_json::json!({ "txs": batch.iter().map(hex::encode).collect::<Vec<_>>() });
        batch.clear();
        for attempt in 1..=ATTEMPTS {
            match client.post(&url).json(&body).send().await {
                Ok(r) if r.status().is_success() => break,
                Ok(r) => {
                    tracing::warn!(status = %r.status(), attempt, "the indexer refused mempool transactions")
                }
                Err(e) => {
                    tracing::warn!(error = %e.without_url(), attempt, "mempool transactions not sent to the indexer")
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))) => {}
            }
        }
    }
}

/// A block announcement for block-parser.
#[derive(Debug, Clone)]
struct Announcement {
    node: String,
    hash: BlockHash,
}

/// The sending side. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Forwarder {
    blocks: mpsc::Sender<Announcement>,
    /// Double spends, to mapi.
    pub mempool: crate::mempool::MempoolForwarder,
    /// Mempool transactions, to the indexer (when one is configured).
    raw_txs: Option<mpsc::Sender<bytes::Bytes>>,
}

impl Forwarder {
    /// A forwarder and the worker that sends (run it until `cancel`).
    pub fn new(
        client: InternalClient,
        block_parser: &url::Url,
        mapi: &url::Url,
        indexer: Option<&url::Url>,
        cancel: CancellationToken,
    ) -> (Self, impl std::future::Future<Output = ()> + Send + 'static) {
        let (blocks, queue) = mpsc::channel(QUEUE);
        let (raw_txs, raw_sender) = match indexer {
            Some(indexer) => {
                let (tx, rx) = mpsc::channel(RAW_TX_QUEUE);
                let url = format!("{}/internal/mempool-txs", indexer.as_str().trim_end_matches('/'));
                (Some(tx), Some(send_raw_txs(client.clone(), url, rx, cancel.clone())))
            }
            None => (None, None),
        };
        let url = format!("{}/internal/blocks", block_parser.as_str().trim_end_matches('/'));
        let (mempool, mempool_sender) =
            crate::mempool::MempoolForwarder::new(client.clone(), mapi, cancel.clone());
        let blocks_sender = send_blocks(client, url, queue, cancel);
        let all = async move {
            let raw = async move {
                if let Some(sender) = raw_sender {
                    sender.await;
                }
            };
            tokio::join!(blocks_sender, mempool_sender, raw);
        };
        (Self { blocks, mempool, raw_txs }, all)
    }

    /// Whether mempool transactions are taken (an indexer is configured).
    pub fn takes_raw_txs(&self) -> bool {
        self.raw_txs.is_some()
    }

    /// Queues a transaction a node published for the indexer (dropped with a warning when the
    /// queue is full: tip-filter matching of mempool transactions is best effort, the block's
    /// matching is not).
    pub fn raw_tx(&self, raw: bytes::Bytes) {
        if let Some(queue) = &self.raw_txs
            && queue.try_send(raw).is_err()
        {
            tracing::warn!("mempool transaction queue for the indexer full; dropped");
        }
    }

    /// Announces a block `node` published.
    pub fn block(&self, node: &str, hash: BlockHash) {
        if self.blocks.try_send(Announcement { node: node.to_owned(), hash }).is_err() {
            tracing::warn!(node, block = %hash, "block announcements queue full; block-parser's catch-up will see it");
        }
    }
}

async fn send_blocks(
    client: InternalClient,
    url: String,
    mut queue: mpsc::Receiver<Announcement>,
    cancel: CancellationToken,
) {
    loop {
        let next = tokio::select! {
            _ = cancel.cancelled() => return,
            n = queue.recv() => n,
        };
        let Some(announcement) = next else { return };
        let body = serde_json::json!({"hash": announcement.hash, "node": announcement.node});
        let mut delay = Duration::from_millis(200);
        for attempt in 1..=ATTEMPTS {
            match client.post(&url).json(&body).send().await {
                Ok(resp) if resp.status().is_success() => break,
                Ok(resp) => {
                    tracing::warn!(status = %resp.status(), attempt, "block-parser refused a block announcement")
                }
                Err(e) => tracing::warn!(error = %e, attempt, "block-parser is unreachable"),
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }
}
