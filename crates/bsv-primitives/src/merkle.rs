//! Merkle roots and proofs in the TSC format (the one `getmerkleproof2` returns and mAPI callbacks
//! carry), with verification against a block header.
//!
//! Bitcoin's tree duplicates the last node of a level with an odd count. In a TSC proof that
//! duplicated sibling is written as `"*"`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::hash::{BlockHash, Txid, merkle_parent, sha256d};
use crate::header::BlockHeader;

/// Computes a Merkle root from leaves pushed one at a time, keeping only one pending node per
/// tree level: a block of a million transactions needs 20 hashes of memory, not 32 MB.
#[derive(Debug, Default, Clone)]
pub struct MerkleRootBuilder {
    /// `pending[level]` holds a finished subtree of 2^level leaves when bit `level` of `count` is set.
    pending: Vec<[u8; 32]>,
    count: u64,
}

impl MerkleRootBuilder {
    /// Adds the next leaf (a txid in internal byte order).
    pub fn push(&mut self, leaf: [u8; 32]) {
        let mut node = leaf;
        let mut level = 0usize;
        while self.count & (1 << level) != 0 {
            node = merkle_parent(&self.pending[level], &node);
            level += 1;
        }
        if self.pending.len() <= level {
            self.pending.resize(level + 1, [0; 32]);
        }
        self.pending[level] = node;
        self.count += 1;
    }

    /// Number of leaves pushed so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The root of the leaves pushed so far (`None` for no leaves).
    pub fn root(&self) -> Option<[u8; 32]> {
        if self.count == 0 {
            return None;
        }
        let mut count = self.count;
        let mut level = count.trailing_zeros() as usize;
        let mut node = self.pending[level];
        while count != 1 << level {
            // `node` is the right edge of its level with no sibling: pair it with itself.
            node = merkle_parent(&node, &node);
            count += 1 << level;
            level += 1;
            // The carry merges `node` with every pending left sibling it now completes.
            while count & (1 << level) == 0 {
                node = merkle_parent(&self.pending[level], &node);
                level += 1;
            }
        }
        Some(node)
    }
}

/// Computes the Merkle root of txids (internal order); `None` for an empty list.
pub fn merkle_root(txids: &[Txid]) -> Option<[u8; 32]> {
    let mut builder = MerkleRootBuilder::default();
    for t in txids {
        builder.push(*t.internal());
    }
    builder.root()
}

/// A whole Merkle tree, kept so that many proofs can be cut from one block cheaply.
#[derive(Debug, Clone)]
pub struct MerkleTree {
    /// `levels[0]` are the leaves; the last level holds the root alone.
    levels: Vec<Vec<[u8; 32]>>,
}

impl MerkleTree {
    /// Builds the tree over txids in block order; `None` for an empty list.
    pub fn new(txids: &[Txid]) -> Option<Self> {
        if txids.is_empty() {
            return None;
        }
        let mut levels = vec![txids.iter().map(|t| *t.internal()).collect::<Vec<_>>()];
        while let Some(last) = levels.last().filter(|l| l.len() > 1) {
            let next = last
                .chunks(2)
                .map(|pair| {
                    let left = &pair[0];
                    merkle_parent(left, pair.get(1).unwrap_or(left))
                })
                .collect();
            levels.push(next);
        }
        Some(Self { levels })
    }

    /// The root in internal byte order.
    pub fn root(&self) -> [u8; 32] {
        self.levels.last().and_then(|l| l.first()).copied().unwrap_or([0; 32])
    }

    /// Number of leaves.
    pub fn len(&self) -> usize {
        self.levels[0].len()
    }

    /// Always false: a tree has at least one leaf.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The sibling path of leaf `index`, bottom-up; `None` when out of range.
    ///
    /// Where a node has no sibling (the last of an odd level) it pairs with itself, and the path
    /// says so the way the node's `getmerkleproof2` does: `"*"`, except for a node that only
    /// exists because of such a pairing further down (the tail of the tree) whose previous step
    /// was a real sibling, which the node writes out as its own hash. Both forms give the same
    /// root; this one makes proofs equal to the node's byte for byte.
    pub fn branch(&self, index: usize) -> Option<Vec<ProofNode>> {
        if index >= self.len() {
            return None;
        }
        let mut nodes: Vec<ProofNode> = Vec::with_capacity(self.levels.len());
        let mut i = index;
        // Nodes at this level built from full pairs only (the rest descend from a self-pairing).
        let mut paired = self.len();
        for level in &self.levels[..self.levels.len() - 1] {
            let sibling = i ^ 1;
            let step = match level.get(sibling) {
                Some(h) => ProofNode::Hash(*h),
                None if i >= paired && !matches!(nodes.last(), Some(ProofNode::Duplicate)) => {
                    ProofNode::Hash(level[i])
                }
                None => ProofNode::Duplicate,
            };
            nodes.push(step);
            i >>= 1;
            paired /= 2;
        }
        Some(nodes)
    }

