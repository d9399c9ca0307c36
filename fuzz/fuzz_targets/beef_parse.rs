//! Fuzzes BEEF (V1, V2, Atomic) parsing: never a panic, never an unbounded allocation; what parses
//! is consistent (each BUMP index exists, the subject is the last transaction).
#![no_main]

use bsv_primitives::{Beef, ParseLimits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = ParseLimits { max_tx_bytes: 1 << 20, ..ParseLimits::default() };
    if let Ok((beef, used)) = Beef::read(data, &limits) {
        assert!(used <= data.len());
        for entry in &beef.txs {
            if let Some(i) = entry.bump_index {
                assert!(i < beef.bumps.len());
            }
        }
        if let Some(subject) = beef.atomic_subject {
            assert_eq!(beef.subject().map(|t| t.txid()), Some(subject));
        }
    }
});
