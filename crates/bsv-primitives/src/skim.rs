//! Reading a block's transactions for what a block parser needs, fast: each transaction's bytes
//! are copied into one reused buffer while its structure is walked (counts, script lengths,
//! where each input's outpoint sits), then hashed once for the txid. Nothing is allocated per
//! transaction, which is what building `chain-gang` transactions cost.

use std::io::BufRead;

use crate::error::ParseError;
use crate::hash::{Txid, sha256d};
use crate::tx::OutPoint;
use crate::varint::varint_size;

/// Smallest serialized input: outpoint, empty script length, sequence.
const MIN_INPUT_BYTES: u64 = 41;
/// Smallest serialized output: value and empty script length.
const MIN_OUTPUT_BYTES: u64 = 9;

/// A transaction as [`crate::BlockReader::next_skimmed`] reads it: its bytes (borrowed from the
/// reader's buffer until the next call), txid and where its inputs' outpoints are.
#[derive(Debug)]
pub struct SkimmedTx<'a> {
    bytes: &'a [u8],
    inputs: &'a [usize],
    txid: Txid,
}

impl SkimmedTx<'_> {
    /// The transaction id.
    pub fn txid(&self) -> Txid {
        self.txid
    }

    /// The serialized transaction.
    pub fn bytes(&self) -> &[u8] {
        self.bytes
    }

    /// Its size in bytes.
    pub fn size(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// The outpoints it spends, in input order.
    pub fn spent_outpoints(&self) -> impl Iterator<Item = OutPoint> + '_ {
        self.inputs.iter().map(|&at| {
            let mut hash = [0u8; 32];
            hash.copy_from_slice(&self.bytes[at..at + 32]);
            let mut vout = [0u8; 4];
            vout.copy_from_slice(&self.bytes[at + 32..at + 36]);
            OutPoint { txid: Txid::from_internal(hash), vout: u32::from_le_bytes(vout) }
        })
    }

    /// True for a coinbase (one input spending the null outpoint).
    pub fn is_coinbase(&self) -> bool {
        self.inputs.len() == 1 && {
            let at = self.inputs[0];
            self.bytes[at..at + 32].iter().all(|b| *b == 0) && self.bytes[at + 32..at + 36] == [0xff; 4]
        }
    }
}

/// The reused buffers of a skimming reader.
#[derive(Debug, Default)]
pub(crate) struct Skimmer {
    buffer: Vec<u8>,
    inputs: Vec<usize>,
}

impl Skimmer {
    /// Reads one transaction of at most `limit` bytes from `reader`: walked in place when the
    /// reader's buffer holds all of it (then copied once), else field by field.
    pub(crate) fn read<R: BufRead>(
        &mut self,
        reader: &mut R,
        limit: u64,
    ) -> Result<SkimmedTx<'_>, ParseError> {
        self.buffer.clear();
        self.inputs.clear();
        let available = reader.fill_buf().map_err(|e| ParseError::from_io(e, "transaction"))?;
        match walk_slice(available, &mut self.inputs, limit) {
            Some(Ok(len)) => {
                self.buffer.extend_from_slice(&available[..len]);
                reader.consume(len);
                let txid = Txid::from_internal(sha256d(&self.buffer));
                return Ok(SkimmedTx { bytes: &self.buffer, inputs: &self.inputs, txid });
            }
            Some(Err(e)) => return Err(e),
            None => self.inputs.clear(),
        }
        let mut cursor = Walk { reader, buffer: &mut self.buffer, limit };
        cursor.take(4, "transaction version")?;
        let n_in = cursor.varint("input count")?;
        if n_in > limit / MIN_INPUT_BYTES {
            return Err(ParseError::CountBeyondData { what: "input", declared: n_in, remaining: limit });
        }
        for _ in 0..n_in {
            self.inputs.push(cursor.buffer.len());
            cursor.take(36, "outpoint")?;
            let script = cursor.varint("unlocking script length")?;
            cursor.take(script, "unlocking script")?;
            cursor.take(4, "sequence")?;
        }
        let n_out = cursor.varint("output count")?;
        if n_out > limit / MIN_OUTPUT_BYTES {
            return Err(ParseError::CountBeyondData { what: "output", declared: n_out, remaining: limit });
        }
        for _ in 0..n_out {
            cursor.take(8, "output value")?;
            let script = cursor.varint("locking script length")?;
            cursor.take(script, "locking script")?;
        }
        cursor.take(4, "lock time")?;
        let txid = Txid::from_internal(sha256d(&self.buffer));
        Ok(SkimmedTx { bytes: &self.buffer, inputs: &self.inputs, txid })
    }
}

