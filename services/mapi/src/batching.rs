//! The submission's I/O, merged across concurrent submissions (see [`crate::coalesce`]): the
//! stored-row lookup, the `gettxouts` call, the write before sending, each node's
//! `sendrawtransactions` and the record of the answers.

use std::collections::{HashMap, HashSet};

use bsv_primitives::{OutPoint, Txid};
use db_kit::Db;
use node_client::RpcClient;
use node_client::rpc_types::{SendRawTransactionsResult, SendRawTx, TxOutInfo, TxOutRef};
use service_kit::ApiError;

use crate::coalesce::{Batch, Coalescer};
use crate::txstore::{self, NewTx, StoredTx};

/// Calls in flight per operation, and the largest merged call.
const PARALLEL: usize = 2;
const MAX_ITEMS: usize = 1000;

fn overlaps<'a>(batch: impl Iterator<Item = &'a Txid>, req: &[Txid]) -> bool {
    let wanted: HashSet<&Txid> = req.iter().collect();
    batch.into_iter().any(|t| wanted.contains(t))
}

/// `txstore::existing` for many callers at once.
#[derive(Debug)]
pub struct Lookup(pub Db);

impl Batch for Lookup {
    type Req = Vec<Txid>;
    type Resp = Result<HashMap<Txid, StoredTx>, ApiError>;

    fn size(req: &Self::Req) -> usize {
        req.len()
    }

    fn fits(_: &[&Self::Req], _: &Self::Req) -> bool {
        true
    }

    async fn run(&self, reqs: Vec<Self::Req>) -> Vec<Self::Resp> {
        let all: Vec<Txid> = reqs.iter().flatten().copied().collect::<HashSet<_>>().into_iter().collect();
        match txstore::existing(&self.0, &all).await {
            Ok(found) => reqs
                .iter()
                .map(|r| Ok(r.iter().filter_map(|t| found.get(t).map(|s| (*t, s.clone()))).collect()))
                .collect(),
            Err(e) => {
                let e = ApiError::from(e);
                reqs.iter().map(|_| Err(e.clone())).collect()
            }
        }
    }
}

/// `txstore::insert_sending` for many callers at once (one statement, one commit).
#[derive(Debug)]
pub struct Insert(pub Db);

impl Batch for Insert {
    type Req = Vec<NewTx>;
    type Resp = Result<(), ApiError>;

    fn size(req: &Self::Req) -> usize {
        req.len()
    }

    /// One `INSERT .. ON CONFLICT DO UPDATE` cannot touch a row twice.
    fn fits(batch: &[&Self::Req], req: &Self::Req) -> bool {
        let taken: HashSet<&[u8]> = batch.iter().flat_map(|r| r.iter().map(|n| n.txid.as_slice())).collect();
        !req.iter().any(|n| taken.contains(n.txid.as_slice()))
    }

    async fn run(&self, reqs: Vec<Self::Req>) -> Vec<Self::Resp> {
        if reqs.len() == 1 {
            return vec![txstore::insert_sending(&self.0, &reqs[0]).await.map_err(ApiError::from)];
        }
        let rows: Vec<&NewTx> = reqs.iter().flatten().collect();
        match txstore::insert_sending(&self.0, &rows).await {
            Ok(()) => vec![Ok(()); reqs.len()],
            // One caller's rows must not fail the others: each on its own.
            Err(_) => {
                let mut answers = Vec::with_capacity(reqs.len());
                for rows in &reqs {
                    answers.push(txstore::insert_sending(&self.0, rows).await.map_err(ApiError::from));
                }
                answers
            }
        }
    }
}

/// What the nodes answered for one submission.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Accepted or already known.
    pub accepted: Vec<Txid>,
    /// Refused by every node.
    pub rejected: Vec<Txid>,
    /// Whether the caller is authenticated (its refused rows are kept).
    pub authenticated: bool,
    /// Whether block-parser took the registration of these transactions.
    pub registered: bool,
}

/// `txstore::record_outcome` for many callers at once.
#[derive(Debug)]
pub struct Record(pub Db);

impl Batch for Record {
    type Req = Outcome;
    type Resp = Result<(), ApiError>;

    fn size(req: &Self::Req) -> usize {
        req.accepted.len() + req.rejected.len()
    }

    /// One statement must not change a row twice.
    fn fits(batch: &[&Self::Req], req: &Self::Req) -> bool {
        let mine: Vec<Txid> = req.accepted.iter().chain(&req.rejected).copied().collect();
        !overlaps(batch.iter().flat_map(|o| o.accepted.iter().chain(&o.rejected)), &mine)
    }

