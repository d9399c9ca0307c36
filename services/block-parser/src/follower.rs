//! Follows the nodes' best chains: every `CATCH_UP_INTERVAL_MS` (or at once, when zmq-listener
//! reports a `hashblock`) each node's tip is compared with the stored chain; unknown headers are
//! fetched walking back to a known one; the header with the most work becomes the best tip, and a
//! new best tip is announced to the tips websocket. A missed notification is never fatal: the next
//! round sees the tip anyway.

use std::sync::Arc;
use std::time::Duration;

use bsv_primitives::BlockHash;
use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;

use crate::AppState;
use crate::chain::{self, NewHeader, StoredHeader};
use node_directory::Node;

/// Why a round did not complete.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    /// The database failed.
    #[error(transparent)]
    Db(#[from] db_kit::DbError),
    /// The node list could not be had.
    #[error(transparent)]
    Nodes(#[from] node_directory::NodesError),
    /// A node call failed.
    #[error("node {0}: {1}")]
    Rpc(String, node_client::RpcError),
    /// A node sent a header that does not hash to its id or has malformed fields.
    #[error("node {0} sent an inconsistent header for {1}")]
    BadHeader(String, BlockHash),
}

/// New best tips, for the tips websocket. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Tips {
    sender: broadcast::Sender<Arc<StoredHeader>>,
}

impl Default for Tips {
    fn default() -> Self {
        Self { sender: broadcast::channel(64).0 }
    }
}

impl Tips {
    /// A subscription to new best tips.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<StoredHeader>> {
        self.sender.subscribe()
    }

    fn publish(&self, tip: StoredHeader) {
        // No subscriber is not an error.
        let _ = self.sender.send(Arc::new(tip));
    }
}

