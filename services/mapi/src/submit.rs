//! Transaction submission (`POST /mapi/tx`, `POST /mapi/txs`): validation with the reference's
//! messages, the fee check against the caller's valid quotes, storage *before* sending, one
//! `sendrawtransactions` to every node concurrently, and the reference's merge of their answers.

use std::collections::{HashMap, HashSet};

use bsv_primitives::{Transaction, Txid, sha256d};
use node_client::RpcError;
use node_client::rpc_types::{RejectedTx, SendRawTransactionsResult, SendRawTx, TxOutRef};
use service_kit::internal::TrustedCaller;
use service_kit::{ApiError, ErrorKind};
use time::OffsetDateTime;
use wire_model::mapi::{ConflictedTx, ReturnResult, TxResult};
use wire_model::{CallbackEncryption, CallbackUrl};

use crate::batching::{Outcome, SendError};
use crate::coalesce::{Batch, Coalescer, Refused};
use crate::consolidation::{Params, PrevoutFacts, is_consolidation};
use crate::fees::{self, FeeVerdict};
use crate::quotes::{self, Quote};
use crate::txstore::{self, NewTx, STATUS_NODE_REJECTED};
use crate::{AppState, nodes};

/// Options a client can attach to a transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubmitOptions {
    /// Where callbacks go.
    pub callback_url: Option<String>,
    /// Token for the receiver.
    pub callback_token: Option<String>,
    /// `libsodium sealed_box <key>`.
    pub callback_encryption: Option<String>,
    /// Merkle proof callback wanted.
    pub merkle_proof: bool,
    /// Proof format.
    pub merkle_format: Option<String>,
    /// Double-spend callbacks wanted.
    pub ds_check: bool,
}

/// One transaction of a request: its hex (JSON) or bytes (binary), and its options.
#[derive(Debug, Clone)]
pub struct SubmitItem {
    /// The raw transaction as hex, `None` when missing.
    pub raw_hex: Option<String>,
    /// The raw transaction's bytes when the body was binary.
    pub raw_bytes: Option<Vec<u8>>,
    /// Options.
    pub options: SubmitOptions,
}

/// The outcome of a batch.
#[derive(Debug)]
pub struct BatchOutcome {
    /// Results in the reference's order.
    pub results: Vec<TxResult>,
    /// Failures among them.
    pub failure_count: u32,
}

const MISSING_DSNT: &str = "Missing DSNT output.";

fn failure(txid: Option<Txid>, description: impl Into<String>, retryable: bool) -> TxResult {
    TxResult {
        txid,
        return_result: ReturnResult::Failure,
        result_description: description.into(),
        warnings: None,
        failure_retryable: retryable,
        conflicted_with: None,
    }
}

fn success(txid: Txid, description: &str, warnings: Vec<String>) -> TxResult {
    TxResult {
        txid: Some(txid),
        return_result: ReturnResult::Success,
        result_description: description.to_owned(),
        warnings: Some(warnings),
        failure_retryable: false,
        conflicted_with: None,
    }
}

/// Checks callback options; the messages are the reference's, joined with ",".
fn validate_options(o: &SubmitOptions) -> Result<(), String> {
    let mut problems = Vec::new();
    let url = o.callback_url.as_deref().filter(|u| !u.trim().is_empty());
    if url.is_none() && (o.merkle_proof || o.ds_check) {
        problems.push("CallbackUrl is required when MerkleProof or DsCheck is not false".to_owned());
    }
    if let Some(u) = url
        && let Err(e) = CallbackUrl::parse(u)
    {
        problems.push(e.0);
    }
    if let Some(t) = &o.callback_token
        && t.len() > 256
    {
        problems.push("CallbackToken is longer than 256 characters".to_owned());
    }
    if let Some(enc) = o.callback_encryption.as_deref().filter(|e| !e.is_empty())
        && let Err(e) = CallbackEncryption::parse(enc)
    {
        problems.push(e.0);
    }
    if problems.is_empty() { Ok(()) } else { Err(problems.join(",")) }
}

/// True when an output is a DSNT output (`OP_FALSE OP_RETURN PUSH4 "dsnt"`).
fn has_dsnt_output(tx: &Transaction) -> bool {
    tx.as_chain_gang()
        .outputs
        .iter()
        .any(|o| o.lock_script.0.starts_with(&[0x00, 0x6a, 0x04, b'd', b's', b'n', b't']))
}

/// A transaction that passed every check and goes to the nodes.
struct ToSend {
    index: usize,
    txid: Txid,
    raw: Vec<u8>,
    verdict: FeeVerdict,
    quote_id: Option<i64>,
    policies: Option<serde_json::Map<String, serde_json::Value>>,
    warnings: Vec<String>,
    options: SubmitOptions,
    /// The outpoints it spends, in input order.
    spends: Vec<bsv_primitives::OutPoint>,
}

/// How one node answered for one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
enum NodeVerdict {
    Accepted,
    Known,
    Evicted,
    Retryable(String, Vec<ConflictedTx>),
    Invalid(String, Vec<ConflictedTx>),
}

