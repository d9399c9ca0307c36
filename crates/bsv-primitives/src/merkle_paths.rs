//! Merkle paths of chosen leaves, collected while the leaves stream by: a block of millions of
//! transactions gets the proofs of the few it cares about without its whole tree (or even its
//! txid list) in memory.
//!
//! When a leaf arrives, every left sibling on its path is a finished subtree still waiting for its
//! right partner (the pending node of that level), so it is copied at once; every right sibling
//! is finished later, in order, and is picked up when it forms. What the right edge of the tree
//! pairs with itself is settled at the end, written as [`crate::MerkleTree::branch`] (and the
//! node's `getmerkleproof2`) write it.

use std::collections::VecDeque;

use crate::hash::{Txid, merkle_parent};
use crate::merkle::ProofNode;

/// Tree levels a path may have (a block would need 2^48 transactions to exceed it).
const MAX_LEVELS: usize = 48;

/// A sibling on a tracked leaf's path, as far as it is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Unknown,
    Sibling([u8; 32]),
    /// The node pairs with itself; its own hash at that level.
    Itself([u8; 32]),
}

#[derive(Debug, Clone)]
struct Tracked {
    index: u64,
    txid: Txid,
    steps: Vec<Step>,
}

/// The path of one tracked leaf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafPath {
    /// Its position in the block.
    pub index: u64,
    /// The leaf.
    pub txid: Txid,
    /// Siblings, bottom-up.
    pub nodes: Vec<ProofNode>,
}

impl LeafPath {
    /// The path as a TSC proof whose target is the block hash (`getmerkleproof2`'s default).
    pub fn tsc_proof(&self, block_hash: crate::BlockHash) -> crate::TscProof {
        crate::TscProof {
            index: self.index,
            tx_or_id: self.txid.to_string(),
            target_type: None,
            target: block_hash.to_string(),
            proof_type: None,
            composite: None,
            nodes: self.nodes.clone(),
        }
    }
}

/// Collects the root and the paths of tracked leaves, one leaf at a time.
#[derive(Debug, Clone)]
pub struct MerklePaths {
    count: u64,
    /// `pending[level]` is a finished subtree when bit `level` of `count` is set.
    pending: Vec<[u8; 32]>,
    tracked: Vec<Tracked>,
    /// Per level, the right siblings tracked leaves wait for: (node index, tracked leaf), in
    /// increasing index order.
    wanted: Vec<VecDeque<(u64, usize)>>,
}

impl Default for MerklePaths {
    fn default() -> Self {
        Self {
            count: 0,
            pending: vec![[0; 32]; MAX_LEVELS],
            tracked: Vec::new(),
            wanted: vec![VecDeque::new(); MAX_LEVELS],
        }
    }
}

impl MerklePaths {
    /// An empty collector.
    pub fn new() -> Self {
        Self::default()
    }

    /// Leaves pushed so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Leaves tracked so far.
    pub fn tracked(&self) -> usize {
        self.tracked.len()
    }

    /// Adds the next leaf; `track` collects its path.
    pub fn push(&mut self, leaf: Txid, track: bool) {
        let i = self.count;
        if track {
            let id = self.tracked.len();
            let mut steps = vec![Step::Unknown; MAX_LEVELS];
            for (level, step) in steps.iter_mut().enumerate() {
                if (i >> level) & 1 == 1 {
                    *step = Step::Sibling(self.pending[level]);
                } else {
                    self.wanted[level].push_back(((i >> level) + 1, id));
                }
            }
            self.tracked.push(Tracked { index: i, txid: leaf, steps });
        }
        let mut node = *leaf.internal();
        let mut level = 0;
        self.formed(0, i, node);
        while (self.count >> level) & 1 == 1 {
            node = merkle_parent(&self.pending[level], &node);
            level += 1;
            self.formed(level, i >> level, node);
        }
        self.pending[level] = node;
        self.count += 1;
    }

    /// Node `index` of `level` is finished: hand it to the leaves waiting for it.
    fn formed(&mut self, level: usize, index: u64, node: [u8; 32]) {
        self.settle(level, index, Step::Sibling(node));
    }

