//! Opportunistic batching: concurrent calls of one operation (a node's `sendrawtransactions`, a
//! database write) are merged into one call, and each caller gets its share of the answer.
//!
//! Why: under concurrency, most of a single-transaction submission is per-call overhead (a round
//! trip, a statement, a commit), not per-transaction work. Nothing waits for a batch to fill: a
//! call starts at once when a slot is free; calls arriving while every slot is busy are merged into
//! the next one. At concurrency 1 this is a direct call.
//!
//! The queue is bounded (in items): when it is full, a call is refused at once
//! ([`Refused::Full`]) instead of waiting behind a database or node that does not answer.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{Semaphore, mpsc, oneshot};

struct Job<Req, Resp> {
    req: Req,
    reply: oneshot::Sender<Resp>,
}

/// How a batch is formed and run.
pub trait Batch: Send + Sync + 'static {
    /// One caller's request.
    type Req: Send + 'static;
    /// One caller's answer.
    type Resp: Send + 'static;

    /// Items a request adds to a batch (batches stop growing at `max_items`).
    fn size(req: &Self::Req) -> usize;

    /// Whether `req` may join a batch already holding `batch` (no item twice in one call, where
    /// the operation cannot take that).
    fn fits(batch: &[&Self::Req], req: &Self::Req) -> bool;

    /// Runs the merged call; one answer per request, in order.
    fn run(&self, reqs: Vec<Self::Req>) -> impl Future<Output = Vec<Self::Resp>> + Send;
}

/// Why a call was not made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Too many items are waiting already.
    #[error("too many requests are waiting")]
    Full,
    /// The worker has stopped (only while the service shuts down).
    #[error("the worker has stopped")]
    Stopped,
}

/// A handle to a batching worker. Cheap to clone.
pub struct Coalescer<B: Batch> {
    jobs: mpsc::UnboundedSender<Job<B::Req, B::Resp>>,
    batch: Arc<B>,
    slots: Arc<Semaphore>,
    /// Requests waiting for the worker.
    queued: Arc<AtomicUsize>,
    /// Items of the requests waiting for the worker.
    queued_items: Arc<AtomicUsize>,
    /// Most items that may wait.
    capacity: usize,
    parallel: usize,
}

impl<B: Batch> Clone for Coalescer<B> {
    fn clone(&self) -> Self {
        Self {
            jobs: self.jobs.clone(),
            batch: self.batch.clone(),
            slots: self.slots.clone(),
            queued: self.queued.clone(),
            queued_items: self.queued_items.clone(),
            capacity: self.capacity,
            parallel: self.parallel,
        }
    }
}

impl<B: Batch> std::fmt::Debug for Coalescer<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coalescer").finish_non_exhaustive()
    }
}

impl<B: Batch> Coalescer<B> {
    /// Starts the worker: at most `parallel` merged calls in flight, each of at most `max_items`
    /// items (a single larger request still goes alone), and at most `capacity` items waiting.
    pub fn start(batch: B, parallel: usize, max_items: usize, capacity: usize) -> Self {
        let (jobs, mut queue) = mpsc::unbounded_channel::<Job<B::Req, B::Resp>>();
        let batch = Arc::new(batch);
        let parallel = parallel.max(1);
        let slots = Arc::new(Semaphore::new(parallel));
        let queued = Arc::new(AtomicUsize::new(0));
        let queued_items = Arc::new(AtomicUsize::new(0));
        let handle = Self {
            jobs,
            batch: batch.clone(),
            slots: slots.clone(),
            queued: queued.clone(),
            queued_items: queued_items.clone(),
            capacity,
            parallel,
        };
        tokio::spawn(async move {
            let mut carried: Option<Job<B::Req, B::Resp>> = None;
            loop {
                let first = match carried.take() {
                    Some(job) => job,
                    None => match queue.recv().await {
                        Some(job) => job,
                        None => return,
                    },
                };
                let Ok(slot) = slots.clone().acquire_owned().await else { return };
                // Everything that queued meanwhile joins, as far as it fits.
                let taken_out = |job: &Job<B::Req, B::Resp>| {
                    queued.fetch_sub(1, Ordering::SeqCst);
                    queued_items.fetch_sub(B::size(&job.req), Ordering::SeqCst);
                };
                taken_out(&first);
                let mut items = B::size(&first.req);
                let mut taken = vec![first];
                while items < max_items {
                    let Ok(job) = queue.try_recv() else { break };
                    let reqs: Vec<&B::Req> = taken.iter().map(|j| &j.req).collect();
                    if !B::fits(&reqs, &job.req) {
                        // Still waiting: counted until a batch takes it.
                        carried = Some(job);
                        break;
                    }
                    taken_out(&job);
                    items += B::size(&job.req);
                    taken.push(job);
                }
                let batch = batch.clone();
                tokio::spawn(async move {
                    let (reqs, replies): (Vec<_>, Vec<_>) =
                        taken.into_iter().map(|j| (j.req, j.reply)).unzip();
                    let answers = batch.run(reqs).await;
                    for (answer, reply) in answers.into_iter().zip(replies) {
                        // A caller that went away does not matter.
                        let _ = reply.send(answer);
                    }
                    drop(slot);
                });
            }
        });
        handle
    }