    /// A TSC proof for leaf `index`, targeting the block hash as `getmerkleproof2` does by default.
    pub fn tsc_proof(&self, index: usize, block_hash: BlockHash) -> Option<TscProof> {
        let nodes = self.branch(index)?;
        let txid = Txid::from_internal(self.levels[0][index]);
        Some(TscProof {
            index: index as u64,
            tx_or_id: txid.to_string(),
            target_type: None,
            target: block_hash.to_string(),
            proof_type: None,
            composite: None,
            nodes,
        })
    }
}

/// One step of a Merkle branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProofNode {
    /// A sibling hash (internal byte order; serialized in display order like a txid).
    Hash([u8; 32]),
    /// The sibling is the node itself (odd count at that level), serialized as `"*"`.
    Duplicate,
}

impl Serialize for ProofNode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ProofNode::Hash(h) => s.collect_str(&Txid::from_internal(*h)),
            ProofNode::Duplicate => s.serialize_str("*"),
        }
    }
}

impl<'de> Deserialize<'de> for ProofNode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        if s == "*" {
            return Ok(ProofNode::Duplicate);
        }
        let t: Txid = s.parse().map_err(serde::de::Error::custom)?;
        Ok(ProofNode::Hash(*t.internal()))
    }
}

/// What the `target` of a TSC proof is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TargetType {
    /// The block hash (the default when `targetType` is absent).
    Hash,
    /// The 80-byte block header, hex.
    Header,
    /// The Merkle root, display-order hex.
    MerkleRoot,
}

/// A Merkle proof in the TSC JSON format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TscProof {
    /// Position of the transaction in the block.
    pub index: u64,
    /// The txid (64 hex characters) or the whole transaction as hex.
    pub tx_or_id: String,
    /// What `target` holds; absent means the block hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_type: Option<TargetType>,
    /// Block hash, header or Merkle root, per `target_type`.
    pub target: String,
    /// Only `"branch"` is defined; absent means branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof_type: Option<String>,
    /// Composite proofs are not defined by the TSC format; must be absent or false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub composite: Option<bool>,
    /// Siblings, bottom-up.
    pub nodes: Vec<ProofNode>,
}

/// Why a proof does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// `txOrId` is neither a txid nor a transaction in hex.
    #[error("txOrId is neither a txid nor transaction hex")]
    BadTxOrId,
    /// A composite or non-branch proof was given.
    #[error("only non-composite branch proofs are supported")]
    Unsupported,
    /// The index has bits left after the last node, or a `*` sits where a left sibling must be.
    #[error("the index does not match the path")]
    IndexMismatch,
    /// The path leads to another root.
    #[error("the proof leads to another Merkle root")]
    RootMismatch,
    /// The target does not name the given header.
    #[error("the proof's target does not match the block header")]
    TargetMismatch,
}

impl TscProof {
    /// The Merkle root the proof's path leads to (internal byte order).
    pub fn computed_root(&self) -> Result<[u8; 32], ProofError> {
        if self.composite == Some(true) || self.proof_type.as_deref().is_some_and(|p| p != "branch") {
            return Err(ProofError::Unsupported);
        }
        let mut node = if self.tx_or_id.len() == 64 {
            *self.tx_or_id.parse::<Txid>().map_err(|_| ProofError::BadTxOrId)?.internal()
        } else {
            let raw = hex::decode(&self.tx_or_id).map_err(|_| ProofError::BadTxOrId)?;
            sha256d(&raw)
        };
        let mut index = self.index;
        for step in &self.nodes {
            let right_side = index & 1 == 1;
            node = match (step, right_side) {
                (ProofNode::Duplicate, false) => merkle_parent(&node, &node),
                (ProofNode::Duplicate, true) => return Err(ProofError::IndexMismatch),
                (ProofNode::Hash(h), false) => merkle_parent(&node, h),
                (ProofNode::Hash(h), true) => merkle_parent(h, &node),
            };
            index >>= 1;
        }
        if index != 0 {
            return Err(ProofError::IndexMismatch);
        }
        Ok(node)
    }

