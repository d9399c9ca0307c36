//! Parse and Merkle-root throughput next to raw SHA-256d on the same machine.
//!
//! Run with `scripts/bench` (or `cargo bench -p bsv-primitives --bench throughput`). Prints MB/s and
//! the ratio to double SHA-256 over the same bytes: hashing every byte twice is the floor any
//! parser that computes txids must pay, so the ratio says how much the parsing itself costs.
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use bsv_primitives::{BlockReader, MerkleTree, ParseLimits, Transaction, Txid, sha256d, write_varint};

/// A P2PKH-shaped transaction with `inputs` inputs, `outputs` outputs and an optional data output.
fn make_tx(seed: u32, inputs: u32, outputs: u32, data_bytes: usize) -> Vec<u8> {
    let mut tx = 1u32.to_le_bytes().to_vec();
    write_varint(&mut tx, u64::from(inputs)).unwrap();
    for i in 0..inputs {
        tx.extend(sha256d(&(seed, i).0.to_le_bytes()));
        tx.extend(i.to_le_bytes());
        tx.push(107);
        tx.extend(std::iter::repeat_n(0x30, 107));
        tx.extend(u32::MAX.to_le_bytes());
    }
    let data = usize::from(data_bytes > 0);
    write_varint(&mut tx, u64::from(outputs) + data as u64).unwrap();
    for o in 0..outputs {
        tx.extend((1000 + u64::from(o)).to_le_bytes());
        tx.extend([25, 0x76, 0xa9, 0x14]);
        tx.extend(&sha256d(&seed.to_le_bytes())[..20]);
        tx.extend([0x88, 0xac]);
    }
    if data_bytes > 0 {
        tx.extend(0u64.to_le_bytes());
        let mut script = vec![0x00, 0x6a];
        script.extend(std::iter::repeat_n(0x42, data_bytes));
        write_varint(&mut tx, script.len() as u64).unwrap();
        tx.extend(script);
    }
    tx.extend(0u32.to_le_bytes());
    tx
}

/// A block of `n` ordinary transactions plus a few large data transactions, with a valid header.
fn make_block(n: u32) -> (Vec<u8>, Vec<Vec<u8>>) {
    let mut txs: Vec<Vec<u8>> = (0..n).map(|i| make_tx(i, 1 + i % 3, 2, 0)).collect();
    for i in 0..4 {
        txs.push(make_tx(n + i, 1, 1, 1_000_000));
    }
    let txids: Vec<Txid> = txs.iter().map(|t| Txid::from_internal(sha256d(t))).collect();
    let root = MerkleTree::new(&txids).unwrap().root();
    let mut block = 1u32.to_le_bytes().to_vec();
    block.extend([0u8; 32]);
    block.extend(root);
    block.extend([0u8; 12]);
    write_varint(&mut block, txs.len() as u64).unwrap();
    for t in &txs {
        block.extend(t);
    }
    (block, txs)
}

/// Best-of-N throughput in MB/s of `f` over `bytes` bytes.
fn measure(bytes: usize, mut f: impl FnMut()) -> f64 {
    let mut best = Duration::MAX;
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut runs = 0;
    while runs < 3 || (Instant::now() < deadline && runs < 50) {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed());
        runs += 1;
    }
    bytes as f64 / best.as_secs_f64() / 1e6
}

fn main() {
    let (block, txs) = make_block(40_000);
    let small: Vec<&Vec<u8>> = txs.iter().filter(|t| t.len() < 10_000).collect();
    let small_bytes: usize = small.iter().map(|t| t.len()).sum();

    let sha_block = measure(block.len(), || {
        black_box(sha256d(black_box(&block)));
    });
    let sha_small = measure(small_bytes, || {
        for t in &small {
            black_box(sha256d(black_box(t)));
        }
    });
    let tx_parse = measure(small_bytes, || {
        for t in &small {
            black_box(Transaction::parse(black_box(t)).unwrap());
        }
    });
    let block_stream = measure(block.len(), || {
        let reader = BlockReader::new(black_box(&block[..]), ParseLimits::default()).unwrap();
        black_box(reader.finish().unwrap());
    });

    println!("bsv-primitives throughput (best of several runs, release build)");
    println!(
        "block: {:.1} MB, {} txs ({} small, avg {} B; 4 x 1 MB data txs)",
        block.len() as f64 / 1e6,
        txs.len(),
        small.len(),
        small_bytes / small.len()
    );
    println!("{:<44} {:>10} {:>12} {:>8}", "", "MB/s", "SHA-256d MB/s", "ratio");
    println!(
        "{:<44} {:>10.1} {:>12.1} {:>8.2}",
        "tx parse + txid (small txs, one by one)",
        tx_parse,
        sha_small,
        tx_parse / sha_small
    );
    println!(
        "{:<44} {:>10.1} {:>12.1} {:>8.2}",
        "block stream parse + Merkle root check",
        block_stream,
        sha_block,
        block_stream / sha_block
    );
}