    fn settle(&mut self, level: usize, index: u64, step: Step) {
        let Some(queue) = self.wanted.get_mut(level) else { return };
        while let Some(&(wanted, id)) = queue.front() {
            if wanted > index {
                break;
            }
            queue.pop_front();
            if wanted == index {
                self.tracked[id].steps[level] = step;
            }
        }
    }

    /// The root and every tracked leaf's path (leaves in push order); `None` without leaves.
    pub fn finish(mut self) -> Option<([u8; 32], Vec<LeafPath>)> {
        let n = self.count;
        if n == 0 {
            return None;
        }
        let height = (64 - (n - 1).leading_zeros()) as usize;
        // The right edge, bottom-up: a finished left node meets the partial node carried from
        // below, or a lone node pairs with itself.
        let mut carry: Option<([u8; 32], u64)> = None;
        for level in 0..height {
            let left = ((n >> level) & 1 == 1).then(|| (self.pending[level], (n >> level) - 1));
            carry = match (left, carry) {
                (Some((l, _)), Some((c, ci))) => {
                    self.settle(level, ci, Step::Sibling(c));
                    Some((merkle_parent(&l, &c), ci >> 1))
                }
                (Some((l, li)), None) => {
                    self.settle(level, li + 1, Step::Itself(l));
                    Some((merkle_parent(&l, &l), li >> 1))
                }
                (None, Some((c, ci))) => {
                    self.settle(level, ci + 1, Step::Itself(c));
                    Some((merkle_parent(&c, &c), ci >> 1))
                }
                (None, None) => None,
            };
        }
        let root = carry.map_or(self.pending[height], |(c, _)| c);
        let paths = self
            .tracked
            .into_iter()
            .map(|t| {
                let mut nodes: Vec<ProofNode> = Vec::with_capacity(height);
                // Nodes at each level built from full pairs only; beyond them, the right edge.
                let mut paired = n;
                for level in 0..height {
                    let step = match t.steps[level] {
                        Step::Sibling(h) => ProofNode::Hash(h),
                        Step::Itself(h)
                            if (t.index >> level) >= paired
                                && !matches!(nodes.last(), Some(ProofNode::Duplicate)) =>
                        {
                            ProofNode::Hash(h)
                        }
                        Step::Itself(_) | Step::Unknown => ProofNode::Duplicate,
                    };
                    nodes.push(step);
                    paired /= 2;
                }
                LeafPath { index: t.index, txid: t.txid, nodes }
            })
            .collect();
        Some((root, paths))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::sha256d;
    use crate::merkle::MerkleTree;

    fn leaves(n: u32) -> Vec<Txid> {
        (0..n).map(|i| Txid::from_internal(sha256d(&i.to_le_bytes()))).collect()
    }

    #[test]
    fn paths_and_root_equal_the_whole_trees_for_every_size_and_leaf() {
        for n in 1..=300u32 {
            let l = leaves(n);
            let tree = MerkleTree::new(&l).unwrap();
            let mut paths = MerklePaths::new();
            for t in &l {
                paths.push(*t, true);
            }
            let (root, got) = paths.finish().unwrap();
            assert_eq!(root, tree.root(), "n = {n}");
            assert_eq!(got.len(), l.len());
            for p in got {
                assert_eq!(Some(p.nodes), tree.branch(p.index as usize), "n = {n}, leaf {}", p.index);
                assert_eq!(p.txid, l[p.index as usize]);
            }
        }
    }

    #[test]
    fn only_tracked_leaves_get_paths() {
        let l = leaves(1001);
        let tree = MerkleTree::new(&l).unwrap();
        let mut paths = MerklePaths::new();
        for (i, t) in l.iter().enumerate() {
            paths.push(*t, i % 97 == 3 || i == 1000);
        }
        assert_eq!(paths.count(), 1001);
        let (root, got) = paths.finish().unwrap();
        assert_eq!(root, tree.root());
        let indexes: Vec<u64> = got.iter().map(|p| p.index).collect();
        assert_eq!(indexes.len(), 11 + 1);
        assert_eq!(indexes.last(), Some(&1000));
        for p in got {
            assert_eq!(Some(p.nodes), tree.branch(p.index as usize));
        }
        assert!(MerklePaths::new().finish().is_none());
    }
}
