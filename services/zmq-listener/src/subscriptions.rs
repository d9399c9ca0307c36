//! One subscription per node endpoint, kept in step with mapi's node list: a node added through
//! the admin API is subscribed within a few seconds, a removed one dropped. Each subscription
//! reconnects by itself (`node_client::ZmqSubscription`); one that has been silent for
//! `ZMQ_CONNECTION_TEST_INTERVAL_SEC` is tested with `activezmqnotifications`, and subscribed
//! again when the test fails. Its state is what `status/zmq` reports.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use node_client::{RpcClient, ZmqEvent, ZmqNotice, ZmqOptions, ZmqSubscription, ZmqTopic};
use node_directory::{Node, Nodes};
use serde::Serialize;
use time::OffsetDateTime;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::forward::Forwarder;
use crate::mempool::Notice;

/// How often the node list is compared with the running subscriptions.
const RECONCILE_EVERY: Duration = Duration::from_secs(2);

/// The topics zmq-listener needs, and the node's names for them (`activezmqnotifications`).
const TOPICS: [(ZmqTopic, &str); 5] = [
    (ZmqTopic::HashBlock, "pubhashblock"),
    (ZmqTopic::InvalidTx, "pubinvalidtx"),
    (ZmqTopic::DiscardedFromMempool, "pubdiscardedfrommempool"),
    (ZmqTopic::RemovedFromMempoolBlock, "pubremovedfrommempoolblock"),
    // Mempool transactions for the indexer's tip filters (taken only when one is configured).
    (ZmqTopic::RawTx, "pubrawtx"),
];

/// One endpoint's state, as `status/zmq` shows it.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointStatus {
    /// `tcp://host:port`.
    pub address: String,
    /// The node's names of the topics taken from it.
    pub topic: Vec<&'static str>,
    /// When a silent subscription was last tested successfully.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_ping_at: Option<OffsetDateTime>,
    /// When the last notification arrived.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_message_at: Option<OffsetDateTime>,
    /// Whether the publisher is connected.
    #[serde(skip)]
    pub connected: bool,
}

/// One node's state, as `status/zmq` shows it (the reference's shape).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    /// `host:port`.
    pub node_id: String,
    /// Its subscribed endpoints.
    pub endpoints: Vec<EndpointStatus>,
    /// Whether every endpoint is connected.
    pub is_responding: bool,
    /// When a connection was last attempted.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_connection_attempt_at: Option<OffsetDateTime>,
    /// The last error, `""` when none.
    pub last_error: String,
}

/// The state of every node, shared between the supervisor, the subscription tasks and the
/// status endpoint.
#[derive(Debug, Clone, Default)]
pub struct StatusBoard(Arc<Mutex<HashMap<String, NodeStatus>>>);

impl StatusBoard {
    fn with<R>(&self, node: &str, f: impl FnOnce(&mut NodeStatus) -> R) -> R {
        let mut board = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let status = board.entry(node.to_owned()).or_insert_with(|| NodeStatus {
            node_id: node.to_owned(),
            endpoints: Vec::new(),
            is_responding: false,
            last_connection_attempt_at: None,
            last_error: String::new(),
        });
        f(status)
    }

    fn endpoint(&self, node: &str, address: &str, f: impl FnOnce(&mut EndpointStatus)) {
        self.with(node, |s| {
            if let Some(e) = s.endpoints.iter_mut().find(|e| e.address == address) {
                f(e);
            }
            s.is_responding = !s.endpoints.is_empty() && s.endpoints.iter().all(|e| e.connected);
        });
    }

    /// Every node's state, by node id.
    pub fn snapshot(&self) -> Vec<NodeStatus> {
        let board = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let mut list: Vec<NodeStatus> = board.values().cloned().collect();
        list.sort_by(|a, b| a.node_id.cmp(&b.node_id));
        list
    }