    async fn run(&self, reqs: Vec<Self::Req>) -> Vec<Self::Resp> {
        let accepted: Vec<Txid> = reqs.iter().flat_map(|o| o.accepted.iter().copied()).collect();
        let keep: Vec<Txid> =
            reqs.iter().filter(|o| o.authenticated).flat_map(|o| o.rejected.iter().copied()).collect();
        let remove: Vec<Txid> =
            reqs.iter().filter(|o| !o.authenticated).flat_map(|o| o.rejected.iter().copied()).collect();
        let registered: Vec<Txid> =
            reqs.iter().filter(|o| o.registered).flat_map(|o| o.accepted.iter().copied()).collect();
        let result = txstore::record_outcome(
            &self.0,
            &txstore::Answers { accepted: &accepted, registered: &registered, keep: &keep, remove: &remove },
            time::OffsetDateTime::now_utc(),
        )
        .await
        .map_err(ApiError::from);
        vec![result; reqs.len()]
    }
}

/// The nodes to ask (in order), and the outputs one submission needs.
pub type PrevoutsReq = (Vec<RpcClient>, Vec<TxOutRef>);

/// One `gettxouts` (on the first node that answers) for many callers at once.
#[derive(Debug)]
pub struct Prevouts;

impl Batch for Prevouts {
    type Req = PrevoutsReq;
    type Resp = Result<HashMap<OutPoint, TxOutInfo>, ()>;

    fn size(req: &Self::Req) -> usize {
        req.1.len()
    }

    fn fits(_: &[&Self::Req], _: &Self::Req) -> bool {
        true
    }

    async fn run(&self, reqs: Vec<Self::Req>) -> Vec<Self::Resp> {
        let mut wanted: Vec<TxOutRef> = reqs.iter().flat_map(|r| r.1.iter().copied()).collect();
        wanted.sort_by_key(|r| (r.txid, r.n));
        wanted.dedup();
        let nodes = reqs.first().map(|r| r.0.as_slice()).unwrap_or_default();
        match fetch_prevouts(nodes, &wanted).await {
            Ok(found) => reqs
                .iter()
                .map(|(_, mine)| {
                    Ok(mine
                        .iter()
                        .filter_map(|r| {
                            let op = OutPoint { txid: r.txid, vout: r.n };
                            found.get(&op).map(|info| (op, info.clone()))
                        })
                        .collect())
                })
                .collect(),
            Err(()) => reqs.iter().map(|_| Err(())).collect(),
        }
    }
}

/// One `gettxouts` on the first node that answers.
pub async fn fetch_prevouts(
    nodes: &[RpcClient],
    wanted: &[TxOutRef],
) -> Result<HashMap<OutPoint, TxOutInfo>, ()> {
    if wanted.is_empty() {
        return Ok(HashMap::new());
    }
    for client in nodes {
        match client
            .get_tx_outs(wanted, &["scriptPubKeyLen", "value", "isStandard", "confirmations"], true)
            .await
        {
            Ok(answer) if answer.txouts.len() == wanted.len() => {
                return Ok(wanted
                    .iter()
                    .zip(answer.txouts)
                    .map(|(r, info)| (OutPoint { txid: r.txid, vout: r.n }, info))
                    .collect());
            }
            Ok(_) => tracing::warn!("gettxouts answered a different number of outputs"),
            Err(e) => tracing::warn!(error = %e, "gettxouts failed"),
        }
    }
    Err(())
}

/// Why a node's merged `sendrawtransactions` failed, shareable by every caller in the batch.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct SendError {
    /// The node could not be reached (as opposed to refusing the call).
    pub unreachable: bool,
    /// Too many transactions wait for this node already; nothing was sent.
    pub busy: bool,
    message: String,
}

impl SendError {
    /// The merging worker has stopped (only while the service shuts down).
    pub fn worker_gone() -> Self {
        Self { unreachable: true, busy: false, message: "the node sender has stopped".into() }
    }

    /// The node's queue is full: nothing was sent (shed load).
    pub fn busy() -> Self {
        Self { unreachable: false, busy: true, message: "too many transactions wait for the node".into() }
    }

    /// See [`node_client::RpcError::is_unreachable`].
    pub fn is_unreachable(&self) -> bool {
        self.unreachable
    }
}

/// One submission's transactions for a node: their ids and the call items.
pub type SendReq = (Vec<Txid>, Vec<SendRawTx>);

/// A node's `sendrawtransactions` for many callers at once.
#[derive(Debug)]
pub struct NodeSend(pub RpcClient);

impl Batch for NodeSend {
    type Req = SendReq;
    type Resp = Result<SendRawTransactionsResult, SendError>;

    fn size(req: &Self::Req) -> usize {
        req.1.len()
    }

    /// A transaction twice in one call would be judged against itself.
    fn fits(batch: &[&Self::Req], req: &Self::Req) -> bool {
        !overlaps(batch.iter().flat_map(|r| r.0.iter()), &req.0)
    }

