//! The instant queue: notifications waiting in memory, grouped by host, handed to the delivery
//! tasks a batch of one host at a time. Hosts whose mean response time is above the threshold are
//! served by the slow pool, the others by the fast pool, so that a stalling host cannot hold up
//! the rest. A host has at most one batch in flight; hosts with work take turns (round robin).
//! The queue is bounded: what it refuses is left to the background retry job.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// A notification to deliver, as held in memory.
#[derive(Clone)]
pub struct Item {
    /// Its row.
    pub id: i64,
    /// The host it is grouped by.
    pub host: String,
    /// Where to POST.
    pub url: String,
    /// `Authorization` value (never printed).
    pub token: Option<String>,
    /// `libsodium sealed_box <key>`, if the body is to be sealed.
    pub encryption: Option<String>,
    /// The signed envelope.
    pub body: Arc<str>,
    /// Failed attempts so far.
    pub error_count: i32,
}

impl std::fmt::Debug for Item {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Item")
            .field("id", &self.id)
            .field("host", &self.host)
            .field("error_count", &self.error_count)
            .finish_non_exhaustive()
    }
}

/// The two pools of delivery tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pool {
    /// Hosts answering within the threshold (and hosts not measured yet).
    Fast,
    /// Hosts whose mean response time is above the threshold.
    Slow,
}

impl Pool {
    fn index(self) -> usize {
        match self {
            Pool::Fast => 0,
            Pool::Slow => 1,
        }
    }
}

/// A batch handed to a task: notifications of one host.
#[derive(Debug)]
pub struct Batch {
    /// The host.
    pub host: String,
    /// Its notifications, oldest first.
    pub items: Vec<Item>,
}

/// Limits of the queue.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Notifications held in all.
    pub queue_size: usize,
    /// Notifications of slow hosts held.
    pub slow_queue_size: usize,
    /// Notifications per batch.
    pub batch: usize,
    /// Response times kept per host.
    pub saved_times: usize,
    /// Mean above which a host is slow.
    pub slow_threshold: Duration,
}

/// The most hosts whose response times are remembered; beyond it, idle hosts are forgotten.
const MAX_TIMED_HOSTS: usize = 100_000;

#[derive(Debug, Default)]
struct Inner {
    queues: HashMap<String, VecDeque<Item>>,
    waiting: [VecDeque<String>; 2],
    busy: HashSet<String>,
    held: HashSet<i64>,
    queued: usize,
    times: HashMap<String, VecDeque<Duration>>,
}

/// The instant queue (shared by the intake, the retry job and the delivery tasks).
#[derive(Debug)]
pub struct Scheduler {
    inner: Mutex<Inner>,
    ready: [Notify; 2],
    limits: Limits,
}

