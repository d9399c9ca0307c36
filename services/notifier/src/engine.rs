//! The delivery engine of one replica: the pool tasks that deliver batches from the instant
//! queue, the retry job that claims due notifications from the table, and the lease keeper.
//! Every result is written before the notification leaves memory; a notification whose result
//! could not be written keeps its row as it was and is delivered again once its lease runs out
//! (at least once, never lost).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use db_kit::Db;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::delivery::{Deliverer, Outcome};
use crate::metrics::NotifierMetrics;
use crate::scheduler::{Batch, Item, Pool, Scheduler};
use crate::settings::NotifierSettings;
use crate::store::{self, Lease, Results, RetryPolicy};

/// Notifications the retry job claims per round at most.
const CLAIM_LIMIT: usize = 1000;

/// How often the retry job looks for due notifications (released ones, expired leases, retries
/// whose backoff is over); the retries themselves are timed by their backoff.
const RETRY_POLL: Duration = Duration::from_secs(1);

/// Results waiting to be written are written once this old...
const WRITE_AFTER: Duration = Duration::from_millis(10);

/// ...or this many.
const WRITE_AT_MOST: usize = 100;

/// What the engine's tasks share.
#[derive(Debug)]
pub struct Engine {
    /// The `notifier` schema.
    pub db: Db,
    /// The instant queue.
    pub scheduler: Scheduler,
    /// HTTP.
    pub deliverer: Deliverer,
    /// Settings.
    pub settings: NotifierSettings,
    /// This replica's leases.
    pub lease: Lease,
    /// Metrics.
    pub metrics: NotifierMetrics,
    /// Wakes the retry job (released notifications, a redelivery).
    pub wake_retry: Notify,
    /// Set while notifications wait in the table for room in the queue: the tasks wake the
    /// retry job as soon as half the queue is free, instead of leaving it to its next round.
    pub overflow: AtomicBool,
}

impl Engine {
    fn policy(&self) -> RetryPolicy {
        RetryPolicy {
            interval_secs: self.settings.notification_interval_sec as f64,
            max_backoff_secs: self.settings.max_backoff_sec.max(self.settings.notification_interval_sec)
                as f64,
            retry_count: i32::try_from(self.settings.notifications_retry_count).unwrap_or(i32::MAX),
        }
    }

    fn timeout(&self, pool: Pool) -> Duration {
        Duration::from_millis(match pool {
            Pool::Fast => self.settings.fast_host_response_timeout_ms,
            Pool::Slow => self.settings.slow_host_response_timeout_ms,
        })
    }

    /// Queues new or claimed notifications; the ones the queue refuses are released to the
    /// retry job. Returns how many were queued.
    pub async fn enqueue(&self, items: Vec<Item>) -> usize {
        let mut refused = Vec::new();
        let mut queued = 0;
        for item in items {
            match self.scheduler.offer(item) {
                Ok(()) => queued += 1,
                Err(item) => refused.push(item.id),
            }
        }
        self.metrics.in_queue.set(self.scheduler.queued() as i64);
        if !refused.is_empty() {
            self.overflow.store(true, Ordering::Relaxed);
            tracing::info!(count = refused.len(), "instant queue full; left to the background job");
            if let Err(e) = store::release(&self.db, self.lease, &refused).await {
                // The leases run out by themselves.
                tracing::warn!(error = %e, "releasing notifications failed");
            }
            self.wake_retry.notify_one();
        }
        queued
    }

