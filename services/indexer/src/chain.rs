//! Native mode's chain data: transactions from the nodes, TSC proofs from the nodes checked
//! against the header block-parser holds for the block, and the spends of outputs (the spend
//! index for watched outpoints, the nodes' `gettxouts` for mempool spends).

use std::sync::Arc;

use bsv_primitives::{BlockHash, BlockHeader, TargetType, Transaction, TscProof, Txid};
use node_client::RpcError;
use node_client::rpc_types::TxOutRef;
use node_directory::Nodes;
use service_kit::{ApiError, ErrorKind, InternalClient};

use crate::error::IndexerError;
use crate::formats::{Outpoint, OutputSpend};

/// The nodes and the header chain, as native mode reads them.
#[derive(Debug, Clone)]
pub struct Chain {
    nodes: Arc<Nodes>,
    client: InternalClient,
    headers_base: String,
}

fn unavailable(what: String) -> IndexerError {
    IndexerError::Api(ApiError::new(ErrorKind::Unavailable, what))
}

impl Chain {
    /// The nodes mapi lists and block-parser's headers at `block_parser`.
    pub fn new(nodes: Arc<Nodes>, client: InternalClient, block_parser: &url::Url) -> Self {
        Self { nodes, client, headers_base: block_parser.as_str().trim_end_matches('/').to_owned() }
    }

    /// The node list (for the workers).
    pub fn nodes(&self) -> &Arc<Nodes> {
        &self.nodes
    }

    /// Asks each node in turn until one answers: `Ok(None)` when every node that answered says it
    /// does not know the transaction, 503 when none answered.
    async fn first_answer<T, F, Fut>(&self, call: F) -> Result<Option<T>, IndexerError>
    where
        F: Fn(node_client::RpcClient) -> Fut,
        Fut: std::future::Future<Output = Result<T, RpcError>>,
    {
        let nodes = self.nodes.current().await.map_err(|e| unavailable(format!("no node list: {e}")))?;
        let mut answered = false;
        let mut last = "no nodes are configured".to_owned();
        for node in nodes {
            match call(node.rpc.clone()).await {
                Ok(v) => return Ok(Some(v)),
                Err(e) if e.rpc_code().is_some() => {
                    answered = true;
                    last = e.to_string();
                }
                Err(e) => last = format!("{}: {e}", node.id),
            }
        }
        if answered { Ok(None) } else { Err(unavailable(format!("no node answered: {last}"))) }
    }

    /// The transaction's bytes, or `None` when no node has it.
    pub async fn transaction(&self, txid: &Txid) -> Result<Option<Vec<u8>>, IndexerError> {
        self.first_answer(|rpc| {
            let txid = *txid;
            async move { rpc.get_raw_transaction(&txid).await }
        })
        .await
    }

    /// The block header block-parser holds for `hash` (80 bytes, checked to hash to it).
    async fn header(&self, hash: &BlockHash) -> Result<BlockHeader, IndexerError> {
        let url = format!("{}/api/v1/headers/{hash}", self.headers_base);
        let resp = self
            .client
            .get(&url)
            .header("accept", "application/octet-stream")
            .send()
            .await
            .map_err(|e| unavailable(format!("block-parser: {}", e.without_url())))?;
        if !resp.status().is_success() {
            return Err(unavailable(format!("block-parser has no header {hash} ({})", resp.status())));
        }
        let bytes =
            resp.bytes().await.map_err(|e| unavailable(format!("block-parser: {}", e.without_url())))?;
        let raw: [u8; 80] =
            bytes.as_ref().try_into().map_err(|_| unavailable("block-parser: not a header".into()))?;
        let header = BlockHeader::from_bytes(raw);
        if header.hash() != *hash {
            return Err(unavailable("block-parser sent another header".into()));
        }
        Ok(header)
    }

    /// The TSC proof of a mined transaction (`None` when it is unknown or not mined), checked
    /// against the block's header before it is returned.
    pub async fn merkle_proof(
        &self,
        txid: &Txid,
        include_full_tx: bool,
        target: TargetType,
    ) -> Result<Option<TscProof>, IndexerError> {
        let Some(info) = self
            .first_answer(|rpc| {
                let txid = *txid;
                async move { rpc.get_raw_transaction_info(&txid).await }
            })
            .await?
        else {
            return Ok(None);
        };
        let Some(block) = info.blockhash else {
            return Ok(None);
        };
        let header = self.header(&block).await?;
        let target_name = match target {
            TargetType::Hash => "hash",
            TargetType::Header => "header",
            TargetType::MerkleRoot => "merkleroot",
        };
        let proof = self
            .first_answer(|rpc| async move {
                rpc.get_merkle_proof2_with_target(&block, txid, include_full_tx, target_name).await
            })
            .await?;
        let proof = match proof {
            Some(p) => p,
            // The node gives no proof for a block of the coinbase alone: the txid is the root.
            None if header.merkle_root() == *txid.internal() => TscProof {
                index: 0,
                tx_or_id: if include_full_tx { info.hex.clone() } else { txid.to_string() },
                target_type: (target != TargetType::Hash).then_some(target),
                target: match target {
                    TargetType::Hash => block.to_string(),
                    TargetType::Header => hex::encode(header.as_bytes()),
                    TargetType::MerkleRoot => txid.to_string(),
                },
                proof_type: None,
                composite: None,
                nodes: Vec::new(),
            },
            None => return Ok(None),
        };
        let mut checked = proof.clone();
        checked.target_type.get_or_insert(target);
        checked.verify_against_header(&header).map_err(|e| {
            IndexerError::Api(ApiError::new(
                ErrorKind::BadGateway,
                format!("the node's proof does not hold: {e}"),
            ))
        })?;
        Ok(Some(proof))
    }

    /// Spends of `outpoints` the nodes know in their mempools (via `gettxouts`' `collidedWith`).
    pub async fn mempool_spends(&self, outpoints: &[Outpoint]) -> Result<Vec<OutputSpend>, IndexerError> {
        if outpoints.is_empty() {
            return Ok(Vec::new());
        }
        let refs: Vec<TxOutRef> =
            outpoints.iter().map(|(h, n)| TxOutRef { txid: Txid::from_internal(*h), n: *n }).collect();
        let answer = self
            .first_answer(|rpc| {
                let refs = refs.clone();
                async move { rpc.get_tx_outs(&refs, &["scriptPubKeyLen"], true).await }
            })
            .await?;
        let Some(answer) = answer else {
            return Ok(Vec::new());
        };
        let mut spends = Vec::new();
        for (outpoint, out) in outpoints.iter().zip(answer.txouts) {
            let Some(collided) = out.collided_with.filter(|_| out.error.as_deref() == Some("spent")) else {
                continue;
            };
            let Ok(spender) = Transaction::parse_hex(&collided.hex) else {
                continue;
            };
            let spent_here = spender
                .spent_outpoints()
                .position(|op| op.txid.internal() == &outpoint.0 && op.vout == outpoint.1);
            if let Some(in_index) = spent_here {
                spends.push(OutputSpend {
                    out: *outpoint,
                    in_tx: *spender.txid().internal(),
                    in_index: in_index as u32,
                    block: [0; 32],
                });
            }
        }
        Ok(spends)
    }
}
