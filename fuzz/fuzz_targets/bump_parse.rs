//! Fuzzes BUMP (BRC-74) parsing: never a panic, never an unbounded allocation or derivation, and
//! what parses writes back to bytes that parse to the same BUMP, every txid leading to one root.
#![no_main]

use bsv_primitives::Bump;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((bump, used)) = Bump::read(data) {
        assert!(used <= data.len());
        let again = Bump::from_bytes(&bump.to_bytes()).expect("a written BUMP reads back");
        assert_eq!(again, bump);
        let roots: Vec<_> = bump.txids().iter().map(|t| bump.root_for(t)).collect();
        assert!(roots.windows(2).all(|w| w[0] == w[1]));
    }
});
