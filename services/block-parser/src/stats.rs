//! What the parser has done, for `status/blockParser` (the reference's shape, served through
//! mapi) and Prometheus (the reference's `merchantapi_blockparser_*` names).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus::{Gauge, Histogram, HistogramOpts, IntCounter, Registry};
use serde_json::{Value, json};
use time::OffsetDateTime;

/// Counters since the process started. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Stats {
    inner: Arc<Mutex<Counts>>,
    parsing_duration: Histogram,
    best_height: Gauge,
    parsed: IntCounter,
    queue: Gauge,
}

/// The raw counters.
#[derive(Debug, Clone, Default)]
pub struct Counts {
    /// New blocks the follower stored.
    pub blocks_processed: u64,
    /// Blocks parsed.
    pub blocks_parsed: u64,
    /// Their bytes.
    pub total_bytes: u64,
    /// Their transactions.
    pub total_txs: u64,
    /// Registered transactions found in them.
    pub total_txs_found: u64,
    /// Double spends of registered outpoints found in them.
    pub total_ds_found: u64,
    /// Failed parses (each is tried again).
    pub num_of_errors: u64,
    /// The last block parsed: hash, height, when, how long the parse took and how long it
    /// waited before.
    pub last: Option<LastBlock>,
    /// Total parse time.
    pub total_parse: Duration,
    /// Total time spent reading blocks from nodes (for the download speed).
    pub total_download: Duration,
    /// Longest parse.
    pub max_parse: Duration,
}

/// The last block parsed.
#[derive(Debug, Clone)]
pub struct LastBlock {
    /// Its hash.
    pub hash: bsv_primitives::BlockHash,
    /// Its height.
    pub height: u64,
    /// When it was parsed.
    pub parsed_at: OffsetDateTime,
    /// How long the parse took.
    pub parse_time: Duration,
    /// From being seen to being parsed.
    pub queue_and_parse_time: Duration,
}

/// One parse, as [`Stats::parsed`] records it.
#[derive(Debug, Clone)]
pub struct Parsed {
    /// The block.
    pub hash: bsv_primitives::BlockHash,
    /// Its height.
    pub height: u64,
    /// Its size.
    pub bytes: u64,
    /// Its transactions.
    pub txs: u64,
    /// Registered ones found.
    pub found: u64,
    /// Double spends found.
    pub double_spends: u64,
    /// The whole parse.
    pub took: Duration,
    /// Reading it from the node.
    pub download: Duration,
    /// Since its header was stored.
    pub since_seen: Duration,
}

