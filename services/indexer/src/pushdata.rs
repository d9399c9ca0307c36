//! Which pushdata hashes a script carries, as the simple indexer (the reference's regtest
//! indexer) finds them: every push of exactly 20 bytes (a public key hash), 33 or 65 bytes (a
//! public key) is hashed with SHA-256; other pushes (signatures, data) are skipped whole and any
//! other opcode is stepped over. A script that ends inside a push keeps what was found before.

use sha2::{Digest, Sha256};

/// The SHA-256 of each distinct 20-, 33- or 65-byte push in `script`, appended to `out`.
pub fn pushdata_hashes(script: &[u8], out: &mut Vec<[u8; 32]>) {
    let start = out.len();
    let mut i = 0usize;
    while i < script.len() {
        let op = script[i];
        let (skip, found) = match op {
            20 | 33 | 65 => (1 + op as usize, Some(op as usize)),
            1..=75 => (1 + op as usize, None),
            0x4c => (2 + script.get(i + 1).copied().map_or(0, usize::from), None),
            0x4d => (3 + le_len(script, i + 1, 2), None),
            0x4e => (5 + le_len(script, i + 1, 4), None),
            _ => (1, None),
        };
        if let Some(len) = found
            && let Some(push) = script.get(i + 1..i + 1 + len)
        {
            let hash: [u8; 32] = Sha256::digest(push).into();
            if !out[start..].contains(&hash) {
                out.push(hash);
            }
        }
        i = i.saturating_add(skip);
    }
}

/// A little-endian length of `n` bytes at `at`, or `usize::MAX / 2` when the script ends first
/// (which ends the walk).
fn le_len(script: &[u8], at: usize, n: usize) -> usize {
    match script.get(at..at + n) {
        Some(bytes) => bytes.iter().rev().fold(0usize, |acc, b| (acc << 8) | usize::from(*b)),
        None => usize::MAX / 2,
    }
}

/// Flags of a match: bit 0 in an output, bit 1 in an input (the reference's values).
pub const MATCH_IN_OUTPUT: u32 = 1;
/// See [`MATCH_IN_OUTPUT`].
pub const MATCH_IN_INPUT: u32 = 2;

/// One pushdata hash found in a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    /// The hash.
    pub pushdata_hash: [u8; 32],
    /// The output or input index.
    pub index: u32,
    /// [`MATCH_IN_OUTPUT`] or [`MATCH_IN_INPUT`].
    pub flags: u32,
}

/// Every pushdata hash of a transaction's outputs and inputs, with where it was found.
pub fn in_transaction(tx: &bsv_primitives::chain_gang::messages::Tx) -> Vec<Found> {
    let mut found = Vec::new();
    let mut hashes = Vec::new();
    for (index, output) in tx.outputs.iter().enumerate() {
        hashes.clear();
        pushdata_hashes(&output.lock_script.0, &mut hashes);
        found.extend(hashes.iter().map(|h| Found {
            pushdata_hash: *h,
            index: index as u32,
            flags: MATCH_IN_OUTPUT,
        }));
    }
    for (index, input) in tx.inputs.iter().enumerate() {
        hashes.clear();
        pushdata_hashes(&input.unlock_script.0, &mut hashes);
        found.extend(hashes.iter().map(|h| Found {
            pushdata_hash: *h,
            index: index as u32,
            flags: MATCH_IN_INPUT,
        }));
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(b: &[u8]) -> [u8; 32] {
        Sha256::digest(b).into()
    }

    #[test]
    fn a_p2pkh_output_yields_the_hash_of_its_public_key_hash() {
        let pkh = [7u8; 20];
        let mut script = vec![0x76, 0xa9, 20];
        script.extend_from_slice(&pkh);
        script.extend_from_slice(&[0x88, 0xac]);
        let mut out = Vec::new();
        pushdata_hashes(&script, &mut out);
        assert_eq!(out, vec![sha(&pkh)]);
    }

    #[test]
    fn a_p2pkh_input_yields_the_public_key_and_skips_the_signature() {
        let mut script = vec![71];
        script.extend_from_slice(&[1u8; 71]);
        script.push(33);
        script.extend_from_slice(&[2u8; 33]);
        let mut out = Vec::new();
        pushdata_hashes(&script, &mut out);
        assert_eq!(out, vec![sha(&[2u8; 33])]);
    }

    #[test]
    fn data_pushes_are_skipped_and_truncated_scripts_end_quietly() {
        // OP_FALSE OP_RETURN PUSHDATA1 20 bytes that look like a 20-byte push inside.
        let mut script = vec![0x00, 0x6a, 0x4c, 21, 20];
        script.extend_from_slice(&[9u8; 20]);
        let mut out = Vec::new();
        pushdata_hashes(&script, &mut out);
        assert!(out.is_empty(), "inside a PUSHDATA1: skipped whole");
        for truncated in [&[20u8, 1, 2][..], &[0x4d, 0xff][..], &[0x4e][..], &[0x4c][..]] {
            let mut out = Vec::new();
            pushdata_hashes(truncated, &mut out);
            assert!(out.is_empty());
        }
    }
}