impl NodeVerdict {
    /// The reference's merge order across nodes, best first: accepted, known, evicted,
    /// retryable, invalid. The best answer of any node wins.
    fn rank(&self) -> u8 {
        match self {
            NodeVerdict::Accepted => 0,
            NodeVerdict::Known => 1,
            NodeVerdict::Evicted => 2,
            NodeVerdict::Retryable(..) => 3,
            NodeVerdict::Invalid(..) => 4,
        }
    }
}

const RETRYABLE_PREFIXES: [&str; 5] = [
    "64 too-long-mempool-chain",
    "66 mempool min fee not met",
    "66 mempool full",
    "259 non-final-pool-full",
    "evicted",
];

fn verdict_of(rejected: &RejectedTx) -> NodeVerdict {
    if rejected.reject_code == 257 {
        return NodeVerdict::Known;
    }
    let description = format!("{} {}", rejected.reject_code, rejected.reject_reason).trim().to_owned();
    let conflicted: Vec<ConflictedTx> = rejected
        .collided_with
        .iter()
        .map(|c| ConflictedTx { txid: c.txid, size: c.size, hex: c.hex.clone() })
        .collect();
    if RETRYABLE_PREFIXES.iter().any(|p| description.starts_with(p)) {
        NodeVerdict::Retryable(
            format!("Mempool error, retry again later. (details: {description})"),
            conflicted,
        )
    } else {
        NodeVerdict::Invalid(description, conflicted)
    }
}

fn node_verdicts(answer: &SendRawTransactionsResult) -> HashMap<Txid, NodeVerdict> {
    let mut out = HashMap::new();
    for t in &answer.known {
        out.insert(*t, NodeVerdict::Known);
    }
    for t in &answer.evicted {
        out.insert(*t, NodeVerdict::Evicted);
    }
    for r in &answer.invalid {
        out.insert(r.txid, verdict_of(r));
    }
    out
}

/// What every step of one submission shares: the caller, its quotes and the nodes.
struct Context<'a> {
    state: &'a AppState,
    identity: Option<(&'a str, &'a str)>,
    quotes: Vec<Quote>,
    nodes: Vec<(nodes::NodeRow, node_client::RpcClient)>,
    now: OffsetDateTime,
}

impl Context<'_> {
    /// The caller's quotes valid now (the reference's selection).
    fn valid_quotes(&self) -> Vec<&Quote> {
        let expiry = time::Duration::minutes(i64::from(self.state.settings.quote_expiry_minutes));
        quotes::valid(&self.quotes, self.now, expiry)
    }
}

/// Results decided before any node is asked, by request position.
type Early = Vec<(usize, TxResult)>;

/// A transaction whose bytes decoded: its standard serialisation, and the prevouts an Extended
/// Format transaction brought.
struct Decoded {
    index: usize,
    txid: Txid,
    raw: Vec<u8>,
    options: SubmitOptions,
    ef_prevouts: Option<Vec<bsv_primitives::Prevout>>,
}

/// A decoded transaction that parsed.
struct Parsed {
    decoded: Decoded,
    tx: Transaction,
}

/// What is known of the inputs: outputs of transactions in the same batch (value, locking script
/// length), and the nodes' `gettxouts` answer for the rest (`Err` when it failed).
struct Inputs {
    in_batch: HashMap<Txid, Vec<(i64, u64)>>,
    prevouts: Result<HashMap<bsv_primitives::OutPoint, node_client::rpc_types::TxOutInfo>, ()>,
}

/// Submits a batch for `caller`: validate, look up, price, persist, send, merge.
pub async fn submit(
    state: &AppState,
    caller: &TrustedCaller,
    items: Vec<SubmitItem>,
) -> Result<BatchOutcome, ApiError> {
    let identity = caller.identity.as_ref().map(|(i, p)| (i.as_str(), p.as_str()));
    count_request(state, identity.is_some(), items.len());
    let (early, sent) = pipeline(state, identity, items).await?;
    Ok(in_reference_order(&state.metrics, early, sent))
}

/// Submits one transaction (`POST /mapi/tx`): it joins the single submissions of the same caller
/// that arrive while others are in flight, and they run the pipeline together (see
/// [`MergedSingles`]).
pub async fn submit_single(
    state: &AppState,
    singles: &Coalescer<MergedSingles>,
    caller: &TrustedCaller,
    item: SubmitItem,
) -> Result<TxResult, ApiError> {
    count_request(state, caller.identity.is_some(), 1);
    let single = Single { identity: caller.identity.clone(), txid: txid_of(&item), item };
    let result = singles.call(single).await.map_err(refused)??;
    let mut outcome = in_reference_order(&state.metrics, vec![(0, result)], Vec::new());
    outcome.results.pop().ok_or_else(|| ApiError::new(ErrorKind::Internal, "no result"))
}

