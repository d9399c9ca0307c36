//! BEEF (BRC-62 V1, BRC-96 V2) and Atomic BEEF (BRC-95): a transaction with the ancestors and
//! BUMPs a receiver needs to check it, as wallets hand it to ARC.
//!
//! V1: `0100BEEF`, the BUMPs, then each transaction as raw bytes followed by `01 <bump index>` or
//! `00`. V2: `0200BEEF`, the BUMPs, then each entry as a format byte first: `00` raw, `01 <bump
//! index>` then raw, `02` a 32-byte txid only. Atomic: `01010101`, the subject txid, then a BEEF.
//! Transactions come parents first; the subject (newest) is last. Reading checks the structure:
//! bounded counts, BUMP indexes that exist, each transaction with a BUMP is a txid of it, and
//! topological order (no transaction spends one that comes after it).

use std::collections::HashMap;

use crate::bump::{Bump, BumpError};
use crate::hash::Txid;
use crate::tx::{ParseLimits, Transaction};
use crate::varint::read_varint;

/// The V1 marker, `0100BEEF` (u32le 4022206465).
pub const BEEF_V1: [u8; 4] = [0x01, 0x00, 0xbe, 0xef];
/// The V2 marker, `0200BEEF` (u32le 4022206466).
pub const BEEF_V2: [u8; 4] = [0x02, 0x00, 0xbe, 0xef];
/// The Atomic BEEF prefix, `01010101`.
pub const ATOMIC_PREFIX: [u8; 4] = [0x01, 0x01, 0x01, 0x01];

/// True when `bytes` start like a BEEF (V1, V2) or an Atomic BEEF: ARC's sniff (`b[2..4] == BE EF`)
/// plus the Atomic prefix.
pub fn is_beef(bytes: &[u8]) -> bool {
    bytes.get(2..4) == Some(&[0xbe, 0xef][..]) || bytes.starts_with(&ATOMIC_PREFIX)
}

/// Which BEEF layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BeefVersion {
    /// BRC-62.
    V1,
    /// BRC-96.
    V2,
}

/// One entry: a transaction (or, in V2, only its txid) and the BUMP that proves it, if any.
#[derive(Debug, Clone)]
pub struct BeefTx {
    /// The transaction, or its txid alone (V2 "already known to the receiver").
    pub tx: BeefTxBody,
    /// Index of its BUMP in [`Beef::bumps`].
    pub bump_index: Option<usize>,
}

/// A transaction's body in a BEEF.
#[derive(Debug, Clone)]
pub enum BeefTxBody {
    /// The whole transaction.
    Full(Box<Transaction>),
    /// Only the txid (V2 format byte `02`).
    TxidOnly(Txid),
}

impl BeefTx {
    /// The entry's txid.
    pub fn txid(&self) -> Txid {
        match &self.tx {
            BeefTxBody::Full(tx) => tx.txid(),
            BeefTxBody::TxidOnly(txid) => *txid,
        }
    }

    /// The transaction, unless the entry is a txid only.
    pub fn transaction(&self) -> Option<&Transaction> {
        match &self.tx {
            BeefTxBody::Full(tx) => Some(tx),
            BeefTxBody::TxidOnly(_) => None,
        }
    }
}

/// A parsed BEEF.
#[derive(Debug, Clone)]
pub struct Beef {
    /// V1 or V2.
    pub version: BeefVersion,
    /// The subject txid of an Atomic BEEF.
    pub atomic_subject: Option<Txid>,
    /// The BUMPs.
    pub bumps: Vec<Bump>,
    /// The transactions, parents first.
    pub txs: Vec<BeefTx>,
}

