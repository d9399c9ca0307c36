//! BUMP, the BSV Unified Merkle Path (BRC-74): the Merkle paths of one or more transactions of a
//! block in one structure, binary and JSON, as ARC and the SDKs write and read it.
//!
//! Binary: `blockHeight` varint, `treeHeight` byte, then per level (0 = txids, upward) a varint
//! count of leaves, each `offset` varint, a flags byte (`0` data, `1` duplicate: no hash follows,
//! `2` data that is a client txid) and the 32-byte hash in internal order unless duplicate. The
//! root is not encoded. Leaves are written sorted by offset and read in any order; a node that
//! can be derived from the level below may be left out (the SDKs derive it, so does this reader).

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::hash::{Txid, merkle_parent};
use crate::header::BlockHeader;
use crate::merkle::{ProofNode, TscProof};
use crate::merkle_paths::LeafPath;
use crate::varint::{read_varint, write_varint};

/// Deepest tree a BUMP may describe (2^64 leaves).
pub const MAX_TREE_HEIGHT: usize = 64;

/// One node of a level: its hash (internal byte order) or "duplicate" (the working hash paired
/// with itself, where no sibling exists), and whether it is a transaction the path is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BumpLeaf {
    /// Position within its level, from the left.
    pub offset: u64,
    /// The hash; `None` for a duplicate.
    pub hash: Option<[u8; 32]>,
    /// True on a transaction the BUMP proves (level 0 only).
    pub txid: bool,
}

/// A BUMP: the block's height and, per level, its known nodes by offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bump {
    /// Height of the block.
    pub block_height: u64,
    /// Per level (0 = the transactions), the nodes by offset.
    levels: Vec<BTreeMap<u64, BumpLeaf>>,
}

/// Why bytes, JSON or a request do not make a BUMP or a root.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BumpError {
    /// The input ended inside the structure.
    #[error("truncated BUMP")]
    Truncated,
    /// More than 64 levels, or none.
    #[error("tree height {0} is outside 1..=64")]
    TreeHeight(usize),
    /// Level 0 has no leaves.
    #[error("level 0 has no leaves")]
    EmptyLevelZero,
    /// Two leaves of a level share an offset.
    #[error("offset {offset} appears twice at level {level}")]
    RepeatedOffset {
        /// The level.
        level: usize,
        /// The offset.
        offset: u64,
    },
    /// A flags byte other than 0, 1 or 2, or a client txid above level 0.
    #[error("invalid flags {flags:#04x} at level {level}")]
    Flags {
        /// The level.
        level: usize,
        /// The byte.
        flags: u8,
    },
    /// A declared leaf count cannot fit in the bytes that remain.
    #[error("leaf count {0} cannot fit in the bytes that remain")]
    CountBeyondData(u64),
    /// The transaction is not a leaf of level 0.
    #[error("the transaction is not in this BUMP")]
    NotInPath,
    /// A needed node is neither given nor derivable.
    #[error("the node at level {level}, offset {offset} is missing")]
    MissingNode {
        /// The level.
        level: usize,
        /// The offset.
        offset: u64,
    },
    /// A path leads to another root than the header's (or than another path's).
    #[error("the BUMP leads to another Merkle root")]
    RootMismatch,
    /// Two BUMPs of different blocks cannot be merged.
    #[error("the BUMPs are of different blocks")]
    DifferentBlocks,
    /// A JSON hash is not 64 hex characters.
    #[error("invalid hash in JSON")]
    Hash,
}

impl Bump {
    /// An empty BUMP of `tree_height` levels at `block_height` (fill it with [`Bump::insert`]).
    fn empty(block_height: u64, tree_height: usize) -> Self {
        Self { block_height, levels: vec![BTreeMap::new(); tree_height] }
    }

    /// Number of levels.
    pub fn tree_height(&self) -> usize {
        self.levels.len()
    }

    /// The nodes of a level, sorted by offset.
    pub fn level(&self, level: usize) -> impl Iterator<Item = &BumpLeaf> {
        self.levels.get(level).into_iter().flat_map(|l| l.values())
    }

