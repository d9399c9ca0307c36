//! Blocks, parsed as a stream: the header, then one transaction at a time, so a block of any size
//! is processed with memory bounded by its largest transaction. The Merkle root is accumulated on
//! the way (O(log n) memory) and checked against the header at the end.

use std::io::{BufReader, Read};

use crate::error::ParseError;
use crate::header::BlockHeader;
use crate::merkle::MerkleRootBuilder;
use crate::tx::{ParseLimits, Transaction};
use crate::varint::read_varint;

/// Smallest serialized transaction: version, two empty counts, lock time.
const MIN_TX_BYTES: u64 = 10;

/// Totals of a fully read block, returned once its Merkle root has been checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockSummary {
    /// The header.
    pub header: BlockHeader,
    /// Number of transactions.
    pub tx_count: u64,
    /// Bytes of the transactions (without header and count).
    pub tx_bytes: u64,
}

/// Reads a serialized block from any `Read` one transaction at a time.
///
/// ```no_run
/// # fn f(r: impl std::io::Read) -> Result<(), bsv_primitives::ParseError> {
/// let mut block = bsv_primitives::BlockReader::new(r, Default::default())?;
/// while let Some(tx) = block.next_tx() {
///     let tx = tx?;
///     let _ = tx.txid();
/// }
/// let summary = block.finish()?; // checks the Merkle root and that nothing trails the block
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct BlockReader<R: Read> {
    reader: BufReader<R>,
    header: BlockHeader,
    tx_count: u64,
    read: u64,
    tx_bytes: u64,
    merkle: MerkleRootBuilder,
    limits: ParseLimits,
    failed: bool,
    skimmer: crate::skim::Skimmer,
    /// The caller computes and checks the Merkle root itself (see [`Self::root_checked_by_caller`]).
    root_by_caller: bool,
}

impl<R: Read> BlockReader<R> {
    /// Reads the header and the transaction count.
    pub fn new(reader: R, limits: ParseLimits) -> Result<Self, ParseError> {
        let mut reader = BufReader::with_capacity(256 * 1024, reader);
        let mut bytes = [0u8; 80];
        reader.read_exact(&mut bytes).map_err(|e| ParseError::from_io(e, "block header"))?;
        let header = BlockHeader::from_bytes(bytes);
        let tx_count = read_varint(&mut reader).map_err(|e| ParseError::from_io(e, "tx count"))?;
        let remaining = limits.max_block_bytes.saturating_sub(81);
        if tx_count == 0 || tx_count > remaining / MIN_TX_BYTES {
            return Err(ParseError::CountBeyondData { what: "transaction", declared: tx_count, remaining });
        }
        Ok(Self {
            reader,
            header,
            tx_count,
            read: 0,
            tx_bytes: 0,
            merkle: MerkleRootBuilder::default(),
            limits,
            failed: false,
            skimmer: crate::skim::Skimmer::default(),
            root_by_caller: false,
        })
    }

    /// Leaves the Merkle root to the caller, which builds the tree anyway (a block parser
    /// collecting proofs with [`crate::MerklePaths`] gets the root from it): the reader then
    /// hashes no tree of its own and [`Self::finish`] does not compare roots. The caller must.
    pub fn root_checked_by_caller(mut self) -> Self {
        self.root_by_caller = true;
        self
    }

    /// The block header.
    pub fn header(&self) -> &BlockHeader {
        &self.header
    }

    /// The number of transactions the block declares.
    pub fn tx_count(&self) -> u64 {
        self.tx_count
    }

    /// The next transaction, or `None` after the last one (or after an error).
    pub fn next_tx(&mut self) -> Option<Result<Transaction, ParseError>> {
        if self.failed || self.read == self.tx_count {
            return None;
        }
        let result = match Transaction::read_from(&mut self.reader, &self.limits) {
            Ok(Some(tx)) => {
                self.read += 1;
                self.tx_bytes += tx.size();
                if !self.root_by_caller {
                    self.merkle.push(*tx.txid().internal());
                }
                Ok(tx)
            }
            Ok(None) => Err(ParseError::Truncated {
                context: format!("block declares {} transactions, found {}", self.tx_count, self.read),
            }),
            Err(e) => Err(e),
        };
        if result.is_err() {
            self.failed = true;
        }
        Some(result)
    }