/// One `POST /mapi/tx` waiting to be merged: the caller, the transaction's id when its bytes
/// decode (no transaction twice in one run), and the transaction.
#[derive(Debug)]
pub struct Single {
    identity: Option<(String, String)>,
    txid: Option<Txid>,
    item: SubmitItem,
}

/// Concurrent single-transaction submissions of one caller, run through the pipeline as one batch:
/// one lookup, one `gettxouts`, one write, one registration, one `sendrawtransactions` per node
/// and one record for all of them, instead of one of each per transaction. Each keeps its own
/// answer; a transaction's result does not depend on the others it ran with (a parent submitted
/// beside its child is found in the batch, as it would be in the mempool).
#[derive(Debug)]
pub struct MergedSingles(pub actix_web::web::Data<AppState>);

impl Batch for MergedSingles {
    type Req = Single;
    type Resp = Result<TxResult, ApiError>;

    fn size(_: &Self::Req) -> usize {
        1
    }

    /// Same caller (quotes and ownership are the caller's), and not a transaction already in.
    fn fits(batch: &[&Self::Req], req: &Self::Req) -> bool {
        batch.first().is_none_or(|first| first.identity == req.identity)
            && req.txid.is_none_or(|t| batch.iter().all(|b| b.txid != Some(t)))
    }

    async fn run(&self, reqs: Vec<Self::Req>) -> Vec<Self::Resp> {
        let n = reqs.len();
        let identity = reqs.first().and_then(|r| r.identity.clone());
        let identity = identity.as_ref().map(|(i, p)| (i.as_str(), p.as_str()));
        let items = reqs.into_iter().map(|r| r.item).collect();
        match pipeline(&self.0, identity, items).await {
            Ok((early, sent)) => {
                let mut by_index: Vec<Option<TxResult>> = vec![None; n];
                for (index, result) in early.into_iter().chain(sent) {
                    if let Some(slot) = by_index.get_mut(index) {
                        *slot = Some(result);
                    }
                }
                by_index
                    .into_iter()
                    .map(|r| r.ok_or_else(|| ApiError::new(ErrorKind::Internal, "no result")))
                    .collect()
            }
            Err(e) => vec![Err(e); n],
        }
    }
}

/// The id of an item's transaction when its bytes decode (hex or binary, standard or Extended
/// Format); `None` leaves the pipeline to report what is wrong.
fn txid_of(item: &SubmitItem) -> Option<Txid> {
    let decoded;
    let raw = match (&item.raw_bytes, &item.raw_hex) {
        (Some(b), _) => b.as_slice(),
        (None, Some(h)) => {
            decoded = hex::decode(h.trim()).ok()?;
            decoded.as_slice()
        }
        (None, None) => return None,
    };
    if bsv_primitives::is_extended(raw) {
        return bsv_primitives::parse_extended(raw).ok().map(|ef| Txid::from_internal(sha256d(&ef.standard)));
    }
    Some(Txid::from_internal(sha256d(raw)))
}

/// The steps of a submission, results by item position: decided before any node was asked
/// (`early`) and the nodes' (`sent`).
async fn pipeline(
    state: &AppState,
    identity: Option<(&str, &str)>,
    items: Vec<SubmitItem>,
) -> Result<(Early, Early), ApiError> {
    let (quotes, nodes) = tokio::join!(quotes::cached_for_identity(state, identity), nodes::clients(state));
    let cx = Context { state, identity, quotes: quotes?, nodes: nodes?, now: OffsetDateTime::now_utc() };
    if cx.valid_quotes().is_empty() && !state.settings.check_fee_disabled {
        return Err(ApiError::new(ErrorKind::Internal, "No fee quotes available"));
    }
    let mut early: Early = Vec::new();
    let decoded = decode(items, &mut early);
    let parsed = parse(decoded, &mut early);
    let (stored, inputs) = look_up(&cx, &parsed).await?;
    let candidates = skip_settled(&cx, parsed, &stored, &mut early);
    let to_send = price(&cx, candidates, &inputs, &mut early).await;
    let registered = persist(&cx, &to_send).await?;
    let sent = send_and_merge(&cx, &to_send, registered).await?;
    Ok((early, sent))
}

fn count_request(state: &AppState, authenticated: bool, n: usize) {
    let m = &state.metrics;
    m.requests.inc();
    if authenticated {
        m.tx_authenticated_user.inc_by(n as u64);
    } else {
        m.tx_anonymous_user.inc_by(n as u64);
    }
}