/// Why bytes are not a BEEF.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BeefError {
    /// Neither marker.
    #[error("not a BEEF (unknown version)")]
    Version,
    /// The input ended inside the structure.
    #[error("truncated BEEF")]
    Truncated,
    /// A declared count cannot fit in the bytes that remain.
    #[error("{what} count {declared} cannot fit in the bytes that remain")]
    CountBeyondData {
        /// BUMPs or transactions.
        what: &'static str,
        /// The count declared.
        declared: u64,
    },
    /// A BUMP does not parse.
    #[error("BUMP {index}: {error}")]
    Bump {
        /// Its position.
        index: usize,
        /// Why.
        error: BumpError,
    },
    /// A transaction does not parse.
    #[error("transaction {index}: {error}")]
    Transaction {
        /// Its position.
        index: usize,
        /// Why.
        error: String,
    },
    /// A has-BUMP or format byte other than the layout allows.
    #[error("transaction {0}: invalid format byte")]
    Format(usize),
    /// A BUMP index beyond the BUMPs.
    #[error("transaction {0}: its BUMP index does not exist")]
    BumpIndex(usize),
    /// A transaction given a BUMP is not a txid of that BUMP.
    #[error("transaction {0} is not in its BUMP")]
    NotInBump(usize),
    /// A transaction spends one that comes after it.
    #[error("transaction {0} comes before the parent it spends")]
    Order(usize),
    /// The same transaction twice.
    #[error("transaction {0} appears twice")]
    Repeated(usize),
    /// No transactions.
    #[error("the BEEF has no transactions")]
    Empty,
    /// An Atomic BEEF whose subject is not its last transaction.
    #[error("the Atomic BEEF's subject is not its newest transaction")]
    AtomicSubject,
}

fn take<'a>(cursor: &mut &'a [u8], n: usize) -> Result<&'a [u8], BeefError> {
    let (head, rest) = cursor.split_at_checked(n).ok_or(BeefError::Truncated)?;
    *cursor = rest;
    Ok(head)
}

fn varint(cursor: &mut &[u8]) -> Result<u64, BeefError> {
    read_varint(cursor).map_err(|_| BeefError::Truncated)
}

impl Beef {
    /// Reads a BEEF (V1, V2 or Atomic) from the front of `bytes`; returns it and the bytes it took
    /// (a request body may hold several transactions one after the other).
    pub fn read(bytes: &[u8], limits: &ParseLimits) -> Result<(Self, usize), BeefError> {
        let mut cursor = bytes;
        let mut atomic_subject = None;
        if cursor.starts_with(&ATOMIC_PREFIX) {
            take(&mut cursor, 4)?;
            let subject: [u8; 32] = take(&mut cursor, 32)?.try_into().map_err(|_| BeefError::Truncated)?;
            atomic_subject = Some(Txid::from_internal(subject));
        }
        let version = match take(&mut cursor, 4)? {
            v if v == BEEF_V1 => BeefVersion::V1,
            v if v == BEEF_V2 => BeefVersion::V2,
            _ => return Err(BeefError::Version),
        };
        let bumps = read_bumps(&mut cursor)?;
        let count = varint(&mut cursor)?;
        // Every entry takes at least a byte (a V2 txid entry 33).
        if count > cursor.len() as u64 {
            return Err(BeefError::CountBeyondData { what: "transaction", declared: count });
        }
        let mut txs = Vec::new();
        for index in 0..count as usize {
            txs.push(read_entry(&mut cursor, version, index, bumps.len(), limits)?);
        }
        let beef = Self { version, atomic_subject, bumps, txs };
        beef.check()?;
        Ok((beef, bytes.len() - cursor.len()))
    }

    /// Reads a BEEF that is the whole of `bytes`.
    pub fn from_bytes(bytes: &[u8], limits: &ParseLimits) -> Result<Self, BeefError> {
        match Self::read(bytes, limits)? {
            (beef, used) if used == bytes.len() => Ok(beef),
            _ => Err(BeefError::Truncated),
        }
    }

    /// The subject: the newest transaction (the last one).
    pub fn subject(&self) -> Option<&BeefTx> {
        self.txs.last()
    }

    /// The BUMP that proves an entry, if it has one.
    pub fn bump_of(&self, entry: &BeefTx) -> Option<&Bump> {
        entry.bump_index.and_then(|i| self.bumps.get(i))
    }