    async fn run(&self, reqs: Vec<Self::Req>) -> Vec<Self::Resp> {
        let shared = |e: node_client::RpcError| SendError {
            unreachable: e.is_unreachable(),
            busy: false,
            message: e.to_string(),
        };
        match self.merged(&reqs).await {
            Ok(answers) => answers.into_iter().map(Ok).collect(),
            // The node refused the whole call: one caller's items must not fail the others.
            Err(e) if !e.is_unreachable() && reqs.len() > 1 => {
                futures_util::future::join_all(reqs.iter().map(|r| async move {
                    match self.merged(std::slice::from_ref(r)).await {
                        Ok(mut one) => one.pop().ok_or_else(SendError::worker_gone),
                        Err(e) => Err(shared(e)),
                    }
                }))
                .await
            }
            Err(e) => {
                let e = shared(e);
                reqs.iter().map(|_| Err(e.clone())).collect()
            }
        }
    }
}

impl NodeSend {
    /// One call with every request's items; each request's share of the answer.
    async fn merged(
        &self,
        reqs: &[SendReq],
    ) -> Result<Vec<SendRawTransactionsResult>, node_client::RpcError> {
        let items: Vec<SendRawTx> = reqs.iter().flat_map(|r| r.1.iter().cloned()).collect();
        let all = self.0.send_raw_transactions(&items).await?;
        Ok(reqs
            .iter()
            .map(|(mine, _)| {
                let mine: HashSet<&Txid> = mine.iter().collect();
                SendRawTransactionsResult {
                    known: all.known.iter().filter(|t| mine.contains(t)).copied().collect(),
                    evicted: all.evicted.iter().filter(|t| mine.contains(t)).copied().collect(),
                    invalid: all.invalid.iter().filter(|r| mine.contains(&r.txid)).cloned().collect(),
                    unconfirmed: all.unconfirmed.iter().filter(|u| mine.contains(&u.txid)).cloned().collect(),
                }
            })
            .collect())
    }
}

/// The nodes whose best block is asked: their ids (requests join only a call to the same nodes)
/// and clients.
pub type NodeSet = Vec<(i64, RpcClient)>;

/// `getblockchaininfo` of every node for many requests at once: the lowest tip among the nodes
/// that answer (a quote or a submission answer names a block every node has), `None` when none
/// does.
#[derive(Debug)]
pub struct BestBlock;

impl Batch for BestBlock {
    type Req = NodeSet;
    type Resp = Option<(bsv_primitives::BlockHash, u64)>;

    fn size(_: &Self::Req) -> usize {
        1
    }

    fn fits(batch: &[&Self::Req], req: &Self::Req) -> bool {
        batch.first().is_none_or(|first| first.iter().map(|(id, _)| id).eq(req.iter().map(|(id, _)| id)))
    }

    async fn run(&self, reqs: Vec<Self::Req>) -> Vec<Self::Resp> {
        let Some(nodes) = reqs.first() else { return Vec::new() };
        let answers =
            futures_util::future::join_all(nodes.iter().map(|(_, c)| c.get_blockchain_info())).await;
        let best = answers
            .into_iter()
            .filter_map(Result::ok)
            .min_by_key(|info| info.blocks)
            .map(|info| (info.bestblockhash, info.blocks));
        vec![best; reqs.len()]
    }
}

/// The merged operations a submission uses.
#[derive(Debug, Clone)]
pub struct SubmitIo {
    /// Stored rows.
    pub lookup: Coalescer<Lookup>,
    /// Writes before sending.
    pub insert: Coalescer<Insert>,
    /// Records of the answers.
    pub record: Coalescer<Record>,
    /// `gettxouts`.
    pub prevouts: Coalescer<Prevouts>,
    /// Registrations with block-parser.
    pub register: Coalescer<crate::registration::Register>,
    /// The nodes' best block (`getblockchaininfo`), asked once for every answer that waits.
    pub best_block: Coalescer<BestBlock>,
}

impl SubmitIo {
    /// Starts the workers (inside a tokio runtime); at most `capacity` transactions wait for each.
    pub fn start(db: &Db, block_parser: crate::registration::BlockParser, capacity: usize) -> Self {
        Self {
            register: Coalescer::start(
                crate::registration::Register(block_parser),
                PARALLEL,
                MAX_ITEMS,
                capacity,
            ),
            lookup: Coalescer::start(Lookup(db.clone()), PARALLEL, MAX_ITEMS, capacity),
            insert: Coalescer::start(Insert(db.clone()), PARALLEL, MAX_ITEMS, capacity),
            record: Coalescer::start(Record(db.clone()), PARALLEL, MAX_ITEMS, capacity),
            prevouts: Coalescer::start(Prevouts, PARALLEL, MAX_ITEMS, capacity),
            // One call at a time: every request that arrives while one is in flight shares the
            // next, which starts after it arrived (so the answer is never older than the request).
            best_block: Coalescer::start(BestBlock, 1, MAX_ITEMS, capacity),
        }
    }

    /// A node's merged sender; at most `capacity` transactions wait for it.
    pub fn sender(client: RpcClient, capacity: usize) -> Coalescer<NodeSend> {
        Coalescer::start(NodeSend(client), PARALLEL, MAX_ITEMS, capacity)
    }
}
