//! Fuzzes streaming block parsing, both with the length known (slice) and unknown (stream).
#![no_main]

use bsv_primitives::{BlockReader, ParseLimits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(reader) = BlockReader::from_slice(data) {
        let _ = reader.finish();
    }
    if let Ok(mut reader) = BlockReader::new(data, ParseLimits::default()) {
        while let Some(Ok(_)) = reader.next_tx() {}
    }
});