    /// Forgets the nodes that are no longer listed.
    fn keep_only(&self, listed: &BTreeSet<&str>) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).retain(|id, _| listed.contains(id.as_str()));
    }

    /// An endpoint about to be subscribed: a new entry, or the same one with its history kept.
    fn track(&self, node: &str, address: &str, topics: &BTreeSet<&'static str>) {
        self.with(node, |s| {
            let topic: Vec<&'static str> = topics.iter().copied().collect();
            match s.endpoints.iter_mut().find(|e| e.address == address) {
                Some(e) => e.topic = topic,
                None => s.endpoints.push(EndpointStatus {
                    address: address.to_owned(),
                    topic,
                    ..EndpointStatus::default()
                }),
            }
        });
    }
}

/// A running subscription task.
struct Running {
    topics: BTreeSet<&'static str>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// Running subscriptions by (node id, endpoint).
type RunningByEndpoint = HashMap<(String, String), Running>;

/// What one reconciliation needs besides the list.
struct Context<'a> {
    board: &'a StatusBoard,
    forwarder: &'a Forwarder,
    test_interval: Duration,
    cancel: &'a CancellationToken,
}

/// Keeps the subscriptions in step with the node list until `cancel`.
pub async fn supervise(
    nodes: Arc<Nodes>,
    board: StatusBoard,
    forwarder: Forwarder,
    test_interval: Duration,
    cancel: CancellationToken,
) {
    let mut running = RunningByEndpoint::new();
    loop {
        match nodes.current().await {
            Ok(list) => {
                let cx = Context { board: &board, forwarder: &forwarder, test_interval, cancel: &cancel };
                reconcile(&list, &mut running, &cx).await;
            }
            Err(e) => tracing::warn!(error = %e, "the node list is unavailable; subscriptions are kept"),
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(RECONCILE_EVERY) => {}
        }
    }
    for run in running.into_values() {
        run.stop.cancel();
        let _ = run.task.await;
    }
}

/// Starts the subscriptions the listed nodes need and stops the others. A node whose endpoints
/// could not be read keeps its subscriptions (they reconnect by themselves): only the node's own
/// answer, or its removal from the list, changes them.
async fn reconcile(list: &[Node], running: &mut RunningByEndpoint, cx: &Context<'_>) {
    let board = cx.board;
    let listed: BTreeSet<&str> = list.iter().map(|n| n.id.as_str()).collect();
    let mut unanswered: BTreeSet<&str> = BTreeSet::new();
    let mut wanted: HashMap<(String, String), (&Node, BTreeSet<&'static str>)> = HashMap::new();
    for node in list {
        board.with(&node.id, |s| s.last_connection_attempt_at = Some(OffsetDateTime::now_utc()));
        match endpoints(node, cx.forwarder.takes_raw_txs()).await {
            Ok(by_address) => {
                board.with(&node.id, |s| {
                    if s.last_error.starts_with("Unable to query") {
                        s.last_error.clear();
                    }
                });
                for (address, topics) in by_address {
                    wanted.insert((node.id.clone(), address), (node, topics));
                }
            }
            Err(e) => {
                board.with(&node.id, |s| {
                    s.last_error = e;
                    s.is_responding = false;
                });
                unanswered.insert(node.id.as_str());
            }
        }
    }
    running.retain(|key, run| {
        let still_wanted = wanted.get(key).is_some_and(|(_, topics)| *topics == run.topics);
        let keep = (still_wanted || unanswered.contains(key.0.as_str())) && !run.task.is_finished();
        if !keep {
            run.stop.cancel();
        }
        keep
    });
    board.keep_only(&listed);
    for (key, (node, topics)) in wanted {
        if running.contains_key(&key) {
            continue;
        }
        board.track(&node.id, &key.1, &topics);
        let stop = cx.cancel.child_token();
        let task = tokio::spawn(subscribe(
            node.clone(),
            key.1.clone(),
            topics.clone(),
            board.clone(),
            cx.forwarder.clone(),
            cx.test_interval,
            stop.clone(),
        ));
        running.insert(key, Running { topics, stop, task });
    }
}

/// The endpoints to subscribe to for a node, with the topics of each: its override with every
/// topic, else what `activezmqnotifications` reports.
async fn endpoints(node: &Node, raw_txs: bool) -> Result<HashMap<String, BTreeSet<&'static str>>, String> {
    let active = node
        .rpc
        .active_zmq_notifications()
        .await
        .map_err(|e| format!("Unable to query activezmqnotifications of node {}: {e}", node.id))?;
    let mut by_address: HashMap<String, BTreeSet<&'static str>> = HashMap::new();
    for (topic, name) in TOPICS {
        if topic == ZmqTopic::RawTx && !raw_txs {
            continue;
        }
        let Some(published) = active.iter().find(|n| n.notification == name) else { continue };
        let address = node.zmq_override.clone().unwrap_or_else(|| published.address.clone());
        by_address.entry(address).or_default().insert(name);
    }
    if !by_address.values().any(|topics| topics.contains("pubhashblock")) {
        return Err(format!("Node {} does not publish pubhashblock", node.id));
    }
    Ok(by_address)
}