/// Step 1, no I/O: the bytes (hex or binary; Extended Format read to its standard form), the
/// Merkle format, duplicates within the request, the callback options.
fn decode(items: Vec<SubmitItem>, early: &mut Early) -> Vec<Decoded> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for (index, item) in items.into_iter().enumerate() {
        let raw = match (&item.raw_bytes, &item.raw_hex) {
            (Some(b), _) => b.clone(),
            (None, Some(h)) if !h.trim().is_empty() => match hex::decode(h.trim()) {
                Ok(b) => b,
                Err(_) => {
                    early.push((index, failure(None, "Invalid characters in rawTx", false)));
                    continue;
                }
            },
            _ => {
                early.push((index, failure(None, "RawTx is required", false)));
                continue;
            }
        };
        // Extended Format transactions bring their inputs' values and scripts: no `gettxouts`
        // for them (the node still validates the inputs, and a signature commits to the amount).
        let (raw, ef_prevouts) = if bsv_primitives::is_extended(&raw) {
            match bsv_primitives::parse_extended(&raw) {
                // Stored and sent as the standard serialisation; the txid is its hash.
                Ok(ef) => (ef.standard, Some(ef.prevouts)),
                Err(_) => {
                    early.push((index, failure(None, "Can not parse transaction", false)));
                    continue;
                }
            }
        } else {
            (raw, None)
        };
        let txid = Txid::from_internal(sha256d(&raw));
        if let Some(f) = item.options.merkle_format.as_deref().filter(|f| !matches!(*f, "" | "TSC" | "BUMP"))
        {
            early.push((
                index,
                failure(
                    Some(txid),
                    format!("Invalid merkle format {f}. Supported formats: TSC, BUMP."),
                    false,
                ),
            ));
            continue;
        }
        if !seen.insert(txid) {
            early.push((
                index,
                failure(Some(txid), "Transaction with this id occurs more than once within request", false),
            ));
            continue;
        }
        if let Err(problems) = validate_options(&item.options) {
            early.push((index, failure(Some(txid), problems, false)));
            continue;
        }
        out.push(Decoded { index, txid, raw, options: item.options, ef_prevouts });
    }
    out
}

/// Step 2: parse; coinbase transactions are refused.
fn parse(decoded: Vec<Decoded>, early: &mut Early) -> Vec<Parsed> {
    let mut out = Vec::new();
    for d in decoded {
        match Transaction::parse(&d.raw) {
            Ok(tx) if tx.is_coinbase() => early.push((
                d.index,
                failure(Some(d.txid), "Invalid transaction - coinbase transactions are not accepted", false),
            )),
            Ok(tx) => out.push(Parsed { decoded: d, tx }),
            Err(_) => early.push((d.index, failure(Some(d.txid), "Can not parse transaction", false))),
        }
    }
    out
}

/// Step 3: the stored rows of these transactions and the inputs they spend, at the same time
/// (the node's `gettxouts` is the slowest call of a submission; nothing else waits behind it).
async fn look_up(
    cx: &Context<'_>,
    parsed: &[Parsed],
) -> Result<(HashMap<Txid, txstore::StoredTx>, Inputs), ApiError> {
    let m = &cx.state.metrics;
    // Parents in the same batch are used directly: (value, locking script length) per output.
    let in_batch: HashMap<Txid, Vec<(i64, u64)>> = parsed
        .iter()
        .map(|p| {
            let outputs = p.tx.as_chain_gang().outputs.iter();
            (p.decoded.txid, outputs.map(|o| (o.satoshis, o.lock_script.0.len() as u64)).collect())
        })
        .collect();
    let mut wanted: Vec<TxOutRef> = parsed
        .iter()
        .filter(|p| p.decoded.ef_prevouts.is_none())
        .flat_map(|p| p.tx.spent_outpoints())
        .filter(|op| !in_batch.contains_key(&op.txid))
        .map(|op| TxOutRef { txid: op.txid, n: op.vout })
        .collect();
    wanted.sort_by_key(|r| (r.txid, r.n));
    wanted.dedup();
    let txids: Vec<Txid> = parsed.iter().map(|p| p.decoded.txid).collect();
    let timed_prevouts = async {
        let timer = m.gettxouts_duration.start_timer();
        let prevouts = if wanted.is_empty() {
            Ok(Ok(HashMap::new()))
        } else {
            let clients = cx.nodes.iter().map(|(_, c)| c.clone()).collect();
            cx.state.io.prevouts.call((clients, wanted.clone())).await
        };
        timer.observe_duration();
        prevouts
    };
    let lookup = async {
        if txids.is_empty() {
            return Ok(HashMap::new());
        }
        cx.state.io.lookup.call(txids.clone()).await.map_err(refused)?
    };
    let (stored, prevouts) = tokio::join!(lookup, timed_prevouts);
    Ok((stored?, Inputs { in_batch, prevouts: prevouts.map_err(refused)? }))
}

