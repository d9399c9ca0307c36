//! Fuzzes transaction parsing: never a panic, never an unbounded allocation, and a successful
//! parse is lossless.
#![no_main]

use bsv_primitives::{ParseLimits, Transaction};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(tx) = Transaction::parse(data) {
        assert_eq!(tx.to_bytes(), data);
    }
    let mut stream = data;
    let limits = ParseLimits { max_tx_bytes: 1 << 20, ..ParseLimits::default() };
    while let Ok(Some(_)) = Transaction::read_from(&mut stream, &limits) {}
});
