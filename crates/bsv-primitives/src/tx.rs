//! Transactions: bounded parsing on top of `chain-gang`, the txid computed in the same pass, and
//! the fee byte classes that mAPI prices separately.

use std::io::{Cursor, Read};

use chain_gang::messages::{Payload, Tx};
use chain_gang::util::Serializable;

use crate::error::ParseError;
use crate::hash::{HashingReader, Txid, sha256d};
use crate::varint::read_varint;

/// Smallest possible serialized input: outpoint (36) + empty script length (1) + sequence (4).
const MIN_INPUT_BYTES: u64 = 41;

/// Limits applied while parsing, so hostile input costs bounded memory and time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseLimits {
    /// Largest transaction accepted, in bytes (the node's consensus limit is 1 GB).
    pub max_tx_bytes: u64,
    /// Largest block accepted, in bytes; a declared tx count that cannot fit is refused at once.
    pub max_block_bytes: u64,
}

impl Default for ParseLimits {
    fn default() -> Self {
        Self { max_tx_bytes: 1_000_000_000, max_block_bytes: u64::MAX }
    }
}

/// The bytes of a transaction split the way miners price them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FeeBytes {
    /// Bytes priced at the `standard` rate: everything that is not data.
    pub standard: u64,
    /// Bytes priced at the `data` rate: the scripts of outputs starting `OP_FALSE OP_RETURN`.
    pub data: u64,
}

/// True when an output script is a data carrier (`OP_FALSE OP_RETURN ...`), the class mAPI prices
/// at the data rate. A bare `OP_RETURN` (without the leading `OP_FALSE`) is *not* data here, as in
/// the reference.
pub fn is_data_script(script: &[u8]) -> bool {
    script.starts_with(&[0x00, 0x6a])
}

/// A parsed transaction with its id and serialized size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    tx: Tx,
    txid: Txid,
    size: u64,
}

impl Transaction {
    /// Parses exactly one transaction from `bytes`; trailing bytes are an error.
    pub fn parse(bytes: &[u8]) -> Result<Self, ParseError> {
        Self::parse_with_limits(bytes, &ParseLimits::default())
    }

    /// Parses exactly one transaction from `bytes` under `limits`.
    pub fn parse_with_limits(bytes: &[u8], limits: &ParseLimits) -> Result<Self, ParseError> {
        let len = bytes.len() as u64;
        if len > limits.max_tx_bytes {
            return Err(ParseError::Oversized { what: "transaction", size: len, limit: limits.max_tx_bytes });
        }
        check_input_count(bytes)?;
        let mut cursor = Cursor::new(bytes);
        let tx = Tx::read(&mut cursor).map_err(|e| ParseError::from_chain_gang(e, "transaction"))?;
        let used = cursor.position();
        if used != len {
            return Err(ParseError::TrailingData { what: "transaction", extra: len - used });
        }
        check_canonical(&tx, used)?;
        Ok(Self { tx, txid: Txid::from_internal(sha256d(bytes)), size: len })
    }

    /// Parses a hex-encoded transaction (the `rawtx` field of mAPI requests).
    pub fn parse_hex(hex_str: &str) -> Result<Self, ParseError> {
        let bytes = hex::decode(hex_str.trim())
            .map_err(|e| ParseError::Malformed(format!("transaction hex: {e}")))?;
        Self::parse(&bytes)
    }

    /// Reads one transaction from a stream (a block body, a concatenated `POST /mapi/txs` body),
    /// hashing while reading. Returns `Ok(None)` at a clean end of stream.
    pub fn read_from<R: Read>(reader: &mut R, limits: &ParseLimits) -> Result<Option<Self>, ParseError> {
        let mut hashing = HashingReader::new(Limited::new(reader, limits.max_tx_bytes));
        // Peek one byte to tell a clean end of stream from a truncated transaction.
        let mut first = [0u8; 1];
        loop {
            match hashing.read(&mut first) {
                Ok(0) => return Ok(None),
                Ok(_) => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(ParseError::from_io(e, "transaction")),
            }
        }
        let mut chained = Cursor::new(first).chain(&mut hashing);
        let result = Tx::read(&mut chained);
        let hit_limit = hashing.inner_mut().hit_limit;
        match result {
            Ok(tx) => {
                // `first` went through the hashing reader, so the hash covers the whole tx.
                let size = hashing.bytes_read();
                check_canonical(&tx, size)?;
                let txid = Txid::from_internal(hashing.take_sha256d());
                Ok(Some(Self { tx, txid, size }))
            }
            Err(_) if hit_limit => Err(ParseError::Oversized {
                what: "transaction",
                size: limits.max_tx_bytes.saturating_add(1),
                limit: limits.max_tx_bytes,
            }),
            Err(e) => Err(ParseError::from_chain_gang(e, "transaction")),
        }
    }

    /// The transaction id.
    pub fn txid(&self) -> Txid {
        self.txid
    }

    /// Serialized size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// True for a coinbase transaction (one input spending the null outpoint).
    pub fn is_coinbase(&self) -> bool {
        self.tx.coinbase()
    }