/// Step 4: transactions stored before are "Already known" when settled, refused when submitted
/// with other parameters (or by another caller), and otherwise go on.
fn skip_settled(
    cx: &Context<'_>,
    parsed: Vec<Parsed>,
    stored: &HashMap<Txid, txstore::StoredTx>,
    early: &mut Early,
) -> Vec<Parsed> {
    let mut out = Vec::new();
    for p in parsed {
        let (index, txid, options) = (p.decoded.index, p.decoded.txid, &p.decoded.options);
        if let Some(s) = stored.get(&txid).filter(|s| s.tx_status != STATUS_NODE_REJECTED) {
            let same_params = s.callback_url.as_deref() == options.callback_url.as_deref()
                && s.merkle_proof == options.merkle_proof
                && s.ds_check == options.ds_check;
            let same_owner = s.identity.as_deref() == cx.identity.map(|i| i.0)
                && s.identity_provider.as_deref() == cx.identity.map(|i| i.1);
            if !same_params || (s.tx_status != 0 && !same_owner) {
                early.push((
                    index,
                    failure(Some(txid), "Transaction already submitted with different parameters.", false),
                ));
                continue;
            }
            if txstore::is_settled(s.tx_status) && !cx.state.settings.resubmit_known_transactions {
                let warnings =
                    if options.ds_check { dsnt_warning_of_raw(&p.decoded.raw) } else { Vec::new() };
                early.push((index, success(txid, "Already known", warnings)));
                continue;
            }
        }
        out.push(p);
    }
    out
}

/// What the inputs of one transaction add up to.
struct Spent {
    sum: i64,
    facts: Vec<PrevoutFacts>,
    missing: bool,
    already_in_mempool: bool,
    conflicted: Vec<ConflictedTx>,
}

/// The inputs of `p`: from its Extended Format, its batch, or the nodes.
fn spent_by(
    p: &Parsed,
    inputs: &Inputs,
    prevouts: &HashMap<bsv_primitives::OutPoint, node_client::rpc_types::TxOutInfo>,
) -> Spent {
    let mut s = Spent {
        sum: 0,
        facts: Vec::new(),
        missing: false,
        already_in_mempool: false,
        conflicted: Vec::new(),
    };
    if let Some(ef) = &p.decoded.ef_prevouts {
        for prevout in ef {
            s.sum = s.sum.saturating_add(i64::try_from(prevout.satoshis).unwrap_or(i64::MAX));
            // Confirmations are not known from the transaction: no consolidation exemption.
            let script_len = prevout.locking_script.len() as u64;
            s.facts.push(PrevoutFacts { script_len, confirmations: 0, is_standard: false });
        }
        return s;
    }
    for op in p.tx.spent_outpoints() {
        if let Some(parent) = inputs.in_batch.get(&op.txid) {
            match parent.get(op.vout as usize) {
                Some((v, len)) => {
                    s.sum = s.sum.saturating_add(*v);
                    s.facts.push(PrevoutFacts { script_len: *len, confirmations: 0, is_standard: true });
                }
                None => s.missing = true,
            }
            continue;
        }
        match prevouts.get(&op) {
            Some(info) if info.error.is_none() => {
                s.sum = s.sum.saturating_add(info.satoshis().unwrap_or(0));
                s.facts.push(PrevoutFacts {
                    script_len: info.script_pub_key_len.unwrap_or(0),
                    confirmations: info.confirmations.unwrap_or(0),
                    is_standard: info.is_standard.unwrap_or(false),
                });
            }
            Some(info) => {
                s.missing = true;
                if let Some(c) = &info.collided_with {
                    if c.txid == p.decoded.txid {
                        s.already_in_mempool = true;
                    } else if !s.conflicted.iter().any(|x| x.txid == c.txid) {
                        s.conflicted.push(ConflictedTx { txid: c.txid, size: c.size, hex: c.hex.clone() });
                    }
                }
            }
            None => s.missing = true,
        }
    }
    s
}