    /// Structure beyond bytes: not empty, BUMP membership, one entry per txid, parents first,
    /// an Atomic subject that is the newest transaction.
    fn check(&self) -> Result<(), BeefError> {
        if self.txs.is_empty() {
            return Err(BeefError::Empty);
        }
        let mut position: HashMap<Txid, usize> = HashMap::new();
        for (index, entry) in self.txs.iter().enumerate() {
            let txid = entry.txid();
            if position.insert(txid, index).is_some() {
                return Err(BeefError::Repeated(index));
            }
            if let Some(bump) = self.bump_of(entry)
                && !bump.txids().contains(&txid)
                && bump.root_for(&txid).is_err()
            {
                return Err(BeefError::NotInBump(index));
            }
        }
        for (index, entry) in self.txs.iter().enumerate() {
            let Some(tx) = entry.transaction() else { continue };
            if tx.spent_outpoints().any(|op| position.get(&op.txid).is_some_and(|&p| p >= index)) {
                return Err(BeefError::Order(index));
            }
        }
        if let Some(subject) = self.atomic_subject
            && self.subject().map(BeefTx::txid) != Some(subject)
        {
            return Err(BeefError::AtomicSubject);
        }
        Ok(())
    }
}

fn read_bumps(cursor: &mut &[u8]) -> Result<Vec<Bump>, BeefError> {
    let count = varint(cursor)?;
    // A BUMP takes at least 37 bytes (a height, a level, a leaf with its hash).
    if count > (cursor.len() / 37) as u64 {
        return Err(BeefError::CountBeyondData { what: "BUMP", declared: count });
    }
    let mut bumps = Vec::new();
    for index in 0..count as usize {
        let (bump, used) = Bump::read(cursor).map_err(|error| BeefError::Bump { index, error })?;
        *cursor = &cursor[used..];
        bumps.push(bump);
    }
    Ok(bumps)
}

fn read_entry(
    cursor: &mut &[u8],
    version: BeefVersion,
    index: usize,
    bumps: usize,
    limits: &ParseLimits,
) -> Result<BeefTx, BeefError> {
    let bump_index = |cursor: &mut &[u8]| -> Result<usize, BeefError> {
        let i = varint(cursor)?;
        usize::try_from(i).ok().filter(|i| *i < bumps).ok_or(BeefError::BumpIndex(index))
    };
    match version {
        BeefVersion::V1 => {
            let tx = read_tx(cursor, index, limits)?;
            let bump_index = match take(cursor, 1)?[0] {
                0 => None,
                1 => Some(bump_index(cursor)?),
                _ => return Err(BeefError::Format(index)),
            };
            Ok(BeefTx { tx: BeefTxBody::Full(Box::new(tx)), bump_index })
        }
        BeefVersion::V2 => match take(cursor, 1)?[0] {
            0 => Ok(BeefTx {
                tx: BeefTxBody::Full(Box::new(read_tx(cursor, index, limits)?)),
                bump_index: None,
            }),
            1 => {
                let bump_index = Some(bump_index(cursor)?);
                Ok(BeefTx { tx: BeefTxBody::Full(Box::new(read_tx(cursor, index, limits)?)), bump_index })
            }
            2 => {
                let txid: [u8; 32] = take(cursor, 32)?.try_into().map_err(|_| BeefError::Truncated)?;
                Ok(BeefTx { tx: BeefTxBody::TxidOnly(Txid::from_internal(txid)), bump_index: None })
            }
            _ => Err(BeefError::Format(index)),
        },
    }
}

