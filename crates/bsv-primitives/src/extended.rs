//! Extended Format (BRC-30 / BIP-239): a transaction that carries, with each input, the value and
//! locking script of the output it spends, so a fee can be checked without asking a node for the
//! inputs. The layout is the standard one with a 6-byte marker (`00 00 00 00 00 EF`) after the
//! version and, after each input's sequence, the spent output's value (8 bytes) and script. The
//! txid and the fee size are those of the standard serialisation, which is what is stored and
//! sent on.

use std::io::Read;

use crate::ParseError;
use crate::tx::{ParseLimits, Transaction};
use crate::varint::{read_varint, write_varint};

/// The marker after the version.
pub const EF_MARKER: [u8; 6] = [0, 0, 0, 0, 0, 0xEF];

/// The output an Extended Format input says it spends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prevout {
    /// Its value in satoshis.
    pub satoshis: u64,
    /// Its locking script.
    pub locking_script: Vec<u8>,
}

/// A transaction read from Extended Format.
#[derive(Debug, Clone)]
pub struct ExtendedTx {
    /// The standard serialisation (what the txid is computed from and the node receives).
    pub standard: Vec<u8>,
    /// The transaction parsed from it.
    pub tx: Transaction,
    /// The spent outputs, in input order.
    pub prevouts: Vec<Prevout>,
}

/// True when `bytes` starts with an Extended Format transaction (a standard one cannot: its input
/// count is never 0).
pub fn is_extended(bytes: &[u8]) -> bool {
    bytes.len() > 10 && bytes[4..10] == EF_MARKER
}

/// A reader over a slice that counts what it consumed and never reads past `limit` bytes.
struct Cursor<'a> {
    rest: &'a [u8],
    read: u64,
}

impl Read for Cursor<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.rest.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

impl Cursor<'_> {
    fn next_bytes(&mut self, n: u64, context: &str) -> Result<&[u8], ParseError> {
        if n > self.rest.len() as u64 {
            return Err(ParseError::Truncated { context: context.to_owned() });
        }
        let (head, tail) = self.rest.split_at(n as usize);
        self.rest = tail;
        self.read += n;
        Ok(head)
    }

    fn varint(&mut self, context: &str) -> Result<u64, ParseError> {
        read_varint(self).map_err(|e| ParseError::from_io(e, context))
    }
}

/// Reads one Extended Format transaction from the start of `bytes`; returns it and the number of
/// bytes it took (a stream may hold more).
pub fn read_extended(bytes: &[u8], limits: &ParseLimits) -> Result<(ExtendedTx, usize), ParseError> {
    if !is_extended(bytes) {
        return Err(ParseError::Malformed("not in Extended Format".into()));
    }
    let mut c = Cursor { rest: bytes, read: 0 };
    let mut standard = Vec::with_capacity(bytes.len().min(1 << 20));
    standard.extend_from_slice(c.next_bytes(4, "version")?);
    c.next_bytes(6, "EF marker")?;
    let inputs = c.varint("input count")?;
    // Each EF input takes at least 32 + 4 + 1 + 4 + 8 + 1 bytes.
    if inputs.saturating_mul(50) > c.rest.len() as u64 {
        return Err(ParseError::CountBeyondData {
            what: "input",
            declared: inputs,
            remaining: c.rest.len() as u64,
        });
    }
    let io = |e: std::io::Error| ParseError::Io(e);
    write_varint(&mut standard, inputs).map_err(io)?;
    let mut prevouts = Vec::with_capacity(inputs as usize);
    for _ in 0..inputs {
        standard.extend_from_slice(c.next_bytes(36, "outpoint")?);
        let script_len = c.varint("unlocking script length")?;
        write_varint(&mut standard, script_len).map_err(io)?;
        standard.extend_from_slice(c.next_bytes(script_len, "unlocking script")?);
        standard.extend_from_slice(c.next_bytes(4, "sequence")?);
        let mut value = [0u8; 8];
        value.copy_from_slice(c.next_bytes(8, "previous output value")?);
        let lock_len = c.varint("previous locking script length")?;
        let locking_script = c.next_bytes(lock_len, "previous locking script")?.to_vec();
        prevouts.push(Prevout { satoshis: u64::from_le_bytes(value), locking_script });
        if c.read > limits.max_tx_bytes {
            return Err(ParseError::Oversized {
                what: "transaction",
                size: c.read,
                limit: limits.max_tx_bytes,
            });
        }
    }
    // Outputs and lock time are standard: the standard parser reads them from what follows.
    let rest_start = c.read as usize;
    let mut tail = &bytes[rest_start..];
    let outputs_and_locktime = {
        let before = tail.len();
        let outputs = read_varint(&mut tail).map_err(|e| ParseError::from_io(e, "output count"))?;
        if outputs.saturating_mul(9) > tail.len() as u64 {
            return Err(ParseError::CountBeyondData {
                what: "output",
                declared: outputs,
                remaining: tail.len() as u64,
            });
        }
        for _ in 0..outputs {
            let mut value = [0u8; 8];
            tail.read_exact(&mut value).map_err(|e| ParseError::from_io(e, "output value"))?;
            let len = read_varint(&mut tail).map_err(|e| ParseError::from_io(e, "locking script length"))?;
            if len > tail.len() as u64 {
                return Err(ParseError::Truncated { context: "locking script".into() });
            }
            tail = &tail[len as usize..];
        }
        if tail.len() < 4 {
            return Err(ParseError::Truncated { context: "lock time".into() });
        }
        tail = &tail[4..];
        before - tail.len()
    };
    standard.extend_from_slice(&bytes[rest_start..rest_start + outputs_and_locktime]);
    let consumed = rest_start + outputs_and_locktime;
    if consumed as u64 > limits.max_tx_bytes {
        return Err(ParseError::Oversized {
            what: "transaction",
            size: consumed as u64,
            limit: limits.max_tx_bytes,
        });
    }
    let tx = Transaction::parse_with_limits(&standard, limits)?;
    Ok((ExtendedTx { standard, tx, prevouts }, consumed))
}