/// One endpoint's subscription until `stop`: notifications forwarded, state on the board, a silent
/// connection tested and renewed.
async fn subscribe(
    node: Node,
    address: String,
    topics: BTreeSet<&'static str>,
    board: StatusBoard,
    forwarder: Forwarder,
    test_interval: Duration,
    stop: CancellationToken,
) {
    let wire: Vec<ZmqTopic> =
        TOPICS.iter().filter(|(_, name)| topics.contains(name)).map(|(topic, _)| *topic).collect();
    loop {
        let mut sub = ZmqSubscription::start(address.clone(), &wire, ZmqOptions::default());
        let renew = loop {
            let notice = tokio::select! {
                _ = stop.cancelled() => return,
                n = tokio::time::timeout(test_interval, sub.recv()) => n,
            };
            match notice {
                Ok(Some(ZmqNotice::Connected)) => board.endpoint(&node.id, &address, |e| e.connected = true),
                Ok(Some(ZmqNotice::ConnectFailed { error })) => {
                    board.with(&node.id, |s| {
                        s.last_error = format!("Unable to connect to {address}: {error}")
                    });
                    board.endpoint(&node.id, &address, |e| e.connected = false);
                }
                Ok(Some(ZmqNotice::Malformed { topic, error })) => {
                    tracing::warn!(node = %node.id, topic, error, "unreadable zmq notification");
                    board.endpoint(&node.id, &address, |e| {
                        e.last_message_at = Some(OffsetDateTime::now_utc())
                    });
                }
                Ok(Some(ZmqNotice::Event { event, .. })) => {
                    board.endpoint(&node.id, &address, |e| {
                        e.last_message_at = Some(OffsetDateTime::now_utc());
                        e.connected = true;
                    });
                    forward(&forwarder, &node, event);
                }
                Ok(None) => break true,
                Err(_) => {
                    if !test(&node.rpc).await {
                        board.with(&node.id, |s| {
                            s.last_error = format!("Node {} did not answer the connection test", node.id)
                        });
                        board.endpoint(&node.id, &address, |e| e.connected = false);
                        break true;
                    }
                    board.endpoint(&node.id, &address, |e| e.last_ping_at = Some(OffsetDateTime::now_utc()));
                }
            }
        };
        drop(sub);
        if renew {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }
}

/// The reference's connection test of a silent subscription.
async fn test(rpc: &RpcClient) -> bool {
    rpc.active_zmq_notifications().await.is_ok()
}

/// Hands an event on: `hashblock` to block-parser, double spends to mapi; the rest counts as
/// traffic on the status board only.
fn forward(forwarder: &Forwarder, node: &Node, event: ZmqEvent) {
    match event {
        ZmqEvent::HashBlock(hash) => forwarder.block(&node.id, hash),
        ZmqEvent::InvalidTx(info) => forwarder.mempool.notice(node, Notice::Invalid(info)),
        ZmqEvent::DiscardedFromMempool(removal) => forwarder.mempool.notice(node, Notice::Discarded(removal)),
        ZmqEvent::RemovedFromMempoolBlock(_) => {}
        ZmqEvent::RawTx(raw) => forwarder.raw_tx(raw),
    }
}