    /// The next transaction as a block parser needs it (bytes, txid, spent outpoints), without
    /// building it: several times faster than [`Self::next_tx`]. `None` after the last one (or
    /// after an error).
    pub fn next_skimmed(&mut self) -> Option<Result<crate::skim::SkimmedTx<'_>, ParseError>> {
        if self.failed || self.read == self.tx_count {
            return None;
        }
        match self.skimmer.read(&mut self.reader, self.limits.max_tx_bytes) {
            Ok(tx) => {
                self.read += 1;
                self.tx_bytes += tx.size();
                if !self.root_by_caller {
                    self.merkle.push(*tx.txid().internal());
                }
                Some(Ok(tx))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }

    /// Reads any transactions not yet read, then checks that nothing follows the block and that
    /// the Merkle root of the transactions equals the header's.
    pub fn finish(mut self) -> Result<BlockSummary, ParseError> {
        while let Some(tx) = self.next_tx() {
            tx?;
        }
        if self.failed {
            return Err(ParseError::Malformed("block reading failed earlier".into()));
        }
        let mut extra = Vec::new();
        let n = (&mut self.reader)
            .take(1024)
            .read_to_end(&mut extra)
            .map_err(|e| ParseError::from_io(e, "end of block"))?;
        if n > 0 {
            return Err(ParseError::TrailingData { what: "block", extra: n as u64 });
        }
        let root = self.merkle.root().ok_or_else(|| ParseError::Malformed("empty block".into()));
        if !self.root_by_caller && root? != self.header.merkle_root() {
            return Err(ParseError::Malformed(
                "the transactions' Merkle root differs from the header's".into(),
            ));
        }
        Ok(BlockSummary { header: self.header, tx_count: self.tx_count, tx_bytes: self.tx_bytes })
    }
}

impl<'a> BlockReader<&'a [u8]> {
    /// Parses a whole block held in memory (tests, small blocks); the declared transaction count
    /// is checked against the slice length.
    pub fn from_slice(bytes: &'a [u8]) -> Result<Self, ParseError> {
        let limits = ParseLimits { max_block_bytes: bytes.len() as u64, ..ParseLimits::default() };
        BlockReader::new(bytes, limits)
    }
}

impl<R: Read> Iterator for BlockReader<R> {
    type Item = Result<Transaction, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_tx()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::BlockHash;

    /// The genesis block of the main chain.
    const GENESIS_BLOCK: &str = "0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a29ab5f49ffff001d1dac2b7c0101000000010000000000000000000000000000000000000000000000000000000000000000ffffffff4d04ffff001d0104455468652054696d65732030332f4a616e2f32303039204368616e63656c6c6f72206f6e206272696e6b206f66207365636f6e64206261696c6f757420666f722062616e6b73ffffffff0100f2052a01000000434104678afdb0fe5548271967f1a67130b7105cd6a828e03909a67962e0ea1f61deb649f6bc3f4cef38c4f35504e51ec112de5c384df7ba0b8d578a4c702b6bf11d5fac00000000";

    #[test]
    fn genesis_block_streams_and_checks_its_root() {
        let raw = hex::decode(GENESIS_BLOCK).unwrap();
        let mut reader = BlockReader::from_slice(&raw).unwrap();
        assert_eq!(
            reader.header().hash().to_string(),
            "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f"
        );
        let tx = reader.next_tx().unwrap().unwrap();
        assert_eq!(tx.txid().to_string(), "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b");
        let summary = reader.finish().unwrap();
        assert_eq!(summary.tx_count, 1);
        assert_eq!(summary.header.prev_hash(), BlockHash::from_internal([0; 32]));
        assert_eq!(summary.header.time(), 1231006505);
    }

    #[test]
    fn a_wrong_merkle_root_is_refused() {
        let mut raw = hex::decode(GENESIS_BLOCK).unwrap();
        raw[40] ^= 1;
        let reader = BlockReader::from_slice(&raw).unwrap();
        assert!(matches!(reader.finish(), Err(ParseError::Malformed(_))));
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut raw = hex::decode(GENESIS_BLOCK).unwrap();
        raw.push(0);
        let reader = BlockReader::new(&raw[..], ParseLimits::default()).unwrap();
        assert!(matches!(reader.finish(), Err(ParseError::TrailingData { extra: 1, .. })));
    }