/// Step 5: per transaction, its inputs (missing ones, or already mined), the fee against the
/// caller's valid quotes (or a free consolidation), and the DSNT warning.
async fn price(cx: &Context<'_>, candidates: Vec<Parsed>, inputs: &Inputs, early: &mut Early) -> Vec<ToSend> {
    let state = cx.state;
    let m = &state.metrics;
    let valid_quotes = cx.valid_quotes();
    // The node's consolidation parameters (none known: no consolidation exemption).
    let network = if candidates.is_empty() {
        serde_json::Map::new()
    } else {
        let mut extra = state.network_info.get(&cx.nodes).await.unwrap_or_default();
        extra.entry("minconsolidationfactor").or_insert(0.into());
        extra
    };
    // Per valid quote, once per request: its fees and its consolidation parameters.
    let priced: Vec<(&Quote, Vec<wire_model::mapi::Fee>)> =
        valid_quotes.iter().map(|q| (*q, q.fees())).collect();
    let consolidation_params: Vec<(&Quote, Params)> =
        valid_quotes.iter().map(|q| (*q, Params::from(&network, q.policies_object().as_ref()))).collect();
    let mut to_send = Vec::new();
    for p in candidates {
        let (index, txid) = (p.decoded.index, p.decoded.txid);
        let prevouts = match &inputs.prevouts {
            Ok(prevouts) => prevouts,
            Err(()) => {
                early.push((index, failure(Some(txid), "Error fetching inputs", true)));
                continue;
            }
        };
        let spent = spent_by(&p, inputs, prevouts);
        let tx = &p.tx;
        if spent.missing && !spent.already_in_mempool {
            if is_mined(&cx.nodes, &txid).await {
                early.push((index, success(txid, "Transaction already mined into block", Vec::new())));
                continue;
            }
            m.tx_missing_inputs.inc();
            let mut result = failure(Some(txid), "Missing inputs", false);
            result.conflicted_with = (!spent.conflicted.is_empty()).then_some(spent.conflicted);
            early.push((index, result));
            continue;
        }
        if tx.output_values().any(|v| v < 0) {
            early.push((index, failure(Some(txid), "Negative inputs are not allowed", false)));
            continue;
        }
        let paid = spent.sum.saturating_sub(tx.output_values().fold(0i64, |a, v| a.saturating_add(v)));
        let free = FeeVerdict { ok_to_mine: true, ok_to_relay: true };
        // A consolidation under any valid quote is free (its parameters may come from the quote).
        let consolidating = consolidation_params
            .iter()
            .find(|(_, params)| is_consolidation(tx, &spent.facts, params))
            .map(|(q, _)| *q);
        let (verdict, quote) = if state.settings.check_fee_disabled || spent.already_in_mempool {
            (free, valid_quotes.first().copied())
        } else if let Some(q) = consolidating {
            (free, Some(q))
        } else {
            match fees::best(&priced, paid, tx.fee_bytes()) {
                Some((q, v)) if v.score() > 0 => (v, Some(q)),
                _ => {
                    early.push((index, failure(Some(txid), "Not enough fees", false)));
                    continue;
                }
            }
        };
        let warnings = if p.decoded.options.ds_check && !has_dsnt_output(tx) {
            vec![MISSING_DSNT.to_owned()]
        } else {
            Vec::new()
        };
        to_send.push(ToSend {
            index,
            txid,
            raw: tx.to_bytes(),
            verdict,
            quote_id: quote.map(|q| q.id),
            policies: quote.and_then(Quote::policies_object),
            warnings,
            spends: tx.spent_outpoints().collect(),
            options: p.decoded.options,
        });
    }
    to_send
}

/// Step 6: store before sending (nothing a client is told was accepted can be lost), and register
/// with block-parser at the same time so that no block mined after the nodes took a transaction
/// goes unnoticed (a failed registration is retried by the registration worker). Returns whether
/// block-parser took the registration.
async fn persist(cx: &Context<'_>, to_send: &[ToSend]) -> Result<bool, ApiError> {
    if to_send.is_empty() {
        return Ok(false);
    }
    let identity = cx.identity;
    let rows: Vec<NewTx> = to_send
        .iter()
        .map(|s| NewTx {
            txid: s.txid.internal().to_vec(),
            payload: Some(s.raw.clone()),
            callback_url: s.options.callback_url.clone().filter(|u| !u.is_empty()),
            callback_token: s.options.callback_token.clone(),
            callback_encryption: s.options.callback_encryption.clone().filter(|e| !e.is_empty()),
            merkle_proof: s.options.merkle_proof,
            merkle_format: s.options.merkle_format.clone(),
            ds_check: s.options.ds_check,
            tx_status: txstore::STATUS_SENT_TO_NODE,
            policy_quote_id: s.quote_id,
            ok_to_mine: s.verdict.ok_to_mine,
            set_policy_quote: s.policies.is_some(),
            identity: identity.map(|i| i.0.to_owned()),
            identity_provider: identity.map(|i| i.1.to_owned()),
        })
        .collect();
    let registration = registration_of(to_send);
    let io = &cx.state.io;
    let (inserted, reg) = tokio::join!(io.insert.call(rows), io.register.call(registration));
    inserted.map_err(refused)??;
    Ok(matches!(reg, Ok(Ok(()))))
}

