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

    /// Block version.
    pub fn version(&self) -> i32 {
        i32::from_le_bytes([self.bytes[0], self.bytes[1], self.bytes[2], self.bytes[3]])
    }

    /// The compact difficulty target.
    pub fn bits(&self) -> u32 {
        u32::from_le_bytes([self.bytes[72], self.bytes[73], self.bytes[74], self.bytes[75]])
    }

    /// The nonce.
    pub fn nonce(&self) -> u32 {
        u32::from_le_bytes([self.bytes[76], self.bytes[77], self.bytes[78], self.bytes[79]])
    }

    /// The difficulty as the node reports it (the genesis target divided by this block's).
    pub fn difficulty(&self) -> f64 {
        let bits = self.bits();
        let mut shift = (bits >> 24) & 0xff;
        let mut diff = f64::from(0x0000_ffff_u32) / f64::from((bits & 0x00ff_ffff).max(1));
        while shift < 29 {
            diff *= 256.0;
            shift += 1;
        }
        while shift > 29 {
            diff /= 256.0;
            shift -= 1;
        }
        diff
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Mainnet's genesis header.
    const GENESIS: &str = "0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a29ab5f49ffff001d1dac2b7c";

    #[test]
    fn fields_read_like_the_node_reports_them() {
        let h = BlockHeader::from_hex(GENESIS).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(h.hash().to_string(), "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f");
        assert_eq!(h.version(), 1);
        assert_eq!(h.bits(), 0x1d00ffff);
        assert_eq!(h.nonce(), 2_083_236_893);
        assert_eq!(h.time(), 1_231_006_505);
        assert!((h.difficulty() - 1.0).abs() < 1e-12);
        let regtest = {
            let mut b = *h.as_bytes();
            b[72..76].copy_from_slice(&0x207f_ffff_u32.to_le_bytes());
            BlockHeader::from_bytes(b)
        };
        assert!((regtest.difficulty() - 4.656_542_373_906_925e-10).abs() < 1e-20);
    }
}
