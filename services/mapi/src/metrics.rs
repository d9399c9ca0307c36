//! mAPI's Prometheus metrics, with the reference's names so existing dashboards keep working.

use prometheus::{Gauge, Histogram, HistogramOpts, IntCounter, IntGauge, Registry};
use service_kit::metrics::MetricsError;

/// Every mAPI metric. Cheap to clone (the handles are shared).
#[derive(Clone, Debug)]
pub struct MapiMetrics {
    /// Submit requests (`POST /mapi/tx` and `/mapi/txs`).
    pub requests: IntCounter,
    /// Transactions submitted by authenticated users.
    pub tx_authenticated_user: IntCounter,
    /// Transactions submitted by anonymous users.
    pub tx_anonymous_user: IntCounter,
    /// Transactions sent to the nodes.
    pub tx_sent_to_node: IntCounter,
    /// Transactions the nodes accepted.
    pub tx_accepted_by_node: IntCounter,
    /// Transactions the nodes rejected.
    pub tx_rejected_by_node: IntCounter,
    /// Transactions whose submission failed with an error (no node answer).
    pub tx_submit_exception: IntCounter,
    /// Success results.
    pub tx_response_success: IntCounter,
    /// Failure results.
    pub tx_response_failure: IntCounter,
    /// Retryable failure results.
    pub tx_response_failure_retryable: IntCounter,
    /// Transactions refused for missing inputs.
    pub tx_missing_inputs: IntCounter,
    /// 1 when any node answered the last call.
    pub any_bitcoind_responding: Gauge,
    /// Time spent waiting for `gettxouts`.
    pub gettxouts_duration: Histogram,
    /// Time spent waiting for `sendrawtransactions`.
    pub sendrawtxs_duration: Histogram,
    /// Mempool checker: resubmission calls that succeeded.
    pub mempool_successful_resubmit: IntCounter,
    /// Mempool checker: resubmission calls that failed.
    pub mempool_unsuccessful_resubmit: IntCounter,
    /// Mempool checker: transactions found missing and resent.
    pub mempool_tx_missing: IntCounter,
    /// Mempool checker: transactions given up after the missing-inputs limit.
    pub mempool_tx_missing_inputs_max: IntCounter,
    /// 1 while this replica holds the mempool checker's lock (runs it), 0 while it stands by.
    pub mempool_checker_active: IntGauge,
    /// Mempool checker rounds skipped because block-parser had blocks waiting.
    pub mempool_rounds_skipped: IntCounter,
}

fn counter(registry: &Registry, name: &str, help: &str) -> Result<IntCounter, MetricsError> {
    let c = IntCounter::new(name, help)?;
    registry.register(Box::new(c.clone()))?;
    Ok(c)
}

fn histogram(registry: &Registry, name: &str, help: &str) -> Result<Histogram, MetricsError> {
    let h = Histogram::with_opts(HistogramOpts::new(name, help))?;
    registry.register(Box::new(h.clone()))?;
    Ok(h)
}

impl MapiMetrics {
    /// Registers every metric on `registry`.
    pub fn new(registry: &Registry) -> Result<Self, MetricsError> {
        let any = Gauge::new("merchantapi_mapi_any_bitcoind_responding", "1 if any bitcoind is responding")?;
        registry.register(Box::new(any.clone()))?;
        let active = IntGauge::new(
            "mapi_mempool_checker_active",
            "1 while this replica runs the mempool checker (holds its lock), 0 while it stands by",
        )?;
        registry.register(Box::new(active.clone()))?;
        Ok(Self {
            requests: counter(
                registry,
                "merchantapi_mapi_submit_requests_counter",
                "number of submit requests",
            )?,
            tx_authenticated_user: counter(
                registry,
                "merchantapi_mapi_tx_authenticated_user_counter",
                "transactions submitted by authenticated users",
            )?,
            tx_anonymous_user: counter(
                registry,
                "merchantapi_mapi_tx_anonymous_user_counter",
                "transactions submitted by anonymous users",
            )?,
            tx_sent_to_node: counter(
                registry,
                "merchantapi_mapi_tx_sent_to_node_counter",
                "transactions sent to node",
            )?,
            tx_accepted_by_node: counter(
                registry,
                "merchantapi_mapi_tx_accepted_by_node_counter",
                "transactions accepted by node",
            )?,
            tx_rejected_by_node: counter(
                registry,
                "merchantapi_mapi_tx_rejected_by_node_counter",
                "transactions rejected by node",
            )?,
            tx_submit_exception: counter(
                registry,
                "merchantapi_mapi_tx_submit_exception_counter",
                "transactions with submit exception",
            )?,
            tx_response_success: counter(
                registry,
                "merchantapi_mapi_tx_response_success_counter",
                "success responses",
            )?,
            tx_response_failure: counter(
                registry,
                "merchantapi_mapi_tx_response_failure_counter",
                "failure responses",
            )?,
            tx_response_failure_retryable: counter(
                registry,
                "merchantapi_mapi_tx_response_failure_retryable_counter",
                "retryable failure responses",
            )?,
            tx_missing_inputs: counter(
                registry,
                "merchantapi_mapi_tx_missing_inputs_counter",
                "transactions not accepted because of missing inputs",
            )?,
            any_bitcoind_responding: any,
            gettxouts_duration: histogram(
                registry,
                "merchantapi_rpcmulticlient_gettxouts_duration_seconds",
                "time waiting for gettxouts",
            )?,
            sendrawtxs_duration: histogram(
                registry,
                "merchantapi_rpcmulticlient_sendrawtxs_duration_seconds",
                "time waiting for sendrawtransactions",
            )?,
            mempool_successful_resubmit: counter(
                registry,
                "merchantapi_mempoolchecker_successful_resubmit_counter",
                "successful resubmits",
            )?,
            mempool_unsuccessful_resubmit: counter(
                registry,
                "merchantapi_mempoolchecker_unsuccessful_resubmit_counter",
                "unsuccessful or interrupted resubmits",
            )?,
            mempool_tx_missing: counter(
                registry,
                "merchantapi_mempoolchecker_tx_missing_counter",
                "missing transactions resent to node",
            )?,
            mempool_tx_missing_inputs_max: counter(
                registry,
                "merchantapi_mempoolchecker_tx_missing_inputs_max_counter",
                "transactions that reached the missing-inputs retry limit",
            )?,
            mempool_checker_active: active,
            mempool_rounds_skipped: counter(
                registry,
                "mapi_mempool_checker_rounds_skipped_total",
                "mempool checker rounds skipped while block-parser had more than MEMPOOL_CHECKER_BLOCKPARSER_QUEUED_MAX blocks to parse",
            )?,
        })
    }
}