/// Step 7: one `sendrawtransactions` per node, all nodes at once; per transaction the best answer
/// of any node wins; the answers are recorded (and the inputs of accepted dsCheck transactions
/// and their unconfirmed ancestors watched).
async fn send_and_merge(cx: &Context<'_>, to_send: &[ToSend], registered: bool) -> Result<Early, ApiError> {
    let mut node_results: Early = Vec::new();
    if to_send.is_empty() {
        return Ok(node_results);
    }
    let (state, m) = (cx.state, &cx.state.metrics);
    let batch: Vec<SendRawTx> = to_send
        .iter()
        .map(|s| SendRawTx {
            hex: hex::encode(&s.raw),
            allowhighfees: false,
            dontcheckfee: s.verdict.ok_to_mine,
            // The ancestors of a dsCheck transaction are watched for double spends too.
            listunconfirmedancestors: s.options.ds_check,
            config: s.policies.clone(),
        })
        .collect();
    m.tx_sent_to_node.inc_by(batch.len() as u64);
    let timer = m.sendrawtxs_duration.start_timer();
    let timeout = std::time::Duration::from_millis(state.settings.node_rpc_timeout_ms);
    let senders = cx
        .nodes
        .iter()
        .map(|(row, _)| state.node_clients.sender(row, timeout))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ApiError::internal(&e))?;
    let txids: Vec<Txid> = to_send.iter().map(|s| s.txid).collect();
    let answers = futures_util::future::join_all(senders.iter().map(|sender| {
        let req = (txids.clone(), batch.clone());
        async move {
            match sender.call(req).await {
                Ok(answer) => answer,
                Err(Refused::Full) => Err(SendError::busy()),
                Err(Refused::Stopped) => Err(SendError::worker_gone()),
            }
        }
    }))
    .await;
    timer.observe_duration();
    let answered: Vec<&SendRawTransactionsResult> = answers.iter().filter_map(|a| a.as_ref().ok()).collect();
    let any_answered = answers.iter().any(|a| !matches!(a, Err(e) if e.is_unreachable()));
    m.any_bitcoind_responding.set(if any_answered { 1.0 } else { 0.0 });
    if answered.is_empty() {
        return Err(no_node_answered(cx, &answers, batch.len()));
    }
    let per_node: Vec<HashMap<Txid, NodeVerdict>> = answered.iter().map(|a| node_verdicts(a)).collect();
    let mut accepted = Vec::new();
    let mut rejected = Vec::new();
    for s in to_send {
        let best = per_node
            .iter()
            .map(|m| m.get(&s.txid).cloned().unwrap_or(NodeVerdict::Accepted))
            .min_by_key(NodeVerdict::rank)
            .unwrap_or(NodeVerdict::Accepted);
        let result = match best {
            NodeVerdict::Accepted => {
                accepted.push(s.txid);
                success(s.txid, "", s.warnings.clone())
            }
            NodeVerdict::Known => {
                accepted.push(s.txid);
                success(s.txid, "Already known", s.warnings.clone())
            }
            NodeVerdict::Evicted => {
                rejected.push(s.txid);
                let mut r =
                    failure(Some(s.txid), "Mempool error, retry again later. (details: evicted)", true);
                r.warnings = Some(s.warnings.clone());
                r
            }
            NodeVerdict::Retryable(description, conflicted)
            | NodeVerdict::Invalid(description, conflicted) => {
                rejected.push(s.txid);
                let retryable = description.starts_with("Mempool error");
                let mut r = failure(Some(s.txid), description, retryable);
                r.conflicted_with = (!conflicted.is_empty()).then_some(conflicted);
                r
            }
        };
        node_results.push((s.index, result));
    }
    m.tx_accepted_by_node.inc_by(accepted.len() as u64);
    m.tx_rejected_by_node.inc_by(rejected.len() as u64);
    let watched = watched_inputs(to_send, &accepted, &answered);
    let outcome = Outcome { accepted, rejected, authenticated: cx.identity.is_some(), registered };
    // The nodes have answered: recording it is not shed, whatever the queue holds.
    state.io.record.call_or_run(outcome).await.map_err(refused)??;
    if !watched.is_empty() {
        txstore::record_watched_inputs(&state.db, &watched).await.map_err(ApiError::from)?;
    }
    Ok(node_results)
}

/// The error when no node answered: busy (503 with `Retry-After`), unreachable (503), or every
/// node failed (500, the reference's text).
fn no_node_answered(
    cx: &Context<'_>,
    answers: &[Result<SendRawTransactionsResult, SendError>],
    n: usize,
) -> ApiError {
    if answers.iter().all(|a| matches!(a, Err(e) if e.busy)) {
        return refused(Refused::Full);
    }
    cx.state.metrics.tx_submit_exception.inc_by(n as u64);
    if answers.iter().all(|a| matches!(a, Err(e) if e.is_unreachable())) {
        return ApiError::unavailable("Failed to connect to node(s).");
    }
    for a in answers {
        if let Err(e) = a {
            tracing::warn!(error = %e, "sendrawtransactions failed");
        }
    }
    ApiError::new(
        ErrorKind::Internal,
        "Error while submitting transactions to the node - no response or error returned.",
    )
}

/// Step 8: the reference's order: results decided early in request order, then the nodes'
/// (invalid, evicted, known, accepted), each in submission order.
fn in_reference_order(m: &crate::metrics::MapiMetrics, mut early: Early, mut sent: Early) -> BatchOutcome {
    early.sort_by_key(|(i, _)| *i);
    let rank = |r: &TxResult| match (r.return_result, r.result_description.as_str()) {
        (ReturnResult::Failure, d)
            if !d.starts_with("Mempool error, retry again later. (details: evicted)") =>
        {
            0
        }
        (ReturnResult::Failure, _) => 1,
        (ReturnResult::Success, "Already known") => 2,
        _ => 3,
    };
    sent.sort_by_key(|(i, r)| (rank(r), *i));
    let results: Vec<TxResult> = early.into_iter().chain(sent).map(|(_, r)| r).collect();
    let failure_count = results.iter().filter(|r| r.return_result == ReturnResult::Failure).count() as u32;
    m.tx_response_failure.inc_by(u64::from(failure_count));
    m.tx_response_success.inc_by(results.len() as u64 - u64::from(failure_count));
    m.tx_response_failure_retryable.inc_by(results.iter().filter(|r| r.failure_retryable).count() as u64);
    BatchOutcome { results, failure_count }
}