impl Scheduler {
    /// An empty queue.
    pub fn new(limits: Limits) -> Self {
        Self { inner: Mutex::new(Inner::default()), ready: [Notify::new(), Notify::new()], limits }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Notifications waiting (not in flight).
    pub fn queued(&self) -> usize {
        self.lock().queued
    }

    /// Room left in the queue.
    pub fn room(&self) -> usize {
        self.limits.queue_size.saturating_sub(self.lock().queued)
    }

    /// Every notification waiting or in flight here (their leases are renewed).
    pub fn held_ids(&self) -> Vec<i64> {
        self.lock().held.iter().copied().collect()
    }

    /// The pool that serves `host` now.
    pub fn pool_of(&self, host: &str) -> Pool {
        pool_of(&self.lock(), host, &self.limits)
    }

    /// Queues a notification for instant delivery; gives it back when the queue is full (or full
    /// of slow hosts' notifications and this host is slow). One already held is taken as queued.
    pub fn offer(&self, item: Item) -> Result<(), Box<Item>> {
        let mut inner = self.lock();
        if inner.held.contains(&item.id) {
            return Ok(());
        }
        if inner.queued >= self.limits.queue_size {
            return Err(Box::new(item));
        }
        let pool = pool_of(&inner, &item.host, &self.limits);
        if pool == Pool::Slow && slow_queued(&inner, &self.limits) >= self.limits.slow_queue_size {
            return Err(Box::new(item));
        }
        let host = item.host.clone();
        inner.held.insert(item.id);
        inner.queued += 1;
        inner.queues.entry(host.clone()).or_default().push_back(item);
        self.make_ready(&mut inner, host, pool);
        Ok(())
    }

    fn make_ready(&self, inner: &mut Inner, host: String, pool: Pool) {
        if inner.busy.contains(&host) || inner.waiting.iter().any(|w| w.contains(&host)) {
            return;
        }
        inner.waiting[pool.index()].push_back(host);
        self.ready[pool.index()].notify_one();
    }

    /// The next batch for a task of `pool`, if one waits.
    pub fn try_take(&self, pool: Pool) -> Option<Batch> {
        let mut inner = self.lock();
        loop {
            let host = inner.waiting[pool.index()].pop_front()?;
            let now = pool_of(&inner, &host, &self.limits);
            if now != pool {
                // The host changed pools since it was queued.
                inner.waiting[now.index()].push_back(host);
                self.ready[now.index()].notify_one();
                continue;
            }
            let Some(queue) = inner.queues.get_mut(&host) else { continue };
            let n = queue.len().min(self.limits.batch);
            let items: Vec<Item> = queue.drain(..n).collect();
            if queue.is_empty() {
                inner.queues.remove(&host);
            }
            if items.is_empty() {
                continue;
            }
            inner.queued -= items.len();
            inner.busy.insert(host.clone());
            return Some(Batch { host, items });
        }
    }

    /// Waits for the next batch of `pool`; `None` once `cancel` fires.
    pub async fn take(&self, pool: Pool, cancel: &CancellationToken) -> Option<Batch> {
        loop {
            if let Some(batch) = self.try_take(pool) {
                return Some(batch);
            }
            tokio::select! {
                _ = cancel.cancelled() => return None,
                _ = self.ready[pool.index()].notified() => {}
            }
        }
    }

    /// A batch is over: `times` are the response times measured (a timeout counts as its full
    /// length), `done` the notifications settled (delivered or failed), `returned` the ones not
    /// tried, queued again at the front of the host's queue.
    pub fn finish(&self, host: &str, times: &[Duration], done: &[i64], returned: Vec<Item>) {
        let mut inner = self.lock();
        self.record_times(&mut inner, host, times);
        for id in done {
            inner.held.remove(id);
        }
        inner.busy.remove(host);
        if !returned.is_empty() {
            inner.queued += returned.len();
            let queue = inner.queues.entry(host.to_owned()).or_default();
            for item in returned.into_iter().rev() {
                queue.push_front(item);
            }
        }
        if inner.queues.contains_key(host) {
            let pool = pool_of(&inner, host, &self.limits);
            self.make_ready(&mut inner, host.to_owned(), pool);
        }
    }

    fn record_times(&self, inner: &mut Inner, host: &str, times: &[Duration]) {
        if times.is_empty() {
            return;
        }
        if inner.times.len() >= MAX_TIMED_HOSTS && !inner.times.contains_key(host) {
            let Inner { times: timed, queues, busy, .. } = &mut *inner;
            timed.retain(|h, _| queues.contains_key(h) || busy.contains(h));
        }
        let kept = inner.times.entry(host.to_owned()).or_default();
        for t in times {
            kept.push_back(*t);
            while kept.len() > self.limits.saved_times {
                kept.pop_front();
            }
        }
    }
}

fn pool_of(inner: &Inner, host: &str, limits: &Limits) -> Pool {
    match inner.times.get(host) {
        Some(times) if !times.is_empty() => {
            let mean = times.iter().sum::<Duration>() / times.len() as u32;
            if mean > limits.slow_threshold { Pool::Slow } else { Pool::Fast }
        }
        _ => Pool::Fast,
    }
}

fn slow_queued(inner: &Inner, limits: &Limits) -> usize {
    inner
        .queues
        .iter()
        .filter(|(host, _)| pool_of(inner, host, limits) == Pool::Slow)
        .map(|(_, q)| q.len())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            queue_size: 10,
            slow_queue_size: 2,
            batch: 3,
            saved_times: 2,
            slow_threshold: Duration::from_millis(100),
        }
    }

    fn item(id: i64, host: &str) -> Item {
        Item {
            id,
            host: host.into(),
            url: format!("http://{host}/cb"),
            token: None,
            encryption: None,
            body: "{}".into(),
            error_count: 0,
        }
    }

    #[test]
    fn batches_hold_one_host_and_hosts_take_turns() {
        let s = Scheduler::new(limits());
        for id in 0..5 {
            s.offer(item(id, "a")).unwrap();
        }
        s.offer(item(10, "b")).unwrap();
        let first = s.try_take(Pool::Fast).unwrap();
        assert_eq!((first.host.as_str(), first.items.len()), ("a", 3));
        // a is busy: b comes next, then nothing until a's batch is over.
        let second = s.try_take(Pool::Fast).unwrap();
        assert_eq!(second.host, "b");
        assert!(s.try_take(Pool::Fast).is_none());
        s.finish("a", &[Duration::from_millis(5)], &[0, 1, 2], vec![]);
        let third = s.try_take(Pool::Fast).unwrap();
        assert_eq!(third.items.iter().map(|i| i.id).collect::<Vec<_>>(), vec![3, 4]);
    }

    #[test]
    fn a_slow_host_moves_to_the_slow_pool() {
        let s = Scheduler::new(limits());
        s.offer(item(1, "slow")).unwrap();
        s.offer(item(2, "slow")).unwrap();
        let batch = s.try_take(Pool::Fast).unwrap();
        // The first notification timed out; the second was not tried and goes back.
        let returned = batch.items[1..].to_vec();
        s.finish("slow", &[Duration::from_secs(1)], &[1], returned);
        assert_eq!(s.pool_of("slow"), Pool::Slow);
        assert!(s.try_take(Pool::Fast).is_none());
        assert_eq!(s.try_take(Pool::Slow).unwrap().items[0].id, 2);
    }

    #[test]
    fn the_queue_is_bounded_and_slow_hosts_have_their_share() {
        let s = Scheduler::new(limits());
        s.offer(item(1, "slow")).unwrap();
        let b = s.try_take(Pool::Fast).unwrap();
        s.finish(&b.host, &[Duration::from_secs(1)], &[1], vec![]);
        s.offer(item(2, "slow")).unwrap();
        s.offer(item(3, "slow")).unwrap();
        assert!(s.offer(item(4, "slow")).is_err(), "slow share is 2");
        for id in 10..18 {
            s.offer(item(id, "fast")).unwrap();
        }
        assert!(s.offer(item(99, "fast")).is_err(), "queue size is 10");
        assert!(s.offer(item(10, "fast")).is_ok(), "held already");
        assert_eq!(s.room(), 0);
    }

    #[test]
    fn the_mean_of_the_kept_times_decides() {
        let s = Scheduler::new(limits());
        s.finish("h", &[Duration::from_secs(1)], &[], vec![]);
        assert_eq!(s.pool_of("h"), Pool::Slow);
        s.finish("h", &[Duration::from_millis(1), Duration::from_millis(1)], &[], vec![]);
        assert_eq!(s.pool_of("h"), Pool::Fast, "only the last two are kept");
    }
}