    /// Delivers one batch and writes its results.
    async fn run_batch(&self, batch: Batch, pool: Pool) {
        let timeout = self.timeout(pool);
        let concurrency = self.settings.host_concurrency.max(1) as usize;
        let mut pending = batch.items.into_iter();
        let mut in_flight = FuturesUnordered::new();
        let mut results = Results::default();
        let mut unwritten_since: Option<Instant> = None;
        let mut done = Vec::new();
        let mut times = Vec::new();
        let mut stop = false;
        loop {
            while !stop && in_flight.len() < concurrency {
                let Some(item) = pending.next() else { break };
                in_flight.push(async move {
                    let (outcome, took) = self.deliverer.send(&item, timeout).await;
                    (item, outcome, took)
                });
            }
            let Some((item, outcome, took)) = in_flight.next().await else { break };
            self.metrics.duration.observe(took.as_secs_f64());
            match outcome {
                Outcome::Delivered => {
                    self.metrics.successful.inc();
                    times.push(took);
                    results.delivered.push(item.id);
                }
                Outcome::Failed { error, unreachable } => {
                    self.metrics.failed.inc();
                    tracing::info!(id = item.id, host = %batch.host, error = %error, "callback failed");
                    // A timeout counts as its full length, a refused connection as slow too: the
                    // host leaves the fast pool until it answers quickly again.
                    times.push(if unreachable { took.max(timeout) } else { took });
                    stop |= unreachable;
                    results.failed.push((item.id, error));
                }
                Outcome::Refused(error) => {
                    self.metrics.failed.inc();
                    tracing::warn!(id = item.id, host = %batch.host, error = %error, "callback refused; dead-lettered");
                    results.refused.push((item.id, error));
                }
            }
            // Results are written as they come, a few milliseconds' worth at a time: what a
            // crash can repeat is bounded by time, not by the batch.
            let since = *unwritten_since.get_or_insert_with(Instant::now);
            if results.len() >= WRITE_AT_MOST || since.elapsed() >= WRITE_AFTER {
                self.write_results(&results).await;
                done.extend(results.ids());
                results = Results::default();
                unwritten_since = None;
            }
        }
        let returned: Vec<Item> = pending.collect();
        if !results.is_empty() {
            self.write_results(&results).await;
            done.extend(results.ids());
        }
        self.scheduler.finish(&batch.host, &times, &done, returned);
        self.metrics.in_queue.set(self.scheduler.queued() as i64);
        let half_free = self.scheduler.room() * 2 >= self.settings.instant_notifications_queue_size as usize;
        if half_free && self.overflow.swap(false, Ordering::Relaxed) {
            self.wake_retry.notify_one();
        }
    }

    /// Writes results, trying a few times; if the database stays away the rows keep their lease
    /// until it runs out and the notifications are delivered again (at least once).
    async fn write_results(&self, results: &Results) {
        for attempt in 1..=5u32 {
            match store::record(&self.db, results, self.policy()).await {
                Ok(dead) => {
                    self.metrics.dead_lettered.inc_by(dead as u64);
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, attempt, "writing delivery results failed");
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
                }
            }
        }
        tracing::error!(
            delivered = results.delivered.len(),
            "delivery results were not written; these notifications will be delivered again"
        );
    }
}

/// A delivery task of `pool`, until `cancel`.
pub async fn pool_task(engine: Arc<Engine>, pool: Pool, cancel: CancellationToken) {
    while let Some(batch) = engine.scheduler.take(pool, &cancel).await {
        engine.run_batch(batch, pool).await;
    }
}

/// The retry job: claims due notifications as the queue has room (every second, or at once when
/// woken), keeps the error gauge, and prunes delivered rows.
pub async fn retry_job(engine: Arc<Engine>, cancel: CancellationToken) {
    let mut rounds: u64 = 0;
    loop {
        let room = engine.scheduler.room().min(CLAIM_LIMIT);
        if room > 0 {
            match store::claim_due(&engine.db, engine.lease, room as i64).await {
                Ok(items) if !items.is_empty() => {
                    tracing::debug!(count = items.len(), "due notifications claimed");
                    if items.len() == room {
                        // More may wait: claim again once the queue has room.
                        engine.overflow.store(true, Ordering::Relaxed);
                    }
                    engine.enqueue(items).await;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "claiming due notifications failed"),
            }
        }
        if rounds.is_multiple_of(10)
            && let Ok(n) = store::count_with_error(&engine.db).await
        {
            engine.metrics.with_error.set(n);
        }
        if rounds.is_multiple_of(600) {
            let hours = i64::try_from(engine.settings.keep_delivered_hours).unwrap_or(i64::MAX);
            match store::prune_delivered(&engine.db, hours).await {
                Ok(n) if n > 0 => tracing::info!(deleted = n, "delivered notifications pruned"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "pruning delivered notifications failed"),
            }
        }
        rounds += 1;
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = engine.wake_retry.notified() => {}
            _ = tokio::time::sleep(RETRY_POLL) => {}
        }
    }
}

/// Renews this replica's leases on what it holds, every third of the lease.
pub async fn lease_keeper(engine: Arc<Engine>, cancel: CancellationToken) {
    let period = Duration::from_secs(engine.settings.lease_sec.max(3) / 3);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(period) => {}
        }
        let held = engine.scheduler.held_ids();
        if let Err(e) = store::renew(&engine.db, engine.lease, &held).await {
            tracing::warn!(error = %e, held = held.len(), "renewing leases failed");
        }
    }
}