    /// A transaction with `inputs` inputs and a `script_len`-byte output script.
    fn tx(seed: u8, inputs: u8, script_len: usize) -> Vec<u8> {
        let mut t = 2u32.to_le_bytes().to_vec();
        t.push(inputs);
        for i in 0..inputs {
            t.extend([seed.wrapping_add(i); 32]);
            t.extend(u32::from(i).to_le_bytes());
            t.extend([3, 0x51, 0x52, 0x53]);
            t.extend(u32::MAX.to_le_bytes());
        }
        t.push(2);
        for v in [5u64, 6] {
            t.extend(v.to_le_bytes());
            crate::varint::write_varint(&mut t, script_len as u64).unwrap();
            t.extend(std::iter::repeat_n(0x6a, script_len));
        }
        t.extend(0u32.to_le_bytes());
        t
    }

    fn block_of(txs: &[Vec<u8>]) -> Vec<u8> {
        let txids: Vec<crate::Txid> =
            txs.iter().map(|t| crate::Txid::from_internal(crate::sha256d(t))).collect();
        let mut b = 1u32.to_le_bytes().to_vec();
        b.extend([0u8; 32]);
        b.extend(crate::merkle_root(&txids).unwrap());
        b.extend([0u8; 12]);
        crate::varint::write_varint(&mut b, txs.len() as u64).unwrap();
        for t in txs {
            b.extend(t);
        }
        b
    }

    #[test]
    fn skimming_reads_what_the_full_parse_reads() {
        let genesis = hex::decode(GENESIS_BLOCK).unwrap();
        let coinbase = genesis[81..].to_vec();
        let txs = vec![coinbase, tx(1, 1, 10), tx(2, 3, 300), tx(3, 2, 70_000)];
        let raw = block_of(&txs);
        let mut full = BlockReader::from_slice(&raw).unwrap();
        let mut skim = BlockReader::from_slice(&raw).unwrap();
        for expected in &txs {
            let a = full.next_tx().unwrap().unwrap();
            let b = skim.next_skimmed().unwrap().unwrap();
            assert_eq!(a.txid(), b.txid());
            assert_eq!(a.size(), b.size());
            assert_eq!(b.bytes(), &expected[..]);
            assert_eq!(a.is_coinbase(), b.is_coinbase());
            assert_eq!(a.spent_outpoints().collect::<Vec<_>>(), b.spent_outpoints().collect::<Vec<_>>());
        }
        assert!(skim.next_skimmed().is_none());
        assert_eq!(skim.finish().unwrap(), full.finish().unwrap());
    }

    #[test]
    fn skimming_refuses_cut_non_canonical_and_oversized_transactions() {
        let raw = block_of(&[tx(1, 2, 40), tx(2, 1, 5)]);
        for cut in 82..raw.len() {
            let mut reader = BlockReader::new(&raw[..cut], ParseLimits::default()).unwrap();
            let mut failed = false;
            while let Some(tx) = reader.next_skimmed() {
                failed |= tx.is_err();
            }
            assert!(failed || reader.finish().is_err(), "cut at {cut}");
        }
        // An input count of 2 written as `fd 02 00`.
        let mut bad = tx(1, 2, 40);
        bad.splice(4..5, [0xfd, 0x02, 0x00]);
        let raw = block_of(&[bad]);
        let mut reader = BlockReader::from_slice(&raw).unwrap();
        assert!(matches!(reader.next_skimmed(), Some(Err(ParseError::Malformed(_)))));
        let raw = block_of(&[tx(1, 1, 5_000)]);
        let limits = ParseLimits { max_tx_bytes: 1_000, ..ParseLimits::default() };
        let mut reader = BlockReader::new(&raw[..], limits).unwrap();
        assert!(matches!(reader.next_skimmed(), Some(Err(ParseError::Oversized { .. }))));
        assert!(reader.next_skimmed().is_none(), "nothing after an error");
    }

    #[test]
    fn a_caller_checking_the_root_itself_gets_the_paths_root() {
        let raw = block_of(&[tx(1, 2, 40), tx(2, 1, 5), tx(3, 1, 7)]);
        let mut reader = BlockReader::from_slice(&raw).unwrap().root_checked_by_caller();
        let mut paths = crate::MerklePaths::new();
        while let Some(tx) = reader.next_skimmed() {
            paths.push(tx.unwrap().txid(), true);
        }
        let summary = reader.finish().unwrap();
        assert_eq!(paths.finish().unwrap().0, summary.header.merkle_root());
        let mut wrong = raw.clone();
        wrong[40] ^= 1;
        let reader = BlockReader::from_slice(&wrong).unwrap().root_checked_by_caller();
        assert!(reader.finish().is_ok(), "the caller's to check");
    }
}
