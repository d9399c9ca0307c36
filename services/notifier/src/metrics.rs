//! The reference's `merchantapi_notificationshandler_*` metrics, and the dead letters this
//! service adds.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntGauge, Registry};
use service_kit::metrics::MetricsError;

/// Every notifier metric. Cheap to clone (the handles are shared).
#[derive(Clone, Debug)]
pub struct NotifierMetrics {
    /// Callbacks answered 2xx.
    pub successful: IntCounter,
    /// Callbacks that failed (any other answer, no answer, refused target).
    pub failed: IntCounter,
    /// How long receivers took to answer.
    pub duration: Histogram,
    /// Notifications waiting in the instant queue.
    pub in_queue: IntGauge,
    /// Notifications with an error, waiting for a background retry.
    pub with_error: IntGauge,
    /// Notifications dead-lettered (retry count reached or target refused).
    pub dead_lettered: IntCounter,
}

impl NotifierMetrics {
    /// Registers every metric on `registry`.
    pub fn new(registry: &Registry) -> Result<Self, MetricsError> {
        let successful = IntCounter::new(
            "merchantapi_notificationshandler_successful_callbacks_counter",
            "Number of successful callbacks.",
        )?;
        let failed = IntCounter::new(
            "merchantapi_notificationshandler_failed_callbacks_counter",
            "Number of failed callbacks.",
        )?;
        let duration = Histogram::with_opts(HistogramOpts::new(
            "merchantapi_notificationshandler_callback_duration_seconds",
            "Total duration of callbacks.",
        ))?;
        let in_queue =
            IntGauge::new("merchantapi_notificationshandler_notification_in_queue", "Queued notifications.")?;
        let with_error = IntGauge::new(
            "merchantapi_notificationshandler_notification_with_error",
            "Notifications with error that are not queued, but processed separately.",
        )?;
        let dead_lettered =
            IntCounter::new("notifier_dead_lettered_total", "Notifications given up on (dead letters).")?;
        registry.register(Box::new(successful.clone()))?;
        registry.register(Box::new(failed.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(in_queue.clone()))?;
        registry.register(Box::new(with_error.clone()))?;
        registry.register(Box::new(dead_lettered.clone()))?;
        Ok(Self { successful, failed, duration, in_queue, with_error, dead_lettered })
    }
}