fn read_tx(cursor: &mut &[u8], index: usize, limits: &ParseLimits) -> Result<Transaction, BeefError> {
    let mut reader: &[u8] = cursor;
    let tx = Transaction::read_from(&mut reader, limits)
        .map_err(|e| BeefError::Transaction { index, error: e.to_string() })?
        .ok_or(BeefError::Truncated)?;
    *cursor = reader;
    Ok(tx)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// BRC-62's example (the SDKs' test vector): one BUMP, a mined parent and its child.
    const BRC62: &str = "0100beef01fe636d0c0007021400fe507c0c7aa754cef1f7889d5fd395cf1f785dd7de98eed895dbedfe4e5bc70d1502ac4e164f5bc16746bb0868404292ac8318bbac3800e4aad13a014da427adce3e010b00bc4ff395efd11719b277694cface5aa50d085a0bb81f613f70313acd28cf4557010400574b2d9142b8d28b61d88e3b2c3f44d858411356b49a28a4643b6d1a6a092a5201030051a05fc84d531b5d250c23f4f886f6812f9fe3f402d61607f977b4ecd2701c19010000fd781529d58fc2523cf396a7f25440b409857e7e221766c57214b1d38c7b481f01010062f542f45ea3660f86c013ced80534cb5fd4c19d66c56e7e8c5d4bf2d40acc5e010100b121e91836fd7cd5102b654e9f72f3cf6fdbfd0b161c53a9c54b12c841126331020100000001cd4e4cac3c7b56920d1e7655e7e260d31f29d9a388d04910f1bbd72304a79029010000006b483045022100e75279a205a547c445719420aa3138bf14743e3f42618e5f86a19bde14bb95f7022064777d34776b05d816daf1699493fcdf2ef5a5ab1ad710d9c97bfb5b8f7cef3641210263e2dee22b1ddc5e11f6fab8bcd2378bdd19580d640501ea956ec0e786f93e76ffffffff013e660000000000001976a9146bfd5c7fbe21529d45803dbcf0c87dd3c71efbc288ac0000000001000100000001ac4e164f5bc16746bb0868404292ac8318bbac3800e4aad13a014da427adce3e000000006a47304402203a61a2e931612b4bda08d541cfb980885173b8dcf64a3471238ae7abcd368d6402204cbf24f04b9aa2256d8901f0ed97866603d2be8324c2bfb7a37bf8fc90edd5b441210263e2dee22b1ddc5e11f6fab8bcd2378bdd19580d640501ea956ec0e786f93e76ffffffff013c660000000000001976a9146bfd5c7fbe21529d45803dbcf0c87dd3c71efbc288ac0000000000";

    fn limits() -> ParseLimits {
        ParseLimits::default()
    }

    #[test]
    fn brc62s_example_reads_with_its_bump_and_order() {
        let bytes = hex::decode(BRC62).unwrap();
        assert!(is_beef(&bytes));
        let beef = Beef::from_bytes(&bytes, &limits()).unwrap();
        assert_eq!(beef.version, BeefVersion::V1);
        assert_eq!(beef.bumps.len(), 1);
        assert_eq!(beef.txs.len(), 2);
        let parent = &beef.txs[0];
        let bump = beef.bump_of(parent).unwrap();
        assert_eq!(bump.block_height, 814435);
        assert!(bump.root_for(&parent.txid()).is_ok());
        let child = beef.subject().unwrap();
        assert!(child.bump_index.is_none());
        let spent: Vec<_> = child.transaction().unwrap().spent_outpoints().map(|o| o.txid).collect();
        assert_eq!(spent, vec![parent.txid()], "the child spends the mined parent");
    }

    /// The same content as V2 and as Atomic BEEF.
    fn v2_of(beef: &Beef) -> Vec<u8> {
        let mut out = BEEF_V2.to_vec();
        crate::write_varint(&mut out, beef.bumps.len() as u64).unwrap();
        for b in &beef.bumps {
            out.extend(b.to_bytes());
        }
        crate::write_varint(&mut out, beef.txs.len() as u64).unwrap();
        for t in &beef.txs {
            match t.bump_index {
                Some(i) => {
                    out.push(1);
                    crate::write_varint(&mut out, i as u64).unwrap();
                }
                None => out.push(0),
            }
            out.extend(t.transaction().unwrap().to_bytes());
        }
        out
    }

    #[test]
    fn v2_and_atomic_beef_read_the_same_transactions() {
        let v1 = Beef::from_bytes(&hex::decode(BRC62).unwrap(), &limits()).unwrap();
        let v2_bytes = v2_of(&v1);
        let v2 = Beef::from_bytes(&v2_bytes, &limits()).unwrap();
        assert_eq!(v2.version, BeefVersion::V2);
        let ids = |b: &Beef| b.txs.iter().map(BeefTx::txid).collect::<Vec<_>>();
        assert_eq!(ids(&v2), ids(&v1));
        let subject = v1.subject().unwrap().txid();
        let mut atomic = ATOMIC_PREFIX.to_vec();
        atomic.extend_from_slice(subject.internal());
        atomic.extend_from_slice(&v2_bytes);
        assert_eq!(Beef::from_bytes(&atomic, &limits()).unwrap().atomic_subject, Some(subject));
        let mut wrong = ATOMIC_PREFIX.to_vec();
        wrong.extend_from_slice(v1.txs[0].txid().internal());
        wrong.extend_from_slice(&v2_bytes);
        assert_eq!(Beef::from_bytes(&wrong, &limits()).err(), Some(BeefError::AtomicSubject));
        // A V2 entry may be a txid alone.
        let mut txid_only = BEEF_V2.to_vec();
        txid_only.extend([0x00, 0x01, 0x02]);
        txid_only.extend_from_slice(&[9; 32]);
        assert_eq!(
            Beef::from_bytes(&txid_only, &limits()).unwrap().txs[0].txid(),
            Txid::from_internal([9; 32])
        );
    }

    #[test]
    fn malformed_beef_is_refused_without_panicking() {
        let good = hex::decode(BRC62).unwrap();
        for cut in 0..good.len() {
            assert!(Beef::from_bytes(&good[..cut], &limits()).is_err(), "cut at {cut}");
        }
        assert_eq!(Beef::from_bytes(&[1, 2, 3, 4, 0, 0], &limits()).err(), Some(BeefError::Version));
        let mut huge_count = BEEF_V1.to_vec();
        huge_count.extend([0xfe, 0xff, 0xff, 0xff, 0x7f]);
        assert!(matches!(Beef::from_bytes(&huge_count, &limits()), Err(BeefError::CountBeyondData { .. })));
        assert_eq!(
            Beef::from_bytes(&[BEEF_V1.as_slice(), &[0, 0]].concat(), &limits()).err(),
            Some(BeefError::Empty)
        );
        // Child before parent.
        let v1 = Beef::from_bytes(&good, &limits()).unwrap();
        let mut swapped = BEEF_V2.to_vec();
        crate::write_varint(&mut swapped, 1).unwrap();
        swapped.extend(v1.bumps[0].to_bytes());
        swapped.push(2);
        swapped.push(0);
        swapped.extend(v1.txs[1].transaction().unwrap().to_bytes());
        swapped.push(1);
        swapped.push(0);
        swapped.extend(v1.txs[0].transaction().unwrap().to_bytes());
        assert_eq!(Beef::from_bytes(&swapped, &limits()).err(), Some(BeefError::Order(0)));
        // A BUMP index that does not exist, and a transaction that is not in its BUMP.
        let mut bad_index = good.clone();
        let flag_at = good.len() - 1 - v1.txs[1].transaction().unwrap().to_bytes().len() - 2;
        assert_eq!(bad_index[flag_at], 1);
        bad_index[flag_at + 1] = 5;
        assert_eq!(Beef::from_bytes(&bad_index, &limits()).err(), Some(BeefError::BumpIndex(0)));
        let mut not_in = good.clone();
        let last = not_in.len() - 1;
        not_in[last] = 1;
        not_in.push(0);
        assert_eq!(Beef::from_bytes(&not_in, &limits()).err(), Some(BeefError::NotInBump(1)));
    }
}