/// What block-parser is to watch for these transactions: their ids, and the outpoints the dsCheck
/// ones spend.
fn registration_of(to_send: &[ToSend]) -> wire_model::internal::Registrations {
    wire_model::internal::Registrations {
        txids: to_send.iter().map(|s| s.txid).collect(),
        spends: to_send
            .iter()
            .filter(|s| s.options.ds_check)
            .flat_map(|s| {
                s.spends.iter().map(|op| wire_model::internal::RegisteredSpend {
                    txid: s.txid,
                    prev_txid: op.txid,
                    prev_n: op.vout,
                })
            })
            .collect(),
    }
}

/// The inputs to store of accepted dsCheck transactions, and their unconfirmed ancestors as the
/// nodes listed them (first answer per ancestor wins).
fn watched_inputs(
    to_send: &[ToSend],
    accepted: &[Txid],
    answers: &[&SendRawTransactionsResult],
) -> txstore::WatchedInputs {
    let accepted: std::collections::HashSet<&Txid> = accepted.iter().collect();
    let mut watched = txstore::WatchedInputs::default();
    for s in to_send.iter().filter(|s| s.options.ds_check && accepted.contains(&s.txid)) {
        watched.inputs.push((s.txid, s.spends.clone()));
    }
    let mut seen = std::collections::HashSet::new();
    for answer in answers {
        for unconfirmed in &answer.unconfirmed {
            if !accepted.contains(&unconfirmed.txid) {
                continue;
            }
            for ancestor in &unconfirmed.ancestors {
                if seen.insert(ancestor.txid) {
                    let spends = ancestor
                        .vin
                        .iter()
                        .map(|v| bsv_primitives::OutPoint { txid: v.txid, vout: v.vout })
                        .collect();
                    watched.ancestors.push((ancestor.txid, spends));
                }
            }
        }
    }
    watched
}

fn dsnt_warning_of_raw(raw: &[u8]) -> Vec<String> {
    match Transaction::parse(raw) {
        Ok(tx) if !has_dsnt_output(&tx) => vec![MISSING_DSNT.to_owned()],
        _ => Vec::new(),
    }
}

/// The answer when a merged operation refused a call: its queue is full (shed load: retry in a
/// second), or its worker has stopped (only while the service shuts down).
pub(crate) fn refused(r: Refused) -> ApiError {
    match r {
        Refused::Full => ApiError::unavailable("The service is busy, retry later.").with_retry_after(1),
        Refused::Stopped => ApiError::unavailable("The service is shutting down."),
    }
}

/// True when some node has the transaction in a block.
async fn is_mined(nodes: &[(crate::nodes::NodeRow, node_client::RpcClient)], txid: &Txid) -> bool {
    for (_, client) in nodes {
        match client.get_raw_transaction_info(txid).await {
            Ok(info) if info.blockhash.is_some() => return true,
            Ok(_) | Err(RpcError::Rpc { .. }) => {}
            Err(_) => continue,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_answers_merge_best_first_and_map_to_the_references_strings() {
        let txid = Txid::from_internal([1; 32]);
        let rejected = |code, reason: &str| RejectedTx {
            txid,
            reject_code: code,
            reject_reason: reason.into(),
            collided_with: vec![],
        };
        assert_eq!(verdict_of(&rejected(257, "txn-already-known")), NodeVerdict::Known);
        assert_eq!(
            verdict_of(&rejected(66, "mempool min fee not met")),
            NodeVerdict::Retryable(
                "Mempool error, retry again later. (details: 66 mempool min fee not met)".into(),
                vec![]
            )
        );
        assert_eq!(
            verdict_of(&rejected(16, "bad-txns-inputs-missingorspent")),
            NodeVerdict::Invalid("16 bad-txns-inputs-missingorspent".into(), vec![])
        );
        let all = [NodeVerdict::Invalid("x".into(), vec![]), NodeVerdict::Known, NodeVerdict::Evicted];
        assert_eq!(all.iter().min_by_key(|v| v.rank()), Some(&NodeVerdict::Known));
        assert!(NodeVerdict::Accepted.rank() < NodeVerdict::Known.rank());
    }

    #[test]
    fn callback_options_are_checked_with_the_references_messages() {
        let o = SubmitOptions { merkle_proof: true, ..Default::default() };
        assert_eq!(
            validate_options(&o).unwrap_err(),
            "CallbackUrl is required when MerkleProof or DsCheck is not false"
        );
        let o = SubmitOptions { callback_url: Some("ftp://x".into()), ..Default::default() };
        assert!(validate_options(&o).unwrap_err().contains("invalid scheme"));
        let o = SubmitOptions {
            callback_url: Some("https://cb.example/x".into()),
            ds_check: true,
            ..Default::default()
        };
        assert!(validate_options(&o).is_ok());
        let o = SubmitOptions { callback_encryption: Some("rsa x".into()), ..Default::default() };
        assert_eq!(
            validate_options(&o).unwrap_err(),
            "CallbackEncryption contains unsupported encryption type"
        );
    }
}
