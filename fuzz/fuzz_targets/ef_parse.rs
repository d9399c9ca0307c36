//! Fuzzes Extended Format (BRC-30) parsing: never a panic, never an unbounded allocation; what
//! parses has one prevout per input and a standard form that parses to the same transaction.
#![no_main]

use bsv_primitives::{ParseLimits, Transaction, read_extended};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = ParseLimits { max_tx_bytes: 1 << 20, ..ParseLimits::default() };
    if let Ok((ef, used)) = read_extended(data, &limits) {
        assert!(used <= data.len());
        assert_eq!(ef.prevouts.len(), ef.tx.as_chain_gang().inputs.len());
        let again = Transaction::parse(&ef.standard).expect("the standard form parses");
        assert_eq!(again.txid(), ef.tx.txid());
    }
});