    /// The transactions this BUMP proves (level-0 leaves flagged as txids).
    pub fn txids(&self) -> Vec<Txid> {
        self.level(0).filter(|l| l.txid).filter_map(|l| l.hash.map(Txid::from_internal)).collect()
    }

    fn insert(&mut self, level: usize, leaf: BumpLeaf) {
        let slot = self.levels[level].entry(leaf.offset).or_insert(leaf);
        slot.txid |= leaf.txid;
    }

    /// The paths of transactions of one block (as `MerklePaths` collects them) as one compound
    /// BUMP: each transaction and, per level, its sibling (a duplicate where none exists).
    pub fn from_leaf_paths(block_height: u64, paths: &[LeafPath]) -> Option<Self> {
        let height = paths.iter().map(|p| p.nodes.len()).max()?.max(1);
        let mut bump = Self::empty(block_height, height);
        for path in paths {
            bump.insert(0, BumpLeaf { offset: path.index, hash: Some(*path.txid.internal()), txid: true });
            for (level, node) in path.nodes.iter().enumerate() {
                let offset = (path.index >> level) ^ 1;
                let hash = match node {
                    ProofNode::Hash(h) => Some(*h),
                    ProofNode::Duplicate => None,
                };
                bump.insert(level, BumpLeaf { offset, hash, txid: false });
            }
        }
        Some(bump)
    }

    /// The BUMP of one TSC proof whose `txOrId` is a txid or a transaction.
    pub fn from_tsc(block_height: u64, proof: &TscProof) -> Result<Self, crate::merkle::ProofError> {
        let txid = if proof.tx_or_id.len() == 64 {
            proof.tx_or_id.parse::<Txid>().map_err(|_| crate::merkle::ProofError::BadTxOrId)?
        } else {
            let raw = hex::decode(&proof.tx_or_id).map_err(|_| crate::merkle::ProofError::BadTxOrId)?;
            Txid::from_internal(crate::hash::sha256d(&raw))
        };
        let path = LeafPath { index: proof.index, txid, nodes: proof.nodes.clone() };
        Self::from_leaf_paths(block_height, std::slice::from_ref(&path))
            .ok_or(crate::merkle::ProofError::BadTxOrId)
    }

    /// Adds the nodes of `other`, a BUMP of the same block (a leaf is a txid if either says so).
    pub fn merge(&mut self, other: &Bump) -> Result<(), BumpError> {
        if self.block_height != other.block_height {
            return Err(BumpError::DifferentBlocks);
        }
        let (mine, theirs) = (self.any_root()?, other.any_root()?);
        if mine != theirs {
            return Err(BumpError::RootMismatch);
        }
        if other.levels.len() > self.levels.len() {
            self.levels.resize(other.levels.len(), BTreeMap::new());
        }
        for (level, leaves) in other.levels.iter().enumerate() {
            for leaf in leaves.values() {
                self.insert(level, *leaf);
            }
        }
        Ok(())
    }

    /// As the SDKs' constructors: level 0 has leaves and every hash there leads to one root.
    fn check(&self) -> Result<(), BumpError> {
        let level0 = self.levels.first().ok_or(BumpError::EmptyLevelZero)?;
        if level0.is_empty() {
            return Err(BumpError::EmptyLevelZero);
        }
        let mut root = None;
        for hash in level0.values().filter_map(|l| l.hash) {
            let this = self.root_for(&Txid::from_internal(hash))?;
            if *root.get_or_insert(this) != this {
                return Err(BumpError::RootMismatch);
            }
        }
        Ok(())
    }

    fn any_root(&self) -> Result<[u8; 32], BumpError> {
        let first = self.txids().into_iter().next().ok_or(BumpError::NotInPath)?;
        self.root_for(&first)
    }

