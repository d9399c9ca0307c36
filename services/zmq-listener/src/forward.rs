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
}

impl Forwarder {
    /// A forwarder and the worker that sends (run it until `cancel`).
    pub fn new(
        client: InternalClient,
        block_parser: &url::Url,
        mapi: &url::Url,
        cancel: CancellationToken,
    ) -> (Self, impl std::future::Future<Output = ()> + Send + 'static) {
        let (blocks, queue) = mpsc::channel(QUEUE);
        let url = format!("{}/internal/blocks", block_parser.as_str().trim_end_matches('/'));
        let (mempool, mempool_sender) =
            crate::mempool::MempoolForwarder::new(client.clone(), mapi, cancel.clone());
        let blocks_sender = send_blocks(client, url, queue, cancel);
        let both = async move {
            tokio::join!(blocks_sender, mempool_sender);
        };
        (Self { blocks, mempool }, both)
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