    /// Checks that the proof leads to `root` (internal byte order).
    pub fn verify_root(&self, root: &[u8; 32]) -> Result<(), ProofError> {
        if &self.computed_root()? == root { Ok(()) } else { Err(ProofError::RootMismatch) }
    }

    /// Checks that the proof's target names `header` and that its path leads to the header's
    /// Merkle root: the check every proof that leaves the system must pass.
    pub fn verify_against_header(&self, header: &BlockHeader) -> Result<(), ProofError> {
        let target_ok = match self.target_type.unwrap_or(TargetType::Hash) {
            TargetType::Hash => self.target.parse::<BlockHash>().ok() == Some(header.hash()),
            TargetType::Header => hex::decode(&self.target).ok().as_deref() == Some(&header.as_bytes()[..]),
            TargetType::MerkleRoot => {
                self.target.parse::<Txid>().ok().map(|t| *t.internal()) == Some(header.merkle_root())
            }
        };
        if !target_ok {
            return Err(ProofError::TargetMismatch);
        }
        self.verify_root(&header.merkle_root())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: u8) -> Vec<Txid> {
        (0..n).map(|i| Txid::from_internal(sha256d(&[i]))).collect()
    }

    /// The textbook definition: reduce level by level, duplicating an odd last node.
    fn reference_root(txids: &[Txid]) -> [u8; 32] {
        let mut level: Vec<[u8; 32]> = txids.iter().map(|t| *t.internal()).collect();
        while level.len() > 1 {
            if level.len() % 2 == 1 {
                level.push(*level.last().unwrap());
            }
            level = level.chunks(2).map(|p| merkle_parent(&p[0], &p[1])).collect();
        }
        level[0]
    }

    #[test]
    fn streaming_root_equals_reference_for_every_small_size() {
        for n in 1..=70u8 {
            let l = leaves(n);
            let expected = reference_root(&l);
            assert_eq!(merkle_root(&l), Some(expected), "n = {n}");
            assert_eq!(MerkleTree::new(&l).unwrap().root(), expected, "n = {n}");
        }
        assert_eq!(merkle_root(&[]), None);
    }

    #[test]
    fn every_proof_of_every_small_tree_verifies_and_tampering_fails() {
        for n in 1..=33u8 {
            let l = leaves(n);
            let tree = MerkleTree::new(&l).unwrap();
            let root = tree.root();
            for i in 0..l.len() {
                let proof = tree.tsc_proof(i, BlockHash::from_internal([7; 32])).unwrap();
                proof.verify_root(&root).unwrap();
                let json = serde_json::to_string(&proof).unwrap();
                let back: TscProof = serde_json::from_str(&json).unwrap();
                assert_eq!(back, proof);
                let mut wrong = proof.clone();
                wrong.index ^= 1;
                if n > 1 {
                    assert!(wrong.verify_root(&root).is_err(), "n = {n}, i = {i}");
                }
            }
        }
    }

    #[test]
    fn a_tail_node_pairing_with_itself_after_a_real_sibling_is_written_out_as_the_node_does() {
        // 11 leaves: 11 -> 6 -> 3 -> 2 -> 1. Leaf 10 pairs with itself ("*"), then has a real
        // sibling, then its ancestor (the last of 3) pairs with itself: the node writes that hash.
        let l = leaves(11);
        let tree = MerkleTree::new(&l).unwrap();
        let nodes = tree.branch(10).unwrap();
        assert_eq!(nodes[0], ProofNode::Duplicate);
        assert!(matches!(nodes[1], ProofNode::Hash(_)));
        assert_eq!(nodes[2], ProofNode::Hash(tree.levels[2][2]));
        assert!(matches!(nodes[3], ProofNode::Hash(_)));
        // Leaf 8 has a real sibling first and then pairs with itself twice: "*" stays "*" only
        // after a "*".
        let path8 = tree.branch(8).unwrap();
        assert_eq!(path8[1], ProofNode::Hash(tree.levels[1][5]));
        tree.tsc_proof(10, BlockHash::from_internal([0; 32])).unwrap().verify_root(&tree.root()).unwrap();
    }

    #[test]
    fn duplicate_marker_serializes_as_star() {
        let l = leaves(3);
        let proof = MerkleTree::new(&l).unwrap().tsc_proof(2, BlockHash::from_internal([0; 32])).unwrap();
        let json = serde_json::to_value(&proof).unwrap();
        assert_eq!(json["nodes"][0], "*");
        assert!(json.get("targetType").is_none());
    }
}