    /// The Merkle root the path of `txid` leads to (internal byte order), deriving nodes that were
    /// left out from the level below.
    pub fn root_for(&self, txid: &Txid) -> Result<[u8; 32], BumpError> {
        let level0 = self.levels.first().ok_or(BumpError::EmptyLevelZero)?;
        let leaf = level0.values().find(|l| l.hash == Some(*txid.internal())).ok_or(BumpError::NotInPath)?;
        // A block of one transaction: the txid is the root.
        if self.levels.len() == 1 && level0.len() == 1 {
            return Ok(*txid.internal());
        }
        let mut working = *txid.internal();
        for level in 0..self.levels.len() {
            let offset = (leaf.offset >> level) ^ 1;
            working = match self.node(level, offset) {
                Some(None) => merkle_parent(&working, &working),
                Some(Some(sibling)) if offset & 1 == 1 => merkle_parent(&working, &sibling),
                Some(Some(sibling)) => merkle_parent(&sibling, &working),
                None => return Err(BumpError::MissingNode { level, offset }),
            };
        }
        Ok(working)
    }

    /// The node at (`level`, `offset`): `Some(None)` a duplicate, `Some(Some(hash))` a hash given or
    /// derived from the two below it (left first: a missing left child ends the search at once, so
    /// the work stays proportional to the leaves given).
    fn node(&self, level: usize, offset: u64) -> Option<Option<[u8; 32]>> {
        if let Some(leaf) = self.levels.get(level).and_then(|l| l.get(&offset)) {
            return Some(leaf.hash);
        }
        if level == 0 {
            return None;
        }
        let left = self.node(level - 1, offset.checked_mul(2)?)??;
        let right = self.node(level - 1, offset * 2 + 1)?;
        Some(Some(match right {
            None => merkle_parent(&left, &left),
            Some(right) => merkle_parent(&left, &right),
        }))
    }

    /// Checks that every transaction of the BUMP leads to `header`'s Merkle root: the check every
    /// BUMP that leaves the system, or that a BEEF brings in, must pass.
    pub fn verify_against_header(&self, header: &BlockHeader) -> Result<(), BumpError> {
        let root = header.merkle_root();
        let txids = self.txids();
        if txids.is_empty() {
            return Err(BumpError::NotInPath);
        }
        for txid in txids {
            if self.root_for(&txid)? != root {
                return Err(BumpError::RootMismatch);
            }
        }
        Ok(())
    }

    /// The binary form.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // Writing to a Vec cannot fail.
        let _ = write_varint(&mut out, self.block_height);
        out.push(self.levels.len() as u8);
        for level in &self.levels {
            let _ = write_varint(&mut out, level.len() as u64);
            for leaf in level.values() {
                let _ = write_varint(&mut out, leaf.offset);
                match leaf.hash {
                    None => out.push(1),
                    Some(hash) => {
                        out.push(if leaf.txid { 2 } else { 0 });
                        out.extend_from_slice(&hash);
                    }
                }
            }
        }
        out
    }

    /// Reads a BUMP from the front of `bytes`; returns it and the bytes it took (a BEEF holds
    /// several one after the other). Nothing is allocated beyond what the input can hold.
    pub fn read(bytes: &[u8]) -> Result<(Self, usize), BumpError> {
        let mut cursor = bytes;
        let varint = |c: &mut &[u8]| read_varint(c).map_err(|_| BumpError::Truncated);
        let block_height = varint(&mut cursor)?;
        let (&tree_height, rest) = cursor.split_first().ok_or(BumpError::Truncated)?;
        cursor = rest;
        let tree_height = usize::from(tree_height);
        if !(1..=MAX_TREE_HEIGHT).contains(&tree_height) {
            return Err(BumpError::TreeHeight(tree_height));
        }
        let mut bump = Self::empty(block_height, tree_height);
        for level in 0..tree_height {
            let count = varint(&mut cursor)?;
            // Each leaf takes at least 2 bytes (offset and flags).
            if count > (cursor.len() / 2) as u64 {
                return Err(BumpError::CountBeyondData(count));
            }
            for _ in 0..count {
                let offset = varint(&mut cursor)?;
                let (&flags, rest) = cursor.split_first().ok_or(BumpError::Truncated)?;
                cursor = rest;
                let hash = match flags {
                    1 => None,
                    0 | 2 if level == 0 || flags == 0 => {
                        let (hash, rest) = cursor.split_at_checked(32).ok_or(BumpError::Truncated)?;
                        cursor = rest;
                        Some(hash.try_into().map_err(|_| BumpError::Truncated)?)
                    }
                    _ => return Err(BumpError::Flags { level, flags }),
                };
                let leaf = BumpLeaf { offset, hash, txid: flags == 2 };
                if bump.levels[level].insert(offset, leaf).is_some() {
                    return Err(BumpError::RepeatedOffset { level, offset });
                }
            }
        }
        bump.check()?;
        Ok((bump, bytes.len() - cursor.len()))
    }

    /// Reads a BUMP that is the whole of `bytes`.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, BumpError> {
        match Self::read(bytes)? {
            (bump, used) if used == bytes.len() => Ok(bump),
            _ => Err(BumpError::Truncated),
        }
    }
}