impl Stats {
    /// Registers the metrics on `registry`.
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let parsing_duration = Histogram::with_opts(HistogramOpts::new(
            "merchantapi_blockparser_blockparsing_duration_seconds",
            "Histogram of time spent parsing blocks.",
        ))?;
        let best_height = Gauge::new("merchantapi_blockparser_bestblockheight", "Best block height.")?;
        let parsed =
            IntCounter::new("merchantapi_blockparser_blockparsed_counter", "Number of blocks parsed.")?;
        let queue = Gauge::new("merchantapi_blockparser_blockparsingqueue", "Blocks in queue for parsing.")?;
        registry.register(Box::new(parsing_duration.clone()))?;
        registry.register(Box::new(best_height.clone()))?;
        registry.register(Box::new(parsed.clone()))?;
        registry.register(Box::new(queue.clone()))?;
        Ok(Self { inner: Arc::default(), parsing_duration, best_height, parsed, queue })
    }

    fn with(&self, f: impl FnOnce(&mut Counts)) {
        f(&mut self.inner.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// New blocks were stored by the follower.
    pub fn processed(&self, blocks: u64) {
        self.with(|c| c.blocks_processed += blocks);
    }

    /// A block was parsed.
    pub fn parsed(&self, p: &Parsed) {
        self.parsed.inc();
        self.parsing_duration.observe(p.took.as_secs_f64());
        self.with(|c| {
            c.blocks_parsed += 1;
            c.total_bytes += p.bytes;
            c.total_txs += p.txs;
            c.total_txs_found += p.found;
            c.total_ds_found += p.double_spends;
            c.total_parse += p.took;
            c.total_download += p.download;
            c.max_parse = c.max_parse.max(p.took);
            c.last = Some(LastBlock {
                hash: p.hash,
                height: p.height,
                parsed_at: OffsetDateTime::now_utc(),
                parse_time: p.took,
                queue_and_parse_time: p.since_seen.max(p.took),
            });
        });
    }

    /// A parse failed (it is tried again).
    pub fn error(&self) {
        self.with(|c| c.num_of_errors += 1);
    }

    /// The best height and the blocks waiting, as last seen.
    pub fn chain(&self, best_height: u64, queued: i64) {
        self.best_height.set(best_height as f64);
        self.queue.set(queued as f64);
    }

    /// The counters now.
    pub fn snapshot(&self) -> Counts {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// A duration as .NET serialises a `TimeSpan` (the reference's status shows them so).
pub fn time_span(d: Duration) -> Value {
    let ticks = (d.as_nanos() / 100) as u64;
    let total_ms = d.as_secs_f64() * 1000.0;
    let secs = d.as_secs();
    json!({
        "ticks": ticks,
        "days": secs / 86_400,
        "hours": (secs / 3600) % 24,
        "minutes": (secs / 60) % 60,
        "seconds": secs % 60,
        "milliseconds": d.subsec_millis(),
        "totalDays": total_ms / 86_400_000.0,
        "totalHours": total_ms / 3_600_000.0,
        "totalMinutes": total_ms / 60_000.0,
        "totalSeconds": total_ms / 1000.0,
        "totalMilliseconds": total_ms,
    })
}

/// What `GET /api/v1/status/blockParser` shows besides the counters.
#[derive(Debug, Clone)]
pub struct ChainView {
    /// The best tip.
    pub best: Option<(bsv_primitives::BlockHash, u64)>,
    /// Blocks waiting to be parsed.
    pub queued: i64,
    /// Events not yet delivered to mapi.
    pub events_waiting: i64,
    /// `MAX_BLOCK_CHAIN_LENGTH_FOR_FORK`.
    pub max_block_chain_length_for_fork: u64,
}

/// The reference's `status/blockParser` document.
pub fn status_document(c: &Counts, view: &ChainView) -> Value {
    let average = |total: Duration, n: u64| if n == 0 { Duration::ZERO } else { total / n as u32 };
    let download_mbps = if c.total_download.is_zero() {
        0.0
    } else {
        c.total_bytes as f64 * 8.0 / 1_000_000.0 / c.total_download.as_secs_f64()
    };
    let per_tx = if c.total_txs == 0 {
        Duration::ZERO
    } else {
        Duration::from_secs_f64(c.total_parse.as_secs_f64() / c.total_txs as f64)
    };
    let last = c.last.as_ref();
    json!({
        "blocksProcessed": c.blocks_processed,
        "blocksParsed": c.blocks_parsed,
        "totalBytes": c.total_bytes,
        "totalTxs": c.total_txs,
        "totalTxsFound": c.total_txs_found,
        "totalDsFound": c.total_ds_found,
        "bestBlockHash": view.best.map(|b| b.0.to_string()),
        "bestBlockHeight": view.best.map(|b| b.1),
        "lastBlockHash": last.map(|l| l.hash.to_string()),
        "lastBlockHeight": last.map(|l| l.height),
        "lastBlockParsedAt": last.and_then(|l| l.parsed_at.format(&time::format_description::well_known::Rfc3339).ok()),
        "lastBlockParseTime": last.map(|l| time_span(l.parse_time)),
        "lastBlockInQueueAndParseTime": last.map(|l| time_span(l.queue_and_parse_time)),
        "averageParseTime": time_span(average(c.total_parse, c.blocks_parsed)),
        "averageTxParseTime": time_span(per_tx),
        "averageBlockDownloadSpeed": format!("{download_mbps:.2} Mb/s"),
        "maxParseTime": time_span(c.max_parse),
        "numOfErrors": c.num_of_errors,
        "blockParserQueue": view.queued,
        "blockParserDescription": format!(
            "Number of blocks processed from node: {}. Number of blocks parsed: {}. Blocks waiting to be parsed: {}. \
             Events waiting for mapi: {}. Number of errors: {}.",
            c.blocks_processed, c.blocks_parsed, view.queued, view.events_waiting, c.num_of_errors
        ),
        "blockParserSettings": {
            "dontParseBlocks": false,
            "dontInsertTransactions": false,
            "deltaBlockHeightForDoubleSpendCheck": 0,
            "maxBlockChainLengthForFork": view.max_block_chain_length_for_fork,
        },
        "eventsWaiting": view.events_waiting,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_spans_look_like_dotnet() {
        let v = time_span(Duration::from_millis(90_061_001));
        assert_eq!(v["days"], 1);
        assert_eq!(v["hours"], 1);
        assert_eq!(v["minutes"], 1);
        assert_eq!(v["seconds"], 1);
        assert_eq!(v["milliseconds"], 1);
        assert_eq!(v["ticks"], 900_610_010_000u64);
        assert!((v["totalSeconds"].as_f64().unwrap_or_default() - 90_061.001).abs() < 1e-6);
    }

    #[test]
    fn the_document_has_the_references_fields() {
        let stats = Stats::new(&Registry::new()).unwrap_or_else(|e| panic!("{e}"));
        stats.parsed(&Parsed {
            hash: bsv_primitives::BlockHash::from_internal([1; 32]),
            height: 7,
            bytes: 1_000_000,
            txs: 10,
            found: 2,
            double_spends: 1,
            took: Duration::from_millis(100),
            download: Duration::from_millis(80),
            since_seen: Duration::from_millis(300),
        });
        let view =
            ChainView { best: None, queued: 3, events_waiting: 0, max_block_chain_length_for_fork: 432 };
        let doc = status_document(&stats.snapshot(), &view);
        for field in [
            "blocksProcessed",
            "blocksParsed",
            "totalBytes",
            "totalTxs",
            "totalTxsFound",
            "totalDsFound",
            "bestBlockHash",
            "bestBlockHeight",
            "lastBlockHash",
            "lastBlockHeight",
            "lastBlockParsedAt",
            "lastBlockParseTime",
            "lastBlockInQueueAndParseTime",
            "averageParseTime",
            "averageTxParseTime",
            "averageBlockDownloadSpeed",
            "maxParseTime",
            "numOfErrors",
            "blockParserQueue",
            "blockParserDescription",
            "blockParserSettings",
        ] {
            assert!(doc.get(field).is_some(), "{field} missing");
        }
        assert_eq!(doc["totalDsFound"], 1);
        assert_eq!(doc["lastBlockHeight"], 7);
        assert_eq!(doc["averageBlockDownloadSpeed"], "100.00 Mb/s");
        assert_eq!(doc["blockParserQueue"], 3);
    }
}