/// The length of the transaction at the start of `bytes` (noting where its inputs' outpoints
/// are), `None` when `bytes` ends before it does.
fn walk_slice(bytes: &[u8], inputs: &mut Vec<usize>, limit: u64) -> Option<Result<usize, ParseError>> {
    let mut at = 4usize;
    let varint = |at: &mut usize, what: &str| -> Option<Result<u64, ParseError>> {
        let first = *bytes.get(*at)?;
        let extra = match first {
            0xfd => 2,
            0xfe => 4,
            0xff => 8,
            _ => 0,
        };
        let raw = bytes.get(*at + 1..*at + 1 + extra)?;
        let mut buf = [0u8; 8];
        buf[..extra].copy_from_slice(raw);
        let value = if extra == 0 { u64::from(first) } else { u64::from_le_bytes(buf) };
        *at += 1 + extra;
        if varint_size(value) != 1 + extra as u64 {
            return Some(Err(ParseError::Malformed(format!("{what}: non-canonical CompactSize"))));
        }
        Some(Ok(value))
    };
    let skip = |at: &mut usize, n: u64| -> Option<Result<(), ParseError>> {
        let end = (*at as u64).checked_add(n)?;
        if end > limit {
            return Some(Err(ParseError::Oversized { what: "transaction", size: end, limit }));
        }
        let end = usize::try_from(end).ok()?;
        (end <= bytes.len()).then(|| {
            *at = end;
            Ok(())
        })
    };
    let n_in = match varint(&mut at, "input count")? {
        Ok(n) if n <= limit / MIN_INPUT_BYTES => n,
        Ok(n) => {
            return Some(Err(ParseError::CountBeyondData { what: "input", declared: n, remaining: limit }));
        }
        Err(e) => return Some(Err(e)),
    };
    for _ in 0..n_in {
        inputs.push(at);
        if let Err(e) = skip(&mut at, 36)? {
            return Some(Err(e));
        }
        let script = match varint(&mut at, "unlocking script length")? {
            Ok(n) => n,
            Err(e) => return Some(Err(e)),
        };
        if let Err(e) = skip(&mut at, script.saturating_add(4))? {
            return Some(Err(e));
        }
    }
    let n_out = match varint(&mut at, "output count")? {
        Ok(n) if n <= limit / MIN_OUTPUT_BYTES => n,
        Ok(n) => {
            return Some(Err(ParseError::CountBeyondData { what: "output", declared: n, remaining: limit }));
        }
        Err(e) => return Some(Err(e)),
    };
    for _ in 0..n_out {
        if let Err(e) = skip(&mut at, 8)? {
            return Some(Err(e));
        }
        let script = match varint(&mut at, "locking script length")? {
            Ok(n) => n,
            Err(e) => return Some(Err(e)),
        };
        if let Err(e) = skip(&mut at, script)? {
            return Some(Err(e));
        }
    }
    if let Err(e) = skip(&mut at, 4)? {
        return Some(Err(e));
    }
    Some(Ok(at))
}

/// Copies bytes from the reader into the buffer, within the size limit.
struct Walk<'a, R> {
    reader: &'a mut R,
    buffer: &'a mut Vec<u8>,
    limit: u64,
}

impl<R: BufRead> Walk<'_, R> {
    fn take(&mut self, n: u64, what: &str) -> Result<(), ParseError> {
        let size = self.buffer.len() as u64 + n;
        if size > self.limit {
            return Err(ParseError::Oversized { what: "transaction", size, limit: self.limit });
        }
        let mut left = usize::try_from(n).map_err(|_| ParseError::Malformed(format!("{what}: too long")))?;
        while left > 0 {
            let available = self.reader.fill_buf().map_err(|e| ParseError::from_io(e, what))?;
            if available.is_empty() {
                return Err(ParseError::Truncated { context: what.to_owned() });
            }
            let k = left.min(available.len());
            self.buffer.extend_from_slice(&available[..k]);
            self.reader.consume(k);
            left -= k;
        }
        Ok(())
    }

    /// A CompactSize, canonical as the node demands.
    fn varint(&mut self, what: &str) -> Result<u64, ParseError> {
        let at = self.buffer.len();
        self.take(1, what)?;
        let extra = match self.buffer[at] {
            0xfd => 2,
            0xfe => 4,
            0xff => 8,
            _ => 0,
        };
        self.take(extra, what)?;
        let mut bytes = [0u8; 8];
        let value = if extra == 0 {
            u64::from(self.buffer[at])
        } else {
            bytes[..extra as usize].copy_from_slice(&self.buffer[at + 1..at + 1 + extra as usize]);
            u64::from_le_bytes(bytes)
        };
        if varint_size(value) != 1 + extra {
            return Err(ParseError::Malformed(format!("{what}: non-canonical CompactSize")));
        }
        Ok(value)
    }
}