/// A leaf in the JSON form: `{"offset", "hash" (display order), "txid": true?, "duplicate": true?}`.
#[derive(Serialize, Deserialize)]
struct JsonLeaf {
    offset: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hash: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    txid: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    duplicate: bool,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonBump {
    block_height: u64,
    path: Vec<Vec<JsonLeaf>>,
}

impl Serialize for Bump {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let path = self
            .levels
            .iter()
            .map(|level| {
                level
                    .values()
                    .map(|l| JsonLeaf {
                        offset: l.offset,
                        hash: l.hash.map(|h| Txid::from_internal(h).to_string()),
                        txid: l.txid,
                        duplicate: l.hash.is_none(),
                    })
                    .collect()
            })
            .collect();
        JsonBump { block_height: self.block_height, path }.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Bump {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let json = JsonBump::deserialize(d)?;
        if !(1..=MAX_TREE_HEIGHT).contains(&json.path.len()) {
            return Err(D::Error::custom(BumpError::TreeHeight(json.path.len())));
        }
        let mut bump = Bump::empty(json.block_height, json.path.len());
        for (level, leaves) in json.path.into_iter().enumerate() {
            for leaf in leaves {
                let hash = match (leaf.duplicate, leaf.hash) {
                    (true, _) => None,
                    (false, Some(h)) => {
                        Some(*h.parse::<Txid>().map_err(|_| D::Error::custom(BumpError::Hash))?.internal())
                    }
                    (false, None) => return Err(D::Error::custom(BumpError::Hash)),
                };
                let entry = BumpLeaf { offset: leaf.offset, hash, txid: leaf.txid && hash.is_some() };
                if bump.levels[level].insert(leaf.offset, entry).is_some() {
                    return Err(D::Error::custom(BumpError::RepeatedOffset { level, offset: leaf.offset }));
                }
            }
        }
        bump.check().map_err(D::Error::custom)?;
        Ok(bump)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txid(s: &str) -> Txid {
        s.parse().unwrap()
    }

    const T0: &str = "947a08942d6967a5ea27f90939dea71afc9aa885d3f7ebd8682eb1de081b25a2";
    const T1: &str = "f50c7562516295d09b3978acc2f4dbdc79ab46b7711c9b38b788e38a8065ef55";
    const T2: &str = "90f765748ced895d0974d09958088d734e12ca27dd7764d080829160715db6bb";
    const ROOT: &str = "8f6769288ac2ba9c36205dc4c0ec8ec99fc9eb026bc479c5e8034166bc38d744";
    const BUMP_T2: &str = "fde80302020202bbb65d7160918280d06477dd27ca124e738d085899d074095d89ed8c7465f79003010100008e989bf152d02a443330c55f3f10c17c6ee955ef87b8130f6978ed6114c2ce11";
    const BUMP_T1: &str = "fde80302020000a2251b08deb12e68d8ebf7d385a89afc1aa7de3909f927eaa567692d94087a94010255ef65808ae388b7389b1c71b746ab79dcdbf4c2ac78399bd095625162750cf50101001e2aad11fd66d24d1f57fc1daec2291aa22ddb4de22c507a87b1fdcc0d171ca7";
    const BUMP_T1_T2: &str = "fde80302040000a2251b08deb12e68d8ebf7d385a89afc1aa7de3909f927eaa567692d94087a94010255ef65808ae388b7389b1c71b746ab79dcdbf4c2ac78399bd095625162750cf50202bbb65d7160918280d06477dd27ca124e738d085899d074095d89ed8c7465f790030100";

    fn root() -> [u8; 32] {
        *txid(ROOT).internal()
    }

    #[test]
    fn the_contract_notes_vectors_read_write_and_lead_to_the_root() {
        for (hex_bump, proves) in [(BUMP_T2, vec![T2]), (BUMP_T1, vec![T1]), (BUMP_T1_T2, vec![T1, T2])] {
            let bytes = hex::decode(hex_bump).unwrap();
            let bump = Bump::from_bytes(&bytes).unwrap();
            assert_eq!(bump.block_height, 1000);
            assert_eq!(bump.to_bytes(), bytes, "round trip");
            assert_eq!(bump.txids(), proves.iter().map(|t| txid(t)).collect::<Vec<_>>());
            for t in proves {
                assert_eq!(bump.root_for(&txid(t)).unwrap(), root(), "{t}");
            }
            if hex_bump == BUMP_T2 {
                assert_eq!(bump.root_for(&txid(T0)), Err(BumpError::NotInPath));
            }
        }
    }

    #[test]
    fn json_matches_the_contract_notes() {
        let bump = Bump::from_bytes(&hex::decode(BUMP_T2).unwrap()).unwrap();
        let json = serde_json::to_string(&bump).unwrap();
        assert_eq!(
            json,
            format!(
                r#"{{"blockHeight":1000,"path":[[{{"offset":2,"hash":"{T2}","txid":true}},{{"offset":3,"duplicate":true}}],[{{"offset":0,"hash":"11cec21461ed78690f13b887ef55e96e7cc1103f5fc53033442ad052f19b988e"}}]]}}"#
            )
        );
        let back: Bump = serde_json::from_str(&json).unwrap();
        assert_eq!(back, bump);
    }

    const BRC74: &str = "fe8a6a0c000c04fde80b0011774f01d26412f0d16ea3f0447be0b5ebec67b0782e321a7a01cbdf7f734e30fde90b02004e53753e3fe4667073063a17987292cfdea278824e9888e52180581d7188d8fdea0b025e441996fc53f0191d649e68a200e752fb5f39e0d5617083408fa179ddc5c998fdeb0b0102fdf405000671394f72237d08a4277f4435e5b6edf7adc272f25effef27cdfe805ce71a81fdf50500262bccabec6c4af3ed00cc7a7414edea9c5efa92fb8623dd6160a001450a528201fdfb020101fd7c010093b3efca9b77ddec914f8effac691ecb54e2c81d0ab81cbc4c4b93befe418e8501bf01015e005881826eb6973c54003a02118fe270f03d46d02681c8bc71cd44c613e86302f8012e00e07a2bb8bb75e5accff266022e1e5e6e7b4d6d943a04faadcf2ab4a22f796ff30116008120cafa17309c0bb0e0ffce835286b3a2dcae48e4497ae2d2b7ced4f051507d010a00502e59ac92f46543c23006bff855d96f5e648043f0fb87a7a5949e6a9bebae430104001ccd9f8f64f4d0489b30cc815351cf425e0e78ad79a589350e4341ac165dbe45010301010000af8764ce7e1cc132ab5ed2229a005c87201c9a5ee15c0f91dd53eff31ab30cd4";

    #[test]
    fn brc74s_example_proves_its_three_transactions() {
        let bytes = hex::decode(BRC74).unwrap();
        let bump = Bump::from_bytes(&bytes).unwrap();
        assert_eq!((bump.block_height, bump.tree_height()), (813_706, 12));
        assert_eq!(bump.to_bytes(), bytes);
        let root = txid("57aab6e6fb1b697174ffb64e062c4728f2ffd33ddcfa02a43b64d8cd29b483b4");
        for t in [
            "304e737fdfcb017a1a322e78b067ecebb5e07b44f0a36ed1f01264d2014f7711",
            "d888711d588021e588984e8278a2decf927298173a06737066e43f3e75534e00",
            "98c9c5dd79a18f40837061d5e0395ffb52e700a2689e641d19f053fc9619445e",
        ] {
            assert_eq!(bump.root_for(&txid(t)).unwrap(), *root.internal(), "{t}");
        }
        let json: Bump = serde_json::from_value(serde_json::to_value(&bump).unwrap()).unwrap();
        assert_eq!(json, bump, "JSON round trip");
    }

    #[test]
    fn the_sdks_valid_and_invalid_vectors_are_told_apart() {
        // go-sdk's invalid vector: the valid one below without its level 0 (one level short).
        let invalid = "feb39d0c000c01fd9b030012f77e65627c341a3aaea3a0ed645c0082ef53995f446ab9901a27e4622fd1cc01fdcc010074026299a4ba40fbcf33cc0c64b384f0bb2fb17c61125609a666b546539c221c01e700730f99f8cf10fccd30730474449172c5f97cde6a6cf65163359e778463e9f2b9017200a202c78dee487cf96e1a6a04d51faec4debfad09eea28cc624483f2d6fa53d54013800b51ecabaa590b6bd1805baf4f19fc0eae0dedb533302603579d124059b374b1e011d00a0f36640f32a43d790bb4c3e7877011aa8ae25e433b2b83c952a16f8452b6b79010f005d68efab62c6c457ce0bb526194cc16b27f93f8a4899f6d59ffffdddc06e345c01060099f66a0ef693d151bbe9aeb10392ac5a7712243406f9e821219fd13d1865f569010200201fa17c98478675a96703ded42629a3c7bf32b45d0bff25f8be6849d02889ae010000367765c2d68e0c926d81ecdf9e3c86991ccf5a52e97c49ad5cf584c8ab030427010100237b58d3217709b6ebc3bdc093413ba788739f052a0b5b3a413e65444b146bc1";
        let refused = Bump::from_bytes(&hex::decode(invalid).unwrap());
        assert_eq!(refused, Err(BumpError::Truncated));
        let valid = "feb39d0c000c02fd340700ed4cb1fdd81916dabb69b63bcd378559cf40916205cd004e7f5381cc2b1ea6acfd350702957998e38434782b1c40c63a4aca0ffaf4d5d9bc3385f0e9e396f4dd3238f0df01fd9b030012f77e65627c341a3aaea3a0ed645c0082ef53995f446ab9901a27e4622fd1cc01fdcc010074026299a4ba40fbcf33cc0c64b384f0bb2fb17c61125609a666b546539c221c01e700730f99f8cf10fccd30730474449172c5f97cde6a6cf65163359e778463e9f2b9017200a202c78dee487cf96e1a6a04d51faec4debfad09eea28cc624483f2d6fa53d54013800b51ecabaa590b6bd1805baf4f19fc0eae0dedb533302603579d124059b374b1e011d00a0f36640f32a43d790bb4c3e7877011aa8ae25e433b2b83c952a16f8452b6b79010f005d68efab62c6c457ce0bb526194cc16b27f93f8a4899f6d59ffffdddc06e345c01060099f66a0ef693d151bbe9aeb10392ac5a7712243406f9e821219fd13d1865f569010200201fa17c98478675a96703ded42629a3c7bf32b45d0bff25f8be6849d02889ae010000367765c2d68e0c926d81ecdf9e3c86991ccf5a52e97c49ad5cf584c8ab030427010100237b58d3217709b6ebc3bdc093413ba788739f052a0b5b3a413e65444b146bc1";
        assert!(Bump::from_bytes(&hex::decode(valid).unwrap()).is_ok());
    }

    #[test]
    fn paths_collected_from_a_block_become_a_bump_that_every_txid_proves() {
        for n in 1..=40u8 {
            let leaves: Vec<Txid> = (0..n).map(|i| Txid::from_internal(crate::hash::sha256d(&[i]))).collect();
            let mut paths = crate::MerklePaths::new();
            for (i, leaf) in leaves.iter().enumerate() {
                paths.push(*leaf, i % 3 == 0 || i + 1 == leaves.len());
            }
            let (root, tracked) = paths.finish().unwrap();
            let bump = Bump::from_leaf_paths(800_000, &tracked).unwrap();
            let back = Bump::from_bytes(&bump.to_bytes()).unwrap();
            assert_eq!(back, bump);
            for path in &tracked {
                assert_eq!(bump.root_for(&path.txid).unwrap(), root, "n = {n}, index {}", path.index);
                let single = Bump::from_leaf_paths(800_000, std::slice::from_ref(path)).unwrap();
                assert_eq!(single.root_for(&path.txid).unwrap(), root);
                let from_tsc =
                    Bump::from_tsc(800_000, &path.tsc_proof(crate::BlockHash::from_internal([0; 32])))
                        .unwrap();
                assert_eq!(from_tsc, single, "TSC and BUMP carry the same path");
            }
        }
    }

    #[test]
    fn merging_keeps_both_paths_and_refuses_another_block() {
        let t1 = Bump::from_bytes(&hex::decode(BUMP_T1).unwrap()).unwrap();
        let t2 = Bump::from_bytes(&hex::decode(BUMP_T2).unwrap()).unwrap();
        let mut both = t1.clone();
        both.merge(&t2).unwrap();
        assert_eq!(both.txids(), vec![txid(T1), txid(T2)]);
        for t in [T1, T2] {
            assert_eq!(both.root_for(&txid(t)).unwrap(), root());
        }
        let mut other = t2.clone();
        other.block_height = 1001;
        assert_eq!(both.clone().merge(&other), Err(BumpError::DifferentBlocks));
    }

    #[test]
    fn malformed_input_is_refused_without_panicking() {
        let good = hex::decode(BUMP_T2).unwrap();
        for cut in 0..good.len() {
            assert!(Bump::from_bytes(&good[..cut]).is_err(), "cut at {cut}");
        }
        assert_eq!(Bump::from_bytes(&[0x01, 0x00]), Err(BumpError::TreeHeight(0)));
        assert_eq!(Bump::from_bytes(&[0x01, 65]), Err(BumpError::TreeHeight(65)));
        assert!(matches!(
            Bump::from_bytes(&[0x01, 0x01, 0xfe, 0xff, 0xff, 0xff, 0x7f]),
            Err(BumpError::CountBeyondData(_))
        ));
        assert_eq!(Bump::from_bytes(&[0x01, 0x01, 0x00]), Err(BumpError::EmptyLevelZero));
        let mut bad_flags = good.clone();
        bad_flags[6] = 0x07;
        assert!(matches!(Bump::from_bytes(&bad_flags), Err(BumpError::Flags { .. })));
        let mut repeated = vec![0x01, 0x01, 0x02];
        repeated.extend([0x00, 0x01, 0x00, 0x01]);
        assert!(matches!(Bump::from_bytes(&repeated), Err(BumpError::RepeatedOffset { .. })));
        // A path with nothing above level 0 cannot be completed.
        let lonely = [&[0x01, 0x02, 0x01, 0x00, 0x02][..], &[7; 32], &[0x00]].concat();
        assert!(matches!(Bump::from_bytes(&lonely), Err(BumpError::MissingNode { .. })));
    }

    #[test]
    fn a_bump_is_checked_against_the_header() {
        let bump = Bump::from_bytes(&hex::decode(BUMP_T1_T2).unwrap()).unwrap();
        let mut header = [0u8; 80];
        header[36..68].copy_from_slice(&root());
        assert_eq!(bump.verify_against_header(&BlockHeader::from_bytes(header)), Ok(()));
        header[36] ^= 1;
        assert_eq!(
            bump.verify_against_header(&BlockHeader::from_bytes(header)),
            Err(BumpError::RootMismatch)
        );
    }
}