    /// Submits a request and waits for its share of the answer. When nothing is in flight or
    /// waiting, the call runs at once in the caller's task (no hop to the worker: at concurrency 1
    /// this is a direct call); under concurrency it goes to the worker, where it can be merged,
    /// unless the queue is full.
    pub async fn call(&self, req: B::Req) -> Result<B::Resp, Refused> {
        self.submit(req, false).await
    }

    /// As [`Coalescer::call`], but when the queue is full the caller runs its request alone
    /// instead of being refused: for work that must not be dropped once earlier steps happened
    /// (recording what the nodes answered). Its concurrency is still bounded by the callers'.
    pub async fn call_or_run(&self, req: B::Req) -> Result<B::Resp, Refused> {
        self.submit(req, true).await
    }

    async fn submit(&self, req: B::Req, run_when_full: bool) -> Result<B::Resp, Refused> {
        if self.queued.load(Ordering::SeqCst) == 0
            && self.slots.available_permits() == self.parallel
            && let Ok(slot) = self.slots.clone().try_acquire_owned()
        {
            let answer = self.batch.run(vec![req]).await.pop();
            drop(slot);
            return answer.ok_or(Refused::Stopped);
        }
        let size = B::size(&req);
        let waiting = self.queued_items.fetch_add(size, Ordering::SeqCst);
        // A request alone may exceed the capacity; it must not wait behind others then.
        if waiting > 0 && waiting + size > self.capacity {
            self.queued_items.fetch_sub(size, Ordering::SeqCst);
            if run_when_full {
                return self.batch.run(vec![req]).await.pop().ok_or(Refused::Stopped);
            }
            return Err(Refused::Full);
        }
        let (reply, answer) = oneshot::channel();
        self.queued.fetch_add(1, Ordering::SeqCst);
        if self.jobs.send(Job { req, reply }).is_err() {
            self.queued.fetch_sub(1, Ordering::SeqCst);
            self.queued_items.fetch_sub(size, Ordering::SeqCst);
            return Err(Refused::Stopped);
        }
        answer.await.map_err(|_| Refused::Stopped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Doubles numbers; counts calls; refuses a number twice in one call.
    struct Double(Arc<AtomicUsize>);

    impl Batch for Double {
        type Req = Vec<u32>;
        type Resp = Vec<u32>;

        fn size(req: &Vec<u32>) -> usize {
            req.len()
        }

        fn fits(batch: &[&Vec<u32>], req: &Vec<u32>) -> bool {
            !batch.iter().any(|b| b.iter().any(|x| req.contains(x)))
        }

        async fn run(&self, reqs: Vec<Vec<u32>>) -> Vec<Vec<u32>> {
            self.0.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            reqs.into_iter().map(|r| r.into_iter().map(|x| x * 2).collect()).collect()
        }
    }

    #[tokio::test]
    async fn concurrent_calls_are_merged_and_each_gets_its_own_answer() {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = Coalescer::start(Double(calls.clone()), 1, 1000, 10_000);
        let handles: Vec<_> = (0..50u32)
            .map(|i| {
                let c = c.clone();
                tokio::spawn(async move { (i, c.call(vec![i, i + 1000]).await.unwrap()) })
            })
            .collect();
        for h in handles {
            let (i, answer) = h.await.unwrap();
            assert_eq!(answer, vec![i * 2, (i + 1000) * 2]);
        }
        let n = calls.load(Ordering::SeqCst);
        assert!((1..50).contains(&n), "50 calls were merged into {n}");
    }

    #[tokio::test]
    async fn a_request_that_does_not_fit_waits_for_the_next_call() {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = Coalescer::start(Double(calls.clone()), 1, 1000, 10_000);
        let (a, b) = tokio::join!(c.call(vec![7]), c.call(vec![7]));
        assert_eq!((a.unwrap(), b.unwrap()), (vec![14], vec![14]));
        assert_eq!(calls.load(Ordering::SeqCst), 2, "the same item never goes twice in one call");
    }

    /// Never answers.
    struct Hung;

    impl Batch for Hung {
        type Req = Vec<u32>;
        type Resp = ();

        fn size(req: &Vec<u32>) -> usize {
            req.len()
        }

        fn fits(_: &[&Vec<u32>], _: &Vec<u32>) -> bool {
            true
        }

        async fn run(&self, _: Vec<Vec<u32>>) -> Vec<()> {
            std::future::pending().await
        }
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once() {
        let c = Coalescer::start(Hung, 1, 1000, 5);
        // One call in flight (it never ends), then 5 items waiting: the queue is full.
        let in_flight = tokio::spawn({
            let c = c.clone();
            async move { c.call(vec![0]).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let mut waiting = Vec::new();
        for i in 0..5 {
            let c = c.clone();
            waiting.push(tokio::spawn(async move { c.call(vec![i + 1]).await }));
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert_eq!(c.call(vec![9]).await, Err(Refused::Full));
        assert_eq!(c.call(vec![9, 10]).await, Err(Refused::Full));
        // Work that must not be dropped runs alone instead (here it hangs like the rest).
        let alone = tokio::time::timeout(std::time::Duration::from_millis(50), c.call_or_run(vec![11])).await;
        assert!(alone.is_err(), "it ran instead of being refused");
        in_flight.abort();
        for w in waiting {
            w.abort();
        }
    }
}
