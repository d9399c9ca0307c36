//! The transaction topics: which notifications are double spends, and their delivery to mapi.
//!
//! `invalidtx` with reject code 258 (mempool conflict) or 18 (double spend) and the transactions
//! it collided with is a double-spend attempt on each of them; `discardedfrommempool` with reason
//! `collision-in-block-tx` is a double spend in a block (its height asked of the node that
//! published it). The rest is traffic only. Events wait in a bounded queue and are posted to mapi
//! with retries; mapi keys what it records on the content, so a repeat (another replica, a retry
//! after a lost answer) changes nothing.

use std::time::Duration;

use node_client::{InvalidTxInfo, MempoolRemoval};
use node_directory::Node;
use service_kit::InternalClient;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use wire_model::internal::{MempoolEvent, MempoolEvents};

/// Notifications waiting to be sent.
const QUEUE: usize = 10_000;

/// Attempts per notification before it is given up (logged as an error).
const ATTEMPTS: u32 = 10;

/// Reject codes of a double spend: 258 `txn-mempool-conflict`, 18 `txn-double-spend-detected`.
const DOUBLE_SPEND_CODES: [i64; 2] = [258, 18];

/// A notification to turn into events.
#[derive(Debug, Clone)]
pub enum Notice {
    /// `invalidtx`.
    Invalid(Box<InvalidTxInfo>),
    /// `discardedfrommempool`.
    Discarded(MempoolRemoval),
}

impl Notice {
    /// Whether the notification is a double spend worth sending.
    pub fn is_double_spend(&self) -> bool {
        match self {
            Self::Invalid(info) => {
                info.rejection_code.is_some_and(|c| DOUBLE_SPEND_CODES.contains(&c))
                    && !info.collided_with.is_empty()
            }
            Self::Discarded(removal) => {
                removal.reason == "collision-in-block-tx"
                    && removal.collided_with.is_some()
                    && removal.blockhash.is_some()
            }
        }
    }
}

/// The events of an `invalidtx` double spend.
pub fn attempts(node: &str, info: &InvalidTxInfo) -> Vec<MempoolEvent> {
    info.collided_with
        .iter()
        .map(|victim| MempoolEvent::DoubleSpendAttempt {
            id: format!("{node}:invalidtx:{}:{}", info.txid, victim.txid),
            txid: victim.txid,
            ds_txid: info.txid,
            ds_tx: info.hex.clone().unwrap_or_default(),
        })
        .collect()
}

/// The sending side. Cheap to clone.
#[derive(Debug, Clone)]
pub struct MempoolForwarder {
    queue: mpsc::Sender<(Node, Notice)>,
}

impl MempoolForwarder {
    /// A forwarder and the worker that sends to mapi (run it until `cancel`).
    pub fn new(
        client: InternalClient,
        mapi: &url::Url,
        cancel: CancellationToken,
    ) -> (Self, impl std::future::Future<Output = ()> + Send + 'static) {
        let (queue, rx) = mpsc::channel(QUEUE);
        let url = format!("{}/internal/mempool-events", mapi.as_str().trim_end_matches('/'));
        (Self { queue }, send(client, url, rx, cancel))
    }

    /// Queues a notification `node` published, if it is a double spend.
    pub fn notice(&self, node: &Node, notice: Notice) {
        if !notice.is_double_spend() {
            return;
        }
        if self.queue.try_send((node.clone(), notice)).is_err() {
            tracing::error!(node = %node.id, "the double-spend queue is full; a notification is dropped");
        }
    }
}

/// The events of a notification; a block's height is asked of the node.
async fn events_of(node: &Node, notice: &Notice) -> Result<Vec<MempoolEvent>, String> {
    match notice {
        Notice::Invalid(info) => Ok(attempts(&node.id, info)),
        Notice::Discarded(removal) => {
            let (Some(block), Some(ds)) = (removal.blockhash, removal.collided_with.as_ref()) else {
                return Ok(Vec::new());
            };
            let header = node.rpc.get_block_header(&block).await.map_err(|e| e.to_string())?;
            Ok(vec![MempoolEvent::DoubleSpendInBlock {
                id: format!("{}:discardedfrommempool:{}:{}", node.id, removal.txid, ds.txid),
                txid: removal.txid,
                block_hash: block,
                block_height: header.height,
                ds_txid: ds.txid,
                ds_tx: ds.hex.clone(),
            }])
        }
    }
}

async fn send(
    client: InternalClient,
    url: String,
    mut rx: mpsc::Receiver<(Node, Notice)>,
    cancel: CancellationToken,
) {
    loop {
        let next = tokio::select! {
            _ = cancel.cancelled() => return,
            n = rx.recv() => n,
        };
        let Some((node, notice)) = next else { return };
        let mut delay = Duration::from_millis(200);
        let mut delivered = false;
        for attempt in 1..=ATTEMPTS {
            match deliver(&client, &url, &node, &notice).await {
                Ok(()) => {
                    delivered = true;
                    break;
                }
                Err(e) => {
                    tracing::warn!(node = %node.id, error = %e, attempt, "a double spend did not reach mapi")
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(Duration::from_secs(10));
        }
        if !delivered {
            tracing::error!(node = %node.id, "a double spend was given up after {ATTEMPTS} attempts");
        }
    }
}

async fn deliver(client: &InternalClient, url: &str, node: &Node, notice: &Notice) -> Result<(), String> {
    let events = events_of(node, notice).await?;
    if events.is_empty() {
        return Ok(());
    }
    let resp = client.post(url).json(&MempoolEvents { events }).send().await.map_err(|e| e.to_string())?;
    if resp.status().is_success() { Ok(()) } else { Err(format!("mapi answered {}", resp.status())) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid(code: Option<i64>, collided: usize) -> Notice {
        let body = serde_json::json!({
            "txid": "11".repeat(32), "hex": "0100", "rejectionCode": code,
            "collidedWith": (0..collided).map(|i| serde_json::json!({"txid": format!("{i:02x}").repeat(32), "size": 1, "hex": "00"})).collect::<Vec<_>>(),
        });
        Notice::Invalid(Box::new(serde_json::from_value(body).unwrap_or_else(|e| panic!("{e}"))))
    }

    #[test]
    fn only_double_spends_are_sent() {
        assert!(invalid(Some(258), 1).is_double_spend());
        assert!(invalid(Some(18), 2).is_double_spend());
        assert!(!invalid(Some(16), 1).is_double_spend(), "missing inputs");
        assert!(!invalid(Some(258), 0).is_double_spend(), "nothing it collided with");
        let removal = |reason: &str| {
            Notice::Discarded(
                serde_json::from_value(serde_json::json!({
                    "txid": "22".repeat(32), "reason": reason, "blockhash": "33".repeat(32),
                    "collidedWith": {"txid": "44".repeat(32), "size": 1, "hex": "00"},
                }))
                .unwrap_or_else(|e| panic!("{e}")),
            )
        };
        assert!(removal("collision-in-block-tx").is_double_spend());
        assert!(!removal("expired").is_double_spend());
    }

    #[test]
    fn an_attempt_names_each_transaction_it_collided_with() {
        let Notice::Invalid(info) = invalid(Some(258), 2) else { unreachable!() };
        let events = attempts("node1", &info);
        assert_eq!(events.len(), 2);
        let MempoolEvent::DoubleSpendAttempt { txid, ds_txid, ds_tx, .. } = &events[1] else {
            unreachable!()
        };
        assert_eq!(txid.to_string(), "01".repeat(32));
        assert_eq!(ds_txid.to_string(), "11".repeat(32));
        assert_eq!(ds_tx, "0100");
    }
}