    /// The outpoints this transaction spends, in input order.
    pub fn spent_outpoints(&self) -> impl Iterator<Item = OutPoint> + '_ {
        self.tx
            .inputs
            .iter()
            .map(|i| OutPoint { txid: Txid::from(i.prev_output.hash), vout: i.prev_output.index })
    }

    /// Output values in satoshis, in output order (negative values are possible in hostile
    /// input and must be rejected by the caller, as the reference does).
    pub fn output_values(&self) -> impl Iterator<Item = i64> + '_ {
        self.tx.outputs.iter().map(|o| o.satoshis)
    }

    /// Splits the serialized size into data bytes and standard bytes.
    pub fn fee_bytes(&self) -> FeeBytes {
        let data: u64 = self
            .tx
            .outputs
            .iter()
            .filter(|o| is_data_script(&o.lock_script.0))
            .map(|o| o.lock_script.0.len() as u64)
            .sum();
        FeeBytes { standard: self.size - data, data }
    }

    /// The underlying `chain-gang` transaction, for script and signing work.
    pub fn as_chain_gang(&self) -> &Tx {
        &self.tx
    }

    /// Serializes the transaction again (the parse is lossless).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(usize::try_from(self.size).unwrap_or(0));
        // Writing into a Vec cannot fail.
        let _ = self.tx.write(&mut out);
        out
    }
}

/// A transaction output reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OutPoint {
    /// The transaction that created the output.
    pub txid: Txid,
    /// The output index within it.
    pub vout: u32,
}

/// Refuses length prefixes in a longer encoding than needed (`fd 00 00` for 0). The node refuses
/// them too ("non-canonical ReadCompactSize"), and accepting them would let two byte strings with
/// different txids parse to the same transaction. The canonical size is pure arithmetic over the
/// parsed structure, so this costs no second pass over the bytes.
fn check_canonical(tx: &Tx, consumed: u64) -> Result<(), ParseError> {
    if tx.size() as u64 == consumed {
        Ok(())
    } else {
        Err(ParseError::Malformed("non-canonical length encoding in transaction".into()))
    }
}

/// Refuses a declared input count that cannot fit in the bytes that follow it. This is the one
/// count we can check before reading: it makes a 14-byte hostile tx fail fast with a clear error.
fn check_input_count(bytes: &[u8]) -> Result<(), ParseError> {
    let Some(mut rest) = bytes.get(4..) else {
        return Err(ParseError::Truncated { context: "transaction version".into() });
    };
    let before = rest.len() as u64;
    let declared = read_varint(&mut rest).map_err(|e| ParseError::from_io(e, "input count"))?;
    let remaining = rest.len() as u64;
    debug_assert!(before >= remaining);
    if declared > remaining / MIN_INPUT_BYTES {
        return Err(ParseError::CountBeyondData { what: "input", declared, remaining });
    }
    Ok(())
}

/// A reader that refuses to go past `limit` bytes, remembering that it did, so an oversized item
/// is reported as such instead of as a truncation.
#[derive(Debug)]
pub(crate) struct Limited<R> {
    inner: R,
    left: u64,
    pub(crate) hit_limit: bool,
}

impl<R: Read> Limited<R> {
    pub(crate) fn new(inner: R, limit: u64) -> Self {
        Self { inner, left: limit, hit_limit: false }
    }
}

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            self.hit_limit = true;
            return Err(std::io::Error::other("size limit reached"));
        }
        let max = buf.len().min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..max])?;
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The genesis coinbase, a well-known vector.
    pub(crate) const GENESIS_COINBASE: &str = "01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff4d04ffff001d0104455468652054696d65732030332f4a616e2f32303039204368616e63656c6c6f72206f6e206272696e6b206f66207365636f6e64206261696c6f757420666f722062616e6b73ffffffff0100f2052a01000000434104678afdb0fe5548271967f1a67130b7105cd6a828e03909a67962e0ea1f61deb649f6bc3f4cef38c4f35504e51ec112de5c384df7ba0b8d578a4c702b6bf11d5fac00000000";

    #[test]
    fn genesis_coinbase_txid() {
        let tx = Transaction::parse_hex(GENESIS_COINBASE).unwrap();
        assert_eq!(tx.txid().to_string(), "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b");
        assert!(tx.is_coinbase());
        assert_eq!(tx.to_bytes(), hex::decode(GENESIS_COINBASE).unwrap());
        assert_eq!(tx.fee_bytes(), FeeBytes { standard: 204, data: 0 });
    }

    #[test]
    fn streaming_read_matches_slice_parse() {
        let bytes = hex::decode(GENESIS_COINBASE).unwrap();
        let mut two = bytes.clone();
        two.extend_from_slice(&bytes);
        let mut r = &two[..];
        let a = Transaction::read_from(&mut r, &ParseLimits::default()).unwrap().unwrap();
        let b = Transaction::read_from(&mut r, &ParseLimits::default()).unwrap().unwrap();
        assert!(Transaction::read_from(&mut r, &ParseLimits::default()).unwrap().is_none());
        assert_eq!(a, Transaction::parse(&bytes).unwrap());
        assert_eq!(a, b);
    }

    #[test]
    fn data_outputs_are_priced_separately() {
        // version, 0 inputs, 2 outputs: OP_FALSE OP_RETURN <3 bytes> and OP_RETURN <1 byte>.
        let mut raw = vec![1, 0, 0, 0, 0, 2];
        raw.extend_from_slice(&0i64.to_le_bytes());
        raw.extend_from_slice(&[5, 0x00, 0x6a, 3, 1, 2]);
        raw.extend_from_slice(&0i64.to_le_bytes());
        raw.extend_from_slice(&[2, 0x6a, 1]);
        raw.extend_from_slice(&[0, 0, 0, 0]);
        let tx = Transaction::parse(&raw).unwrap();
        assert_eq!(tx.fee_bytes(), FeeBytes { standard: raw.len() as u64 - 5, data: 5 });
    }
}
