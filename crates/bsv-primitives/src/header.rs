//! Block headers: 80 bytes and the hash they commit to.

use chain_gang::messages::BlockHeader as CgHeader;
use chain_gang::util::Serializable;

use crate::error::ParseError;
use crate::hash::{BlockHash, sha256d};

/// An 80-byte block header with its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockHeader {
    bytes: [u8; 80],
    hash: BlockHash,
}

impl BlockHeader {
    /// Serialized size of a header.
    pub const SIZE: usize = 80;

    /// Builds a header from its 80 serialized bytes.
    pub fn from_bytes(bytes: [u8; 80]) -> Self {
        Self { hash: BlockHash::from_internal(sha256d(&bytes)), bytes }
    }

    /// Parses a hex-encoded header (as `getblockheader <hash> false` returns it).
    pub fn from_hex(s: &str) -> Result<Self, ParseError> {
        let raw = hex::decode(s.trim()).map_err(|e| ParseError::Malformed(format!("header hex: {e}")))?;
        let bytes: [u8; 80] = raw
            .as_slice()
            .try_into()
            .map_err(|_| ParseError::Malformed(format!("a block header is 80 bytes, got {}", raw.len())))?;
        Ok(Self::from_bytes(bytes))
    }

    /// The block hash.
    pub fn hash(&self) -> BlockHash {
        self.hash
    }

    /// The hash of the previous block.
    pub fn prev_hash(&self) -> BlockHash {
        BlockHash::from_internal(self.field32(4))
    }

    /// The Merkle root in internal byte order.
    pub fn merkle_root(&self) -> [u8; 32] {
        self.field32(36)
    }

    /// Block time (seconds since the Unix epoch, as the miner set it).
    pub fn time(&self) -> u32 {
        u32::from_le_bytes([self.bytes[68], self.bytes[69], self.bytes[70], self.bytes[71]])
    }

    /// The 80 serialized bytes.
    pub fn as_bytes(&self) -> &[u8; 80] {
        &self.bytes
    }

    /// The header as `chain-gang` models it.
    pub fn to_chain_gang(&self) -> Result<CgHeader, ParseError> {
        CgHeader::read(&mut &self.bytes[..]).map_err(|e| ParseError::from_chain_gang(e, "block header"))
    }

    fn field32(&self, at: usize) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(&self.bytes[at..at + 32]);
        out
    }
}