/// Reads `bytes` as exactly one Extended Format transaction.
pub fn parse_extended(bytes: &[u8]) -> Result<ExtendedTx, ParseError> {
    let (tx, consumed) = read_extended(bytes, &ParseLimits::default())?;
    if consumed != bytes.len() {
        return Err(ParseError::TrailingData { what: "transaction", extra: (bytes.len() - consumed) as u64 });
    }
    Ok(tx)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The spec's constructed example (arc-reference §2.3).
    const EXAMPLE: &str = "010000000000000000ef01\
        55ef65808ae388b7389b1c71b746ab79dcdbf4c2ac78399bd095625162750cf5000000000151ffffffff\
        e8030000000000001976a914000102030405060708090a0b0c0d0e0f1011121388ac\
        01840300000000000019\
        76a914000102030405060708090a0b0c0d0e0f1011121388ac00000000";

    #[test]
    fn the_specs_example_reads_to_its_standard_form_and_txid() {
        let bytes = hex::decode(EXAMPLE).unwrap();
        assert_eq!(bytes.len(), 126);
        assert!(is_extended(&bytes));
        let ef = parse_extended(&bytes).unwrap();
        assert_eq!(ef.standard.len(), 86);
        assert_eq!(
            ef.tx.txid().to_string(),
            "e7a5be6b0fc1df774b26c9ab1ee6a6c88228ff674473ba07a3c0d23aec6b97ca"
        );
        assert_eq!(ef.prevouts.len(), 1);
        assert_eq!(ef.prevouts[0].satoshis, 1000);
        assert_eq!(ef.prevouts[0].locking_script.len(), 25);
        assert!(!is_extended(&ef.standard));
    }

    #[test]
    fn truncated_or_lying_ef_is_an_error_never_a_panic() {
        let bytes = hex::decode(EXAMPLE).unwrap();
        for cut in 0..bytes.len() {
            assert!(parse_extended(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut huge = bytes.clone();
        huge[10] = 0xfe; // input count 0x...fe: a 4-byte count that cannot fit
        assert!(parse_extended(&huge).is_err());
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(matches!(parse_extended(&trailing), Err(ParseError::TrailingData { .. })));
        // Two in a stream.
        let stream = [bytes.clone(), bytes.clone()].concat();
        let (_, used) = read_extended(&stream, &ParseLimits::default()).unwrap();
        assert_eq!(used, bytes.len());
    }
}
