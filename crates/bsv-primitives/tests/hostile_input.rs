//! Malformed, truncated and oversized input gets a typed error: never a panic, never a huge
//! allocation (an allocation failure aborts the process, so this binary would die instead).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bsv_primitives::{BlockReader, ParseError, ParseLimits, Transaction, write_varint};
use proptest::prelude::*;

const GENESIS_BLOCK: &str = "0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a29ab5f49ffff001d1dac2b7c0101000000010000000000000000000000000000000000000000000000000000000000000000ffffffff4d04ffff001d0104455468652054696d65732030332f4a616e2f32303039204368616e63656c6c6f72206f6e206272696e6b206f66207365636f6e64206261696c6f757420666f722062616e6b73ffffffff0100f2052a01000000434104678afdb0fe5548271967f1a67130b7105cd6a828e03909a67962e0ea1f61deb649f6bc3f4cef38c4f35504e51ec112de5c384df7ba0b8d578a4c702b6bf11d5fac00000000";

fn genesis_block() -> Vec<u8> {
    hex::decode(GENESIS_BLOCK).unwrap()
}

fn genesis_tx() -> Vec<u8> {
    genesis_block()[81..].to_vec()
}

fn huge(n: u64) -> Vec<u8> {
    let mut v = Vec::new();
    write_varint(&mut v, n).unwrap();
    v
}

#[test]
fn huge_input_count_is_refused_before_reading() {
    let mut raw = 1u32.to_le_bytes().to_vec();
    raw.extend(huge(u64::MAX));
    raw.extend([0u8; 4]);
    assert!(matches!(
        Transaction::parse(&raw),
        Err(ParseError::CountBeyondData { what: "input", declared: u64::MAX, .. })
    ));
}

#[test]
fn huge_output_count_and_script_length_are_truncations() {
    // Zero inputs, then 2^60 outputs declared.
    let mut raw = vec![1, 0, 0, 0, 0];
    raw.extend(huge(1 << 60));
    assert!(matches!(Transaction::parse(&raw), Err(ParseError::Truncated { .. })));
    // One output whose script claims 2^48 bytes.
    let mut raw = vec![1, 0, 0, 0, 0, 1];
    raw.extend(0i64.to_le_bytes());
    raw.extend(huge(1 << 48));
    raw.extend([0u8; 4]);
    assert!(matches!(Transaction::parse(&raw), Err(ParseError::Truncated { .. })));
}

#[test]
fn every_truncation_of_a_valid_tx_is_an_error() {
    let raw = genesis_tx();
    for cut in 0..raw.len() {
        let err = Transaction::parse(&raw[..cut]).unwrap_err();
        assert!(
            matches!(err, ParseError::Truncated { .. } | ParseError::CountBeyondData { .. }),
            "cut at {cut}: {err:?}"
        );
        let mut stream = &raw[..cut];
        let streamed = Transaction::read_from(&mut stream, &ParseLimits::default());
        if cut == 0 {
            assert!(matches!(streamed, Ok(None)));
        } else {
            assert!(matches!(streamed, Err(ParseError::Truncated { .. })), "cut at {cut}");
        }
    }
}

#[test]
fn non_canonical_lengths_are_refused_like_the_node_does() {
    // Found by the tx_parse fuzz target: `fd 00 00` encodes 0 outputs in three bytes. The node
    // refuses such encodings; so do we, in both the slice and the stream paths.
    let raw = [10, 10, 24, 24, 0xfd, 0, 0, 0, 0, 0, 241, 85];
    assert!(
        matches!(Transaction::parse(&raw), Err(ParseError::Malformed(_))),
        "{:?}",
        Transaction::parse(&raw)
    );
    let mut stream = &raw[..];
    assert!(matches!(
        Transaction::read_from(&mut stream, &ParseLimits::default()),
        Err(ParseError::Malformed(_))
    ));
    let mut block = genesis_block()[..80].to_vec();
    block.extend([0xfd, 1, 0]);
    block.extend(genesis_tx());
    assert!(matches!(BlockReader::from_slice(&block), Err(ParseError::Malformed(_))));
}

#[test]
fn trailing_bytes_and_oversize_are_refused() {
    let mut raw = genesis_tx();
    raw.push(0);
    assert!(matches!(Transaction::parse(&raw), Err(ParseError::TrailingData { extra: 1, .. })));
    raw.pop();
    let limits = ParseLimits { max_tx_bytes: 100, ..ParseLimits::default() };
    assert!(matches!(
        Transaction::parse_with_limits(&raw, &limits),
        Err(ParseError::Oversized { limit: 100, .. })
    ));
    let mut stream = &raw[..];
    assert!(matches!(
        Transaction::read_from(&mut stream, &limits),
        Err(ParseError::Oversized { limit: 100, .. })
    ));
}

#[test]
fn block_with_a_tx_count_beyond_the_data_is_refused() {
    let mut raw = genesis_block()[..80].to_vec();
    raw.extend(huge(1 << 40));
    raw.extend(genesis_tx());
    assert!(matches!(
        BlockReader::from_slice(&raw),
        Err(ParseError::CountBeyondData { what: "transaction", .. })
    ));
    // As a stream of unknown length the count is accepted, and the missing data is a truncation.
    let reader = BlockReader::new(&raw[..], ParseLimits::default()).unwrap();
    assert!(matches!(reader.finish(), Err(ParseError::Truncated { .. })));
}

#[test]
fn every_truncation_of_a_valid_block_is_an_error() {
    let raw = genesis_block();
    for cut in 0..raw.len() {
        let result = BlockReader::new(&raw[..cut], ParseLimits::default()).and_then(|r| r.finish());
        assert!(result.is_err(), "cut at {cut}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = Transaction::parse(&bytes);
        let mut s = &bytes[..];
        let _ = Transaction::read_from(&mut s, &ParseLimits::default());
        if let Ok(r) = BlockReader::new(&bytes[..], ParseLimits::default()) {
            let _ = r.finish();
        }
    }

    #[test]
    fn mutated_valid_tx_never_panics(pos in 0usize..204, byte in any::<u8>()) {
        let mut raw = genesis_tx();
        raw[pos] = byte;
        if let Ok(tx) = Transaction::parse(&raw) {
            prop_assert_eq!(tx.to_bytes(), raw);
        }
    }
}
