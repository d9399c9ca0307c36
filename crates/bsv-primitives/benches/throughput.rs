//! Parse and Merkle-root throughput next to raw SHA-256d on the same machine.
//!
//! Run with `scripts/bench` (or `cargo bench -p bsv-primitives --bench throughput`). Prints MB/s and
//! the ratio to double SHA-256 over the same bytes: hashing every byte twice is the floor any
//! parser that computes txids must pay, so the ratio says how much the parsing itself costs.
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use std::io::Read;

use bsv_primitives::{
    BlockReader, MerklePaths, MerkleRootBuilder, MerkleTree, ParseLimits, Transaction, Txid, sha256d,
    write_varint,
};

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

/// A block of `n` generated transactions streamed without ever being whole in memory: the header
/// (its Merkle root computed in a first pass), the count, then each transaction as it is read.
struct GeneratedBlock {
    n: u32,
    next: u32,
    buffer: Vec<u8>,
    at: usize,
}

impl GeneratedBlock {
    fn new(n: u32) -> Self {
        let mut root = MerkleRootBuilder::default();
        for i in 0..n {
            root.push(sha256d(&make_tx(i, 1 + i % 3, 2, 0)));
        }
        let mut head = 1u32.to_le_bytes().to_vec();
        head.extend([0u8; 32]);
        head.extend(root.root().unwrap());
        head.extend([0u8; 12]);
        write_varint(&mut head, u64::from(n)).unwrap();
        Self { n, next: 0, buffer: head, at: 0 }
    }
}

impl Read for GeneratedBlock {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.at == self.buffer.len() {
            if self.next == self.n {
                return Ok(0);
            }
            self.buffer = make_tx(self.next, 1 + self.next % 3, 2, 0);
            self.at = 0;
            self.next += 1;
        }
        let k = out.len().min(self.buffer.len() - self.at);
        out[..k].copy_from_slice(&self.buffer[self.at..self.at + k]);
        self.at += k;
        Ok(k)
    }
}

/// Peak resident memory of this process so far, in MB (`VmHWM`).
fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The child run: block-parser's scan (stream skim, Merkle root check, the paths of one
/// transaction in a thousand) over a generated block of about `BENCH_RSS_BLOCK_MB` MB.
fn rss_child() {
    let mb: u32 = std::env::var("BENCH_RSS_BLOCK_MB").ok().and_then(|s| s.parse().ok()).unwrap_or(1000);
    // The transactions of `make_tx(i, 1 + i % 3, 2, 0)` average about 306 bytes.
    let n = mb * 1_000_000 / 306;
    let source = GeneratedBlock::new(n);
    let before = peak_rss_mb();
    let started = Instant::now();
    let mut reader = BlockReader::new(source, ParseLimits::default()).unwrap().root_checked_by_caller();
    let mut paths = MerklePaths::new();
    let mut i = 0u64;
    while let Some(tx) = reader.next_skimmed() {
        paths.push(tx.unwrap().txid(), i.is_multiple_of(1000));
        i += 1;
    }
    let summary = reader.finish().unwrap();
    let (root, tracked) = paths.finish().unwrap();
    assert_eq!(root, summary.header.merkle_root());
    let took = started.elapsed();
    let bytes = summary.tx_bytes as f64;
    println!(
        "{:<44} {:>10.1} MB/s, {} txs, {} paths, peak RSS {:.0} MB (before the parse {:.0} MB; goal <= 256 MB for 1 GB)",
        format!("{:.2} GB block, generated while streamed", bytes / 1e9),
        bytes / took.as_secs_f64() / 1e6,
        summary.tx_count,
        tracked.len(),
        peak_rss_mb(),
        before
    );
}

fn main() {
    if std::env::var_os("BENCH_RSS_CHILD").is_some() {
        rss_child();
        return;
    }
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

    let block_skim = measure(block.len(), || {
        let mut reader = BlockReader::new(black_box(&block[..]), ParseLimits::default()).unwrap();
        while let Some(tx) = reader.next_skimmed() {
            black_box(tx.unwrap().txid());
        }
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
    println!(
        "{:<44} {:>10.1} {:>12.1} {:>8.2}",
        "block stream skim + Merkle root check",
        block_skim,
        sha_block,
        block_skim / sha_block
    );

    // A block of more than 100 MB, as block-parser reads it: stream parse, Merkle root check and
    // the Merkle paths of one transaction in a hundred, next to SHA-256d over the same bytes.
    let (big, big_txs) = make_block(330_000);
    let big_txs_count = big_txs.len() as u64;
    drop(big_txs);
    let sha_big = measure(big.len(), || {
        black_box(sha256d(black_box(&big)));
    });
    let cpu_before = test_support::cpu::cpu_time(std::process::id()).unwrap_or_default();
    let mut scans = 0u64;
    let scan_big = measure(big.len(), || {
        scans += 1;
        let mut reader =
            BlockReader::new(black_box(&big[..]), ParseLimits::default()).unwrap().root_checked_by_caller();
        let mut paths = MerklePaths::new();
        let mut i = 0u64;
        while let Some(tx) = reader.next_skimmed() {
            paths.push(tx.unwrap().txid(), i.is_multiple_of(100));
            i += 1;
        }
        let summary = reader.finish().unwrap();
        assert_eq!(paths.finish().unwrap().0, summary.header.merkle_root());
    });
    let cpu = test_support::cpu::cpu_time(std::process::id()).unwrap_or_default() - cpu_before;
    println!(
        "{:<44} {:>10.1} {:>12.1} {:>8.2}   (goal >= 0.5)",
        format!("block-parser scan, {:.0} MB block", big.len() as f64 / 1e6),
        scan_big,
        sha_big,
        scan_big / sha_big
    );
    println!(
        "  the bench process (the only one): {:.2} CPU µs per transaction scanned, over {} scans (no goal set)",
        cpu.as_secs_f64() * 1e6 / (big_txs_count * scans) as f64,
        scans
    );
    drop(big);

    // Peak memory of the same scan over a 1 GB block, in a fresh process.
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .env("BENCH_RSS_CHILD", "1")
        .output()
        .unwrap();
    print!("{}", String::from_utf8_lossy(&child.stdout));
    assert!(child.status.success(), "{}", String::from_utf8_lossy(&child.stderr));
}