/// Runs rounds until `cancel`: one every interval, or at once when `wake` is notified.
pub async fn run(state: actix_web::web::Data<AppState>, wake: Arc<Notify>, cancel: CancellationToken) {
    let interval = Duration::from_millis(state.settings.catch_up_interval_ms);
    let mut gaps_possible = true;
    loop {
        match round(&state, &mut gaps_possible).await {
            Ok(()) => {}
            Err(e) => tracing::warn!(error = %e, "catching up with the nodes failed"),
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

/// One round: every node's tip, the history below the first header if any is missing, then the
/// best chain.
pub async fn round(state: &AppState, gaps_possible: &mut bool) -> Result<(), FollowError> {
    let nodes = state.nodes.current().await?;
    for node in &nodes {
        let tip = match node.rpc.get_best_block_hash().await {
            Ok(tip) => tip,
            Err(e) => {
                tracing::warn!(node = %node.id, error = %e, "the node's tip is unknown");
                continue;
            }
        };
        if let Err(e) = follow(state, node, tip, gaps_possible).await {
            tracing::warn!(node = %node.id, error = %e, "following the node failed");
        }
    }
    if *gaps_possible && let Some(node) = nodes.first() {
        match chain::lowest_gap(&state.db).await? {
            Some(missing) => fill(state, node, missing).await?,
            None => *gaps_possible = false,
        }
    }
    adopt_most_work(state).await
}

/// Fetches the headers from `tip` back to a stored one; a fork whose point lies deeper than
/// `MAX_BLOCK_CHAIN_LENGTH_FOR_FORK` below the best height is ignored, as the reference does.
async fn follow(
    state: &AppState,
    node: &Node,
    tip: BlockHash,
    gaps_possible: &mut bool,
) -> Result<(), FollowError> {
    if chain::is_known(&state.db, &tip).await? {
        return Ok(());
    }
    let best_height = chain::best_tip(&state.db).await?.map(|b| b.height);
    let floor = best_height.map(|b| b.saturating_sub(state.settings.max_block_chain_length_for_fork));
    let mut batch = Vec::new();
    let mut next = Some(tip);
    while let Some(hash) = next.take() {
        if chain::is_known(&state.db, &hash).await? {
            break;
        }
        let header = fetch(node, &hash, false).await?;
        if floor.is_some_and(|floor| header.height < floor) {
            tracing::warn!(node = %node.id, tip = %tip, "ignoring a fork deeper than MAX_BLOCK_CHAIN_LENGTH_FOR_FORK");
            return Ok(());
        }
        next = (header.height > 0).then(|| header.header.prev_hash());
        batch.push(header);
        if batch.len() as u64 >= state.settings.header_walk_batch && best_height.is_none() {
            // The first start: the rest of the history is filled in later rounds.
            *gaps_possible = true;
            break;
        }
    }
    let first_start = best_height.is_none();
    if first_start {
        // Nothing is best yet: this walk is the best chain so far.
        for h in &mut batch {
            h.on_best_chain = true;
        }
    }
    chain::insert(&state.db, &batch).await?;
    state.stats.processed(batch.len() as u64);
    Ok(())
}

/// Fetches up to a batch of best-chain headers down from `missing`, to fill a gap in history.
async fn fill(state: &AppState, node: &Node, missing: BlockHash) -> Result<(), FollowError> {
    let mut batch = Vec::new();
    let mut next = Some(missing);
    while let Some(hash) = next.take() {
        if batch.len() as u64 >= state.settings.header_walk_batch || chain::is_known(&state.db, &hash).await?
        {
            break;
        }
        let header = fetch(node, &hash, true).await?;
        next = (header.height > 0).then(|| header.header.prev_hash());
        batch.push(header);
    }
    chain::insert(&state.db, &batch).await?;
    Ok(())
}

/// One header from a node, checked: its fields must hash to its id.
async fn fetch(node: &Node, hash: &BlockHash, on_best_chain: bool) -> Result<NewHeader, FollowError> {
    let info = node.rpc.get_block_header(hash).await.map_err(|e| FollowError::Rpc(node.id.clone(), e))?;
    checked(&node.id, hash, &info, on_best_chain)
}

/// The header a node sent for `hash`, if its fields hash to `hash` and its chain work reads.
fn checked(
    node: &str,
    hash: &BlockHash,
    info: &node_client::rpc_types::BlockHeaderInfo,
    on_best_chain: bool,
) -> Result<NewHeader, FollowError> {
    let bad = || FollowError::BadHeader(node.to_owned(), *hash);
    let header = info.raw_header().filter(|h| h.hash() == *hash).ok_or_else(bad)?;
    Ok(NewHeader {
        header,
        height: info.height,
        chain_work: info.chain_work().ok_or_else(bad)?,
        tx_count: info.num_tx,
        on_best_chain,
    })
}

/// Makes the header with the most work the best tip, and announces a new one.
async fn adopt_most_work(state: &AppState) -> Result<(), FollowError> {
    let Some(most) = chain::most_work(&state.db).await? else { return Ok(()) };
    let best = chain::best_tip(&state.db).await?;
    if best.as_ref().is_some_and(|b| b.hash() == most.hash()) {
        return Ok(());
    }
    let switch = chain::switch_best(&state.db, &most.hash()).await?;
    if !switch.disconnected.is_empty() {
        tracing::info!(
            blocks.disconnected = switch.disconnected.len(),
            blocks.connected = switch.connected.len(),
            "the best chain moved to another branch"
        );
    }
    tracing::info!(tip = %most.hash(), height = most.height, "new best tip");
    state.parse.notify_one();
    let mut tip = most;
    tip.on_best_chain = true;
    state.tips.publish(tip);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Mainnet genesis as `getblockheader` reports it.
    fn genesis() -> node_client::rpc_types::BlockHeaderInfo {
        serde_json::from_value(serde_json::json!({
            "hash": "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f",
            "confirmations": 1, "height": 0, "version": 1,
            "merkleroot": "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b",
            "time": 1231006505, "nonce": 2083236893, "bits": "1d00ffff",
            "chainwork": "0000000000000000000000000000000000000000000000000000000100010001", "num_tx": 1
        }))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_header_whose_fields_do_not_hash_to_its_id_is_a_typed_error() {
        let info = genesis();
        let hash = info.hash;
        let good = checked("n1", &hash, &info, true).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(good.header.hash(), hash);
        for tamper in [
            |i: &mut node_client::rpc_types::BlockHeaderInfo| i.nonce += 1,
            |i: &mut node_client::rpc_types::BlockHeaderInfo| i.bits = "zz".into(),
            |i: &mut node_client::rpc_types::BlockHeaderInfo| i.chainwork = "not hex".into(),
        ] {
            let mut bad = genesis();
            tamper(&mut bad);
            assert!(
                matches!(checked("n1", &hash, &bad, true), Err(FollowError::BadHeader(n, h)) if n == "n1" && h == hash)
            );
        }
    }
}
